package authserver

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/duration"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/claims"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/inlinehook"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
)

// authServersEnv is the flow environment with an API token and a second
// custom server "payments" with a name, a description, claims and two
// policies.
func authServersEnv(t *testing.T) *flowEnv {
	t.Helper()
	no := false
	return newFlowEnvWith(t, issBase, func(o *Options) {
		o.APITokens = []string{logsToken}
		o.InlineHooks = []*inlinehook.Config{{Name: "enrich", URL: "https://hooks.example.com/token"}}
		o.Servers["payments"] = &ServerConfig{
			Name: "Payments API", Description: "Money moves here", Audience: "https://pay.example.com", SigningAlg: "ES256",
			Scopes: []*Scope{{Name: "pay:read", Description: "Read payments", Default: true, Publish: true}, {Name: "pay:write", Consent: "required"}},
			Claims: []*claims.Claim{
				{Name: "tier", Value: `"gold"`, Scopes: []string{"pay:read"}},
				{Name: "nick", Value: `user.login`, Token: claims.IDToken, AlwaysIncludeInToken: &no, Language: claims.Okta},
				{Name: "teams", Groups: &claims.GroupsFilter{Type: "starts_with", Value: "team-"}, Token: claims.IDToken, Disabled: true},
			},
			Policies: []*policy.Policy{
				{Name: "later", Priority: 20, Clients: []string{"*"}, Rules: []*policy.Rule{{Name: "all", GrantTypes: []string{GrantClientCredentials}, Scopes: []string{"*"}}}},
				{Name: "web-first", Priority: 10, Description: "web only", Clients: []string{"web", "other"}, Rules: []*policy.Rule{
					{Name: "staff", Priority: 2, GrantTypes: []string{GrantAuthorizationCode, GrantPassword}, Scopes: []string{"pay:read", "pay:write"},
						People:              &policy.People{Users: []string{"u1"}, Groups: []string{"staff"}, ExcludeUsers: []string{"u2"}, ExcludeGroups: []string{"contractors"}},
						AccessTokenLifetime: duration.Duration(15 * time.Minute), RefreshTokenLifetime: duration.Duration(30 * 24 * time.Hour), RefreshTokenIdle: duration.Duration(24 * time.Hour), InlineHook: "enrich"},
					{Name: "anyone", Priority: 1, GrantTypes: []string{GrantAuthorizationCode}, Scopes: []string{"pay:read"}, People: &policy.People{ExcludeUsers: []string{"u2"}}},
				}},
			},
		}
	}, nil)
}

// adminGET GETs path with the API token and decodes a 200 answer into out.
func (e *flowEnv) adminGET(path string, out any) {
	e.t.Helper()
	w := e.grantsAPI(http.MethodGet, path)
	if w.Code != 200 {
		e.t.Fatalf("GET %s: %d %s", path, w.Code, w.Body)
	}
	if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
}

// TestAuthServersAPI: the configured custom servers (not the org one)
// in Okta's AuthorizationServer shape, with their signing key; their
// scopes, claims, policies and rules by configured name, in evaluation
// order with Okta's 1-based priorities.
func TestAuthServersAPI(t *testing.T) {
	e := authServersEnv(t)
	var list []map[string]any
	e.adminGET("/api/v1/authorizationServers", &list)
	if len(list) != 2 || list[0]["id"] != "default" || list[1]["id"] != "payments" {
		t.Fatalf("servers: %v", list)
	}
	var as map[string]any
	e.adminGET("/api/v1/authorizationServers/payments", &as)
	if as["name"] != "Payments API" || as["description"] != "Money moves here" || as["issuer"] != issBase+"/oauth2/payments" ||
		as["status"] != "ACTIVE" || as["issuerMode"] != "ORG_URL" || !slices.Equal(anyStrings(as["audiences"]), []string{"https://pay.example.com"}) {
		t.Fatalf("server: %v", as)
	}
	if list[0]["name"] != "default" || list[0]["audiences"].([]any)[0] != "api://default" {
		t.Errorf("default server: %v", list[0])
	}
	signing := as["credentials"].(map[string]any)["signing"].(map[string]any)
	active := e.iss.servers["payments"].keys.Current().Active.KeyID()
	if signing["kid"] != active || signing["rotationMode"] != "AUTO" || signing["lastRotated"] == nil {
		t.Errorf("signing %v, active kid %s", signing, active)
	}
	for _, f := range []string{"created", "lastUpdated"} {
		if _, err := time.Parse(time.RFC3339, as[f].(string)); err != nil {
			t.Errorf("%s %v: %v", f, as[f], err)
		}
	}
	links := as["_links"].(map[string]any)
	if links["policies"].(map[string]any)["href"] != issBase+"/api/v1/authorizationServers/payments/policies" || len(links["metadata"].([]any)) != 2 {
		t.Errorf("links %v", links)
	}

	var scopes []map[string]any
	e.adminGET("/api/v1/authorizationServers/payments/scopes", &scopes)
	byName := map[string]map[string]any{}
	for _, s := range scopes {
		byName[s["name"].(string)] = s
	}
	if r := byName["pay:read"]; r["id"] != "pay:read" || r["default"] != true || r["metadataPublish"] != "ALL_CLIENTS" || r["consent"] != "IMPLICIT" || r["system"] != false || r["description"] != "Read payments" {
		t.Errorf("pay:read %v", r)
	}
	if w := byName["pay:write"]; w["consent"] != "REQUIRED" || w["metadataPublish"] != "NO_CLIENTS" {
		t.Errorf("pay:write %v", w)
	}
	if o := byName["openid"]; o["system"] != true {
		t.Errorf("openid %v", o)
	}
	var one map[string]any
	e.adminGET("/api/v1/authorizationServers/payments/scopes/pay:write", &one)
	if one["name"] != "pay:write" {
		t.Errorf("one scope %v", one)
	}

	var cl []map[string]any
	e.adminGET("/api/v1/authorizationServers/payments/claims", &cl)
	if len(cl) != 3 {
		t.Fatalf("claims %v", cl)
	}
	if c := cl[0]; c["id"] != "tier" || c["claimType"] != "RESOURCE" || c["valueType"] != "EXPRESSION" || c["value"] != `"gold"` ||
		c["status"] != "ACTIVE" || c["alwaysIncludeInToken"] != true || !slices.Equal(anyStrings(c["conditions"].(map[string]any)["scopes"]), []string{"pay:read"}) || c["language"] != "cel" {
		t.Errorf("tier %v", c)
	}
	if c := cl[1]; c["claimType"] != "IDENTITY" || c["alwaysIncludeInToken"] != false || c["language"] != "okta" {
		t.Errorf("nick %v", c)
	}
	if c := cl[2]; c["valueType"] != "GROUPS" || c["group_filter_type"] != "STARTS_WITH" || c["value"] != "team-" || c["status"] != "INACTIVE" {
		t.Errorf("teams %v", c)
	}

	var ps []map[string]any
	e.adminGET("/api/v1/authorizationServers/payments/policies", &ps)
	if len(ps) != 2 || ps[0]["id"] != "web-first" || ps[0]["priority"] != 1.0 || ps[1]["id"] != "later" || ps[1]["priority"] != 2.0 {
		t.Fatalf("policies in evaluation order: %v", ps)
	}
	if p := ps[0]; p["type"] != "OAUTH_AUTHORIZATION_POLICY" || p["status"] != "ACTIVE" || p["description"] != "web only" ||
		!slices.Equal(anyStrings(p["conditions"].(map[string]any)["clients"].(map[string]any)["include"]), []string{"web", "other"}) {
		t.Errorf("policy %v", p)
	}
	if inc := anyStrings(ps[1]["conditions"].(map[string]any)["clients"].(map[string]any)["include"]); !slices.Equal(inc, []string{"ALL_CLIENTS"}) {
		t.Errorf("every client: %v", inc)
	}
	var rules []map[string]any
	e.adminGET("/api/v1/authorizationServers/payments/policies/web-first/rules", &rules)
	if len(rules) != 2 || rules[0]["id"] != "anyone" || rules[1]["id"] != "staff" || rules[1]["priority"] != 2.0 {
		t.Fatalf("rules in evaluation order: %v", rules)
	}
	var staff map[string]any
	e.adminGET("/api/v1/authorizationServers/payments/policies/web-first/rules/staff", &staff)
	cond := staff["conditions"].(map[string]any)
	people := cond["people"].(map[string]any)
	users, groups := people["users"].(map[string]any), people["groups"].(map[string]any)
	if staff["type"] != "RESOURCE_ACCESS" || !slices.Equal(anyStrings(users["include"]), []string{"u1"}) || !slices.Equal(anyStrings(users["exclude"]), []string{"u2"}) ||
		!slices.Equal(anyStrings(groups["include"]), []string{"staff"}) || !slices.Equal(anyStrings(groups["exclude"]), []string{"contractors"}) ||
		!slices.Equal(anyStrings(cond["grantTypes"].(map[string]any)["include"]), []string{GrantAuthorizationCode, GrantPassword}) ||
		!slices.Equal(anyStrings(cond["scopes"].(map[string]any)["include"]), []string{"pay:read", "pay:write"}) {
		t.Errorf("staff conditions %v", staff)
	}
	tok := staff["actions"].(map[string]any)["token"].(map[string]any)
	if tok["accessTokenLifetimeMinutes"] != 15.0 || tok["refreshTokenLifetimeMinutes"] != 30*24*60.0 || tok["refreshTokenWindowMinutes"] != 24*60.0 {
		t.Errorf("staff lifetimes %v", tok)
	}
	if hook, _ := tok["inlineHook"].(map[string]any); hook["id"] != "enrich" {
		t.Errorf("staff inline hook %v", tok["inlineHook"])
	}
	if _, ok := rules[0]["actions"].(map[string]any)["token"].(map[string]any)["inlineHook"]; ok {
		t.Errorf("a rule without a hook names one: %v", rules[0]["actions"])
	}
	people = rules[0]["conditions"].(map[string]any)["people"].(map[string]any)
	if g := anyStrings(people["groups"].(map[string]any)["include"]); !slices.Equal(g, []string{"EVERYONE"}) {
		t.Errorf("a rule for everyone includes %v", g)
	}
	var all map[string]any
	e.adminGET("/api/v1/authorizationServers/payments/policies/later/rules/all", &all)
	tok = all["actions"].(map[string]any)["token"].(map[string]any)
	if tok["accessTokenLifetimeMinutes"] != 60.0 || tok["refreshTokenLifetimeMinutes"] != 90*24*60.0 || tok["refreshTokenWindowMinutes"] != 7*24*60.0 {
		t.Errorf("default lifetimes %v", tok)
	}
}

func anyStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// TestAuthServersAPIRefusals: 401 without the API token (before any id
// is looked up), 404 for unknown servers, scopes, claims, policies and
// rules, and every write refused with 405, Allow: GET and the reason.
func TestAuthServersAPIRefusals(t *testing.T) {
	e := authServersEnv(t)
	for _, c := range []struct {
		method, path string
		auth         []string
		status       int
		code         string
	}{
		{http.MethodGet, "/api/v1/authorizationServers", []string{}, 401, "E0000011"},
		{http.MethodGet, "/api/v1/authorizationServers/payments", []string{"SSWS nope-" + logsToken}, 401, "E0000011"},
		{http.MethodGet, "/api/v1/authorizationServers/nosuch/policies", []string{}, 401, "E0000011"},
		{http.MethodGet, "/api/v1/authorizationServers/payments/policies/later/rules/all", []string{}, 401, "E0000011"},
		{http.MethodGet, "/api/v1/authorizationServers/nosuch", nil, 404, "nosuch (AuthorizationServer)"},
		{http.MethodGet, "/api/v1/authorizationServers/org", nil, 404, "(AuthorizationServer)"},
		{http.MethodGet, "/api/v1/authorizationServers/payments/scopes/nosuch", nil, 404, "(OAuth2Scope)"},
		{http.MethodGet, "/api/v1/authorizationServers/payments/claims/nosuch", nil, 404, "(OAuth2Claim)"},
		{http.MethodGet, "/api/v1/authorizationServers/payments/policies/nosuch", nil, 404, "(AuthorizationServerPolicy)"},
		{http.MethodGet, "/api/v1/authorizationServers/payments/policies/nosuch/rules", nil, 404, "(AuthorizationServerPolicy)"},
		{http.MethodGet, "/api/v1/authorizationServers/payments/policies/later/rules/nosuch", nil, 404, "(AuthorizationServerPolicyRule)"},
		{http.MethodGet, "/api/v1/authorizationServers/payments/nosuch", nil, 404, "E0000007"},
		{http.MethodGet, "/api/v1/authorizationServers/payments/policies/later/rules/all/more", nil, 404, "E0000007"},
		{http.MethodGet, "/api/v1/authorizationServers//scopes", nil, 404, "E0000007"},
		{http.MethodDelete, "/api/v1/authorizationServers/nosuch", nil, 404, "E0000007"},
		{http.MethodPut, "/api/v1/authorizationServers/nosuch/scopes/read", nil, 404, "nosuch (AuthorizationServer)"},
		{http.MethodPost, "/api/v1/authorizationServers/nosuch/lifecycle/activate", nil, 404, "E0000007"},
		{http.MethodPost, "/api/v1/authorizationServers", nil, 405, "source of truth"},
		{http.MethodPut, "/api/v1/authorizationServers/payments", nil, 405, "source of truth"},
		{http.MethodDelete, "/api/v1/authorizationServers/payments", nil, 405, "source of truth"},
		{http.MethodPost, "/api/v1/authorizationServers/payments/scopes", nil, 405, "source of truth"},
		{http.MethodDelete, "/api/v1/authorizationServers/payments/claims/tier", nil, 405, "source of truth"},
		{http.MethodPut, "/api/v1/authorizationServers/payments/policies/later/rules/all", nil, 405, "source of truth"},
		{http.MethodPost, "/api/v1/authorizationServers/payments/lifecycle/deactivate", nil, 405, "source of truth"},
		{http.MethodPost, "/api/v1/authorizationServers/payments/credentials/lifecycle/keyRotate", nil, 405, "source of truth"},
		{http.MethodPost, "/api/v1/authorizationServers/payments/policies/later/lifecycle/activate", nil, 405, "source of truth"},
		{http.MethodPost, "/api/v1/authorizationServers/payments/policies/later/rules/all/lifecycle/deactivate", nil, 405, "source of truth"},
	} {
		w := e.grantsAPI(c.method, c.path, c.auth...)
		if w.Code != c.status || !strings.Contains(w.Body.String(), c.code) {
			t.Errorf("%s %s: %d %s, want %d %s", c.method, c.path, w.Code, w.Body, c.status, c.code)
		}
		if c.status == 405 && (w.Header().Get("Allow") != "GET" || !strings.Contains(w.Body.String(), "E0000022")) {
			t.Errorf("%s %s: Allow %q body %s", c.method, c.path, w.Header().Get("Allow"), w.Body)
		}
	}
}

// TestAuthServersAPIAssociatedServers: Okta's associatedServers lists
// the servers of trusted_servers (trusted=true, the default) or the
// other custom servers (trusted=false, never the org server or the
// server itself), filtered by q on name or audience; the association
// itself cannot be read or deleted (405, empty Allow), and writes are
// refused like the others.
func TestAuthServersAPIAssociatedServers(t *testing.T) {
	e := newFlowEnvWith(t, issBase, func(o *Options) {
		o.APITokens = []string{logsToken}
		o.Servers["payments"] = &ServerConfig{Name: "Payments API", Audience: "https://pay.example.com", TrustedServers: []string{"ledger", "default"}}
		o.Servers["ledger"] = &ServerConfig{Name: "Ledger", Audience: "https://ledger.example.com"}
		o.Servers["reports"] = &ServerConfig{Name: "Reports", Audience: "https://reports.example.com"}
	}, nil)
	ids := func(path string) []string {
		var list []map[string]any
		e.adminGET(path, &list)
		out := []string{}
		for _, as := range list {
			out = append(out, as["id"].(string))
		}
		return out
	}
	base := "/api/v1/authorizationServers/payments/associatedServers"
	for path, want := range map[string][]string{
		base:                         {"ledger", "default"},
		base + "?trusted=true":       {"ledger", "default"},
		base + "?trusted=false":      {"reports"},
		base + "?trusted=true&q=led": {"ledger"},
		base + "?q=API://DEF":        {"default"},
		base + "?q=nothing":          {},
		"/api/v1/authorizationServers/ledger/associatedServers":               {},
		"/api/v1/authorizationServers/ledger/associatedServers?trusted=false": {"default", "payments", "reports"},
	} {
		if got := ids(path); !slices.Equal(got, want) {
			t.Errorf("GET %s: %v, want %v", path, got, want)
		}
	}
	var list []map[string]any
	e.adminGET(base, &list)
	if list[0]["name"] != "Ledger" || list[0]["issuer"] != issBase+"/oauth2/ledger" ||
		list[0]["_links"].(map[string]any)["self"].(map[string]any)["href"] != issBase+base+"/ledger" {
		t.Errorf("associated server: %v", list[0])
	}
	for _, c := range []struct {
		method, path, allow string
	}{
		{http.MethodPost, base, "GET"},
		{http.MethodDelete, base + "/ledger", ""},
		{http.MethodGet, base + "/ledger", ""},
	} {
		w := e.grantsAPI(c.method, c.path)
		if w.Code != 405 || !strings.Contains(w.Body.String(), "E0000022") || w.Header().Get("Allow") != c.allow {
			t.Errorf("%s %s: %d Allow %q %s", c.method, c.path, w.Code, w.Header().Get("Allow"), w.Body)
		}
	}
	for _, c := range []struct{ path, code string }{
		{"/api/v1/authorizationServers/nosuch/associatedServers", "nosuch (AuthorizationServer)"},
		{base + "/ledger/more", "E0000007"},
	} {
		if w := e.grantsAPI(http.MethodGet, c.path); w.Code != 404 || !strings.Contains(w.Body.String(), c.code) {
			t.Errorf("GET %s: %d %s", c.path, w.Code, w.Body)
		}
	}
	if w := e.grantsAPI(http.MethodGet, base, []string{}...); w.Code != 401 {
		t.Errorf("no token: %d", w.Code)
	}
}
