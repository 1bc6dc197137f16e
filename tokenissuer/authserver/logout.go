package authserver

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/ui"
)

// serveLogout ends the SSO session (OpenID Connect RP-Initiated Logout
// 1.0). id_token_hint must be an ID token this server signed (it may
// have expired); post_logout_redirect_uri must be registered, exactly,
// for the client the hint was issued to, else no redirect happens.
func (i *Issuer) serveLogout(w http.ResponseWriter, r *http.Request, s *Server) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		i.errorPage(w, http.StatusMethodNotAllowed, "The request method is not allowed.")
		return
	}
	if err := r.ParseForm(); err != nil {
		i.errorPage(w, http.StatusBadRequest, "The request could not be read.")
		return
	}
	hint := r.Form.Get("id_token_hint")
	clientID, ok := i.idTokenAudience(s, hint)
	if !ok {
		i.errorPage(w, http.StatusBadRequest, "The logout request is not valid.")
		return
	}
	if sid, ok := i.readCookie(r, sessionCookie); ok && len(sid) <= 128 {
		_, _ = i.store.UpdateRecord(r.Context(), store.NSSession, sid, func([]byte) ([]byte, error) { return nil, nil })
	}
	c := i.cookie(r, sessionCookie, "", 0)
	c.MaxAge = -1
	http.SetCookie(w, c)
	i.logSuccess(EventSignOut, decision{server: s, clientID: clientID})
	if target := r.Form.Get("post_logout_redirect_uri"); target != "" {
		client, ok := i.auth.Client(clientID)
		if !ok || !slices.Contains(client.PostLogoutRedirectURIs, target) {
			i.errorPage(w, http.StatusBadRequest, "The post-logout redirect URI is not registered for this client.")
			return
		}
		p := map[string]string{}
		if st := r.Form.Get("state"); st != "" {
			p["state"] = st
		}
		i.respondPlain(w, r, target, p)
		return
	}
	htmlHeaders(w)
	_ = i.pages.RenderError(w, ui.Error{Title: "Signed out", Error: "You have been signed out."})
}

// idTokenAudience verifies an ID token hint's signature and issuer and
// returns its audience (the client).
func (i *Issuer) idTokenAudience(s *Server, hint string) (string, bool) {
	if hint == "" || len(hint) > maxTokenBytes {
		return "", false
	}
	payload, err := jws.Verify([]byte(hint), jws.WithKeySet(s.keys.Current().Public))
	if err != nil {
		return "", false
	}
	var c struct {
		Iss string `json:"iss"`
		Aud string `json:"aud"`
	}
	if json.Unmarshal(payload, &c) != nil || c.Iss != s.Issuer || c.Aud == "" {
		return "", false
	}
	return c.Aud, true
}
