package keyset_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/apiaccess/caddy-apiaccess/caddymodule/keyset"
	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
)

// fakeClock is the test kit's settable clock, for Remote.Now.
type fakeClock = testkit.Clock

func newFakeClock() *fakeClock { return testkit.NewClock(time.Unix(1_700_000_000, 0)) }

// issuerServer serves discovery metadata and a JWKS on 127.0.0.1.
type issuerServer struct {
	srv *httptest.Server
	// issuerPath is appended to the server URL to form the issuer.
	issuerPath string

	discoveryHits atomic.Int64 // metadata requests (any candidate)
	jwksHits      atomic.Int64

	mu         sync.Mutex
	jwks       []byte
	jwksPath   string
	metaIssuer string // "" means the real issuer
	metaJWKS   string // "" means server URL + jwksPath
	status     int    // for every response; 0 means 200
	rfc8414    bool   // serve metadata only at the RFC 8414 inserted location
	gate       chan struct{}
	gateOnce   sync.Once
	entered    atomic.Int64 // JWKS requests that reached the gate
	served     atomic.Int64 // JWKS answers written
}

func newIssuerServer(t *testing.T, jwks []byte, tls bool) *issuerServer {
	s := &issuerServer{jwks: jwks, jwksPath: "/keys"}
	if tls {
		s.srv = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	} else {
		s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	}
	t.Cleanup(func() {
		s.release()
		s.srv.Close()
	})
	return s
}

func (s *issuerServer) issuer() string { return s.srv.URL + s.issuerPath }

func (s *issuerServer) release() {
	s.mu.Lock()
	g := s.gate
	s.mu.Unlock()
	if g != nil {
		s.gateOnce.Do(func() { close(g) })
	}
}

func (s *issuerServer) set(f func(s *issuerServer)) {
	s.mu.Lock()
	f(s)
	s.mu.Unlock()
}

func (s *issuerServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	jwks, jwksPath, metaIssuer, metaJWKS, status, rfc8414, gate := s.jwks, s.jwksPath, s.metaIssuer, s.metaJWKS, s.status, s.rfc8414, s.gate
	s.mu.Unlock()
	if metaIssuer == "" {
		metaIssuer = s.issuer()
	}
	if metaJWKS == "" {
		metaJWKS = s.srv.URL + jwksPath
	}
	if status == 0 {
		status = http.StatusOK
	}
	w.Header().Set("Content-Type", "application/json")
	oidc := s.issuerPath + "/.well-known/openid-configuration"
	inserted := "/.well-known/oauth-authorization-server" + s.issuerPath
	switch {
	case r.URL.Path == oidc && !rfc8414, r.URL.Path == inserted && rfc8414:
		s.discoveryHits.Add(1)
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": metaIssuer, "jwks_uri": metaJWKS})
	case r.URL.Path == oidc, r.URL.Path == inserted, strings.HasPrefix(r.URL.Path, "/.well-known/"), strings.HasSuffix(r.URL.Path, "/.well-known/oauth-authorization-server"):
		s.discoveryHits.Add(1)
		http.NotFound(w, r)
	case r.URL.Path == jwksPath:
		s.jwksHits.Add(1)
		if gate != nil {
			s.entered.Add(1)
			<-gate
		}
		w.WriteHeader(status)
		_, _ = w.Write(jwks)
		s.served.Add(1)
	default:
		http.NotFound(w, r)
	}
}

// jwksOf serializes public JWKs with the given kids (RSA keys 0..2).
func jwksOf(t testing.TB, kids ...string) []byte {
	t.Helper()
	var keys []jwk.Key
	for i, kid := range kids {
		keys = append(keys, jwkOf(t, &rsaKey(i%3).PublicKey, map[string]string{"kid": kid, "alg": "RS256", "use": "sig"}))
	}
	b, err := json.Marshal(setOf(t, keys...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// errLog collects OnError reports.
type errLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errLog) add(err error) {
	l.mu.Lock()
	l.errs = append(l.errs, err)
	l.mu.Unlock()
}

func (l *errLog) all() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}

func (l *errLog) contains(s string) bool {
	for _, e := range l.all() {
		if strings.Contains(e.Error(), s) {
			return true
		}
	}
	return false
}

func newRemote(s *issuerServer, clk *fakeClock, minRefresh time.Duration) (*keyset.Remote, *errLog) {
	l := &errLog{}
	return &keyset.Remote{
		Issuer:     s.issuer(),
		MinRefresh: minRefresh,
		Client:     s.srv.Client(),
		Now:        clk.Now,
		OnError:    l.add,
	}, l
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestRemoteIsLazy(t *testing.T) {
	s := newIssuerServer(t, jwksOf(t, "k1"), false)
	r, _ := newRemote(s, newFakeClock(), time.Hour)
	if s.discoveryHits.Load() != 0 || s.jwksHits.Load() != 0 || r.Fetches() != 0 {
		t.Fatalf("requests before first use")
	}
	k, err := r.Key(context.Background(), "k1")
	if err != nil || k.KID != "k1" {
		t.Fatalf("key %v err %v", k, err)
	}
	if s.discoveryHits.Load() != 1 || s.jwksHits.Load() != 1 || r.Fetches() != 1 {
		t.Fatalf("discovery %d jwks %d fetches %d; want 1 1 1", s.discoveryHits.Load(), s.jwksHits.Load(), r.Fetches())
	}
	// Known keys are served from memory.
	for range 10 {
		if _, err := r.Key(context.Background(), "k1"); err != nil {
			t.Fatal(err)
		}
	}
	if s.jwksHits.Load() != 1 || r.Fetches() != 1 {
		t.Fatalf("known key refetched")
	}
}

func TestRemoteDiscoveryIssuerMismatch(t *testing.T) {
	s := newIssuerServer(t, jwksOf(t, "k1"), false)
	s.metaIssuer = "https://evil.example"
	r, log := newRemote(s, newFakeClock(), time.Hour)
	if _, err := r.Key(context.Background(), "k1"); !errors.Is(err, keyset.ErrUnavailable) {
		t.Fatalf("err %v; want ErrUnavailable", err)
	}
	if s.jwksHits.Load() != 0 {
		t.Fatalf("JWKS fetched from a mismatched issuer's metadata")
	}
	if !log.contains("evil.example") {
		t.Fatalf("OnError got %v", log.all())
	}
}

func TestRemoteDiscoveryIssuerTrailingSlashMismatch(t *testing.T) {
	s := newIssuerServer(t, jwksOf(t, "k1"), false)
	s.metaIssuer = s.srv.URL + "/"
	r, _ := newRemote(s, newFakeClock(), time.Hour)
	if _, err := r.Key(context.Background(), "k1"); !errors.Is(err, keyset.ErrUnavailable) {
		t.Fatalf("err %v; want ErrUnavailable", err)
	}
}

func TestRemoteDiscoveryRFC8414(t *testing.T) {
	s := newIssuerServer(t, jwksOf(t, "k1"), false)
	s.issuerPath = "/tenant1"
	s.rfc8414 = true
	r, log := newRemote(s, newFakeClock(), time.Hour)
	if k, err := r.Key(context.Background(), "k1"); err != nil || k.KID != "k1" {
		t.Fatalf("key %v err %v (%v)", k, err, log.all())
	}
}

func TestRemoteDiscoveryUnusableJWKSURI(t *testing.T) {
	for _, c := range []struct {
		name string
		tls  bool
		uri  func(s *issuerServer) string
	}{
		{"http jwks_uri for an https issuer", true, func(s *issuerServer) string {
			return "http://" + strings.TrimPrefix(s.srv.URL, "https://") + "/keys"
		}},
		{"relative jwks_uri", false, func(*issuerServer) string { return "/keys" }},
		{"file jwks_uri", false, func(*issuerServer) string { return "file:///etc/passwd" }},
		{"no host", false, func(*issuerServer) string { return "http:///keys" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newIssuerServer(t, jwksOf(t, "k1"), c.tls)
			s.metaJWKS = c.uri(s)
			r, log := newRemote(s, newFakeClock(), time.Hour)
			if _, err := r.Key(context.Background(), "k1"); !errors.Is(err, keyset.ErrUnavailable) {
				t.Fatalf("err %v; want ErrUnavailable", err)
			}
			if s.jwksHits.Load() != 0 {
				t.Fatalf("unusable jwks_uri fetched")
			}
			if !log.contains("jwks_uri") {
				t.Fatalf("OnError got %v", log.all())
			}
		})
	}
	// An https issuer with an https jwks_uri works.
	s := newIssuerServer(t, jwksOf(t, "k1"), true)
	r, log := newRemote(s, newFakeClock(), time.Hour)
	if _, err := r.Key(context.Background(), "k1"); err != nil {
		t.Fatalf("https: %v %v", err, log.all())
	}
}

func TestRemoteUnknownKIDFlood(t *testing.T) {
	s := newIssuerServer(t, jwksOf(t, "k1"), false)
	r, _ := newRemote(s, newFakeClock(), time.Hour)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				kid := rand.Text()
				if _, err := r.Key(context.Background(), kid); !errors.Is(err, keyset.ErrUnknownKID) {
					errs <- fmt.Errorf("kid %s: %v", kid, err)
					return
				}
			}
			if _, err := r.Key(context.Background(), "k1"); err != nil {
				errs <- fmt.Errorf("known kid during the flood: %v", err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := r.Fetches(); n > 2 || n < 1 {
		t.Fatalf("%d JWKS fetches for 1000 unknown kids; want at most 2", n)
	}
	if n := s.jwksHits.Load(); n != r.Fetches() {
		t.Fatalf("server saw %d JWKS requests, Fetches() says %d", n, r.Fetches())
	}
	if n := s.discoveryHits.Load(); n != 1 {
		t.Fatalf("%d discovery requests", n)
	}
}

// TestRemoteSingleFlightFirstUse: requests arriving while the first
// fetch is in flight all wait for it and all succeed.
func TestRemoteSingleFlightFirstUse(t *testing.T) {
	s := newIssuerServer(t, jwksOf(t, "k1"), false)
	s.gate = make(chan struct{})
	r, _ := newRemote(s, newFakeClock(), time.Hour)
	const n = 100
	var started, done sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		started.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			started.Done()
			if k, err := r.Key(context.Background(), "k1"); err != nil || k.KID != "k1" {
				errs <- fmt.Errorf("key %v err %v", k, err)
			}
		}()
	}
	started.Wait()
	waitFor(t, "the JWKS request", func() bool { return s.entered.Load() == 1 })
	s.release()
	done.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if r.Fetches() != 1 || s.jwksHits.Load() != 1 || s.discoveryHits.Load() != 1 {
		t.Fatalf("fetches %d, jwks %d, discovery %d; want 1 each", r.Fetches(), s.jwksHits.Load(), s.discoveryHits.Load())
	}
}

// TestRemoteWaiterHonoursContext: a request waiting for a fetch in
// flight gives up when its context ends instead of hanging.
func TestRemoteWaiterHonoursContext(t *testing.T) {
	s := newIssuerServer(t, jwksOf(t, "k1"), false)
	s.gate = make(chan struct{})
	r, _ := newRemote(s, newFakeClock(), time.Hour)
	first := make(chan error, 1)
	go func() {
		_, err := r.Key(context.Background(), "k1")
		first <- err
	}()
	waitFor(t, "the JWKS request", func() bool { return s.entered.Load() == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Key(ctx, "k1"); !errors.Is(err, keyset.ErrUnavailable) {
		t.Fatalf("cancelled waiter: err %v; want ErrUnavailable", err)
	}
	s.release()
	if err := <-first; err != nil {
		t.Fatalf("first request: %v", err)
	}
}

func TestRemoteRotation(t *testing.T) {
	s := newIssuerServer(t, jwksOf(t, "k1"), false)
	clk := newFakeClock()
	r, _ := newRemote(s, clk, time.Minute)
	ctx := context.Background()
	if _, err := r.Key(ctx, "k1"); err != nil {
		t.Fatal(err)
	}

	// The issuer publishes k2. Within MinRefresh, k2 is unknown and no
	// fetch happens.
	s.set(func(s *issuerServer) { s.jwks = jwksOf(t, "k1", "k2") })
	clk.Advance(30 * time.Second)
	if _, err := r.Key(ctx, "k2"); !errors.Is(err, keyset.ErrUnknownKID) {
		t.Fatalf("err %v; want ErrUnknownKID", err)
	}
	if r.Fetches() != 1 {
		t.Fatalf("fetches %d; want 1", r.Fetches())
	}

	// After MinRefresh, the new kid is found.
	clk.Advance(31 * time.Second)
	if k, err := r.Key(ctx, "k2"); err != nil || k.KID != "k2" {
		t.Fatalf("after MinRefresh: %v %v", k, err)
	}
	if r.Fetches() != 2 {
		t.Fatalf("fetches %d; want 2", r.Fetches())
	}

	// The issuer retires k1: once another refresh happens, k1 is gone.
	s.set(func(s *issuerServer) { s.jwks = jwksOf(t, "k2") })
	clk.Advance(2 * time.Minute)
	if _, err := r.Key(ctx, "k3"); !errors.Is(err, keyset.ErrUnknownKID) {
		t.Fatalf("k3: %v", err)
	}
	if _, err := r.Key(ctx, "k1"); !errors.Is(err, keyset.ErrUnknownKID) {
		t.Fatalf("retired k1: err %v; want ErrUnknownKID", err)
	}
	if _, err := r.Key(ctx, "k2"); err != nil {
		t.Fatalf("k2: %v", err)
	}
	if r.Fetches() != 3 {
		t.Fatalf("fetches %d; want 3", r.Fetches())
	}
}

func TestRemoteStaleKeysWhenServerDown(t *testing.T) {
	s := newIssuerServer(t, jwksOf(t, "k1"), false)
	clk := newFakeClock()
	r, log := newRemote(s, clk, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := r.Key(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	s.srv.Close()

	if _, err := r.Key(ctx, "k1"); err != nil {
		t.Fatalf("known key while down: %v", err)
	}
	clk.Advance(2 * time.Minute)
	if _, err := r.Key(ctx, "unknown"); !errors.Is(err, keyset.ErrUnknownKID) {
		t.Fatalf("unknown kid while down: err %v; want ErrUnknownKID", err)
	}
	if r.Fetches() != 2 {
		t.Fatalf("fetches %d; want 2 (one failed)", r.Fetches())
	}
	if len(log.all()) == 0 {
		t.Fatalf("OnError not called")
	}
	// Rate limited: no new attempt within MinRefresh.
	if _, err := r.Key(ctx, "unknown2"); !errors.Is(err, keyset.ErrUnknownKID) {
		t.Fatalf("err %v", err)
	}
	if r.Fetches() != 2 {
		t.Fatalf("fetches %d; want 2", r.Fetches())
	}
	if _, err := r.Key(ctx, "k1"); err != nil {
		t.Fatalf("known key after failed refresh: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("a lookup hung until the context deadline")
	}
}

// TestRemoteStaleKeysWhenServerHangs: an issuer that accepts the
// connection but never answers does not block lookups beyond the
// client's timeout, and known keys keep working meanwhile.
func TestRemoteStaleKeysWhenServerHangs(t *testing.T) {
	s := newIssuerServer(t, jwksOf(t, "k1"), false)
	clk := newFakeClock()
	r, _ := newRemote(s, clk, time.Minute)
	if _, err := r.Key(context.Background(), "k1"); err != nil {
		t.Fatal(err)
	}
	s.set(func(s *issuerServer) { s.gate = make(chan struct{}) })
	r.Client = &http.Client{Timeout: 200 * time.Millisecond, Transport: s.srv.Client().Transport}
	clk.Advance(2 * time.Minute)
	res := make(chan error, 1)
	go func() {
		_, err := r.Key(context.Background(), "unknown")
		res <- err
	}()
	waitFor(t, "the JWKS request", func() bool { return s.entered.Load() == 1 })
	// While the fetch hangs, known keys are served.
	if _, err := r.Key(context.Background(), "k1"); err != nil {
		t.Fatalf("known key during a hanging refresh: %v", err)
	}
	if err := <-res; !errors.Is(err, keyset.ErrUnknownKID) {
		t.Fatalf("err %v; want ErrUnknownKID", err)
	}
}

func TestRemoteDownFromStart(t *testing.T) {
	t.Run("closed", func(t *testing.T) {
		s := newIssuerServer(t, jwksOf(t, "k1"), false)
		r, log := newRemote(s, newFakeClock(), time.Minute)
		s.srv.Close()
		for range 3 {
			if _, err := r.Key(context.Background(), "k1"); !errors.Is(err, keyset.ErrUnavailable) {
				t.Fatalf("err %v; want ErrUnavailable", err)
			}
		}
		if len(log.all()) != 1 {
			t.Fatalf("%d errors reported; want 1 (rate limited)", len(log.all()))
		}
	})
	t.Run("500 with an explicit jwks_uri", func(t *testing.T) {
		s := newIssuerServer(t, jwksOf(t, "k1"), false)
		s.status = http.StatusInternalServerError
		clk := newFakeClock()
		r, _ := newRemote(s, clk, time.Minute)
		r.JWKSURI = s.srv.URL + "/keys"
		for range 3 {
			if _, err := r.Key(context.Background(), "k1"); !errors.Is(err, keyset.ErrUnavailable) {
				t.Fatalf("err %v; want ErrUnavailable", err)
			}
		}
		if r.Fetches() != 1 || s.jwksHits.Load() != 1 || s.discoveryHits.Load() != 0 {
			t.Fatalf("fetches %d jwks %d discovery %d; want 1 1 0", r.Fetches(), s.jwksHits.Load(), s.discoveryHits.Load())
		}
		// Recovery after MinRefresh.
		s.set(func(s *issuerServer) { s.status = 0 })
		clk.Advance(time.Minute)
		if _, err := r.Key(context.Background(), "k1"); err != nil {
			t.Fatalf("after recovery: %v", err)
		}
	})
	t.Run("500 on discovery", func(t *testing.T) {
		s := newIssuerServer(t, jwksOf(t, "k1"), false)
		s.status = http.StatusInternalServerError
		r, log := newRemote(s, newFakeClock(), time.Minute)
		if _, err := r.Key(context.Background(), "k1"); !errors.Is(err, keyset.ErrUnavailable) {
			t.Fatalf("err %v; want ErrUnavailable", err)
		}
		if s.jwksHits.Load() != 0 || !log.contains("discovering keys") {
			t.Fatalf("jwks %d, errors %v", s.jwksHits.Load(), log.all())
		}
	})
}

func TestRemoteJWKSSizeLimit(t *testing.T) {
	valid := jwksOf(t, "k1")
	padded := func(total int) []byte {
		base := string(valid[:len(valid)-1]) + `,"pad":""}`
		return []byte(string(valid[:len(valid)-1]) + `,"pad":"` + strings.Repeat("x", total-len(base)) + `"}`)
	}
	t.Run("over 1 MiB", func(t *testing.T) {
		s := newIssuerServer(t, padded(1<<20+1), false)
		r, log := newRemote(s, newFakeClock(), time.Hour)
		if _, err := r.Key(context.Background(), "k1"); !errors.Is(err, keyset.ErrUnavailable) {
			t.Fatalf("err %v; want ErrUnavailable", err)
		}
		if !log.contains("larger") {
			t.Fatalf("errors %v", log.all())
		}
	})
	t.Run("exactly 1 MiB", func(t *testing.T) {
		b := padded(1 << 20)
		if len(b) != 1<<20 {
			t.Fatalf("built %d bytes", len(b))
		}
		s := newIssuerServer(t, b, false)
		r, log := newRemote(s, newFakeClock(), time.Hour)
		if _, err := r.Key(context.Background(), "k1"); err != nil {
			t.Fatalf("err %v (%v)", err, log.all())
		}
	})
}

func TestRemoteUselessJWKSKeepsKnownKeys(t *testing.T) {
	for _, c := range []struct {
		name string
		body string
	}{
		{"empty set", `{"keys":[]}`},
		{"only a symmetric key", `{"keys":[{"kty":"oct","kid":"k9","k":"c2VjcmV0c2VjcmV0c2VjcmV0"}]}`},
		{"not JSON", `<html>maintenance</html>`},
		{"empty body", ``},
		{"whitespace body", " \n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newIssuerServer(t, jwksOf(t, "k1"), false)
			clk := newFakeClock()
			r, log := newRemote(s, clk, time.Minute)
			if _, err := r.Key(context.Background(), "k1"); err != nil {
				t.Fatal(err)
			}
			s.set(func(s *issuerServer) { s.jwks = []byte(c.body) })
			clk.Advance(time.Hour)
			if _, err := r.Key(context.Background(), "k9"); !errors.Is(err, keyset.ErrUnknownKID) {
				t.Fatalf("err %v; want ErrUnknownKID", err)
			}
			if len(log.all()) != 1 {
				t.Fatalf("errors %v", log.all())
			}
			if _, err := r.Key(context.Background(), "k1"); err != nil {
				t.Fatalf("known key lost: %v", err)
			}
		})
	}
}

// TestRemoteSkipsUnsupportedKeys: a JWKS mixing usable keys with keys of
// types we cannot use still yields the usable ones.
func TestRemoteSkipsUnsupportedKeys(t *testing.T) {
	valid := jwksOf(t, "k1")
	extra := []struct {
		name, key, bug string
	}{
		{"symmetric", `{"kty":"oct","kid":"o","k":"c2VjcmV0"}`, ""},
		{"encryption key", `{"kty":"RSA","kid":"e","use":"enc","n":"sXch","e":"AQAB"}`, ""},
		{"unknown curve", `{"kty":"EC","crv":"P-999","kid":"c","x":"AA","y":"AA"}`, ""},
		{"Ed448", `{"kty":"OKP","crv":"Ed448","kid":"x","x":"AAAA"}`, ""},
		{"unknown kty (post-quantum AKP)", `{"kty":"AKP","kid":"pq","alg":"ML-DSA-44","pub":"AAAA"}`,
			"jwk.Parse fails the whole JWKS on one key of an unknown kty, so every key of that issuer becomes unavailable (use jwk.WithIgnoreParseError(true))"},
	}
	for _, c := range extra {
		t.Run(c.name, func(t *testing.T) {
			body := []byte(`{"keys":[` + c.key + `,` + string(valid[len(`{"keys":[`):]))
			s := newIssuerServer(t, body, false)
			r, log := newRemote(s, newFakeClock(), time.Hour)
			if k, err := r.Key(context.Background(), "k1"); err != nil || k.KID != "k1" {
				t.Fatalf("key %v err %v (%v)", k, err, log.all())
			}
		})
	}
}

// TestRemoteRediscoversAfter404: when the discovered JWKS location
// disappears, the metadata is read again on the next attempt.
func TestRemoteRediscoversAfter404(t *testing.T) {
	s := newIssuerServer(t, jwksOf(t, "k1"), false)
	clk := newFakeClock()
	r, _ := newRemote(s, clk, time.Minute)
	ctx := context.Background()
	if _, err := r.Key(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	s.set(func(s *issuerServer) { s.jwksPath = "/keys2"; s.jwks = jwksOf(t, "k1", "k2") })
	clk.Advance(time.Minute)
	if _, err := r.Key(ctx, "k2"); !errors.Is(err, keyset.ErrUnknownKID) {
		t.Fatalf("err %v; want ErrUnknownKID (404 at the old location)", err)
	}
	clk.Advance(time.Minute)
	if k, err := r.Key(ctx, "k2"); err != nil || k.KID != "k2" {
		t.Fatalf("after rediscovery: %v %v", k, err)
	}
	if n := s.discoveryHits.Load(); n != 2 {
		t.Fatalf("%d discovery requests; want 2", n)
	}

	// With a configured JWKSURI there is no discovery at all.
	s2 := newIssuerServer(t, jwksOf(t, "k1"), false)
	r2, _ := newRemote(s2, clk, time.Minute)
	r2.JWKSURI = s2.srv.URL + "/keys"
	if _, err := r2.Key(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	if s2.discoveryHits.Load() != 0 {
		t.Fatalf("discovery with an explicit jwks_uri")
	}
}

func TestRemoteRunRefreshesAndStops(t *testing.T) {
	s := newIssuerServer(t, jwksOf(t, "k1"), false)
	r, _ := newRemote(s, newFakeClock(), time.Hour)
	r.RefreshEvery = 20 * time.Millisecond
	ctx := context.Background()

	// First use, then the issuer publishes k2: within MinRefresh an
	// on-demand lookup cannot fetch it.
	if _, err := r.Key(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	s.set(func(s *issuerServer) { s.jwks = jwksOf(t, "k1", "k2") })
	if _, err := r.Key(ctx, "k2"); !errors.Is(err, keyset.ErrUnknownKID) {
		t.Fatalf("err %v; want ErrUnknownKID", err)
	}

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		r.Run(runCtx)
		close(done)
	}()
	waitFor(t, "background refreshes", func() bool { return r.Fetches() >= 3 })
	if _, err := r.Key(ctx, "k2"); err != nil {
		t.Fatalf("k2 after background refresh: %v", err)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("Run did not return after cancel")
	}
	n := r.Fetches()
	// Fetches counts attempts; one cancelled by the stop may not have
	// reached the server.
	if h := s.jwksHits.Load(); h > n || h < n-1 {
		t.Fatalf("server saw %d, Fetches %d", h, n)
	}
	// Run has returned: nothing fetches any more (a known key is served
	// from memory).
	if _, err := r.Key(ctx, "k1"); err != nil || r.Fetches() != n {
		t.Fatalf("err %v fetches %d/%d", err, r.Fetches(), n)
	}
}

func TestRemoteRunReportsErrors(t *testing.T) {
	s := newIssuerServer(t, jwksOf(t, "k1"), false)
	r, log := newRemote(s, newFakeClock(), time.Hour)
	r.RefreshEvery = 20 * time.Millisecond
	r.JWKSURI = s.srv.URL + "/keys"
	s.set(func(s *issuerServer) { s.status = http.StatusBadGateway })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		r.Run(ctx)
		close(done)
	}()
	waitFor(t, "a reported error", func() bool { return len(log.all()) > 0 })
	cancel()
	<-done
	if !log.contains("502") {
		t.Fatalf("errors %v", log.all())
	}
}

// TestRemoteRediscoversAfterBare404: a 404 with an empty body (what many
// servers send) is a status to act on, rediscovering the moved keys,
// not an empty document.
func TestRemoteRediscoversAfterBare404(t *testing.T) {
	var mu sync.Mutex
	keysPath, jwks := "/keys", jwksOf(t, "k1")
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		kp, body := keysPath, jwks
		mu.Unlock()
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": srv.URL, "jwks_uri": srv.URL + kp})
		case kp:
			_, _ = w.Write(body)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	clk := newFakeClock()
	l := &errLog{}
	r := &keyset.Remote{Issuer: srv.URL, MinRefresh: time.Minute, Client: srv.Client(), Now: clk.Now, OnError: l.add}
	ctx := context.Background()
	if _, err := r.Key(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	keysPath, jwks = "/keys2", jwksOf(t, "k1", "k2")
	mu.Unlock()
	clk.Advance(time.Minute)
	if _, err := r.Key(ctx, "k2"); !errors.Is(err, keyset.ErrUnknownKID) {
		t.Fatalf("err %v; want ErrUnknownKID (404 at the old location)", err)
	}
	if !l.contains("status 404") {
		t.Fatalf("errors %v; want the 404 reported as such", l.all())
	}
	clk.Advance(time.Minute)
	if k, err := r.Key(ctx, "k2"); err != nil || k.KID != "k2" {
		t.Fatalf("after rediscovery: %v %v", k, err)
	}
}

// A background refresh that began before the issuer published k2 and
// answers after an on-demand fetch found k2 must not put the older set
// back: k2 would be refused again until the next refetch is allowed.
func TestRemoteSlowOlderFetchDoesNotWin(t *testing.T) {
	s := newIssuerServer(t, jwksOf(t, "k1"), false)
	clk := newFakeClock()
	r, _ := newRemote(s, clk, time.Hour)
	r.RefreshEvery = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := r.Key(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	old := make(chan struct{})
	s.set(func(s *issuerServer) { s.gate = old })
	go r.Run(ctx)
	waitFor(t, "the background fetch to reach the issuer", func() bool { return s.entered.Load() == 1 })
	// The issuer publishes k2 and answers new requests at once; the
	// clock moves past MinRefresh so a lookup of k2 may fetch.
	s.set(func(s *issuerServer) { s.gate, s.jwks = nil, jwksOf(t, "k1", "k2") })
	clk.Advance(2 * time.Hour)
	if _, err := r.Key(ctx, "k2"); err != nil {
		t.Fatalf("k2 after its on-demand fetch: %v", err)
	}
	served := s.served.Load()
	close(old) // the older fetch now answers with the set without k2
	waitFor(t, "the older answer", func() bool { return s.served.Load() > served })
	for deadline := time.Now().Add(150 * time.Millisecond); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if _, err := r.Key(ctx, "k2"); err != nil {
			t.Fatalf("k2 after the older fetch answered: %v", err)
		}
	}
}
