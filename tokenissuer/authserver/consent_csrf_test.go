package authserver

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestConsentNeedsCSRF: the consent form is accepted only with this
// browser's pending request and its CSRF token; without it, or with a
// wrong one, no code is issued and no consent is stored.
func TestConsentNeedsCSRF(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	sess := e.session("u1")
	q := url.Values{"client_id": {"web"}, "response_type": {"code"}, "scope": {"openid pay"}, "state": {"s"}, "redirect_uri": {webCB}}
	authz := "/oauth2/default/v1/authorize?" + q.Encode()
	w := e.browse(http.MethodGet, authz, nil, sess)
	page, txn := w.Body.String(), cookieOf(w, "__Host-apiaccess_txn")
	if w.Code != 200 || !strings.Contains(page, "Make payments") || txn == nil {
		t.Fatalf("consent page: %d %.300s", w.Code, page)
	}
	form := url.Values{"txn": {hidden(page, "txn")}, "decision": {"allow"}}
	for _, csrf := range []string{"", "wrong", strings.Repeat("A", len(hidden(page, "csrf")))} {
		if csrf != "" {
			form.Set("csrf", csrf)
		}
		w := e.browse(http.MethodPost, "/oauth2/v1/consent", form, sess, txn)
		if w.Code != http.StatusBadRequest || w.Header().Get("Location") != "" {
			t.Fatalf("consent with csrf %q: %d %q", csrf, w.Code, w.Header().Get("Location"))
		}
	}
	// Nothing was remembered: the next request asks again.
	if w := e.browse(http.MethodGet, authz, nil, sess); w.Code != 200 || !strings.Contains(w.Body.String(), "Make payments") {
		t.Fatalf("consent stored by a forged form: %d %q", w.Code, w.Header().Get("Location"))
	}
	form.Set("csrf", hidden(page, "csrf"))
	if loc := e.browse(http.MethodPost, "/oauth2/v1/consent", form, sess, txn).Header().Get("Location"); !strings.HasPrefix(loc, webCB+"?") || !strings.Contains(loc, "code=") {
		t.Fatalf("consent with the right token: %q", loc)
	}
}
