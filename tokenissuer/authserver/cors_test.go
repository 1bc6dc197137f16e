package authserver

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
)

func TestTrustedOriginsValidation(t *testing.T) {
	for _, bad := range []string{"*", "https://*.example.com", "https://app.example.com/path", "app.example.com",
		"ftp://app.example.com", "https://user@app.example.com", "https://app.example.com?x=1", "https://app.example.com#f", "https://"} {
		if _, err := New(Options{BaseURL: "https://id.example.com", TrustedOrigins: []string{bad}}); err == nil ||
			!strings.Contains(err.Error(), "trusted origin") {
			t.Errorf("%q: err = %v, want a trusted origin error", bad, err)
		}
	}
	got, err := parseOrigins([]string{"https://App.Example.com:443", "http://localhost:8083/", "http://localhost:80"})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []string{"https://app.example.com", "http://localhost:8083", "http://localhost"} {
		if !got[o] {
			t.Errorf("%s not trusted after normalisation: %v", o, got)
		}
	}
}

// TestCORS: a trusted origin's preflight is answered for the fetch
// endpoints with their methods, its actual requests carry
// Access-Control-Allow-Origin; other origins and the browser pages get
// no CORS headers; cookies are never allowed.
func TestCORS(t *testing.T) {
	c := testkit.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	iss, _ := newTestIssuer(t, "https://id.example.com", c)
	iss.origins, _ = parseOrigins([]string{"https://app.example.com"})

	preflight := func(path, origin string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodOptions, path, nil)
		r.Header.Set("Origin", origin)
		r.Header.Set("Access-Control-Request-Method", "POST")
		r.Header.Set("Access-Control-Request-Headers", "authorization")
		w := httptest.NewRecorder()
		iss.ServeHTTP(w, r)
		return w
	}
	for path, methods := range map[string]string{
		"/oauth2/default/v1/token":                               "POST",
		"/oauth2/v1/token":                                       "POST",
		"/oauth2/default/v1/userinfo":                            "GET, POST",
		"/oauth2/default/v1/revoke":                              "POST",
		"/oauth2/default/.well-known/openid-configuration":       "GET",
		"/.well-known/oauth-authorization-server/oauth2/default": "GET",
	} {
		w := preflight(path, "https://app.example.com")
		h := w.Header()
		if w.Code != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
			h.Get("Access-Control-Allow-Methods") != methods || !strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") ||
			h.Get("Access-Control-Allow-Credentials") != "" || h.Get("Vary") != "Origin" {
			t.Errorf("%s preflight: %d %v", path, w.Code, h)
		}
		if w := preflight(path, "https://evil.example.com"); w.Header().Get("Access-Control-Allow-Origin") != "" || w.Code == http.StatusNoContent {
			t.Errorf("%s: untrusted origin answered %d %v", path, w.Code, w.Header())
		}
	}
	for _, path := range []string{"/oauth2/default/v1/authorize", "/oauth2/v1/signin", "/oauth2/default/v1/logout"} {
		if w := preflight(path, "https://app.example.com"); w.Header().Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s is a browser page, yet answered CORS: %v", path, w.Header())
		}
	}

	// An actual cross-origin request: the answer (here an error) is
	// readable by the trusted origin, WWW-Authenticate included.
	r := httptest.NewRequest(http.MethodPost, "/oauth2/default/v1/token", strings.NewReader("grant_type=client_credentials"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Origin", "https://app.example.com")
	w := httptest.NewRecorder()
	iss.ServeHTTP(w, r)
	if w.Code != http.StatusUnauthorized || w.Header().Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		w.Header().Get("Access-Control-Expose-Headers") != "WWW-Authenticate, DPoP-Nonce" {
		t.Errorf("token without client: %d %v", w.Code, w.Header())
	}
}
