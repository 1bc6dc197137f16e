package authserver

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestConsentRemembered: an approved consent-required scope is not
// asked for again (Okta remembers the grant), while a denial sends
// access_denied to the client and remembers nothing.
func TestConsentRemembered(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	sess := e.session("u1")
	q := url.Values{"client_id": {"web"}, "response_type": {"code"}, "scope": {"openid pay"}, "state": {"s"}, "redirect_uri": {webCB}}
	authz := "/oauth2/default/v1/authorize?" + q.Encode()
	answer := func(decision string) string {
		t.Helper()
		w := e.browse(http.MethodGet, authz, nil, sess)
		page := w.Body.String()
		if w.Code != 200 || !strings.Contains(page, "Make payments") {
			t.Fatalf("want the consent page: %d %q", w.Code, w.Header().Get("Location"))
		}
		form := url.Values{"txn": {hidden(page, "txn")}, "csrf": {hidden(page, "csrf")}, "decision": {decision}}
		return e.browse(http.MethodPost, "/oauth2/v1/consent", form, sess, cookieOf(w, "__Host-apiaccess_txn")).Header().Get("Location")
	}
	if loc, _ := url.Parse(answer("deny")); loc == nil || loc.Query().Get("error") != "access_denied" || loc.Query().Get("state") != "s" {
		t.Fatalf("denied consent: %v", loc)
	}
	if loc := answer("allow"); !strings.Contains(loc, "code=") {
		t.Fatalf("approved consent: %q", loc)
	}
	w := e.browse(http.MethodGet, authz, nil, sess)
	if loc := w.Header().Get("Location"); !strings.HasPrefix(loc, webCB+"?") || !strings.Contains(loc, "code=") {
		t.Fatalf("asked again after approval: %d %q", w.Code, loc)
	}
}
