package authserver

import (
	"net/http"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
)

// tokenParam is the shared start of the introspection (RFC 7662 section
// 2.1) and revocation (RFC 7009 section 2.1) endpoints: a strict form,
// an authenticated client (recorded in d), and the required `token`
// parameter. On failure it has answered through fail and ok is false.
func (i *Issuer) tokenParam(w http.ResponseWriter, r *http.Request, s *Server, ep string, d *decision, fail func(*oauth.Error)) (string, bool) {
	form, e := oauth.ParseForm(w, r)
	if e != nil {
		fail(e)
		return "", false
	}
	client, claimed, e := i.auth.Authenticate(r.Context(), r, form, s.audiences(ep))
	if e != nil {
		d.clientID = claimed
		fail(e)
		return "", false
	}
	d.clientID = client.ID
	tok := form["token"]
	if tok == "" {
		fail(oauth.ErrInvalidRequest.WithDescription("The 'token' parameter is required."))
		return "", false
	}
	return tok, true
}
