package authserver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/embedded"
)

// hookStore is an embedded store whose calls tests can intercept: after
// a successful PutRecord or Mark (afterPut, afterMark), and failing
// UpdateRecord or Marked in a namespace (failUpdate, failMarked).
type hookStore struct {
	store.Store
	mu         sync.Mutex
	afterPut   func(ns, key string)
	afterMark  func(ns, key string, until time.Time)
	failUpdate string
	failMarked string
}

// newHookEnv is newFlowEnvWith(tweak) on a hookStore, with appOrigin
// trusted.
func newHookEnv(t *testing.T, tweak func(*Options)) (*hookStore, *flowEnv) {
	t.Helper()
	db, err := embedded.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	h := &hookStore{Store: db}
	e := newFlowEnvWith(t, "https://id.example.com", tweak, h)
	e.iss.origins, _ = parseOrigins([]string{appOrigin})
	return h, e
}

func (h *hookStore) set(f func(h *hookStore)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f(h)
}

func (h *hookStore) PutRecord(ctx context.Context, ns, key string, v []byte, until time.Time) error {
	if err := h.Store.PutRecord(ctx, ns, key, v, until); err != nil {
		return err
	}
	h.mu.Lock()
	after := h.afterPut
	h.mu.Unlock()
	if after != nil {
		after(ns, key)
	}
	return nil
}

func (h *hookStore) Mark(ctx context.Context, ns, key string, until time.Time) (bool, error) {
	fresh, err := h.Store.Mark(ctx, ns, key, until)
	if err != nil {
		return fresh, err
	}
	h.mu.Lock()
	after := h.afterMark
	h.mu.Unlock()
	if after != nil {
		after(ns, key, until)
	}
	return fresh, nil
}

func (h *hookStore) UpdateRecord(ctx context.Context, ns, key string, fn func([]byte) ([]byte, error)) ([]byte, error) {
	h.mu.Lock()
	fail := h.failUpdate == ns
	h.mu.Unlock()
	if fail {
		return nil, store.ErrUnavailable
	}
	return h.Store.UpdateRecord(ctx, ns, key, fn)
}

func (h *hookStore) Marked(ctx context.Context, ns, key string) (bool, error) {
	h.mu.Lock()
	fail := h.failMarked == ns
	h.mu.Unlock()
	if fail {
		return false, store.ErrUnavailable
	}
	return h.Store.Marked(ctx, ns, key)
}

// TestSessionRefreshRenewsCookie: the Sessions API refresh sends the SSO
// cookie again with the new lifetime; otherwise the browser drops it at
// the sign-in's Max-Age whatever expiresAt promised.
func TestSessionRefreshRenewsCookie(t *testing.T) {
	e := sessionsEnv(t)
	sess := e.session("u1")
	e.clock.Advance(11 * time.Hour)
	w := e.api(http.MethodPost, "/api/v1/sessions/me/lifecycle/refresh", appOrigin, sess)
	c := cookieOf(w, sess.Name)
	if w.Code != http.StatusOK || c == nil || c.Value != sess.Value || c.MaxAge != int(SessionLifetime/time.Second) ||
		!c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteNoneMode {
		t.Fatalf("refresh: %d, cookie %+v", w.Code, c)
	}
}

// TestSessionRefreshRacingSignOut: a sign-out landing between the
// refresh's read of the session and its write must win: the session
// stays ended and the refresh answers 404.
func TestSessionRefreshRacingSignOut(t *testing.T) {
	h, e := newHookEnv(t, nil)
	sess := e.session("u1")
	e.clock.Advance(time.Hour)
	h.set(func(h *hookStore) {
		h.afterPut = func(ns, key string) {
			if ns == store.NSSession && key == sess.Value {
				h.afterPut = nil // the sign-out below must not recurse
				if w := e.api(http.MethodDelete, "/api/v1/sessions/me", appOrigin, sess); w.Code != http.StatusNoContent {
					t.Errorf("DELETE during the refresh: %d %s", w.Code, w.Body)
				}
			}
		}
	})
	w := e.api(http.MethodPost, "/api/v1/sessions/me/lifecycle/refresh", appOrigin, sess)
	if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "E0000007") {
		t.Errorf("refresh racing a sign-out: %d %s", w.Code, w.Body)
	}
	if e.sessionAlive(sess) {
		t.Fatal("the refresh brought an ended session back")
	}
}

// TestLogoutOnlyByNavigation: the SSO cookie is SameSite=None on HTTPS,
// so an image, frame or fetch from another site carries it; with the
// user's own ID token such a request gets the confirmation page and the
// session stays. A top-level navigation (what signOut() does) ends it.
func TestLogoutOnlyByNavigation(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	_, tok := e.redeem("web", e.code("web", webCB, ""), webCB, "")
	hint, _ := tok["id_token"].(string)
	sess := e.session("u1")
	get := func(mode, dest string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, logoutURL(hint, webBye, "s"), nil)
		r.AddCookie(&http.Cookie{Name: sess.Name, Value: sess.Value})
		if mode != "" {
			r.Header.Set("Sec-Fetch-Mode", mode)
			r.Header.Set("Sec-Fetch-Dest", dest)
			r.Header.Set("Sec-Fetch-Site", "cross-site")
		}
		w := httptest.NewRecorder()
		e.iss.ServeHTTP(w, r)
		return w
	}
	for _, c := range [][2]string{{"no-cors", "image"}, {"navigate", "iframe"}, {"cors", "empty"}, {"no-cors", "script"}} {
		w := get(c[0], c[1])
		if w.Code != http.StatusOK || w.Header().Get("Location") != "" || !strings.Contains(w.Body.String(), `name="csrf"`) || !e.sessionAlive(sess) {
			t.Fatalf("%s/%s: %d %q, session alive %v", c[0], c[1], w.Code, w.Header().Get("Location"), e.sessionAlive(sess))
		}
	}
	if w := get("navigate", "document"); w.Code != http.StatusFound || !strings.HasPrefix(w.Header().Get("Location"), webBye) || e.sessionAlive(sess) {
		t.Fatalf("top-level navigation: %d %q, session alive %v", w.Code, w.Header().Get("Location"), e.sessionAlive(sess))
	}
}

// TestNotYouStoreFailure: when the session cannot be ended, "Not you?"
// says so and does not pretend (no sign-out event, no cleared cookie).
func TestNotYouStoreFailure(t *testing.T) {
	h, e := newHookEnv(t, nil)
	mallory := e.session("u2")
	q := url.Values{"client_id": {"web"}, "response_type": {"code"}, "scope": {"openid pay"}, "state": {"st"}, "redirect_uri": {webCB}}
	w := e.browse(http.MethodGet, "/oauth2/default/v1/authorize?"+q.Encode(), nil, mallory)
	page, txn := w.Body.String(), cookieOf(w, txnCookieName)
	form := url.Values{"txn": {hidden(page, "txn")}, "csrf": {hidden(page, "csrf")}, "decision": {"switch"}}
	h.set(func(h *hookStore) { h.failUpdate = store.NSSession })
	w = e.browse(http.MethodPost, "/oauth2/v1/consent", form, mallory, txn)
	h.set(func(h *hookStore) { h.failUpdate = "" })
	if w.Code < 500 || cookieOf(w, mallory.Name) != nil || !e.sessionAlive(mallory) {
		t.Fatalf("not you with the store failing: %d, cookie %v, alive %v", w.Code, cookieOf(w, mallory.Name), e.sessionAlive(mallory))
	}
	for _, ev := range e.logs.All() {
		if ev.Message == EventSignOut {
			t.Fatalf("a sign-out was logged although the session lives: %v", ev.ContextMap())
		}
	}
}

// TestUserinfoStoreFailure: a store outage while checking revocation is
// 503 temporarily_unavailable, not 401 invalid_token (after which SDKs
// throw the token away).
func TestUserinfoStoreFailure(t *testing.T) {
	h, e := newHookEnv(t, nil)
	_, tok := e.redeem("web", e.code("web", webCB, ""), webCB, "")
	at, _ := tok["access_token"].(string)
	call := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "/oauth2/default/v1/userinfo", nil)
		r.Header.Set("Authorization", "Bearer "+at)
		w := httptest.NewRecorder()
		e.iss.ServeHTTP(w, r)
		return w
	}
	if w := call(); w.Code != http.StatusOK {
		t.Fatalf("userinfo: %d %s", w.Code, w.Body)
	}
	h.set(func(h *hookStore) { h.failMarked = store.NSRevoked })
	w := call()
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "temporarily_unavailable") || w.Header().Get("Retry-After") == "" {
		t.Fatalf("userinfo with the store down: %d %v %s", w.Code, w.Header(), w.Body)
	}
}

// TestCodeReplayWhileIssuing (RFC 6749 section 10.5): a replay that
// arrives while the first use is still issuing finds nothing recorded
// to revoke; the first use then sees the replay and revokes what it
// issued instead of handing it out.
func TestCodeReplayWhileIssuing(t *testing.T) {
	h, e := newHookEnv(t, nil)
	code := e.code("web", webCB, "")
	var replay int
	var linked string
	h.set(func(h *hookStore) {
		h.afterPut = func(ns, key string) {
			if ns == store.NSAccessFamily {
				h.afterPut = nil
				linked = key
				replay, _ = e.redeem("web", code, webCB, "")
			}
		}
	})
	status, body := e.redeem("web", code, webCB, "")
	if replay != http.StatusBadRequest || status != http.StatusBadRequest || body["error"] != "invalid_grant" || body["access_token"] != nil {
		t.Fatalf("first use %d %v, replay %d; want both invalid_grant", status, body, replay)
	}
	if linked == "" {
		t.Fatal("the hook never ran: no access token was linked to a family")
	}
	if revoked, err := e.st.Marked(context.Background(), store.NSRevoked, linked); err != nil || !revoked {
		t.Errorf("the access token issued by the first use is not revoked (%v)", err)
	}
}
