package authserver

import (
	"net/http"
	"slices"
	"strings"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
)

// orgAPIRule is the org server's rule for Okta API scopes: an hour, as
// Okta's access tokens for its APIs ("Implement OAuth for Okta": the
// lifetime is one hour and cannot be changed).
var orgAPIRule = &policy.Rule{Name: "Okta API scopes", GrantTypes: []string{GrantClientCredentials}, Scopes: clientauth.OktaAPIScopes}

// orgAPIToken is client_credentials at the org server: an access token
// for the Okta API scopes granted to the client (its okta_api_scopes),
// which the org's own APIs accept (the SSF Transmitter API, ssf_api.go)
// and no custom server's resource does (aud is the org).
func (i *Issuer) orgAPIToken(r *http.Request, s *Server, c *clientauth.Client, form map[string]string, d *decision) (*tokenResponse, *oauth.Error) {
	scopes, e := orgAPIScopes(c, form["scope"], d)
	if e != nil {
		return nil, e
	}
	d.policy, d.rule = orgAPIRule.Name, orgAPIRule.Name
	return i.issue(r, s, c, nil, grantInfo{scopes: scopes, rule: orgAPIRule, grant: GrantClientCredentials}, d)
}

// orgAPIScopes are the scopes an org-server client_credentials request
// asks (param), each among the client's okta_api_scopes.
func orgAPIScopes(c *clientauth.Client, param string, d *decision) ([]string, *oauth.Error) {
	scopes, ok := parseScope(param)
	if !ok {
		return nil, errMalformedScopes
	}
	d.scopes = scopes
	if len(scopes) == 0 {
		// Okta: a client_credentials request to the org server must name
		// its scopes; there are no defaults.
		return nil, errNoScopes
	}
	var refused []string
	for _, sc := range scopes {
		if !slices.Contains(c.OktaAPIScopes, sc) {
			refused = append(refused, sc)
		}
	}
	if len(refused) > 0 {
		return nil, oauth.ErrInvalidScope.WithDescription("The following scopes are not allowed for the client_credentials grant: " + strings.Join(refused, " ") + ".").
			WithReason("not among the client's okta_api_scopes")
	}
	return scopes, nil
}
