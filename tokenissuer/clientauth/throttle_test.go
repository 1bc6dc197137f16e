package clientauth

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/hashgate"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
)

// countBcrypt makes a count the bcrypt checks it runs (the real ones).
func countBcrypt(a *Authenticator) *atomic.Int32 {
	var n atomic.Int32
	real := a.compare
	a.compare = func(hash, secret []byte) error {
		n.Add(1)
		return real(hash, secret)
	}
	return &n
}

func wantThrottled(t *testing.T, e *oauth.Error, window time.Duration) {
	t.Helper()
	if e == nil || e.Status != http.StatusTooManyRequests || e.Code != "temporarily_unavailable" {
		t.Fatalf("got %v, want 429 temporarily_unavailable", e)
	}
	if e.RetryAfter < time.Second || e.RetryAfter > window {
		t.Fatalf("Retry-After %s, want between 1s and %s", e.RetryAfter, window)
	}
}

// TestBcryptFloodFromManyAddresses: finding 2. Wrong secrets for a
// bcrypt client, sent at once from 100 addresses, ran 100 bcrypt checks
// with no authentication at all. Now at most DefaultClientFailures run
// per window, the rest are refused with 429 and Retry-After without a
// hash, and the client's real, verified secret keeps working from
// elsewhere without a bcrypt.
func TestBcryptFloodFromManyAddresses(t *testing.T) {
	f := newSecretFixture(t)
	// The real client authenticates once before the attack.
	c, id, e := f.auth(from(basicAuth(post(), "hashed", "h4sh-secret"), "203.0.113.7"), nil)
	wantOK(t, c, id, e, "hashed")
	calls := countBcrypt(f.a)

	// 100 guesses from 10 addresses: the client's budget, then one
	// check per address that has not failed yet, then nothing.
	const attempts, addresses = 100, 10
	errs := make([]*oauth.Error, attempts)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range attempts {
		wg.Go(func() {
			<-start
			r := from(basicAuth(post(), "hashed", fmt.Sprintf("guess-%d", i)), fmt.Sprintf("198.51.100.%d", i%addresses))
			_, _, errs[i] = f.auth(r, nil)
		})
	}
	close(start)
	wg.Wait()
	var wrong, throttled int
	for _, e := range errs {
		switch {
		case e != nil && e.Code == "invalid_client" && e.Status == http.StatusUnauthorized:
			wrong++
		case e != nil && e.Status == http.StatusTooManyRequests:
			wantThrottled(t, e, DefaultThrottleWindow)
			throttled++
		default:
			t.Fatalf("unexpected answer to a wrong secret: %v", e)
		}
	}
	if n := calls.Load(); n > DefaultClientFailures+addresses || wrong != int(n) || throttled != attempts-int(n) {
		t.Fatalf("%d bcrypt checks, %d wrong, %d throttled; want at most %d checks and the rest throttled", n, wrong, throttled, DefaultClientFailures+addresses)
	}

	// The real client, from its own address, with its verified secret.
	before := calls.Load()
	for range 5 {
		c, id, e = f.auth(from(basicAuth(post(), "hashed", "h4sh-secret"), "203.0.113.7"), nil)
		wantOK(t, c, id, e, "hashed")
	}
	if calls.Load() != before {
		t.Fatal("a verified secret cost a bcrypt check")
	}
	// Another wrong secret from an attacking address is refused without
	// a check ...
	_, _, e = f.auth(from(basicAuth(post(), "hashed", "one-more"), "198.51.100.3"), nil)
	wantThrottled(t, e, DefaultThrottleWindow)
	// ... and other clients are not affected.
	_, _, e = f.auth(from(post(), "192.0.2.98"), map[string]string{"client_id": "hashed2", "client_secret": "other-secret"})
	if e != nil {
		t.Fatalf("another client is throttled too: %v", e)
	}
	if calls.Load() != before+1 {
		t.Fatalf("bcrypt checks: %d, want %d", calls.Load(), before+1)
	}
	// After the window, checks run again.
	f.clk.Advance(DefaultThrottleWindow)
	_, _, e = f.auth(from(basicAuth(post(), "hashed", "after-the-window"), "192.0.2.97"), nil)
	wantErr(t, nil, e, "invalid_client", http.StatusUnauthorized)
	if calls.Load() != before+2 {
		t.Fatal("no bcrypt check after the window")
	}
}

// TestConcurrentRightSecretNotThrottled: a client starting with a
// burst of requests (its secret not yet verified) shares one check per
// secret instead of spending its failure budget or being refused.
func TestConcurrentRightSecretNotThrottled(t *testing.T) {
	f := newSecretFixture(t)
	calls := countBcrypt(f.a)
	var wg sync.WaitGroup
	var bad atomic.Int32
	for range 50 {
		wg.Go(func() {
			if c, _, e := f.auth(basicAuth(post(), "hashed", "h4sh-secret"), nil); e != nil || c.ID != "hashed" {
				bad.Add(1)
			}
		})
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d of 50 right secrets refused", bad.Load())
	}
	if n := calls.Load(); n < 1 || n >= 50 {
		t.Fatalf("%d bcrypt checks for 50 requests with one secret", n)
	}
}

// TestAddressThrottle: one address guessing (here a plaintext secret,
// whose check is cheap) is refused after DefaultAddressFailures, even
// with the right secret; other addresses are not; IPv6 addresses count
// by /64.
func TestAddressThrottle(t *testing.T) {
	f := newSecretFixture(t)
	for i := range DefaultAddressFailures {
		_, _, e := f.auth(from(post(), "192.0.2.10"), map[string]string{"client_id": "poster", "client_secret": fmt.Sprint("guess", i)})
		wantErr(t, nil, e, "invalid_client", http.StatusUnauthorized)
	}
	// The right secrets from there are refused, by header or body.
	_, _, e := f.auth(from(basicAuth(post(), "svc one", "a b:c%"), "192.0.2.10"), nil)
	wantThrottled(t, e, DefaultThrottleWindow)
	_, _, e = f.auth(from(post(), "192.0.2.10"), map[string]string{"client_id": "poster", "client_secret": "p0st-secret"})
	wantThrottled(t, e, DefaultThrottleWindow)
	// An assertion from there is refused too.
	_, _, e = f.auth(from(post(), "192.0.2.10"), assertionForm("a.b.c"))
	wantThrottled(t, e, DefaultThrottleWindow)
	// A public client has nothing to guess and is not throttled.
	f.a.clients["public"] = &Client{ID: "public", AuthMethod: None}
	c, id, e := f.auth(from(post(), "192.0.2.10"), map[string]string{"client_id": "public"})
	wantOK(t, c, id, e, "public")

	c, id, e = f.auth(from(post(), "192.0.2.11"), map[string]string{"client_id": "poster", "client_secret": "p0st-secret"})
	wantOK(t, c, id, e, "poster")

	// Unknown clients count as failures too (scanners), by /64 for IPv6.
	for i := range DefaultAddressFailures {
		_, _, e := f.auth(from(basicAuth(post(), fmt.Sprint("nobody", i), "x"), fmt.Sprintf("2001:db8:1:2::%x", i+1)), nil)
		wantErr(t, nil, e, "invalid_client", http.StatusUnauthorized)
	}
	_, _, e = f.auth(from(basicAuth(post(), "svc one", "a b:c%"), "2001:db8:1:2:ffff::1"), nil)
	wantThrottled(t, e, DefaultThrottleWindow)
	c, id, e = f.auth(from(basicAuth(post(), "svc one", "a b:c%"), "2001:db8:1:3::1"), nil)
	wantOK(t, c, id, e, "svc one")

	f.clk.Advance(DefaultThrottleWindow)
	c, id, e = f.auth(from(post(), "192.0.2.10"), map[string]string{"client_id": "poster", "client_secret": "p0st-secret"})
	wantOK(t, c, id, e, "poster")
}

// TestAddressTableBounded: failures from ever new addresses cannot grow
// the table past its cap, and an address throttled before stays so.
func TestAddressTableBounded(t *testing.T) {
	f := newSecretFixture(t)
	const capacity = 64
	f.a.addrs = newFailures(DefaultAddressFailures, DefaultThrottleWindow, capacity, f.clk.Now)
	for range DefaultAddressFailures {
		_, _, e := f.auth(from(basicAuth(post(), "svc one", "wrong"), "192.0.2.1"), nil)
		wantErr(t, nil, e, "invalid_client", http.StatusUnauthorized)
	}
	for i := range 10 * capacity {
		_, _, e := f.auth(from(basicAuth(post(), fmt.Sprint("random-", i), "x"), fmt.Sprintf("10.%d.%d.%d", byte(i>>16), byte(i>>8), byte(i))), nil)
		wantErr(t, nil, e, "invalid_client", http.StatusUnauthorized)
	}
	if n := f.a.addrs.len(); n > capacity {
		t.Fatalf("%d addresses tracked, cap %d", n, capacity)
	}
	_, _, e := f.auth(from(basicAuth(post(), "svc one", "a b:c%"), "192.0.2.1"), nil)
	wantThrottled(t, e, DefaultThrottleWindow)
	// Expired entries make room again.
	f.clk.Advance(DefaultThrottleWindow)
	for range DefaultAddressFailures {
		f.auth(from(basicAuth(post(), "svc one", "wrong"), "192.0.2.200"), nil)
	}
	_, _, e = f.auth(from(basicAuth(post(), "svc one", "a b:c%"), "192.0.2.200"), nil)
	wantThrottled(t, e, DefaultThrottleWindow)
	if n := f.a.addrs.len(); n > capacity {
		t.Fatalf("%d addresses tracked, cap %d", n, capacity)
	}
}

// TestBusyGate: when every hash slot is taken and the wait runs out, a
// secret that needs a bcrypt is answered 503 temporarily_unavailable
// with Retry-After, without counting as a failure; a verified secret
// does not need the gate.
func TestBusyGate(t *testing.T) {
	gate := hashgate.New(hashgate.Config{Concurrency: 1, Queue: 1, Wait: 20 * time.Millisecond})
	f := newSecretFixture(t)
	f.a = New(prepared(t), openStore(t), f.clk.Now, WithHashGate(gate))
	for _, c := range []*Client{f.basic, f.post, f.hash, f.hash2} {
		f.a.clients[c.ID] = c
	}
	c, id, e := f.auth(basicAuth(post(), "hashed", "h4sh-secret"), nil)
	wantOK(t, c, id, e, "hashed")
	calls := countBcrypt(f.a)

	running, release := make(chan struct{}), make(chan struct{})
	held := make(chan error)
	go func() {
		held <- gate.Run(context.Background(), 0, func() { close(running); <-release })
	}()
	<-running
	for range DefaultClientFailures + 1 {
		_, _, e = f.auth(post(), map[string]string{"client_id": "hashed2", "client_secret": "other-secret"})
		if e == nil || e.Status != http.StatusServiceUnavailable || e.Code != "temporarily_unavailable" || e.RetryAfter != gate.RetryAfter() {
			t.Fatalf("got %+v, want 503 temporarily_unavailable with Retry-After %s", e, gate.RetryAfter())
		}
	}
	c, id, e = f.auth(basicAuth(post(), "hashed", "h4sh-secret"), nil)
	wantOK(t, c, id, e, "hashed")
	close(release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	// Busy answers were not failures: the client is not throttled.
	c, id, e = f.auth(post(), map[string]string{"client_id": "hashed2", "client_secret": "other-secret"})
	wantOK(t, c, id, e, "hashed2")
	if calls.Load() != 1 {
		t.Fatalf("%d bcrypt checks, want 1 (the last)", calls.Load())
	}
}

// A spent client budget does not lock the client out where its secret
// was never verified (another node, a reload): an address without a
// failure still gets its check, so the right secret works; attacking
// addresses get none.
func TestSpentBudgetDoesNotLockOutTheClient(t *testing.T) {
	f := newSecretFixture(t)
	calls := countBcrypt(f.a)
	for i := range DefaultClientFailures {
		_, _, e := f.auth(from(basicAuth(post(), "hashed", fmt.Sprintf("guess-%d", i)), fmt.Sprintf("198.51.100.%d", i)), nil)
		wantErr(t, nil, e, "invalid_client", http.StatusUnauthorized)
	}
	c, id, e := f.auth(from(basicAuth(post(), "hashed", "h4sh-secret"), "203.0.113.7"), nil)
	wantOK(t, c, id, e, "hashed")
	before := calls.Load()
	_, _, e = f.auth(from(basicAuth(post(), "hashed", "again"), "198.51.100.1"), nil)
	wantThrottled(t, e, DefaultThrottleWindow)
	if calls.Load() != before {
		t.Fatal("an attacking address got a bcrypt check past the client's budget")
	}
}

// okta-auth-js revokes and introspects for a public client with
// `Authorization: Basic base64(client_id)`: no colon, no secret. That
// identifies a client with auth method none (as Okta accepts it) and
// nothing else: a confidential client named so is refused, and failed
// signOuts must not pile up as failures of the browser's address.
func TestPublicClientBasicWithoutSecret(t *testing.T) {
	f := newSecretFixture(t)
	f.a.clients["spa"] = &Client{ID: "spa", AuthMethod: None}
	bare := func(value string) *http.Request {
		r := from(post(), "192.0.2.50")
		r.Header.Set("Authorization", "Basic "+value)
		return r
	}
	for range DefaultAddressFailures + 5 {
		c, id, e := f.auth(bare(base64.StdEncoding.EncodeToString([]byte("spa"))), map[string]string{"token": "x"})
		wantOK(t, c, id, e, "spa")
	}
	c, id, e := f.auth(basicAuth(post(), "spa", ""), map[string]string{"token": "x"})
	wantOK(t, c, id, e, "spa")
	// The body may name the same client, not another.
	_, _, e = f.auth(bare(base64.StdEncoding.EncodeToString([]byte("spa"))), map[string]string{"client_id": "other"})
	wantErr(t, nil, e, "invalid_client", http.StatusUnauthorized)
	// A confidential client must prove its secret.
	for _, id := range []string{"hashed", "svc+one"} {
		_, _, e = f.auth(bare(base64.StdEncoding.EncodeToString([]byte(id))), nil)
		wantErr(t, nil, e, "invalid_client", http.StatusUnauthorized)
	}
	_, _, e = f.auth(basicAuth(post(), "hashed", ""), nil)
	wantErr(t, nil, e, "invalid_client", http.StatusUnauthorized)
	// Not base64: malformed.
	_, _, e = f.auth(bare("%%%"), nil)
	wantErr(t, nil, e, "invalid_client", http.StatusUnauthorized)
}
