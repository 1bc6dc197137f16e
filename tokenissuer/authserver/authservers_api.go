package authserver

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/claims"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// Okta's Authorization Servers API (management API reference, tags
// AuthorizationServer, AuthorizationServerScopes, AuthorizationServerClaims,
// AuthorizationServerPolicies and AuthorizationServerRules), read-only:
// the custom authorization servers, their scopes, claims, access
// policies and rules as the configuration defines them, in Okta's
// AuthorizationServer, OAuth2Scope, OAuth2Claim, AuthorizationServerPolicy
// and AuthorizationServerPolicyRule shapes, with an API token (SSWS).
//
//	GET /api/v1/authorizationServers
//	GET /api/v1/authorizationServers/{id}
//	GET /api/v1/authorizationServers/{id}/scopes[/{scopeId}]
//	GET /api/v1/authorizationServers/{id}/claims[/{claimId}]
//	GET /api/v1/authorizationServers/{id}/policies[/{policyId}]
//	GET /api/v1/authorizationServers/{id}/policies/{policyId}/rules[/{ruleId}]
//	GET /api/v1/authorizationServers/{id}/associatedServers[?trusted=false][&q=...]
//
// associatedServers (tag AuthorizationServerAssoc) lists the servers
// named in the server's trusted_servers (trusted=true, the default), or
// every other custom server (trusted=false), optionally those whose
// name or audience begins with q; the list is not paginated (limit and
// after are ignored). Okta has no GET of one associated server, only
// DELETE: that path answers 405 with an empty Allow.
//
// Ids are the configured names (server id, scope, claim, policy and
// rule names), not Okta's generated ids. The org server is not listed:
// Okta's API manages custom authorization servers only. The
// configuration is the source of truth: every write (POST, PUT, DELETE,
// the lifecycle operations) answers 405 with Allow: GET and an error
// cause that says so; the resource exists, only the method is refused,
// and no other credential would make it succeed (403 would suggest one).

// authServersAPIPath is the API's path below the org base URL.
const authServersAPIPath = "api/v1/authorizationServers"

// authServersAPI serves authServersAPIPath and every path below it
// (routes.go).
var authServersAPI = &endpoint{serve: (*Issuer).serveAuthServersAPI}

// link is one HAL link of Okta's _links; allow, when set, is its hints.
func link(href string, allow ...string) map[string]any {
	l := map[string]any{"href": href}
	if len(allow) > 0 {
		l["hints"] = map[string]any{"allow": allow}
	}
	return l
}

// authServersRequest is a parsed path of the API.
type authServersRequest struct {
	server string
	// kind is what is asked for below the server: "", "scopes",
	// "claims", "policies", "rules" or "associatedServers"; id the item
	// (empty: the list).
	kind, id string
	policy   string
	// lifecycle: a lifecycle operation (activate, deactivate, key
	// rotation): a write.
	lifecycle bool
}

// parseAuthServersPath reads the segments below authServersAPIPath.
func parseAuthServersPath(seg []string) (authServersRequest, bool) {
	var q authServersRequest
	if len(seg) == 0 {
		return q, true
	}
	q.server, seg = seg[0], seg[1:]
	switch {
	case len(seg) == 0:
		return q, true
	case len(seg) == 2 && seg[0] == "lifecycle" && (seg[1] == "activate" || seg[1] == "deactivate"),
		len(seg) == 3 && seg[0] == "credentials" && seg[1] == "lifecycle" && seg[2] == "keyRotate":
		q.lifecycle = true
		return q, true
	case (seg[0] == "scopes" || seg[0] == "claims" || seg[0] == "associatedServers") && len(seg) <= 2:
		q.kind = seg[0]
		if len(seg) == 2 {
			q.id = seg[1]
		}
		return q, true
	case seg[0] != "policies":
		return q, false
	}
	q.kind = "policies"
	switch {
	case len(seg) == 1:
		return q, true
	case len(seg) == 2:
		q.id = seg[1]
		return q, true
	}
	q.policy, seg = seg[1], seg[2:]
	switch {
	case len(seg) == 2 && seg[0] == "lifecycle" && (seg[1] == "activate" || seg[1] == "deactivate"):
		q.id, q.lifecycle = q.policy, true
		return q, true
	case seg[0] != "rules":
		return q, false
	case len(seg) == 1:
		q.kind = "rules"
		return q, true
	case len(seg) == 2:
		q.kind, q.id = "rules", seg[1]
		return q, true
	case len(seg) == 4 && seg[2] == "lifecycle" && (seg[3] == "activate" || seg[3] == "deactivate"):
		q.kind, q.id, q.lifecycle = "rules", seg[1], true
		return q, true
	}
	return q, false
}

// serveAuthServersAPI answers the API's paths: the API token first (so
// an unauthenticated caller learns no id), then the method, then the
// resource.
func (i *Issuer) serveAuthServersAPI(w http.ResponseWriter, r *http.Request, _ *Server) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	rest := strings.TrimPrefix(r.URL.EscapedPath(), i.basePath+"/"+authServersAPIPath)
	var seg []string
	if rest != "" {
		var ok bool
		if seg, ok = pathSegments(strings.TrimPrefix(rest, "/")); !ok || !strings.HasPrefix(rest, "/") {
			i.notFound(w, r)
			return
		}
	}
	q, ok := parseAuthServersPath(seg)
	if !ok {
		i.notFound(w, r)
		return
	}
	if !i.apiTokenValid(r) {
		invalidToken(w)
		return
	}
	// A server that does not exist is 404 whatever the method, as at
	// Okta (E0000007), before the 405 of the read-only configuration.
	var s *Server
	if q.server != "" {
		if s, ok = i.servers[q.server]; !ok {
			notFoundResource(w, q.server, "AuthorizationServer")
			return
		}
	}
	if q.kind == "associatedServers" && q.id != "" {
		// Okta's only method here is DELETE (removing the trust): no
		// method is allowed on a configured trust (RFC 9110 10.2.1: an
		// empty Allow).
		readOnlyConfigAllow(w, "")
		return
	}
	if r.Method != http.MethodGet || q.lifecycle {
		readOnlyConfig(w)
		return
	}
	if q.server == "" {
		oauth.WriteJSON(w, http.StatusOK, i.AuthorizationServerList())
		return
	}
	switch q.kind {
	case "":
		oauth.WriteJSON(w, http.StatusOK, i.oktaAuthServer(s))
	case "scopes":
		out := []oktaScope{}
		for _, sc := range s.scopeOrder {
			if q.id == "" || sc.Name == q.id {
				out = append(out, oktaScopeOf(sc))
			}
		}
		writeListOrOne(w, q.id, "OAuth2Scope", out)
	case "claims":
		out := []oktaClaim{}
		for _, c := range s.cfg.Claims {
			if q.id == "" || c.Name == q.id {
				out = append(out, i.oktaClaimOf(s, c))
			}
		}
		writeListOrOne(w, q.id, "OAuth2Claim", out)
	case "policies":
		out := []oktaPolicy{}
		for n, p := range s.policies.Policies() {
			if q.id == "" || p.Name == q.id {
				out = append(out, i.oktaPolicyOf(s, p, n+1))
			}
		}
		writeListOrOne(w, q.id, "AuthorizationServerPolicy", out)
	case "rules":
		ps := s.policies.Policies()
		n := slices.IndexFunc(ps, func(p *policy.Policy) bool { return p.Name == q.policy })
		if n < 0 {
			notFoundResource(w, q.policy, "AuthorizationServerPolicy")
			return
		}
		out := []oktaRule{}
		for k, rule := range ps[n].Rules {
			if q.id == "" || rule.Name == q.id {
				out = append(out, i.oktaRuleOf(s, ps[n], rule, k+1))
			}
		}
		writeListOrOne(w, q.id, "AuthorizationServerPolicyRule", out)
	case "associatedServers":
		trusted := !strings.EqualFold(r.URL.Query().Get("trusted"), "false")
		oauth.WriteJSON(w, http.StatusOK, i.associatedServers(s, trusted, r.URL.Query().Get("q")))
	}
}

// associatedServers are s's trusted servers (trusted) in the order of
// its trusted_servers, or the other custom servers it does not trust,
// by id; with q, only those whose name or audience begins with q
// (case-insensitive). Each one's self link is its association, as at
// Okta, without hints: the association cannot be deleted here.
func (i *Issuer) associatedServers(s *Server, trusted bool, q string) []oktaAuthServer {
	var picked []*Server
	if trusted {
		for _, id := range s.cfg.TrustedServers {
			if t := s.trusted[id]; t != nil && !slices.Contains(picked, t) {
				picked = append(picked, t)
			}
		}
	} else {
		for _, o := range i.Servers() {
			if !o.Org && o != s && s.trusted[o.ID] == nil {
				picked = append(picked, o)
			}
		}
	}
	out := []oktaAuthServer{}
	for _, o := range picked {
		as := i.oktaAuthServer(o)
		if q != "" && !hasPrefixFold(as.Name, q) && !hasPrefixFold(o.Audience, q) {
			continue
		}
		if trusted {
			as.Links = map[string]any{"self": link(i.base + "/" + authServersAPIPath + "/" + s.ID + "/associatedServers/" + o.ID)}
		}
		out = append(out, as)
	}
	return out
}

// hasPrefixFold is strings.HasPrefix without regard to case.
func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// AuthorizationServerList is the Authorization Servers API's list:
// every custom server in Okta's AuthorizationServer shape, by id. Caddy's
// admin API serves it too (GET /token_issuer/servers).
func (i *Issuer) AuthorizationServerList() any {
	out := []oktaAuthServer{}
	for _, s := range i.Servers() {
		if !s.Org {
			out = append(out, i.oktaAuthServer(s))
		}
	}
	return out
}

// writeListOrOne answers the list, or its one item when id names one
// (404 of type typ when there is none).
func writeListOrOne[T any](w http.ResponseWriter, id, typ string, out []T) {
	switch {
	case id == "":
		oauth.WriteJSON(w, http.StatusOK, out)
	case len(out) == 0:
		notFoundResource(w, id, typ)
	default:
		oauth.WriteJSON(w, http.StatusOK, out[0])
	}
}

// readOnlyConfig refuses a write: 405 in Okta's error shape, with the
// reason as its cause.
func readOnlyConfig(w http.ResponseWriter) { readOnlyConfigAllow(w, "GET") }

// readOnlyConfigAllow is readOnlyConfig with allow as the Allow header.
func readOnlyConfigAllow(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	oauth.WriteJSON(w, http.StatusMethodNotAllowed, oktaError{Code: "E0000022",
		Summary: "The endpoint does not support the provided HTTP method", Link: "E0000022", ID: "oae" + randomToken()[:22],
		Causes: []any{map[string]string{"errorSummary": "Authorization servers, their scopes, claims, policies and rules are read from the Caddy configuration, which is the source of truth: change them there and reload."}}})
}

// oktaAuthServer is Okta's AuthorizationServer object.
type oktaAuthServer struct {
	ID          string                    `json:"id"`
	Name        string                    `json:"name"`
	Description string                    `json:"description"`
	Audiences   []string                  `json:"audiences"`
	Issuer      string                    `json:"issuer"`
	IssuerMode  string                    `json:"issuerMode"`
	Status      string                    `json:"status"`
	Created     string                    `json:"created"`
	LastUpdated string                    `json:"lastUpdated"`
	Credentials map[string]map[string]any `json:"credentials"`
	Links       map[string]any            `json:"_links"`
}

// serverTimes are a server's created (its first signing key's creation,
// which the store keeps across restarts) and lastUpdated (when this
// configuration was loaded) times.
func serverTimes(s *Server) (created, updated time.Time) {
	created = s.loaded
	for _, r := range keyRecords(s) {
		if !r.Created.IsZero() && r.Created.Before(created) {
			created = r.Created
		}
	}
	return created, s.loaded
}

// keyRecords are the server's loaded key records (none before Start).
func keyRecords(s *Server) []store.KeyRecord {
	if s.keys == nil || s.keys.Current() == nil {
		return nil
	}
	return s.keys.Current().Records
}

// oktaAuthServer is s in Okta's shape. issuerMode is ORG_URL: the
// issuer is always base_url's. credentials.signing names the ACTIVE key
// and when it began signing; rotation is automatic (AUTO), on the
// app's key_rotation_interval, whose next date the issuer does not
// know, so nextRotation is left out.
func (i *Issuer) oktaAuthServer(s *Server) oktaAuthServer {
	created, updated := serverTimes(s)
	name := s.cfg.Name
	if name == "" {
		name = s.ID
	}
	signing := map[string]any{"rotationMode": "AUTO", "use": "sig"}
	for _, r := range keyRecords(s) {
		if r.State == store.KeyActive {
			signing["kid"] = r.KID
			at := r.Activated
			if at.IsZero() {
				at = r.Created
			}
			signing["lastRotated"] = oktaTime(at)
		}
	}
	self := i.base + "/" + authServersAPIPath + "/" + s.ID
	return oktaAuthServer{
		ID: s.ID, Name: name, Description: s.cfg.Description, Audiences: []string{s.Audience}, Issuer: s.Issuer,
		IssuerMode: "ORG_URL", Status: "ACTIVE", Created: oktaTime(created), LastUpdated: oktaTime(updated),
		Credentials: map[string]map[string]any{"signing": signing},
		Links: map[string]any{
			"self":     link(self, "GET"),
			"scopes":   link(self+"/scopes", "GET"),
			"claims":   link(self+"/claims", "GET"),
			"policies": link(self+"/policies", "GET"),
			"metadata": []map[string]any{
				link(s.Issuer+"/.well-known/"+docOIDC, "GET"),
				link(s.Issuer+"/.well-known/"+docOAuth, "GET"),
			},
		},
	}
}

// oktaScope is Okta's OAuth2Scope object.
type oktaScope struct {
	ID              string `json:"id"`
	Name            string `json:"name"`
	DisplayName     string `json:"displayName,omitempty"`
	Description     string `json:"description,omitempty"`
	System          bool   `json:"system"`
	Default         bool   `json:"default"`
	Optional        bool   `json:"optional"`
	MetadataPublish string `json:"metadataPublish"`
	Consent         string `json:"consent"`
}

// oktaScopeOf is sc in Okta's shape: system for the OpenID Connect and
// Okta scopes every server has (unless configured), metadataPublish
// ALL_CLIENTS when it is in discovery, consent IMPLICIT or REQUIRED.
func oktaScopeOf(sc *Scope) oktaScope {
	out := oktaScope{ID: sc.Name, Name: sc.Name, Description: sc.Description, Default: sc.Default,
		MetadataPublish: "NO_CLIENTS", Consent: "IMPLICIT"}
	if sc.Publish {
		out.MetadataPublish = "ALL_CLIENTS"
	}
	if sc.Consent == "required" {
		out.Consent = "REQUIRED"
	}
	for _, sys := range systemScopes {
		if sys.Name == sc.Name && sys.Description == sc.Description {
			out.System = true
		}
	}
	return out
}

// oktaClaim is Okta's OAuth2Claim object.
type oktaClaim struct {
	ID                   string         `json:"id"`
	Name                 string         `json:"name"`
	Status               string         `json:"status"`
	ClaimType            string         `json:"claimType"`
	ValueType            string         `json:"valueType"`
	Value                string         `json:"value"`
	GroupFilterType      string         `json:"group_filter_type,omitempty"`
	AlwaysIncludeInToken bool           `json:"alwaysIncludeInToken"`
	Conditions           map[string]any `json:"conditions"`
	System               bool           `json:"system"`
	Links                map[string]any `json:"_links"`
	Language             string         `json:"language,omitempty"`
}

// oktaClaimOf is c in Okta's shape: claimType RESOURCE (access token)
// or IDENTITY (ID token), valueType EXPRESSION or GROUPS. value is the
// configured expression; language (not an Okta field) says whether it
// is CEL or Okta Expression Language, as Okta's is always the latter.
func (i *Issuer) oktaClaimOf(s *Server, c *claims.Claim) oktaClaim {
	out := oktaClaim{ID: c.Name, Name: c.Name, Status: "ACTIVE", ClaimType: "RESOURCE", ValueType: "EXPRESSION",
		Value: c.Value, AlwaysIncludeInToken: true, Conditions: map[string]any{"scopes": nonNil(c.Scopes)},
		Links: map[string]any{"self": link(i.base+"/"+authServersAPIPath+"/"+s.ID+"/claims/"+url.PathEscape(c.Name), "GET")}}
	if c.Disabled {
		out.Status = "INACTIVE"
	}
	if c.Token == claims.IDToken {
		out.ClaimType = "IDENTITY"
		if c.AlwaysIncludeInToken != nil {
			out.AlwaysIncludeInToken = *c.AlwaysIncludeInToken
		}
	}
	if c.Groups != nil {
		out.ValueType, out.Value = "GROUPS", c.Groups.Value
		out.GroupFilterType = strings.ToUpper(c.Groups.Type)
	} else {
		out.Language = claims.CEL
		if c.Language != "" {
			out.Language = c.Language
		}
	}
	return out
}

// oktaPolicy is Okta's AuthorizationServerPolicy object.
type oktaPolicy struct {
	Type        string         `json:"type"`
	ID          string         `json:"id"`
	Status      string         `json:"status"`
	Name        string         `json:"name"`
	Description string         `json:"description"`
	Priority    int            `json:"priority"`
	System      bool           `json:"system"`
	Conditions  map[string]any `json:"conditions"`
	Created     string         `json:"created"`
	LastUpdated string         `json:"lastUpdated"`
	Links       map[string]any `json:"_links"`
}

// oktaPolicyOf is p in Okta's shape; priority is its rank in evaluation
// order (1 first), as Okta numbers priorities, whatever the configured
// numbers. A policy for every client includes ALL_CLIENTS (Okta's value).
func (i *Issuer) oktaPolicyOf(s *Server, p *policy.Policy, rank int) oktaPolicy {
	created, updated := serverTimes(s)
	clients := p.Clients
	if slices.Contains(clients, policy.Any) {
		clients = []string{"ALL_CLIENTS"}
	}
	self := i.base + "/" + authServersAPIPath + "/" + s.ID + "/policies/" + url.PathEscape(p.Name)
	return oktaPolicy{Type: "OAUTH_AUTHORIZATION_POLICY", ID: p.Name, Status: "ACTIVE", Name: p.Name, Description: p.Description,
		Priority: rank, Conditions: map[string]any{"clients": map[string]any{"include": clients}},
		Created: oktaTime(created), LastUpdated: oktaTime(updated),
		Links: map[string]any{"self": link(self, "GET"), "rules": link(self+"/rules", "GET")}}
}

// oktaRule is Okta's AuthorizationServerPolicyRule object.
type oktaRule struct {
	Type        string         `json:"type"`
	ID          string         `json:"id"`
	Status      string         `json:"status"`
	Name        string         `json:"name"`
	Priority    int            `json:"priority"`
	System      bool           `json:"system"`
	Created     string         `json:"created"`
	LastUpdated string         `json:"lastUpdated"`
	Conditions  map[string]any `json:"conditions"`
	Actions     map[string]any `json:"actions"`
	Links       map[string]any `json:"_links"`
}

type includeExclude struct {
	Include []string `json:"include"`
	Exclude []string `json:"exclude"`
}

// oktaRuleOf is rule in Okta's shape (actions.token.inlineHook.id is
// the configured name of the rule's inline hook). People: users and groups as
// configured (ids or logins, group names); a rule for everyone includes
// Okta's EVERYONE group. Lifetimes are the effective ones in minutes
// (the defaults filled in: this issuer has no unlimited refresh
// lifetime, Okta's 0).
func (i *Issuer) oktaRuleOf(s *Server, p *policy.Policy, rule *policy.Rule, rank int) oktaRule {
	created, updated := serverTimes(s)
	users := includeExclude{Include: []string{}, Exclude: []string{}}
	groups := includeExclude{Include: []string{"EVERYONE"}, Exclude: []string{}}
	if pp := rule.People; pp != nil {
		users.Exclude, groups.Exclude = nonNil(pp.ExcludeUsers), nonNil(pp.ExcludeGroups)
		if len(pp.Users)+len(pp.Groups) > 0 {
			users.Include, groups.Include = nonNil(pp.Users), nonNil(pp.Groups)
		}
	}
	token := map[string]any{
		"accessTokenLifetimeMinutes":  int(rule.Lifetime() / time.Minute),
		"refreshTokenLifetimeMinutes": int(rule.RefreshLifetime() / time.Minute),
		"refreshTokenWindowMinutes":   int(rule.RefreshIdle() / time.Minute),
	}
	if name := s.hookFor(rule); name != "" {
		token["inlineHook"] = map[string]string{"id": name} // the hook's configured name
	}
	self := i.base + "/" + authServersAPIPath + "/" + s.ID + "/policies/" + url.PathEscape(p.Name) + "/rules/" + url.PathEscape(rule.Name)
	return oktaRule{Type: "RESOURCE_ACCESS", ID: rule.Name, Status: "ACTIVE", Name: rule.Name, Priority: rank,
		Created: oktaTime(created), LastUpdated: oktaTime(updated),
		Conditions: map[string]any{
			"people":     map[string]any{"users": users, "groups": groups},
			"grantTypes": map[string]any{"include": nonNil(rule.GrantTypes)},
			"scopes":     map[string]any{"include": nonNil(rule.Scopes)},
		},
		Actions: map[string]any{"token": token},
		Links:   map[string]any{"self": link(self, "GET")}}
}
