package authserver

import (
	"net/http"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
)

// clientCredentials is the client credentials grant (RFC 6749 section
// 4.4): the client acts for itself, so sub is its id.
func (i *Issuer) clientCredentials(r *http.Request, s *Server, c *clientauth.Client, form map[string]string, d *decision) (*tokenResponse, *oauth.Error) {
	if s.Org {
		return i.orgAPIToken(r, s, c, form, d)
	}
	scopes, e := s.requestedScopes(form["scope"], d)
	if e != nil {
		return nil, e
	}
	// OpenID Connect scopes describe a user; here there is none.
	for _, sc := range scopes {
		if userScopes[sc] {
			return nil, oauth.ErrInvalidScope.WithDescription("The following scopes are not allowed for the client_credentials grant: " + sc + ".")
		}
	}
	m, e := s.evaluate(policy.Request{ClientID: c.ID, GrantType: GrantClientCredentials, Scopes: scopes}, d)
	if e != nil {
		return nil, e
	}
	return i.issue(r, s, c, nil, grantInfo{scopes: scopes, rule: m.Rule, grant: GrantClientCredentials}, d)
}
