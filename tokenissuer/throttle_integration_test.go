package tokenissuer_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit/browser"
)

// forwarded sends every request as a proxy would: from the socket's
// loopback address, naming the client in X-Forwarded-For.
type forwarded struct{ client string }

func (f forwarded) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", f.client)
	return http.DefaultTransport.RoundTrip(r)
}

// browserAt is a browser whose requests come through a trusted proxy
// on behalf of client.
func browserAt(t *testing.T, client string) *browser.Browser {
	b := browser.New(t, base)
	b.Client.Transport = forwarded{client}
	return b
}

// Finding 7: the per-address throttle keyed on the socket's peer, so
// behind a reverse proxy every client shared one address: 50 bad
// sign-ins with random logins from one client locked alice out from
// another. Through real Caddy with `trusted_proxies` (the proxy is
// 127.0.0.1; the clients 127.0.0.2 and 127.0.0.3, named in
// X-Forwarded-For): client A's 50 failures throttle A, and alice signs
// in from B.
func TestAddressThrottleBehindProxy(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("alice-password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	const redirect = "http://127.0.0.1:9/cb"
	startIssuer(t, issuerSetup{
		users:   []map[string]any{{"id": "00u-alice", "login": "alice@example.com", "password_hash": string(hash)}},
		clients: []map[string]any{{"client_id": webID, "client_secret": webSec, "grant_types": []string{"authorization_code"}, "redirect_uris": []string{redirect}}},
		server: map[string]any{"scopes": []map[string]any{{"name": "orders:read", "default": true}},
			"policies": []map[string]any{{"name": "All", "clients": []string{"*"}, "rules": []map[string]any{{
				"name": "Code", "grant_types": []string{"authorization_code"}, "scopes": []string{"*"}}}}}},
		site: map[string]any{"trusted_proxies": map[string]any{"source": "static", "ranges": []string{"127.0.0.1/32"}}},
	})
	authorize := base + "/oauth2/default/v1/authorize?" + url.Values{"client_id": {webID}, "response_type": {"code"},
		"redirect_uri": {redirect}, "scope": {"orders:read"}, "state": {"s"}}.Encode()

	// A opens 50 sign-in pages, then posts them together, each with a
	// random login.
	const failures = 50
	attackers := make([]*browser.Browser, failures)
	pages := make([]string, failures)
	for j := range attackers {
		attackers[j] = browserAt(t, "127.0.0.2")
		_, pages[j] = attackers[j].Get(authorize)
	}
	statuses := make([]int, failures)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for j := range failures {
		wg.Go(func() {
			<-start
			f := browser.Fields(pages[j])
			f.Set("username", fmt.Sprintf("random-%d@example.com", j))
			f.Set("password", "guess")
			res, err := attackers[j].Client.PostForm(base+"/oauth2/v1/signin", f)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			statuses[j] = res.StatusCode
		})
	}
	close(start)
	wg.Wait()
	for j, s := range statuses {
		if s != http.StatusUnauthorized {
			t.Fatalf("failure %d from A: %d, want 401", j, s)
		}
	}

	// A is throttled now, even with alice's password.
	a := browserAt(t, "127.0.0.2")
	_, page := a.Get(authorize)
	if res, body := a.SignIn(page, "alice@example.com", "alice-password"); res.StatusCode != http.StatusTooManyRequests || strings.Contains(res.Header.Get("Location"), "code=") {
		t.Fatalf("A after %d failures: %d %q %.200s, want 429", failures, res.StatusCode, res.Header.Get("Location"), body)
	}
	// Alice, from B, is not.
	b := browserAt(t, "127.0.0.3")
	_, page = b.Get(authorize)
	res, body := b.SignIn(page, "alice@example.com", "alice-password")
	if q := browser.Callback(t, res, redirect); q.Get("code") == "" {
		t.Fatalf("alice from B: %d %.200s", res.StatusCode, body)
	}
}
