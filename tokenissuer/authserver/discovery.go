package authserver

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
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

// buildMetadata renders both discovery documents once (RFC 8414
// section 2, OpenID Connect Discovery section 3). They list only what
// the server really supports.
func (s *Server) buildMetadata() map[string][]byte {
	ep := s.endpoints
	var published []string
	for _, sc := range s.scopeOrder {
		if sc.Publish {
			published = append(published, sc.Name)
		}
	}
	claims := []string{"ver", "jti", "iss", "aud", "iat", "exp", "cid", "uid", "scp", "sub", "auth_time", "amr", "at_hash", "nonce", "idp",
		"preferred_username", "name", "given_name", "family_name", "middle_name", "nickname", "profile", "picture", "website",
		"gender", "birthdate", "zoneinfo", "locale", "updated_at", "email", "email_verified", "address", "phone_number",
		"phone_number_verified", "groups"}
	assertionAlgs := []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
	respTypes := []string{}
	if s.supports(GrantAuthorizationCode) {
		respTypes = []string{"code"}
	}
	m := map[string]any{
		"issuer":                                s.Issuer,
		"token_endpoint":                        ep + "/token",
		"jwks_uri":                              ep + "/keys",
		"introspection_endpoint":                ep + "/introspect",
		"revocation_endpoint":                   ep + "/revoke",
		"grant_types_supported":                 nonNil(s.grantTypes),
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
	if s.supports(GrantAuthorizationCode) {
		m["authorization_endpoint"] = ep + "/authorize"
		m["response_modes_supported"] = []string{"query", "form_post"}
		m["code_challenge_methods_supported"] = []string{"S256"}
		m["authorization_response_iss_parameter_supported"] = true
		m["end_session_endpoint"] = ep + "/logout"
		m["prompt_values_supported"] = []string{"none", "login", "consent"}
	}
	if s.supports(GrantDeviceCode) {
		m["device_authorization_endpoint"] = ep + "/device/authorize"
	}
	out := map[string][]byte{}
	b, _ := json.Marshal(m)
	out[docOAuth] = b
	oidc := maps(m)
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
