package authserver

import (
	"errors"
	"net/http"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
)

// errBadCredentials is Okta's answer to any failed resource-owner
// sign-in: the same for an unknown user, a wrong password and a user
// who may not sign in, so it reveals nothing.
var errBadCredentials = &oauth.Error{Code: "invalid_grant", Status: http.StatusBadRequest,
	Description: "The credentials provided were invalid."}

// passwordGrant is the resource owner password credentials grant (RFC
// 6749 section 4.3). It is off unless both the client's grant_types and
// a rule list `password`.
func (i *Issuer) passwordGrant(r *http.Request, s *Server, c *clientauth.Client, form map[string]string, d *decision) (*tokenResponse, *oauth.Error) {
	login, pw := form["username"], form["password"]
	if login == "" || pw == "" {
		return nil, oauth.ErrInvalidRequest.WithDescription("The 'username' and 'password' parameters are required.")
	}
	scopes, e := s.requestedScopes(form["scope"], d)
	if e != nil {
		return nil, e
	}
	if i.dir == nil {
		return nil, errBadCredentials.WithReason("no directory configured")
	}
	u, err := directory.CheckPassword(r.Context(), i.dir, login, pw)
	if errors.Is(err, directory.ErrBadCredentials) {
		return nil, errBadCredentials.WithReason("bad credentials")
	}
	if err != nil {
		return nil, oauth.ErrServer.WithReason("directory: " + err.Error())
	}
	d.userID = u.ID
	if !u.Active() {
		return nil, errBadCredentials.WithReason("user is " + u.Status)
	}
	m, e := s.evaluate(policy.Request{ClientID: c.ID, GrantType: GrantPassword, Scopes: scopes, User: policyUser(u)}, d)
	if e != nil {
		return nil, e
	}
	return i.issue(r, s, c, u, grantInfo{scopes: scopes, rule: m.Rule, policy: m.Policy.Name, grant: GrantPassword,
		authTime: i.now(), amr: []string{"pwd"}}, d)
}
