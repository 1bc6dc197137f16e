package authserver

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestSessionCookieCrossSite: on HTTPS the SSO session cookie is
// SameSite=None; Secure (like Okta's sid), so the Sessions API and the
// prompt=none iframe work for an app on another site, while the
// pending-request cookie stays Lax and is the one a cross-site POST
// lacks: the session cookie alone, which such a POST now carries,
// neither passes consent nor signs in. Ending the session clears the
// cookie with the same attributes.
func TestSessionCookieCrossSite(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	q := url.Values{"client_id": {"web"}, "response_type": {"code"}, "scope": {"openid pay"}, "state": {"s"}, "redirect_uri": {webCB}}
	w := e.browse(http.MethodGet, "/oauth2/default/v1/authorize?"+q.Encode(), nil)
	page, txn := w.Body.String(), cookieOf(w, "__Host-apiaccess_txn")
	if txn == nil || txn.SameSite != http.SameSiteLaxMode || !txn.Secure {
		t.Fatalf("transaction cookie: %+v", txn)
	}
	signIn := url.Values{"txn": {hidden(page, "txn")}, "csrf": {hidden(page, "csrf")}, "username": {"alice@example.com"}, "password": {alicePassword}}
	// Cross-site: the Lax transaction cookie is withheld.
	if w := e.browse(http.MethodPost, "/oauth2/v1/signin", signIn, e.session("u2")); w.Code != http.StatusBadRequest || cookieOf(w, "__Host-apiaccess_sid") != nil {
		t.Fatalf("cross-site sign-in post: %d %v", w.Code, w.Result().Cookies())
	}
	w = e.browse(http.MethodPost, "/oauth2/v1/signin", signIn, txn)
	sid := cookieOf(w, "__Host-apiaccess_sid")
	if sid == nil || sid.SameSite != http.SameSiteNoneMode || !sid.Secure || !sid.HttpOnly || sid.Path != "/" || sid.Domain != "" {
		t.Fatalf("session cookie: %+v", sid)
	}
	if !strings.Contains(w.Header().Get("Set-Cookie"), "SameSite=None") || !strings.Contains(w.Header().Get("Set-Cookie"), "Secure") {
		t.Fatalf("Set-Cookie: %q", w.Header().Values("Set-Cookie"))
	}
	// The consent page that followed: its form, posted cross-site with
	// the session cookie but without the transaction cookie, is refused.
	consent := w.Body.String()
	form := url.Values{"txn": {hidden(consent, "txn")}, "csrf": {hidden(consent, "csrf")}, "decision": {"allow"}}
	if w := e.browse(http.MethodPost, "/oauth2/v1/consent", form, sid); w.Code != http.StatusBadRequest || w.Header().Get("Location") != "" {
		t.Fatalf("cross-site consent post: %d %q", w.Code, w.Header().Get("Location"))
	}

	w = e.browse(http.MethodDelete, "/api/v1/sessions/me", nil, sid)
	if c := cookieOf(w, "__Host-apiaccess_sid"); w.Code != http.StatusNoContent || c == nil || c.SameSite != http.SameSiteNoneMode || !c.Secure || c.MaxAge >= 0 {
		t.Fatalf("DELETE session cookie: %d %+v", w.Code, c)
	}
}

// TestCookiesOnPlainHTTP: on plain http (loopback development) every
// cookie stays Lax and not Secure: browsers refuse SameSite=None
// without Secure.
func TestCookiesOnPlainHTTP(t *testing.T) {
	e := newFlowEnv(t, "http://127.0.0.1:9380")
	q := url.Values{"client_id": {"web"}, "response_type": {"code"}, "scope": {"openid"}, "redirect_uri": {webCB}}
	w := e.browse(http.MethodGet, "/oauth2/default/v1/authorize?"+q.Encode(), nil)
	page, txn := w.Body.String(), cookieOf(w, "apiaccess_txn")
	w = e.browse(http.MethodPost, "/oauth2/v1/signin", url.Values{"txn": {hidden(page, "txn")}, "csrf": {hidden(page, "csrf")},
		"username": {"alice@example.com"}, "password": {alicePassword}}, txn)
	for _, c := range append([]*http.Cookie{txn}, w.Result().Cookies()...) {
		if c == nil || c.SameSite != http.SameSiteLaxMode || c.Secure {
			t.Errorf("cookie on http: %+v", c)
		}
	}
	if cookieOf(w, "apiaccess_sid") == nil {
		t.Fatalf("no session cookie: %v", w.Result().Cookies())
	}
}
