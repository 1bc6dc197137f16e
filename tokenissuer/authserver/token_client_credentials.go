package authserver

import (
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/claims"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
)

// Okta's descriptions for scope failures.
var (
	errNoScopes        = oauth.ErrInvalidScope.WithDescription("No scopes were requested.")
	errMalformedScopes = oauth.ErrInvalidScope.WithDescription("The requested scope is invalid, unknown, or malformed.")
)

// clientCredentials is the client credentials grant (RFC 6749 section
// 4.4): the client acts for itself, so sub is its id.
func (i *Issuer) clientCredentials(r *http.Request, s *Server, c *clientauth.Client, form map[string]string, d *decision) (*tokenResponse, *oauth.Error) {
	scopes, ok := parseScope(form["scope"])
	if !ok {
		return nil, errMalformedScopes
	}
	if len(scopes) == 0 {
		scopes = s.defaults
	}
	d.scopes = scopes
	if len(scopes) == 0 {
		return nil, errNoScopes
	}
	for _, sc := range scopes {
		if s.scopes[sc] == nil {
			return nil, oauth.ErrInvalidScope.WithReason("unknown scope " + sc)
		}
	}
	m, ok, reason := s.policies.Evaluate(policy.Request{ClientID: c.ID, GrantType: GrantClientCredentials, Scopes: scopes})
	if m.Policy != nil {
		d.policy = m.Policy.Name
	}
	if !ok {
		return nil, oauth.ErrAccessDenied.WithReason(reason)
	}
	d.rule = m.Rule.Name
	lifetime := m.Rule.Lifetime()
	var custom map[string]any
	if !s.claims.Empty() {
		custom = map[string]any{}
		err := s.claims.Evaluate(claims.Input{
			ClientID: c.ID, ClientName: c.Name, Scopes: scopes, ServerID: s.ID, Issuer: s.Issuer,
		}, custom)
		if err != nil {
			i.log.Error("claim evaluation failed", zap.String("authorization_server", s.ID), zap.String("client_id", c.ID), zap.Error(err))
			return nil, oauth.ErrServer.WithReason("claim evaluation failed")
		}
	}
	tok, jti, e := i.signAccessToken(s, accessClaims{Cid: c.ID, Sub: c.ID, Scp: scopes}, lifetime, custom)
	if e != nil {
		return nil, e
	}
	d.jti = jti
	return &tokenResponse{TokenType: "Bearer", ExpiresIn: int64(lifetime.Seconds()), AccessToken: tok, Scope: strings.Join(scopes, " ")}, nil
}
