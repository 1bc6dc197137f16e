package authserver

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestSessionCookieHostPrefix: on HTTPS the SSO session cookie is
// `__Host-apiaccess_sid` (Secure, Path=/, no Domain: RFC 6265bis
// section 4.1.3.2), so a sibling subdomain or a plain-http page cannot
// plant or overwrite it; a cookie of the unprefixed name is ignored
// there. Plain http on loopback keeps `apiaccess_sid`. On HTTPS it is
// SameSite=None (cross-site Sessions API and prompt=none iframe), on
// http Lax (None needs Secure).
func TestSessionCookieHostPrefix(t *testing.T) {
	for _, c := range []struct {
		base, name, ignored string
		secure              bool
		sameSite            http.SameSite
	}{
		{"https://id.example.com", "__Host-apiaccess_sid", "apiaccess_sid", true, http.SameSiteNoneMode},
		{"http://127.0.0.1:9380", "apiaccess_sid", "__Host-apiaccess_sid", false, http.SameSiteLaxMode},
	} {
		t.Run(c.base, func(t *testing.T) {
			e := newFlowEnv(t, c.base)
			q := url.Values{"client_id": {"web"}, "response_type": {"code"}, "scope": {"openid"}, "redirect_uri": {webCB}}
			w := e.browse(http.MethodGet, "/oauth2/default/v1/authorize?"+q.Encode(), nil)
			txn := cookieOf(w, strings.TrimSuffix(c.name, "apiaccess_sid")+"apiaccess_txn")
			if txn == nil {
				t.Fatalf("no transaction cookie: %v", w.Result().Cookies())
			}
			page := w.Body.String()
			w = e.browse(http.MethodPost, "/oauth2/v1/signin", url.Values{"txn": {hidden(page, "txn")}, "csrf": {hidden(page, "csrf")},
				"username": {"alice@example.com"}, "password": {alicePassword}}, txn)
			sid := cookieOf(w, c.name)
			if w.Code != http.StatusFound || sid == nil || sid.Value == "" {
				t.Fatalf("sign-in: %d, cookies %v", w.Code, w.Result().Cookies())
			}
			if sid.Secure != c.secure || sid.Path != "/" || sid.Domain != "" || !sid.HttpOnly || sid.SameSite != c.sameSite {
				t.Fatalf("session cookie attributes: %+v", sid)
			}
			q.Set("prompt", "none")
			authz := "/oauth2/default/v1/authorize?" + q.Encode()
			if loc := e.browse(http.MethodGet, authz, nil, sid).Header().Get("Location"); !strings.Contains(loc, "code=") {
				t.Fatalf("the session cookie is not read back: %q", loc)
			}
			planted := &http.Cookie{Name: c.ignored, Value: sid.Value}
			if loc := e.browse(http.MethodGet, authz, nil, planted).Header().Get("Location"); !strings.Contains(loc, "error=login_required") {
				t.Fatalf("a cookie named %s was read as the session: %q", c.ignored, loc)
			}
		})
	}
}
