package authserver

import (
	"errors"
	"net/http"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientip"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/hashgate"
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
	// The sign-in page's counters and limits: a lockout on either blocks
	// both, and a locked user gets the same answer as a wrong password.
	d.login, d.clientIP = directory.NormalizeLogin(login), clientip.From(r)
	var n need
	u, err := i.passwordAttempt(r.Context(), d.login, pw, clientip.Key(r), *d, func(u *directory.User) bool {
		n = i.requirement(c, u, nil)
		return !n.deny && n.factor == policy.FactorNone
	})
	if u != nil {
		d.userID = u.ID
	}
	switch {
	case errors.Is(err, errLocked):
		return nil, errBadCredentials.WithReason("too many failed sign-ins")
	case errors.Is(err, errLoginBusy), errors.Is(err, hashgate.ErrBusy):
		// Retry-After comes with every 503 (oauth.WriteError).
		return nil, oauth.ErrTemporarilyUnavailable.WithCause(err)
	case errors.Is(err, errInactive):
		return nil, errBadCredentials.WithReason("user is " + u.Status)
	case errors.Is(err, directory.ErrBadCredentials):
		return nil, errBadCredentials.WithReason("bad credentials")
	case errors.Is(err, errDirectory):
		return nil, oauth.ErrServer.WithCause(err)
	case err != nil:
		return nil, oauth.FromStore(err)
	}
	// A password cannot satisfy a sign-on policy that asks for a second
	// factor or refuses the user (Okta answers the password grant so).
	switch {
	case n.deny:
		i.logSignOnPolicy(r, s, c, u, n, "DENY")
		return nil, oauth.ErrAccessDenied.WithDescription("The sign-on policy does not allow this user to sign in to this application.")
	case n.factor != policy.FactorNone:
		i.logSignOnPolicy(r, s, c, u, n, "DENY")
		// The generic answer: a distinct one would tell a guesser that
		// the password was right. The reason is for the log.
		return nil, errBadCredentials.WithReason("sign-on policy requires a second factor")
	}
	m, e := s.evaluate(policy.Request{ClientID: c.ID, GrantType: GrantPassword, Scopes: scopes, User: policyUser(u)}, d)
	if e != nil {
		return nil, e
	}
	return i.issue(r, s, c, u, grantInfo{scopes: scopes, rule: m.Rule, policy: m.Policy.Name, grant: GrantPassword,
		authTime: i.now(), amr: []string{"pwd"}}, d)
}
