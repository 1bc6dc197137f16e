package authserver

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestLogoutConfirmationPage: the page names the site by its host and
// the signed-in user, so they know whose session would end; "no" keeps the session and says
// so; methods other than GET and POST are 405 with Allow.
func TestLogoutConfirmationPage(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	hint := e.idToken("u2", "web", webCB)
	sess := e.session("u1")
	page := e.browse(http.MethodGet, logoutURL(hint, webBye, ""), nil, sess).Body.String()
	if !strings.Contains(page, "alice@example.com") || !strings.Contains(page, "Sign out of id.example.com?") {
		t.Fatalf("confirmation page does not name the site by its host and the session's user: %.400s", page)
	}
	form := url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {webBye}, "csrf": {hidden(page, "csrf")}, "confirm": {"no"}}
	w := e.browse(http.MethodPost, "/oauth2/default/v1/logout", form, sess)
	if !e.sessionAlive(sess) || w.Header().Get("Location") != "" || !strings.Contains(w.Body.String(), "still signed in") {
		t.Fatalf("declined logout: %d %q alive=%v %.200s", w.Code, w.Header().Get("Location"), e.sessionAlive(sess), w.Body.String())
	}
	w = e.browse(http.MethodPut, logoutURL(hint, webBye, ""), nil, sess)
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, POST" || !e.sessionAlive(sess) {
		t.Fatalf("PUT /logout: %d Allow %q", w.Code, w.Header().Get("Allow"))
	}
}

// TestLogoutBodyLimit: a logout form body past the endpoints' limit is
// refused unread, not parsed.
func TestLogoutBodyLimit(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	big := url.Values{"state": {strings.Repeat("a", 70<<10)}}
	w := e.browse(http.MethodPost, "/oauth2/default/v1/logout", big, e.session("u1"))
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "could not be read") {
		t.Fatalf("70 KiB logout form: %d %.200s", w.Code, w.Body.String())
	}
}
