package authserver

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/apiaccess/caddy-apiaccess/internal/dpop"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
)

// Discovery document names.
const (
	docOIDC  = "openid-configuration"
	docOAuth = "oauth-authorization-server"
)

// authMethods are the client authentication methods of the
// introspection endpoint; the token and revocation endpoints also take
// public clients (none).
var (
	authMethods       = []string{"client_secret_basic", "client_secret_post", "private_key_jwt"}
	publicAuthMethods = []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"}
)

// usableGrants are the server's grant types that some client can use
// under some rule: a rule naming the grant in a policy whose clients
// include a client whose grant_types include it. refresh_token is
// usable where such a client may also refresh after a grant with a
// user (the family is judged by the grant that started it). The org
// server has no policies: any client may use its code flow.
func (s *Server) usableGrants(clients []*clientauth.Client) []string {
	policies := s.policies.Policies()
	if s.Org {
		policies = []*policy.Policy{orgPolicy}
	}
	usable := map[string]bool{}
	if s.Org {
		// Okta API scopes (token_org_api.go) come by client_credentials.
		for _, c := range clients {
			usable[GrantClientCredentials] = usable[GrantClientCredentials] || (len(c.OktaAPIScopes) > 0 && c.AllowsGrant(GrantClientCredentials))
		}
	}
	for _, p := range policies {
		for _, c := range clients {
			if !coversClient(p.Clients, c.ID) {
				continue
			}
			for _, r := range p.Rules {
				for _, g := range r.GrantTypes {
					if !s.supports(g) || !c.AllowsGrant(g) {
						continue
					}
					if g == GrantClientCredentials {
						// A rule naming people never matches without a user.
						usable[g] = usable[g] || r.People == nil || (len(r.People.Users) == 0 && len(r.People.Groups) == 0)
						continue
					}
					if g == GrantTokenExchange {
						// Service apps only, and no refresh token
						// (token_exchange.go).
						usable[g] = usable[g] || c.AuthMethod != clientauth.None
						continue
					}
					usable[g] = true
					if s.supports(GrantRefreshToken) && c.AllowsGrant(GrantRefreshToken) {
						usable[GrantRefreshToken] = true
					}
				}
			}
		}
	}
	out := []string{}
	for _, g := range s.grantTypes {
		if usable[g] {
			out = append(out, g)
		}
	}
	return out
}

// coversClient is a policy's client condition (policy.Any alone covers
// every client).
func coversClient(list []string, id string) bool {
	return (len(list) == 1 && list[0] == policy.Any) || slices.Contains(list, id)
}

// buildMetadata renders both discovery documents once (RFC 8414
// section 2, OpenID Connect Discovery section 3). They list only what
// some client can really use: a grant type where a client and a rule
// allow it, the authorization endpoint and its parameters where the
// code flow is usable (the OpenID document always names the endpoint and
// response type "code", which OpenID Connect Discovery requires), the
// device endpoint where the device grant is.
func (s *Server) buildMetadata(clients []*clientauth.Client) map[string][]byte {
	ep := s.endpoints
	grants := s.usableGrants(clients)
	var published []string
	for _, sc := range s.scopeOrder {
		if sc.Publish {
			published = append(published, sc.Name)
		}
	}
	claims := []string{"ver", "jti", "iss", "aud", "iat", "exp", "cid", "uid", "scp", "sub", "auth_time", "amr", "acr", "at_hash", "nonce", "idp",
		"preferred_username", "name", "given_name", "family_name", "middle_name", "nickname", "profile", "picture", "website",
		"gender", "birthdate", "zoneinfo", "locale", "updated_at", "email", "email_verified", "address", "phone_number",
		"phone_number_verified", "groups"}
	assertionAlgs := []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
	code := slices.Contains(grants, GrantAuthorizationCode)
	respTypes := []string{}
	if code {
		respTypes = []string{"code"}
	}
	m := map[string]any{
		"issuer":                                s.Issuer,
		"token_endpoint":                        ep + "/token",
		"jwks_uri":                              ep + "/keys",
		"introspection_endpoint":                ep + "/introspect",
		"revocation_endpoint":                   ep + "/revoke",
		"grant_types_supported":                 grants,
		"response_types_supported":              respTypes,
		"scopes_supported":                      nonNil(published),
		"claims_supported":                      claims,
		"token_endpoint_auth_methods_supported": publicAuthMethods,
		"token_endpoint_auth_signing_alg_values_supported":         assertionAlgs,
		"introspection_endpoint_auth_methods_supported":            authMethods,
		"introspection_endpoint_auth_signing_alg_values_supported": assertionAlgs,
		"revocation_endpoint_auth_methods_supported":               publicAuthMethods,
		"revocation_endpoint_auth_signing_alg_values_supported":    assertionAlgs,
		"request_parameter_supported":                              false,
	}
	if code {
		m["authorization_endpoint"] = ep + "/authorize"
		m["response_modes_supported"] = responseModes
		m["code_challenge_methods_supported"] = []string{"S256"}
		m["authorization_response_iss_parameter_supported"] = true
		m["end_session_endpoint"] = ep + "/logout"
		m["prompt_values_supported"] = []string{"none", "login", "consent"}
		// Okta's values (mfa.go); OpenID Connect Discovery 1.0 section 3.
		m["acr_values_supported"] = knownACR
		// RFC 9126 section 5. The requirement is per client, so the
		// server-wide flag is false, which is also what its absence
		// means; it is written out to say so.
		m["pushed_authorization_request_endpoint"] = ep + "/par"
		m["require_pushed_authorization_requests"] = false
		// OpenID Connect Discovery 1.0 section 3 reads an absent
		// request_uri_parameter_supported as true: request objects by
		// reference (a URL the server fetches, RFC 9101 section 5.2)
		// are not supported. RFC 9126 section 5: a request_uri from the
		// par endpoint is usable regardless of this flag.
		m["request_uri_parameter_supported"] = false
	}
	if slices.Contains(grants, GrantDeviceCode) {
		m["device_authorization_endpoint"] = ep + "/device/authorize"
	}
	// The token endpoint binds tokens to DPoP keys (RFC 9449 section 5.1).
	dpopAlgs := make([]string, 0, len(dpop.DefaultAlgorithms))
	for _, a := range dpop.DefaultAlgorithms {
		dpopAlgs = append(dpopAlgs, a.String())
	}
	m["dpop_signing_alg_values_supported"] = dpopAlgs
	out := map[string][]byte{}
	b, _ := json.Marshal(m)
	out[docOAuth] = b
	oidc := maps(m)
	if !code {
		// OpenID Connect Discovery 1.0 section 3 requires both in the
		// OpenID document (RFC 8414 does not where nothing uses the
		// authorization endpoint): strict OIDC libraries refuse a document
		// without them. The endpoint is served; policy refuses its requests.
		oidc["authorization_endpoint"] = ep + "/authorize"
		oidc["response_types_supported"] = []string{"code"}
		// Where the endpoint is named, the flag must be too (absent
		// reads as true, see above).
		oidc["request_uri_parameter_supported"] = false
	}
	oidc["subject_types_supported"] = []string{"public"}
	oidc["id_token_signing_alg_values_supported"] = []string{string(s.alg)}
	oidc["userinfo_endpoint"] = ep + "/userinfo"
	b, _ = json.Marshal(oidc)
	out[docOIDC] = b
	return out
}

func maps(m map[string]any) map[string]any {
	c := make(map[string]any, len(m)+1)
	for k, v := range m {
		c[k] = v
	}
	return c
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return slices.Clone(s)
}

func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request, doc string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		oauth.WriteJSON(w, http.StatusMethodNotAllowed, oauth.ErrInvalidRequest.WithDescription("The endpoint only accepts GET requests."))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(s.metadata[doc])
}

func (s *Server) serveKeys(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		oauth.WriteJSON(w, http.StatusMethodNotAllowed, oauth.ErrInvalidRequest.WithDescription("The endpoint only accepts GET requests."))
		return
	}
	set := s.keys.Current()
	w.Header().Set("Content-Type", "application/json")
	// Short enough that a NEXT key reaches caches long before it signs.
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(set.JWKS)
}
