package authserver

import (
	"slices"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
)

// systemScopes exist on every authorization server, as on Okta's
// custom servers (OpenID Connect Core section 5.4, offline_access from
// section 11, groups from Okta).
var systemScopes = []*Scope{
	{Name: "openid", Description: "Signals that a request is an OpenID Connect request.", Publish: true},
	{Name: "profile", Description: "Allows access to the user's default profile claims.", Publish: true},
	{Name: "email", Description: "Allows access to the user's email address.", Publish: true},
	{Name: "address", Description: "Allows access to the user's address.", Publish: true},
	{Name: "phone", Description: "Allows access to the user's phone number.", Publish: true},
	{Name: "groups", Description: "Allows access to the user's group memberships.", Publish: true},
	{Name: "offline_access", Description: "Allows a refresh token to be issued.", Publish: true},
}

// userScopes need a user: they are refused in flows without one.
var userScopes = map[string]bool{"openid": true, "profile": true, "email": true, "address": true, "phone": true, "groups": true, "offline_access": true}

// withSystemScopes adds the system scopes a configuration does not
// redefine; a configured one of the same name wins (its description,
// default and consent settings).
func withSystemScopes(cfg []*Scope) []*Scope {
	out := slices.Clone(cfg)
	for _, sys := range systemScopes {
		if !slices.ContainsFunc(cfg, func(s *Scope) bool { return s.Name == sys.Name }) {
			c := *sys
			out = append(out, &c)
		}
	}
	return out
}

// Okta's descriptions for scope failures.
var (
	errNoScopes        = oauth.ErrInvalidScope.WithDescription("No scopes were requested.")
	errMalformedScopes = oauth.ErrInvalidScope.WithDescription("The requested scope is invalid, unknown, or malformed.")
)

// requestedScopes parses the scope parameter, applies the server's
// default scopes when none is asked, and refuses unknown ones.
func (s *Server) requestedScopes(param string, d *decision) ([]string, *oauth.Error) {
	scopes, ok := parseScope(param)
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
	return scopes, nil
}

// evaluate runs the server's policies and records the decision.
func (s *Server) evaluate(req policy.Request, d *decision) (policy.Match, *oauth.Error) {
	if s.Org {
		// The org server has no policies: any client may sign any user in
		// for the system scopes it knows (its only scopes), with Okta's
		// fixed lifetimes.
		d.policy, d.rule = orgPolicy.Name, orgRule.Name
		return policy.Match{Policy: orgPolicy, Rule: orgRule}, nil
	}
	m, ok, reason := s.policies.Evaluate(req)
	if m.Policy != nil {
		d.policy = m.Policy.Name
	}
	if !ok {
		d.outcomeReason = policy.NoMatchingPolicy
		return m, oauth.ErrAccessDenied.WithReason(reason)
	}
	d.rule = m.Rule.Name
	return m, nil
}

var (
	orgRule   = &policy.Rule{Name: "Org authorization server", GrantTypes: []string{"authorization_code"}, Scopes: []string{"*"}}
	orgPolicy = &policy.Policy{Name: "Org authorization server", Clients: []string{"*"}, Rules: []*policy.Rule{orgRule}}
)
