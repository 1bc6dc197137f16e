package authserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/apiaccess/caddy-apiaccess/internal/duration"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/keys"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/embedded"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
)

// flakyStore is the real embedded store with an outage switch: while
// down (for all operations, or only the named one) every call fails as
// a shared store's would when its database is unreachable. The real
// PostgreSQL outage is tested in tokenissuer/cluster_integration_test.go.
type flakyStore struct {
	store.Store
	mu   sync.Mutex
	down string // "" up, "*" every operation, else one operation's name
}

func (f *flakyStore) set(op string) { f.mu.Lock(); f.down = op; f.mu.Unlock() }

func (f *flakyStore) fail(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down == "*" || f.down == op {
		return fmt.Errorf("%w: %s: dial tcp 127.0.0.1:5432: connect: connection refused", store.ErrUnavailable, op)
	}
	return nil
}

func (f *flakyStore) Mark(ctx context.Context, ns, key string, until time.Time) (bool, error) {
	if err := f.fail("Mark"); err != nil {
		return false, err
	}
	return f.Store.Mark(ctx, ns, key, until)
}

func (f *flakyStore) Marked(ctx context.Context, ns, key string) (bool, error) {
	if err := f.fail("Marked"); err != nil {
		return false, err
	}
	return f.Store.Marked(ctx, ns, key)
}

func (f *flakyStore) Incr(ctx context.Context, ns, key string, delta int64, until time.Time) (int64, error) {
	if err := f.fail("Incr"); err != nil {
		return 0, err
	}
	return f.Store.Incr(ctx, ns, key, delta, until)
}

func (f *flakyStore) PutRefresh(ctx context.Context, rt store.RefreshToken) error {
	if err := f.fail("PutRefresh"); err != nil {
		return err
	}
	return f.Store.PutRefresh(ctx, rt)
}

func (f *flakyStore) GetRefresh(ctx context.Context, hash string) (store.RefreshToken, error) {
	if err := f.fail("GetRefresh"); err != nil {
		return store.RefreshToken{}, err
	}
	return f.Store.GetRefresh(ctx, hash)
}

func (f *flakyStore) UpdateRefresh(ctx context.Context, hash string, fn func(*store.RefreshToken) error) (store.RefreshToken, error) {
	if err := f.fail("UpdateRefresh"); err != nil {
		return store.RefreshToken{}, err
	}
	return f.Store.UpdateRefresh(ctx, hash, fn)
}

func (f *flakyStore) PutRecord(ctx context.Context, ns, key string, v []byte, until time.Time) error {
	if err := f.fail("PutRecord"); err != nil {
		return err
	}
	return f.Store.PutRecord(ctx, ns, key, v, until)
}

func (f *flakyStore) CreateRecord(ctx context.Context, ns, key string, v []byte, until time.Time) (bool, error) {
	if err := f.fail("CreateRecord"); err != nil {
		return false, err
	}
	return f.Store.CreateRecord(ctx, ns, key, v, until)
}

func (f *flakyStore) GetRecord(ctx context.Context, ns, key string) ([]byte, error) {
	if err := f.fail("GetRecord"); err != nil {
		return nil, err
	}
	return f.Store.GetRecord(ctx, ns, key)
}

func (f *flakyStore) UpdateRecord(ctx context.Context, ns, key string, fn func([]byte) ([]byte, error)) ([]byte, error) {
	if err := f.fail("UpdateRecord"); err != nil {
		return nil, err
	}
	return f.Store.UpdateRecord(ctx, ns, key, fn)
}

// TestStoreOutage: while the store is unreachable, every grant that
// must persist something answers 503 temporarily_unavailable with
// Retry-After and issues nothing; what the client holds stays usable,
// so after the outage the same code and the same refresh token work,
// even when the outage outlasted the refresh-token leeway.
func TestStoreOutage(t *testing.T) {
	c := testkit.NewClock(time.Now())
	core, logs := observer.New(zap.InfoLevel)
	dir, err := directory.ParseFile([]byte(`{"users":[{"id":"00u1","login":"alice@example.com"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	iss, err := New(Options{
		BaseURL:   "http://issuer.test",
		Directory: dir,
		Servers: map[string]*ServerConfig{"default": {SigningAlg: "ES256", Scopes: []*Scope{{Name: "orders:read"}},
			Policies: []*policy.Policy{{Name: "p", Clients: []string{"*"}, Rules: []*policy.Rule{{Name: "r",
				GrantTypes: []string{GrantAuthorizationCode, GrantClientCredentials}, Scopes: []string{"*"}}}}}}},
		Clients: []*clientauth.Client{{ID: "web", Secret: "web-secret", GrantTypes: []string{GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials},
			RedirectURIs: []string{"https://app.test/cb"}, RefreshTokenLeeway: duration.Duration(10 * time.Second)}},
		Logger: zap.New(core),
		Now:    c.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	db, err := embedded.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	st := &flakyStore{Store: db}
	sealer, _ := keys.NewSealer([]byte("outage-seal-secret-0123456789abcdef"))
	if err := iss.Start(context.Background(), st, sealer); err != nil {
		t.Fatal(err)
	}

	call := func(path, body string) (int, http.Header, map[string]any) {
		r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.SetBasicAuth("web", "web-secret")
		w := httptest.NewRecorder()
		iss.ServeHTTP(w, r)
		var m map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &m)
		return w.Code, w.Header(), m
	}
	unavailable := func(what string, code int, h http.Header, m map[string]any) {
		t.Helper()
		if code != http.StatusServiceUnavailable || m["error"] != "temporarily_unavailable" || h.Get("Retry-After") == "" ||
			m["access_token"] != nil || m["refresh_token"] != nil {
			t.Fatalf("%s during the outage: %d %v %v", what, code, h, m)
		}
	}
	newCode := func() string {
		code := randomToken()
		g, _ := json.Marshal(codeGrant{authzRequest: authzRequest{Server: "default", ClientID: "web", RedirectURI: "https://app.test/cb",
			Scopes: []string{"orders:read", "offline_access"}, UserID: "00u1", AuthTime: c.Now(), Amr: []string{"pwd"}}})
		if err := db.PutRecord(context.Background(), store.NSCode, refreshHash(code), g, c.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		return code
	}
	redeem := func(code string) (int, http.Header, map[string]any) {
		return call("/oauth2/default/v1/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.test/cb"}}.Encode())
	}
	refresh := func(rt string) (int, http.Header, map[string]any) {
		return call("/oauth2/default/v1/token", "grant_type=refresh_token&refresh_token="+rt)
	}

	code := newCode()
	st.set("*")
	n, h, m := redeem(code)
	unavailable("code redemption", n, h, m)
	// Nothing persisted, nothing lost: the code still works afterwards.
	st.set("")
	n, _, m = redeem(code)
	rt, _ := m["refresh_token"].(string)
	if n != http.StatusOK || rt == "" {
		t.Fatalf("code after the outage: %d %v", n, m)
	}

	for _, op := range []string{"*", "GetRefresh", "Marked", "PutRefresh", "UpdateRefresh"} {
		st.set(op)
		n, h, m = refresh(rt)
		unavailable("refresh ("+op+" failing)", n, h, m)
	}
	// The outage outlasted the leeway: the token is still the family's
	// current one, not a "reused" one.
	c.Advance(time.Minute)
	st.set("")
	n, _, m = refresh(rt)
	next, _ := m["refresh_token"].(string)
	if n != http.StatusOK || next == "" || next == rt {
		t.Fatalf("refresh after the outage: %d %v", n, m)
	}

	// Introspection and revocation of a refresh token must not answer as
	// if the token were unknown (inactive, or a silent 200 revoke).
	st.set("*")
	n, h, m = call("/oauth2/default/v1/introspect", "token="+next)
	unavailable("introspection", n, h, m)
	n, h, m = call("/oauth2/default/v1/revoke", "token="+next)
	unavailable("revocation", n, h, m)
	// The log names the store's own failure, which the client never sees.
	var causes []string
	for _, e := range logs.FilterMessage(EventIntrospect).All() {
		if cause, ok := e.ContextMap()["cause"].(string); ok {
			causes = append(causes, cause)
		}
	}
	if len(causes) != 1 || !strings.Contains(causes[0], "connection refused") || strings.Contains(fmt.Sprint(m), "connection refused") {
		t.Fatalf("introspection failure events carry causes %q; want the store's error", causes)
	}

	// client_credentials persists nothing: it keeps working.
	n, _, m = call("/oauth2/default/v1/token", "grant_type=client_credentials&scope=orders:read")
	if n != http.StatusOK || m["access_token"] == nil {
		t.Fatalf("client_credentials during the outage: %d %v", n, m)
	}
	st.set("")
	n, _, m = call("/oauth2/default/v1/introspect", "token="+next)
	if n != http.StatusOK || m["active"] != true {
		t.Fatalf("refresh token after the outage: %d %v", n, m)
	}

	// Pages: a sign-in posted while the store is down gets a 503 page
	// (try again), not "this page has expired", whichever step fails.
	authz := httptest.NewRequest(http.MethodGet, "/oauth2/default/v1/authorize?"+url.Values{"client_id": {"web"}, "response_type": {"code"},
		"redirect_uri": {"https://app.test/cb"}, "scope": {"orders:read"}, "state": {"s"},
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}.Encode(), nil)
	w := httptest.NewRecorder()
	iss.ServeHTTP(w, authz)
	page := w.Body.String()
	field := func(name string) string {
		i := strings.Index(page, `name="`+name+`" value="`)
		if i < 0 {
			t.Fatalf("no %s on the sign-in page: %d %.200s", name, w.Code, page)
		}
		rest := page[i+len(`name="`+name+`" value="`):]
		return rest[:strings.IndexByte(rest, '"')]
	}
	form := url.Values{"txn": {field("txn")}, "csrf": {field("csrf")}, "username": {"alice@example.com"}, "password": {"wrong"}}
	cookies := w.Result().Cookies()
	for _, op := range []string{"GetRecord", "Incr", "*"} {
		st.set(op)
		r := httptest.NewRequest(http.MethodPost, "/oauth2/v1/signin", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for _, c := range cookies {
			r.AddCookie(c)
		}
		w := httptest.NewRecorder()
		iss.ServeHTTP(w, r)
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "temporarily unavailable") {
			t.Fatalf("sign-in with %s failing: %d %.300s", op, w.Code, w.Body)
		}
	}
	st.set("")
}
