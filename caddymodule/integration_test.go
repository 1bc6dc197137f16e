package caddymodule_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
	"github.com/apiaccess/caddy-apiaccess/internal/testkit/caddytester"

	_ "github.com/apiaccess/caddy-apiaccess/caddymodule"
)

// The gateway's tests against issuers it does not ship (httptest
// servers); with this project's issuer they are in e2e/.

// The in-process Caddy's ports, free ones chosen once per test process.
var (
	gwPort = testkit.ProcessPortString("gateway")
	gw     = "http://localhost:" + gwPort
)

func TestMain(m *testing.M) { testkit.Main(m) }

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func call(t *testing.T, path, tok string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, gw+path, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// TestUnknownKidFlood: random kids in forged tokens cost a bounded
// number of JWKS fetches, counted at the issuer's JWKS server; the
// server going down later does not break tokens with known keys.
func TestUnknownKidFlood(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := jwk.FromRaw(priv.Public())
	_ = pub.Set(jwk.KeyIDKey, "real")
	_ = pub.Set(jwk.AlgorithmKey, jwa.ES256)
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	jwks := mustJSON(t, set)
	var fetches atomic.Int64
	var down atomic.Bool
	var iss string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q}`, iss, iss+"/keys")
		case "/keys":
			fetches.Add(1)
			fmt.Fprint(w, jwks)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	iss = srv.URL
	sign := func(kid string) string {
		tok := jwt.New()
		_ = tok.Set(jwt.IssuerKey, iss)
		_ = tok.Set(jwt.AudienceKey, "api://flood")
		_ = tok.Set(jwt.ExpirationKey, time.Now().Add(time.Hour))
		_ = tok.Set(jwt.SubjectKey, "svc")
		k, _ := jwk.FromRaw(priv)
		_ = k.Set(jwk.KeyIDKey, kid)
		b, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, k))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	cfg := map[string]any{
		"admin": map[string]any{"listen": caddytester.AdminAddr()},
		"apps": map[string]any{"http": map[string]any{"servers": map[string]any{"srv0": map[string]any{
			"listen": []string{":" + gwPort},
			"routes": []map[string]any{{"handle": []map[string]any{
				{"handler": "require_token", "issuers": []map[string]any{{"url": iss, "audience": []string{"api://flood"}}}},
				{"handler": "static_response", "body": "ok"},
			}}},
		}}}},
	}
	caddytester.NewTester(t).InitServer(mustJSON(t, cfg), "json")
	if fetches.Load() != 0 {
		t.Fatal("keys fetched at load; they must be fetched on first use")
	}
	if res, body := call(t, "/x", sign("real")); res.StatusCode != 200 {
		t.Fatalf("valid token: %d %s", res.StatusCode, body)
	}
	var wg sync.WaitGroup
	var accepted atomic.Int64
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				req, _ := http.NewRequest(http.MethodGet, gw+"/x", nil)
				req.Header.Set("Authorization", "Bearer "+sign(fmt.Sprintf("forged-%d-%d", w, i)))
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					continue
				}
				if res.StatusCode == 200 {
					accepted.Add(1)
				}
				res.Body.Close()
			}
		}()
	}
	wg.Wait()
	if accepted.Load() != 0 {
		t.Fatalf("%d tokens with unknown kids were accepted", accepted.Load())
	}
	// One fetch on first use, at most one more for the whole flood
	// (min_refresh defaults to 15 s).
	if n := fetches.Load(); n > 2 {
		t.Fatalf("320 unknown kids caused %d JWKS fetches", n)
	}
	// A config reload keeps the fetched keys: no new fetch.
	before := fetches.Load()
	cfg["apps"].(map[string]any)["http"].(map[string]any)["servers"].(map[string]any)["srv0"].(map[string]any)["routes"].([]map[string]any)[0]["handle"].([]map[string]any)[1]["body"] = "reloaded"
	caddytester.NewTester(t).InitServer(mustJSON(t, cfg), "json")
	if res, body := call(t, "/x", sign("real")); res.StatusCode != 200 || body != "reloaded" {
		t.Fatalf("after reload: %d %q", res.StatusCode, body)
	}
	if fetches.Load() != before {
		t.Fatalf("a config reload refetched the JWKS (%d -> %d fetches)", before, fetches.Load())
	}
	down.Store(true)
	if res, _ := call(t, "/x", sign("real")); res.StatusCode != 200 {
		t.Fatalf("JWKS server down: a token with a known kid got %d", res.StatusCode)
	}
}

// TestForwardClaimConfigErrors: a claim may not be forwarded into a
// header that carries the token or frames the request, nor two claims
// into one header.
func TestForwardClaimConfigErrors(t *testing.T) {
	for _, c := range []struct {
		fwd  []map[string]any
		want string
	}{
		{[]map[string]any{{"claim": "sub", "header": "Authorization"}}, "cannot be set from a claim"},
		{[]map[string]any{{"claim": "sub", "header": "cookie"}}, "cannot be set from a claim"},
		{[]map[string]any{{"claim": "sub", "header": "X-User"}, {"claim": "cid", "header": "x_user"}}, "already set by another forward_claim"},
	} {
		cfg := map[string]any{
			"admin": map[string]any{"listen": caddytester.AdminAddr()},
			"apps": map[string]any{"http": map[string]any{"servers": map[string]any{"srv0": map[string]any{
				"listen": []string{":" + gwPort},
				"routes": []map[string]any{{"handle": []map[string]any{
					{"handler": "require_token", "issuers": []map[string]any{{"url": "https://id.example.com/oauth2/default"}}, "audience": []string{"api://default"}, "forward_claims": c.fwd},
				}}},
			}}}},
		}
		caddytester.AssertLoadError(t, mustJSON(t, cfg), "json", c.want)
	}
}

// TestIntrospectionNegativeCacheDefault: through Caddy, a route in
// introspection mode keeps a refusal by default (10s), so repeats of a
// bad token cost the issuer one call; `negative_cache` -1 (off) asks
// every time; a 5xx is never kept.
func TestIntrospectionNegativeCacheDefault(t *testing.T) {
	var calls atomic.Int64
	var failing atomic.Bool
	intro := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if failing.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"active":false}`)
	}))
	defer intro.Close()
	route := func(path string, neg any) map[string]any {
		in := map[string]any{"endpoint": intro.URL, "client_id": "gw", "client_secret": "s"}
		if neg != nil {
			in["negative_cache"] = neg
		}
		return map[string]any{"match": []map[string]any{{"path": []string{path}}}, "handle": []map[string]any{
			{"handler": "require_token", "issuers": []map[string]any{{"url": "https://id.example.com/oauth2/default"}}, "audience": []string{"api://default"}, "introspection": in},
			{"handler": "static_response", "body": "ok"},
		}}
	}
	cfg := map[string]any{
		"admin": map[string]any{"listen": caddytester.AdminAddr()},
		"apps": map[string]any{"http": map[string]any{"servers": map[string]any{"srv0": map[string]any{
			"listen": []string{":" + gwPort},
			"routes": []map[string]any{route("/default", nil), route("/off", "-1s")},
		}}}},
	}
	caddytester.NewTester(t).InitServer(mustJSON(t, cfg), "json")
	try := func(path, tok string, n int, want int) {
		t.Helper()
		for range n {
			if res, _ := call(t, path, tok); res.StatusCode != want {
				t.Fatalf("%s: %d, want %d", path, res.StatusCode, want)
			}
		}
	}
	try("/default", "dead-token", 5, 401)
	if n := calls.Load(); n != 1 {
		t.Fatalf("5 repeats of a bad token cost %d introspection calls by default; want 1", n)
	}
	try("/off", "dead-token", 5, 401)
	if n := calls.Load(); n != 6 {
		t.Fatalf("negative_cache off: %d calls in all; want 1+5", n)
	}
	failing.Store(true)
	try("/default", "other-token", 3, 503)
	if n := calls.Load(); n != 9 {
		t.Fatalf("a 502 from the issuer was kept: %d calls in all; want 6+3", n)
	}
}
