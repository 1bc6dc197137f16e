package authserver

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
)

// TestCORSAllowsOktaSDKHeaders: the preflight okta-auth-js 8.0.1 sends
// before every call (X-Okta-User-Agent-Extended, Accept, Content-Type,
// and Authorization on userinfo) is allowed for a trusted origin, header
// by header as a browser checks it (Fetch standard, CORS-preflight
// fetch step 7: case-insensitive names); an untrusted origin gets no
// CORS header at all, and the OAuth endpoints never allow credentials.
func TestCORSAllowsOktaSDKHeaders(t *testing.T) {
	c := testkit.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	iss, _ := newTestIssuer(t, "https://id.example.com", c)
	iss.origins, _ = parseOrigins([]string{"https://app.example.com"})

	requested := []string{"accept", "authorization", "content-type", "x-okta-user-agent-extended", "x-requested-with"}
	for _, path := range []string{
		"/oauth2/default/.well-known/openid-configuration", "/.well-known/openid-configuration",
		"/oauth2/default/v1/keys", "/oauth2/default/v1/token", "/oauth2/v1/token", "/oauth2/default/v1/userinfo",
		"/oauth2/default/v1/revoke", "/oauth2/default/v1/introspect",
	} {
		for origin, trusted := range map[string]bool{"https://app.example.com": true, "https://evil.example.com": false, "null": false} {
			r := httptest.NewRequest(http.MethodOptions, path, nil)
			r.Header.Set("Origin", origin)
			r.Header.Set("Access-Control-Request-Method", "POST")
			r.Header.Set("Access-Control-Request-Headers", strings.Join(requested, ","))
			w := httptest.NewRecorder()
			iss.ServeHTTP(w, r)
			h := w.Header()
			if !trusted {
				for name := range h {
					if strings.HasPrefix(name, "Access-Control-") {
						t.Errorf("%s from %s: %s set for an untrusted origin", path, origin, name)
					}
				}
				continue
			}
			allowed := map[string]bool{}
			for _, a := range strings.Split(h.Get("Access-Control-Allow-Headers"), ",") {
				allowed[strings.ToLower(strings.TrimSpace(a))] = true
			}
			for _, want := range requested {
				if !allowed[want] {
					t.Errorf("%s: preflight does not allow %s: %q", path, want, h.Get("Access-Control-Allow-Headers"))
				}
			}
			// DPoP proofs (okta-auth-js `dpop: true`) are allowed; never a wildcard.
			if !allowed["dpop"] || allowed["*"] {
				t.Errorf("%s: allows %q", path, h.Get("Access-Control-Allow-Headers"))
			}
			if w.Code != http.StatusNoContent || h.Get("Access-Control-Allow-Credentials") != "" {
				t.Errorf("%s: %d, credentials %q", path, w.Code, h.Get("Access-Control-Allow-Credentials"))
			}
		}
	}
}
