package clientauth

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
)

// spaces reads as an endless run of blanks without allocating.
type spaces struct{}

func (spaces) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

// hugeKeyServer answers every request with a key set of size bytes
// (blanks after `{"keys":[`), streamed lazily; with length set it
// announces the size in Content-Length. sent counts the bytes the
// issuer accepted.
type hugeKeyServer struct {
	srv  *httptest.Server
	sent atomic.Int64
}

func newHugeKeyServer(t *testing.T, size int64, length bool) *hugeKeyServer {
	h := &hugeKeyServer{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if length {
			w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		}
		n, _ := io.WriteString(w, `{"keys":[`)
		m, _ := io.CopyN(w, spaces{}, size-int64(n))
		h.sent.Add(int64(n) + m)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// silentKeyServer accepts connections and never answers.
type silentKeyServer struct {
	ln       net.Listener
	accepted atomic.Int32
	mu       sync.Mutex
	conns    []net.Conn
}

func newSilentKeyServer(t *testing.T) *silentKeyServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &silentKeyServer{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.conns {
			c.Close()
		}
	})
	return s
}

func (s *silentKeyServer) url(path string) string { return "http://" + s.ln.Addr().String() + path }

func assertWith(t *testing.T, a *Authenticator, ctx context.Context, id string, key jwk.Key, kid string) (*Client, string, *oauth.Error) {
	return a.Authenticate(ctx, post(), assertionForm(sign(t, claimsFor(id, time.Now()), jwa.ES256, key, kid)), aud)
}

// TestHugeKeySetIsCutOff: finding 4. A jwks_uri answering 4 GiB grew
// the issuer by the whole answer. The fetch now stops after MaxJWKSBytes
// and fails at once, with or without a Content-Length, and the heap of
// this process stays small.
func TestHugeKeySetIsCutOff(t *testing.T) {
	const size = 4 << 30
	for _, length := range []bool{false, true} {
		t.Run(fmt.Sprint("content-length=", length), func(t *testing.T) {
			huge := newHugeKeyServer(t, size, length)
			key := ecKey(t, "k1")
			a := remoteAuth(t, &Client{ID: "huge", AuthMethod: PrivateKeyJWT, JWKSURI: huge.srv.URL + "/jwks"})

			var peak atomic.Uint64
			stop := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				var ms runtime.MemStats
				for {
					runtime.ReadMemStats(&ms)
					if ms.HeapInuse > peak.Load() {
						peak.Store(ms.HeapInuse)
					}
					select {
					case <-stop:
						return
					case <-time.After(5 * time.Millisecond):
					}
				}
			}()
			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			c, _, e := assertWith(t, a, ctx, "huge", key, "k1")
			took := time.Since(start)
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			close(stop)
			<-sampled
			wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
			if took > 5*time.Second {
				t.Fatalf("the fetch took %s", took)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
				t.Fatalf("%d MiB allocated while fetching", alloc>>20)
			}
			if grew := int64(peak.Load()) - int64(before.HeapInuse); grew > 64<<20 {
				t.Fatalf("heap in use grew by %d MiB", grew>>20)
			}
			t.Logf("fetch failed in %s; heap peak %d MiB (before %d MiB); %d MiB allocated", took, peak.Load()>>20, before.HeapInuse>>20, (after.TotalAlloc-before.TotalAlloc)>>20)
		})
	}
}

// TestSilentKeyServerDoesNotStarveOthers: finding 4. Key servers that
// accept and never answer took the shared fetch workers, and every other
// client's fetch waited for good. Now each fetch is on its own, with
// timeouts: another client's assertion succeeds while they hang, and
// the hanging fetches fail.
func TestSilentKeyServerDoesNotStarveOthers(t *testing.T) {
	silent := newSilentKeyServer(t)
	good := ecKey(t, "k1")
	js := newJWKSServer(t, publicJWKS(t, good))
	clients := []*Client{{ID: "good", AuthMethod: PrivateKeyJWT, JWKSURI: js.srv.URL + "/jwks"}}
	const slow = 6
	for i := range slow {
		clients = append(clients, &Client{ID: fmt.Sprint("slow", i), AuthMethod: PrivateKeyJWT, JWKSURI: silent.url(fmt.Sprintf("/jwks/%d", i))})
	}
	a := remoteAuth(t, clients...)

	slowErrs := make(chan *oauth.Error, slow)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for i := range slow {
		go func() {
			_, _, e := assertWith(t, a, ctx, fmt.Sprint("slow", i), ecKey(t, "s"), "s")
			slowErrs <- e
		}()
	}
	// Wait until every slow fetch is connected and hanging.
	for deadline := time.Now().Add(5 * time.Second); silent.accepted.Load() < slow; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d slow fetches connected", silent.accepted.Load(), slow)
		}
		time.Sleep(time.Millisecond)
	}
	gctx, gcancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer gcancel()
	start := time.Now()
	c, id, e := assertWith(t, a, gctx, "good", good, "k1")
	wantOK(t, c, id, e, "good")
	if took := time.Since(start); took > time.Second {
		t.Fatalf("the good client waited %s behind the slow key servers", took)
	}
	for range slow {
		select {
		case e := <-slowErrs:
			wantErr(t, nil, e, "invalid_client", http.StatusUnauthorized)
		case <-ctx.Done():
			t.Fatal("a fetch from the silent key server never ended")
		}
	}
}

// TestKeySetRedirects: finding 4. A jwks_uri redirecting elsewhere was
// followed (up to a loopback URL). A redirect to another origin is
// refused and its target never asked; one within the origin is followed.
func TestKeySetRedirects(t *testing.T) {
	key := ecKey(t, "k1")
	target := newJWKSServer(t, publicJWKS(t, key))
	var redirects atomic.Int32
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		redirects.Add(1)
		switch r.URL.Path {
		case "/elsewhere":
			http.Redirect(w, r, target.srv.URL+"/jwks", http.StatusFound)
		case "/moved":
			http.Redirect(w, r, "/jwks", http.StatusMovedPermanently)
		case "/jwks":
			fmt.Fprint(w, publicJWKS(t, key))
		}
	}))
	t.Cleanup(origin.Close)
	a := remoteAuth(t,
		&Client{ID: "elsewhere", AuthMethod: PrivateKeyJWT, JWKSURI: origin.URL + "/elsewhere"},
		&Client{ID: "moved", AuthMethod: PrivateKeyJWT, JWKSURI: origin.URL + "/moved"},
	)
	c, _, e := assertWith(t, a, t.Context(), "elsewhere", key, "k1")
	wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
	if n := target.requests.Load(); n != 0 {
		t.Fatalf("the redirect target was asked %d times", n)
	}
	if redirects.Load() != 1 {
		t.Fatalf("%d requests to the origin, want 1", redirects.Load())
	}
	c, id, e := assertWith(t, a, t.Context(), "moved", key, "k1")
	wantOK(t, c, id, e, "moved")
}

// remoteAuth is an Authenticator for jwks_uri clients with short fetch
// timeouts, so hanging key servers fail the tests quickly.
func remoteAuth(t *testing.T, cs ...*Client) *Authenticator {
	a := New(prepared(t, cs...), openStore(t), nil)
	a.remote.connect, a.remote.header, a.remote.total = 500*time.Millisecond, 500*time.Millisecond, time.Second
	return a
}

// TestKeySetInternalAddresses: finding 4. A jwks_uri whose name
// resolves to an internal address (loopback here, as a planted DNS
// record or rebinding would make it) is refused before connecting; one
// that names the internal address or localhost itself is the
// operator's choice and allowed.
func TestKeySetInternalAddresses(t *testing.T) {
	key := ecKey(t, "k1")
	js := newJWKSServer(t, publicJWKS(t, key))
	port := js.srv.Listener.Addr().(*net.TCPAddr).Port
	a := remoteAuth(t,
		&Client{ID: "rebound", AuthMethod: PrivateKeyJWT, JWKSURI: fmt.Sprintf("https://keys.example.test:%d/jwks", port)},
		&Client{ID: "mixed", AuthMethod: PrivateKeyJWT, JWKSURI: fmt.Sprintf("https://mixed.example.test:%d/jwks", port)},
		&Client{ID: "nowhere", AuthMethod: PrivateKeyJWT, JWKSURI: fmt.Sprintf("https://nowhere.example.test:%d/jwks", port)},
		&Client{ID: "literal", AuthMethod: PrivateKeyJWT, JWKSURI: fmt.Sprintf("http://127.0.0.1:%d/jwks", port)},
		&Client{ID: "localhost", AuthMethod: PrivateKeyJWT, JWKSURI: fmt.Sprintf("http://localhost:%d/jwks", port)},
	)
	var lookups atomic.Int32
	a.remote.lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
		lookups.Add(1)
		switch host {
		case "keys.example.test":
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		case "mixed.example.test":
			return []netip.Addr{netip.MustParseAddr("169.254.169.254"), netip.MustParseAddr("::ffff:127.0.0.1")}, nil
		case "localhost":
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		}
		return nil, nil
	}
	for id, why := range map[string]string{"rebound": "resolves to 127.0.0.1, an internal address", "mixed": "resolves to ::ffff:127.0.0.1, an internal address", "nowhere": "has no address"} {
		c, _, e := assertWith(t, a, t.Context(), id, key, "k1")
		wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
		if !strings.Contains(e.Reason, why) {
			t.Errorf("%s: reason %q, want it to say %q", id, e.Reason, why)
		}
	}
	if n := js.requests.Load(); n != 0 {
		t.Fatalf("the key server was reached %d times through names of internal addresses", n)
	}
	if lookups.Load() != 3 {
		t.Fatalf("%d lookups, want 3", lookups.Load())
	}
	for _, id := range []string{"literal", "localhost"} {
		c, got, e := assertWith(t, a, t.Context(), id, key, "k1")
		wantOK(t, c, got, e, id)
	}
	if n := js.requests.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
}

// TestDialPolicy: which addresses a jwks_uri naming host may reach.
func TestDialPolicy(t *testing.T) {
	public := []string{"93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:93.184.216.34"}
	inward := []string{"127.0.0.1", "127.9.9.9", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1",
		"169.254.169.254", "fe80::1", "fc00::1", "fd12::1", "100.64.0.1", "0.0.0.0", "0.1.2.3", "::",
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a00:1", "64:ff9b:1::1", "224.0.0.1", "ff02::1",
		"255.255.255.255", "240.0.0.1", "192.0.0.8", "198.18.0.1"}
	for host, allowed := range map[string][]string{
		"keys.example.com": nil,
		"10.1.2.3":         {"10.1.2.3", "::ffff:10.1.2.3"},
		"::1":              {"::1"},
		"localhost":        {"127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"},
		"LocalHost":        {"127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"},
	} {
		p := dialPolicyFor(host)
		for _, s := range public {
			if !p.permits(netip.MustParseAddr(s)) {
				t.Errorf("%s: public %s refused", host, s)
			}
		}
		for _, s := range inward {
			want := slices.Contains(allowed, s)
			if got := p.permits(netip.MustParseAddr(s)); got != want {
				t.Errorf("%s: permits(%s) = %v, want %v", host, s, got, want)
			}
		}
	}
	if internal(netip.Addr{}) != true {
		t.Error("the zero address counts as public")
	}
}

// TestStaleKeySetRefreshedInBackground: a set older than JWKSMaxAge is
// refetched while the old one keeps serving; a failed refetch keeps the
// old set.
func TestStaleKeySetRefreshedInBackground(t *testing.T) {
	key, key2 := ecKey(t, "k1"), ecKey(t, "k2")
	js := newJWKSServer(t, publicJWKS(t, key))
	clk := newClock()
	a := remoteAuth(t, &Client{ID: "remote", AuthMethod: PrivateKeyJWT, JWKSURI: js.srv.URL + "/jwks"})
	a.remote.now = clk.Now
	auth := func(k jwk.Key, kid string) (*Client, string, *oauth.Error) {
		return a.Authenticate(t.Context(), post(), assertionForm(sign(t, claimsFor("remote", time.Now()), jwa.ES256, k, kid)), aud)
	}
	c, id, e := auth(key, "k1")
	wantOK(t, c, id, e, "remote")
	js.set(publicJWKS(t, key2))
	clk.Advance(JWKSMaxAge - time.Second)
	c, id, e = auth(key, "k1")
	wantOK(t, c, id, e, "remote")
	if n := js.requests.Load(); n != 1 {
		t.Fatalf("%d fetches before the set aged, want 1", n)
	}
	clk.Advance(time.Second)
	// The old set answers this request; the refetch runs meanwhile.
	c, id, e = auth(key, "k1")
	wantOK(t, c, id, e, "remote")
	for deadline := time.Now().Add(5 * time.Second); ; {
		if s, _ := a.remote.get(t.Context(), js.srv.URL+"/jwks", ""); s != nil {
			if _, ok := s.LookupKeyID("k2"); ok {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the stale set was not refreshed")
		}
		time.Sleep(time.Millisecond)
	}
	c, id, e = auth(key2, "k2")
	wantOK(t, c, id, e, "remote")
	// The key server goes away: the set in hand keeps serving.
	js.srv.Close()
	clk.Advance(JWKSMaxAge)
	for range 3 {
		c, id, e = auth(key2, "k2")
		wantOK(t, c, id, e, "remote")
	}
}

// TestFirstFetchShared: requests arriving while a client's first fetch
// runs wait for it (or their own deadline) and use its result: one
// fetch for all of them.
func TestFirstFetchShared(t *testing.T) {
	key := ecKey(t, "k1")
	body := publicJWKS(t, key)
	arrived, release := make(chan struct{}, 10), make(chan struct{})
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		arrived <- struct{}{}
		<-release
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	a := remoteAuth(t, &Client{ID: "remote", AuthMethod: PrivateKeyJWT, JWKSURI: srv.URL + "/jwks"})
	a.remote.total = 30 * time.Second
	a.remote.header = 30 * time.Second
	results := make(chan *oauth.Error, 10)
	go func() {
		_, _, e := assertWith(t, a, t.Context(), "remote", key, "k1")
		results <- e
	}()
	<-arrived
	// A request whose caller has gone waits no more.
	gone, cancel := context.WithCancel(t.Context())
	cancel()
	c, _, e := assertWith(t, a, gone, "remote", key, "k1")
	wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
	forms := make([]map[string]string, 8)
	for i := range forms {
		forms[i] = assertionForm(sign(t, claimsFor("remote", time.Now()), jwa.ES256, key, "k1"))
	}
	for _, form := range forms {
		go func() {
			_, _, e := a.Authenticate(t.Context(), post(), form, aud)
			results <- e
		}()
	}
	close(release)
	for range 1 + len(forms) {
		if e := <-results; e != nil {
			t.Fatalf("a request sharing the first fetch failed: %v", e)
		}
	}
	if n := requests.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
}

// TestKeySetSizeAndRedirectLimits: exactly MaxJWKSBytes is read whole
// (with or without Content-Length), one byte more is refused; three
// redirects within the origin are followed, a fourth is not.
func TestKeySetSizeAndRedirectLimits(t *testing.T) {
	key := ecKey(t, "k1")
	set := publicJWKS(t, key)
	padded := func(n int) string { return strings.Repeat(" ", n-len(set)) + set } // leading blanks: a cut body does not parse
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n int
		var hops int
		if _, err := fmt.Sscanf(r.URL.Path, "/size/%d", &n); err == nil {
			if r.URL.Query().Has("length") {
				w.Header().Set("Content-Length", strconv.Itoa(n))
			}
			io.WriteString(w, padded(n))
			return
		}
		if _, err := fmt.Sscanf(r.URL.Path, "/hops/%d", &hops); err == nil {
			if hops == 0 {
				io.WriteString(w, set)
				return
			}
			http.Redirect(w, r, fmt.Sprintf("/hops/%d", hops-1), http.StatusFound)
		}
	}))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{fmt.Sprintf("/size/%d", MaxJWKSBytes), true},
		{fmt.Sprintf("/size/%d?length", MaxJWKSBytes), true},
		{fmt.Sprintf("/size/%d", MaxJWKSBytes+1), false},
		{fmt.Sprintf("/size/%d?length", MaxJWKSBytes+1), false},
		{"/hops/3", true},
		{"/hops/4", false},
	} {
		a := remoteAuth(t, &Client{ID: "c", AuthMethod: PrivateKeyJWT, JWKSURI: srv.URL + tc.path})
		c, id, e := assertWith(t, a, t.Context(), "c", key, "k1")
		if tc.ok {
			wantOK(t, c, id, e, "c")
		} else {
			wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
		}
	}
}
