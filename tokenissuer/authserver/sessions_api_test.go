package authserver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const appOrigin = "https://spa.example.com"

// api sends a Sessions API request from origin (none when empty) with
// the session cookie (when not nil) and extra headers.
func (e *flowEnv) api(method, path, origin string, c *http.Cookie, hdr ...string) *httptest.ResponseRecorder {
	e.t.Helper()
	r := httptest.NewRequest(method, path, nil)
	if origin != "" {
		r.Header.Set("Origin", origin)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	if c != nil {
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	w := httptest.NewRecorder()
	e.iss.ServeHTTP(w, r)
	return w
}

func sessionsEnv(t *testing.T) *flowEnv {
	e := newFlowEnv(t, "https://id.example.com")
	e.iss.origins, _ = parseOrigins([]string{appOrigin})
	return e
}

// TestSessionsAPIGet: GET /api/v1/sessions/me answers Okta's Session
// object for the SSO cookie, readable with credentials by a trusted
// origin only; its id never reveals the cookie. Without a session it is
// Okta's 404 E0000007, with CORS too, so the SDK reads INACTIVE.
func TestSessionsAPIGet(t *testing.T) {
	e := sessionsEnv(t)
	sess := e.session("u1")
	w := e.api(http.MethodGet, "/api/v1/sessions/me", appOrigin, sess, "X-Okta-User-Agent-Extended", "okta-auth-js/8.0.1")
	var got map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != http.StatusOK {
		t.Fatalf("GET: %d %s", w.Code, w.Body)
	}
	h := w.Header()
	if h.Get("Access-Control-Allow-Origin") != appOrigin || h.Get("Access-Control-Allow-Credentials") != "true" || h.Get("Cache-Control") != "no-store" {
		t.Errorf("GET headers: %v", h)
	}
	auth := e.clock.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	exp := e.clock.Now().Add(SessionLifetime).UTC().Format("2006-01-02T15:04:05.000Z")
	for k, want := range map[string]any{"userId": "u1", "login": "alice@example.com", "status": "ACTIVE", "createdAt": auth,
		"expiresAt": exp, "lastPasswordVerification": auth, "lastFactorVerification": nil, "mfaActive": false} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	id, _ := got["id"].(string)
	if amr, _ := got["amr"].([]any); len(amr) != 1 || amr[0] != "pwd" || id == "" || strings.Contains(w.Body.String(), sess.Value) {
		t.Errorf("amr/id: %s", w.Body)
	}
	links, _ := got["_links"].(map[string]any)
	refresh, _ := links["refresh"].(map[string]any)
	if refresh["href"] != "https://id.example.com/api/v1/sessions/me/lifecycle/refresh" {
		t.Errorf("_links: %v", got["_links"])
	}
	if idp, _ := got["idp"].(map[string]any); idp["type"] != "OKTA" || idp["id"] == "" {
		t.Errorf("idp: %v", got["idp"])
	}

	// An untrusted origin gets no CORS headers: the browser withholds it.
	w = e.api(http.MethodGet, "/api/v1/sessions/me", "https://evil.example.com", sess)
	for name := range w.Header() {
		if strings.HasPrefix(name, "Access-Control-") {
			t.Errorf("untrusted origin got %s", name)
		}
	}

	for _, c := range []*http.Cookie{nil, {Name: sess.Name, Value: "unknown"}, {Name: "apiaccess_sid", Value: sess.Value}} {
		w = e.api(http.MethodGet, "/api/v1/sessions/me", appOrigin, c)
		var oe oktaError
		if json.Unmarshal(w.Body.Bytes(), &oe) != nil || w.Code != http.StatusNotFound || oe.Code != "E0000007" ||
			oe.Summary != "Not found: Resource not found: me (Session)" || w.Header().Get("Access-Control-Allow-Origin") != appOrigin {
			t.Errorf("cookie %v: %d %s %v", c, w.Code, w.Body, w.Header())
		}
	}
	for path, want := range map[string]int{"/api/v1/sessions/abc": 404, "/api/v1/sessions/me/lifecycle": 404, "/api/v1/users/me": 404} {
		if w := e.api(http.MethodGet, path, "", sess); w.Code != want || !strings.Contains(w.Body.String(), "E0000007") {
			t.Errorf("%s: %d %s", path, w.Code, w.Body)
		}
	}
	if w := e.api(http.MethodPut, "/api/v1/sessions/me", "", sess); w.Code != http.StatusMethodNotAllowed ||
		w.Header().Get("Allow") != "GET, DELETE" || !strings.Contains(w.Body.String(), "E0000022") {
		t.Errorf("PUT: %d %v %s", w.Code, w.Header(), w.Body)
	}
}

// TestSessionsAPIPreflight: the preflight of closeSession() (DELETE)
// and session.refresh() (POST) from a trusted origin allows the
// method, the SDK's headers and credentials; other origins get nothing.
func TestSessionsAPIPreflight(t *testing.T) {
	e := sessionsEnv(t)
	for path, methods := range map[string]string{"/api/v1/sessions/me": "GET, DELETE", "/api/v1/sessions/me/lifecycle/refresh": "POST"} {
		hdr := []string{"Access-Control-Request-Method", "DELETE", "Access-Control-Request-Headers", "accept,content-type,x-okta-user-agent-extended"}
		w := e.api(http.MethodOptions, path, appOrigin, nil, hdr...)
		h := w.Header()
		if w.Code != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != appOrigin || h.Get("Access-Control-Allow-Methods") != methods ||
			h.Get("Access-Control-Allow-Credentials") != "true" || !strings.Contains(h.Get("Access-Control-Allow-Headers"), "X-Okta-User-Agent-Extended") {
			t.Errorf("%s preflight: %d %v", path, w.Code, h)
		}
		w = e.api(http.MethodOptions, path, "https://evil.example.com", nil, hdr...)
		if w.Code == http.StatusNoContent || w.Header().Get("Access-Control-Allow-Origin") != "" || w.Header().Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("%s untrusted preflight: %d %v", path, w.Code, w.Header())
		}
	}
}

// TestSessionsAPIDeleteAndCSRF: DELETE ends the session (204, cookie
// cleared) for a trusted origin, the issuer's own pages and non-browser
// clients; a request from any other site is refused and leaves the
// session alone, as is a cross-site refresh (a simple cross-site POST
// would otherwise run, CORS only hides its answer).
func TestSessionsAPIDeleteAndCSRF(t *testing.T) {
	e := sessionsEnv(t)
	sess := e.session("u1")
	for _, tc := range []struct {
		method, path string
		hdr          []string
	}{
		{http.MethodDelete, "/api/v1/sessions/me", []string{"Origin", "https://evil.example.com"}},
		{http.MethodDelete, "/api/v1/sessions/me", []string{"Origin", "null"}},
		{http.MethodDelete, "/api/v1/sessions/me", []string{"Sec-Fetch-Site", "cross-site"}},
		{http.MethodPost, "/api/v1/sessions/me/lifecycle/refresh", []string{"Origin", "https://evil.example.com"}},
		{http.MethodPost, "/api/v1/sessions/me/lifecycle/refresh", []string{"Sec-Fetch-Site", "same-site"}},
	} {
		w := e.api(tc.method, tc.path, "", sess, tc.hdr...)
		if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "E0000006") || !e.sessionAlive(sess) ||
			cookieOf(w, sess.Name) != nil || w.Header().Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s %s %v: %d %s", tc.method, tc.path, tc.hdr, w.Code, w.Body)
		}
	}
	for _, hdr := range [][]string{{"Origin", appOrigin}, {"Origin", "https://id.example.com"}, {"Sec-Fetch-Site", "same-origin"}, nil} {
		sess := e.session("u1")
		w := e.api(http.MethodDelete, "/api/v1/sessions/me", "", sess, hdr...)
		cleared := cookieOf(w, sess.Name)
		if w.Code != http.StatusNoContent || e.sessionAlive(sess) || cleared == nil || cleared.MaxAge >= 0 || w.Body.Len() != 0 {
			t.Errorf("DELETE %v: %d %v alive=%v", hdr, w.Code, w.Header(), e.sessionAlive(sess))
		}
		if w := e.api(http.MethodGet, "/api/v1/sessions/me", "", sess); w.Code != http.StatusNotFound {
			t.Errorf("GET after DELETE: %d", w.Code)
		}
		if w := e.api(http.MethodDelete, "/api/v1/sessions/me", "", sess); w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "E0000007") {
			t.Errorf("second DELETE: %d %s", w.Code, w.Body)
		}
	}
}

// TestSessionsAPIRefresh: POST .../lifecycle/refresh extends the session
// by SessionLifetime from now, never past sessionMaxLifetime after
// sign-in, and the extension is what GET reports afterwards.
func TestSessionsAPIRefresh(t *testing.T) {
	e := sessionsEnv(t)
	signedIn := e.clock.Now()
	sess := e.session("u1")
	stamp := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
	expiresAt := func(w *httptest.ResponseRecorder) string {
		var s struct {
			ExpiresAt string `json:"expiresAt"`
		}
		_ = json.Unmarshal(w.Body.Bytes(), &s)
		return s.ExpiresAt
	}
	e.clock.Advance(3 * time.Hour)
	w := e.api(http.MethodPost, "/api/v1/sessions/me/lifecycle/refresh", appOrigin, sess)
	if want := stamp(e.clock.Now().Add(SessionLifetime)); w.Code != http.StatusOK || expiresAt(w) != want ||
		w.Header().Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("refresh: %d %s, want expiresAt %s", w.Code, w.Body, want)
	}
	if got := expiresAt(e.api(http.MethodGet, "/api/v1/sessions/me", "", sess)); got != stamp(e.clock.Now().Add(SessionLifetime)) {
		t.Errorf("GET after refresh: expiresAt %s", got)
	}
	e.clock.Advance(11 * time.Hour)
	if got := expiresAt(e.api(http.MethodPost, "/api/v1/sessions/me/lifecycle/refresh", "", sess)); got != stamp(signedIn.Add(sessionMaxLifetime)) {
		t.Errorf("refresh near the cap: expiresAt %s, want %s", got, stamp(signedIn.Add(sessionMaxLifetime)))
	}
	if w := e.api(http.MethodGet, "/api/v1/sessions/me/lifecycle/refresh", "", sess); w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "POST" {
		t.Errorf("GET refresh: %d", w.Code)
	}
	e.clock.Advance(10*time.Hour + time.Second)
	if w := e.api(http.MethodGet, "/api/v1/sessions/me", "", sess); w.Code != http.StatusNotFound {
		t.Errorf("GET past the cap: %d %s", w.Code, w.Body)
	}
	if w := e.api(http.MethodPost, "/api/v1/sessions/me/lifecycle/refresh", appOrigin, nil); w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "E0000007") {
		t.Errorf("refresh without session: %d %s", w.Code, w.Body)
	}
}
