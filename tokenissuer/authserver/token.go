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
}

// audiences are the `aud` values a client assertion may carry when
// calling endpoint ep of s.
func (s *Server) audiences(ep string) clientauth.Audiences {
	return clientauth.Audiences{s.endpoints + "/" + ep, s.endpoints + "/token", s.Issuer}
}

// serveToken is the token endpoint (RFC 6749 section 3.2): parse,
// authenticate the client, then hand over to the grant.
func (i *Issuer) serveToken(w http.ResponseWriter, r *http.Request, s *Server) {
	start := time.Now() // a latency: the wall clock, not i.now
	d := decision{server: s}
	fail := func(e *oauth.Error) {
		i.obs.TokenRequest(s.ID, d.grantType, e.Code, time.Since(start))
		i.logFailure(EventTokenDenied, d, e)
		oauth.WriteError(w, e)
	}
	form, e := oauth.ParseForm(w, r)
	if e != nil {
		fail(e)
		return
	}
	d.grantType = form["grant_type"]
	if d.grantType == "" {
		fail(oauth.ErrInvalidRequest.WithDescription("The 'grant_type' parameter is required."))
		return
	}
	client, claimed, e := i.auth.Authenticate(r.Context(), r, form, s.audiences("token"))
	if e != nil {
		d.clientID = claimed
		fail(e)
		return
	}
	d.clientID = client.ID
	if !s.supports(d.grantType) {
		fail(oauth.ErrUnsupportedGrantType)
		return
	}
	if !client.AllowsGrant(d.grantType) {
		fail(oauth.ErrUnauthorizedClient.WithDescription(
			"The client is not authorized to use the provided grant type. Configured grant types: [" + strings.Join(client.GrantTypes, ", ") + "]."))
		return
	}
	var resp *tokenResponse
	switch d.grantType {
	case GrantClientCredentials:
		resp, e = i.clientCredentials(r, s, client, form, &d)
	case GrantPassword:
		resp, e = i.passwordGrant(r, s, client, form, &d)
	case GrantRefreshToken:
		resp, e = i.refreshGrant(r, s, client, form, &d)
	case GrantAuthorizationCode:
		resp, e = i.authorizationCode(r, s, client, form, &d)
	case GrantDeviceCode:
		resp, e = i.deviceCodeGrant(r, s, client, form, &d)
	default:
		e = oauth.ErrUnsupportedGrantType
	}
	if e != nil {
		fail(e)
		return
	}
	i.obs.TokenRequest(s.ID, d.grantType, OutcomeSuccess, time.Since(start))
	i.logSuccess(EventTokenGrant, d)
	oauth.WriteJSON(w, http.StatusOK, resp)
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
