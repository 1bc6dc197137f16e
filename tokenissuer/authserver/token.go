package authserver

import (
	"net/http"
	"strings"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
)

// tokenResponse is RFC 6749 section 5.1's successful answer.
type tokenResponse struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	AccessToken  string `json:"access_token"`
	Scope        string `json:"scope"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
	// IssuedTokenType is RFC 8693 section 2.2.1's, token exchange only.
	IssuedTokenType string `json:"issued_token_type,omitempty"`
}

// audiences are the `aud` values a client assertion may carry when
// calling endpoint ep of s.
func (s *Server) audiences(ep string) clientauth.Audiences {
	return clientauth.Audiences{s.endpoints + "/" + ep, s.endpoints + "/token", s.Issuer}
}

// tokenEndpoint is the token endpoint (RFC 6749 section 3.2): the
// grant type is required before the client is authenticated, then the
// grant runs.
var tokenEndpoint = &backChannel{
	name: "token", event: EventTokenGrant, failEvent: EventTokenDenied,
	before: func(form map[string]string, d *decision) *oauth.Error {
		d.grantType = form["grant_type"]
		if d.grantType == "" {
			return oauth.ErrInvalidRequest.WithDescription("The 'grant_type' parameter is required.")
		}
		return nil
	},
	run: (*Issuer).runToken,
	observe: func(o Observer, d decision, out outcome, elapsed time.Duration) {
		o.TokenRequest(d.server.ID, d.grantType, out.code(), elapsed)
	},
}

// grant is one grant type's token request, for an authenticated client
// allowed to use it.
type grant func(i *Issuer, r *http.Request, s *Server, c *clientauth.Client, form map[string]string, d *decision) (*tokenResponse, *oauth.Error)

// grants are the token endpoint's grant types (token_*.go).
var grants = map[string]grant{
	GrantClientCredentials: (*Issuer).clientCredentials,
	GrantPassword:          (*Issuer).passwordGrant,
	GrantRefreshToken:      (*Issuer).refreshGrant,
	GrantAuthorizationCode: (*Issuer).authorizationCode,
	GrantDeviceCode:        (*Issuer).deviceCodeGrant,
	GrantTokenExchange:     (*Issuer).tokenExchange,
}

func (i *Issuer) runToken(x *exchange) outcome {
	gt, client := x.d.grantType, x.client
	if !x.s.supports(gt) {
		return failed(oauth.ErrUnsupportedGrantType)
	}
	if !client.AllowsGrant(gt) {
		return failed(oauth.ErrUnauthorizedClient.WithDescription(
			"The client is not authorized to use the provided grant type. Configured grant types: [" + strings.Join(client.GrantTypes, ", ") + "]."))
	}
	run, ok := grants[gt]
	if !ok {
		return failed(oauth.ErrUnsupportedGrantType)
	}
	// A fresh nonce with every answer to a DPoP request (RFC 9449
	// section 8.2), and with use_dpop_nonce.
	var header http.Header
	if x.r.Header.Get("DPoP") != "" || client.DPoPBoundAccessTokens {
		header = http.Header{"Dpop-Nonce": {i.dpop.Nonce()}}
	}
	jkt, e := i.tokenProof(x)
	if e != nil {
		return outcome{err: e, header: header}
	}
	x.d.jkt = jkt
	resp, e := run(i, x.r, x.s, client, x.form, &x.d)
	if e != nil {
		return outcome{err: e, header: header}
	}
	return outcome{body: resp, header: header}
}

func (s *Server) supports(grant string) bool {
	for _, g := range s.grantTypes {
		if g == grant {
			return true
		}
	}
	return false
}

// parseScope splits the scope parameter (RFC 6749 section 3.3): space
// separated, case sensitive, each a scope-token; duplicates collapse.
func parseScope(v string) ([]string, bool) {
	if v == "" {
		return nil, true
	}
	var out []string
	for _, s := range strings.Split(v, " ") {
		if s == "" {
			continue
		}
		if !scopeToken.MatchString(s) {
			return nil, false
		}
		dup := false
		for _, o := range out {
			if o == s {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, s)
		}
	}
	return out, true
}
