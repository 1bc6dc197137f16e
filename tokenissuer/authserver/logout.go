package authserver

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"

	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/ui"
)

// idHint is what a verified id_token_hint says.
type idHint struct {
	client, user string
}

// serveLogout ends the SSO session (OpenID Connect RP-Initiated Logout
// 1.0). id_token_hint must be an ID token this server signed; it may
// have expired (section 2). post_logout_redirect_uri must be
// registered, exactly, for the hint's client, else nothing happens.
//
// The session ends at once only when the hint is the session's own
// user's (okta-auth-js signOut() sends that): a link anyone can build
// with their own ID token must not sign a victim out (section 2: "the
// OP SHOULD ask the End-User whether to log out"). Otherwise the user
// is asked, on a page whose form carries a CSRF token bound to the
// session.
func (i *Issuer) serveLogout(w http.ResponseWriter, r *http.Request, s *Server) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		i.errorPage(w, http.StatusMethodNotAllowed, "The request method is not allowed.")
		return
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, oauth.MaxBodyBytes)
	}
	if err := r.ParseForm(); err != nil {
		i.errorPage(w, http.StatusBadRequest, "The request could not be read.")
		return
	}
	hint, ok := i.verifyIDHint(s, r.Form.Get("id_token_hint"))
	if !ok {
		i.errorPage(w, http.StatusBadRequest, "The logout request is not valid.")
		return
	}
	client, known := i.auth.Client(hint.client)
	target := r.Form.Get("post_logout_redirect_uri")
	if target != "" && (!known || !slices.Contains(client.PostLogoutRedirectURIs, target)) {
		i.errorPage(w, http.StatusBadRequest, "The post-logout redirect URI is not registered for this client.")
		return
	}
	sid, sess := i.sessionRecord(r)
	confirmed := r.Method == http.MethodPost && r.PostForm.Get("confirm") == "yes" && sess != nil &&
		subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(logoutCSRF(sid))) == 1
	switch {
	case sess != nil && (sess.UserID != hint.user || !topLevelNavigation(r)) && !confirmed:
		if r.Method == http.MethodPost && r.PostForm.Get("confirm") == "no" {
			htmlHeaders(w)
			_ = i.pages.RenderLogout(w, ui.Logout{Title: "Sign out", Done: true, Message: "You are still signed in."})
			return
		}
		name := ""
		if known {
			name = client.Name
		}
		i.logoutConfirm(w, r, s, name, sess, sid, target)
		return
	case sess != nil:
		if err := i.endSession(r.Context(), sid); err != nil {
			i.storeFailurePage(w, err)
			return
		}
		i.logSuccess(EventSignOut, decision{server: s, clientID: hint.client, userID: sess.UserID, req: r})
	}
	c := i.cookie(r, sessionCookie, "", 0)
	c.MaxAge = -1
	http.SetCookie(w, c)
	if target != "" {
		p := map[string]string{}
		if st := r.Form.Get("state"); st != "" {
			p["state"] = st
		}
		i.respondPlain(w, r, target, p)
		return
	}
	htmlHeaders(w)
	_ = i.pages.RenderLogout(w, ui.Logout{Title: "Signed out", Done: true, Message: "You have been signed out."})
}

// logoutConfirm asks the signed-in user whether to sign out; the form
// posts the request back with the session's CSRF token.
func (i *Issuer) logoutConfirm(w http.ResponseWriter, r *http.Request, s *Server, clientName string, sess *session, sid, target string) {
	params := map[string]string{"id_token_hint": r.Form.Get("id_token_hint")}
	if target != "" {
		params["post_logout_redirect_uri"] = target
	}
	if st := r.Form.Get("state"); st != "" {
		params["state"] = st
	}
	page := ui.Logout{Title: "Sign out", Site: siteName(i.base), ClientName: clientName, Action: s.endpoints + "/logout",
		CSRF: logoutCSRF(sid), Params: params}
	if i.dir != nil {
		if u, err := i.dir.UserByID(r.Context(), sess.UserID); err == nil {
			page.Login = u.Login
		}
	}
	htmlHeaders(w, target)
	_ = i.pages.RenderLogout(w, page)
}

// logoutCSRF is the confirmation form's token: derived from the session
// id, which only this browser holds, so no state is stored for it.
func logoutCSRF(sid string) string {
	h := sha256.Sum256([]byte("logout-confirm\x00" + sid))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// sessionRecord returns the SSO session of this browser and its id, or
// nil. Unlike currentSession it does not judge the user: a session of a
// deactivated user can still be ended.
func (i *Issuer) sessionRecord(r *http.Request) (string, *session) {
	sid, ok := i.readCookie(r, sessionCookie)
	if !ok || len(sid) > 128 {
		return "", nil
	}
	raw, err := i.store.GetRecord(r.Context(), store.NSSession, sid)
	if err != nil {
		return "", nil
	}
	var sess session
	if json.Unmarshal(raw, &sess) != nil {
		return "", nil
	}
	return sid, &sess
}

// siteName is how pages name the issuer: its host.
func siteName(base string) string {
	if u, err := url.Parse(base); err == nil && u.Host != "" {
		return u.Host
	}
	return base
}

// verifyIDHint verifies an ID token hint's signature and issuer and
// returns its audience (the client) and subject (the user). Expiry is
// not checked (RP-Initiated Logout 1.0 section 2).
func (i *Issuer) verifyIDHint(s *Server, hint string) (idHint, bool) {
	if hint == "" || len(hint) > maxTokenBytes {
		return idHint{}, false
	}
	payload, err := jws.Verify([]byte(hint), jws.WithKeySet(s.keys.Current().Public))
	if err != nil {
		return idHint{}, false
	}
	var c struct {
		Iss string `json:"iss"`
		Aud string `json:"aud"`
		Sub string `json:"sub"`
	}
	if json.Unmarshal(payload, &c) != nil || c.Iss != s.Issuer || c.Aud == "" || c.Sub == "" {
		return idHint{}, false
	}
	return idHint{client: c.Aud, user: c.Sub}, true
}

// topLevelNavigation reports whether r is the browser going to the page
// itself (Fetch Metadata: Sec-Fetch-Dest document, which page scripts
// cannot set), or a client that sends no such headers. The SSO cookie
// is SameSite=None on HTTPS, so an <img>, iframe or fetch from another
// site carries it: without this check any page holding one of the
// user's ID tokens could sign them out unseen. Such requests get the
// confirmation page instead, which cannot be framed.
func topLevelNavigation(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Dest") {
	case "document":
		return true
	case "":
		m := r.Header.Get("Sec-Fetch-Mode")
		return m == "" || m == "navigate"
	}
	return false
}
