package authserver

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/apiaccess/caddy-apiaccess/internal/duration"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/keys"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/embedded"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
)

func newTestIssuer(t *testing.T, baseURL string, c *testkit.Clock) (*Issuer, store.Store) {
	t.Helper()
	iss, err := New(Options{
		BaseURL: baseURL,
		Servers: map[string]*ServerConfig{"default": {
			SigningAlg: "ES256",
			Scopes:     []*Scope{{Name: "read", Default: true}},
			Policies: []*policy.Policy{{Name: "p", Clients: []string{"*"}, Rules: []*policy.Rule{
				{Name: "r", GrantTypes: []string{GrantClientCredentials}, Scopes: []string{"*"}, AccessTokenLifetime: duration.Duration(2 * time.Hour)},
			}}},
		}},
		Clients: []*clientauth.Client{{ID: "svc", Secret: "svc-secret"}},
		Now:     c.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return iss, startIssuer(t, iss, nil)
}

// startIssuer starts iss on st, or on a fresh embedded store when st is
// nil (closed when the test ends), with the package's test sealing
// secret, and returns the store.
func startIssuer(t *testing.T, iss *Issuer, st store.Store) store.Store {
	t.Helper()
	if st == nil {
		db, err := embedded.Open(filepath.Join(t.TempDir(), "db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		st = db
	}
	sealer, err := keys.NewSealer([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	if err := iss.Start(context.Background(), st, sealer); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(iss.StopEvents) // before the store closes
	return st
}

func publishedKids(t *testing.T, iss *Issuer, path string) []string {
	t.Helper()
	rec := httptest.NewRecorder()
	if !iss.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil)) || rec.Code != 200 {
		t.Fatalf("GET %s: %d", path, rec.Code)
	}
	set, err := jwk.Parse(rec.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := range set.Len() {
		k, _ := set.Key(i)
		out = append(out, k.KeyID())
	}
	return out
}

// TestScheduledRotation drives the maintenance loop's step with a fake
// clock: nothing happens before the interval, a rotation after it, and
// a retired key leaves the JWKS once tokens it signed have expired
// (longest rule lifetime, 2h here, plus 5 minutes).
func TestScheduledRotation(t *testing.T) {
	c := testkit.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	iss, _ := newTestIssuer(t, "https://id.example.com", c)
	const every = 24 * time.Hour
	first := publishedKids(t, iss, "/oauth2/default/v1/keys")

	c.Advance(every - time.Minute)
	iss.maintainOnce(context.Background(), every)
	if got := publishedKids(t, iss, "/oauth2/default/v1/keys"); len(got) != 2 || got[0] != first[0] {
		t.Fatalf("rotated early: %v -> %v", first, got)
	}
	c.Advance(time.Minute)
	iss.maintainOnce(context.Background(), every)
	got := publishedKids(t, iss, "/oauth2/default/v1/keys")
	if len(got) != 3 || got[0] != first[1] || got[2] != first[0] {
		t.Fatalf("after the interval: %v, want [old next, new next, old active]", got)
	}
	c.Advance(2*time.Hour + 4*time.Minute)
	iss.maintainOnce(context.Background(), every)
	if got := publishedKids(t, iss, "/oauth2/default/v1/keys"); len(got) != 3 {
		t.Fatalf("expired key retired before its tokens expired: %v", got)
	}
	c.Advance(2 * time.Minute)
	iss.maintainOnce(context.Background(), every)
	if got := publishedKids(t, iss, "/oauth2/default/v1/keys"); len(got) != 2 || got[0] != first[1] {
		t.Fatalf("expired key still published after retention: %v", got)
	}
	// The org server rotated on the same schedule, independently.
	if org := publishedKids(t, iss, "/oauth2/v1/keys"); len(org) != 2 {
		t.Fatalf("org keys: %v", org)
	}
}

// TestMaintenancePurgesMarks: expired revocations are purged, live ones
// stay.
func TestMaintenancePurgesMarks(t *testing.T) {
	c := testkit.NewClock(time.Now())
	iss, st := newTestIssuer(t, "https://id.example.com", c)
	ctx := context.Background()
	_, _ = st.Mark(ctx, store.NSRevoked, "gone", time.Now().Add(-time.Second))
	_, _ = st.Mark(ctx, store.NSRevoked, "live", time.Now().Add(time.Hour))
	c.Set(time.Now())
	iss.maintainOnce(ctx, 90*24*time.Hour)
	if fresh, _ := st.Mark(ctx, store.NSRevoked, "live", time.Now().Add(time.Hour)); fresh {
		t.Fatal("a live revocation was purged")
	}
	if ok, _ := st.Marked(ctx, store.NSRevoked, "gone"); ok {
		t.Fatal("an expired mark is still reported")
	}
}

// TestRoutesUnderBasePath: a base URL with a path puts every endpoint
// under it, RFC 8414's well-known form inserts the segment before it,
// and issuers in metadata match.
func TestRoutesUnderBasePath(t *testing.T) {
	iss, _ := newTestIssuer(t, "https://example.com/idp", testkit.NewClock(time.Now()))
	cases := map[string]string{
		"/idp/.well-known/openid-configuration":                      "https://example.com/idp",
		"/idp/.well-known/oauth-authorization-server":                "https://example.com/idp",
		"/.well-known/oauth-authorization-server/idp":                "https://example.com/idp",
		"/idp/oauth2/default/.well-known/openid-configuration":       "https://example.com/idp/oauth2/default",
		"/idp/oauth2/default/.well-known/oauth-authorization-server": "https://example.com/idp/oauth2/default",
		"/.well-known/oauth-authorization-server/idp/oauth2/default": "https://example.com/idp/oauth2/default",
	}
	for path, want := range cases {
		rec := httptest.NewRecorder()
		if !iss.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil)) || rec.Code != 200 {
			t.Fatalf("%s: %d", path, rec.Code)
		}
		var meta map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &meta)
		if meta["issuer"] != want || !strings.HasPrefix(meta["token_endpoint"].(string), want) {
			t.Errorf("%s: issuer %v token_endpoint %v", path, meta["issuer"], meta["token_endpoint"])
		}
		if ju, _ := meta["jwks_uri"].(string); !strings.HasPrefix(ju, want) || !strings.HasSuffix(ju, "/v1/keys") {
			t.Errorf("%s: jwks_uri %q", path, ju)
		}
	}
	for _, path := range []string{"/oauth2/default/v1/keys", "/elsewhere", "/idp/other"} {
		if iss.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, path, nil)) {
			t.Errorf("%s was handled; it is outside the issuer", path)
		}
	}
	rec := httptest.NewRecorder()
	iss.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/oauth-authorization-server/idp/oauth2/nope", nil))
	if rec.Code != 404 {
		t.Errorf("unknown server via RFC 8414 path: %d", rec.Code)
	}
	// A token issued under the base path carries the right issuer.
	req := httptest.NewRequest(http.MethodPost, "/idp/oauth2/default/v1/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("svc", "svc-secret")
	rec = httptest.NewRecorder()
	iss.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("token under base path: %d %s", rec.Code, rec.Body)
	}
}

// TestNotStarted: before Start, endpoints answer 503 with Retry-After
// instead of failing on missing keys.
func TestNotStarted(t *testing.T) {
	iss, err := New(Options{BaseURL: "https://id.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	iss.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/oauth2/v1/keys", nil))
	if rec.Code != 503 || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("before start: %d %v", rec.Code, rec.Header())
	}
}

// TestConfigErrors: mistakes fail New with a message naming them.
func TestConfigErrors(t *testing.T) {
	okPolicy := func(scopes ...string) []*policy.Policy {
		return []*policy.Policy{{Name: "p", Clients: []string{"svc"}, Rules: []*policy.Rule{{Name: "r", GrantTypes: []string{GrantClientCredentials}, Scopes: scopes}}}}
	}
	clients := []*clientauth.Client{{ID: "svc", Secret: "x"}}
	cases := []struct {
		name string
		o    Options
		want string
	}{
		{"no base url", Options{}, "base_url"},
		{"relative base url", Options{BaseURL: "/idp"}, "base_url"},
		{"reserved id", Options{BaseURL: "https://x", Servers: map[string]*ServerConfig{"v1": {}}}, "reserved"},
		{"bad id", Options{BaseURL: "https://x", Servers: map[string]*ServerConfig{"a/b": {}}}, "letters"},
		{"bad alg", Options{BaseURL: "https://x", Servers: map[string]*ServerConfig{"a": {SigningAlg: "HS256"}}}, "unsupported signing algorithm"},
		{"duplicate scope", Options{BaseURL: "https://x", Servers: map[string]*ServerConfig{"a": {Scopes: []*Scope{{Name: "s"}, {Name: "s"}}}}}, "defined twice"},
		{"bad scope name", Options{BaseURL: "https://x", Servers: map[string]*ServerConfig{"a": {Scopes: []*Scope{{Name: "a b"}}}}}, "invalid name"},
		{"bad consent", Options{BaseURL: "https://x", Servers: map[string]*ServerConfig{"a": {Scopes: []*Scope{{Name: "s", Consent: "maybe"}}}}}, "consent"},
		{"unknown scope in rule", Options{BaseURL: "https://x", Clients: clients, Servers: map[string]*ServerConfig{"a": {Policies: okPolicy("nope")}}}, "unknown scope"},
		{"unknown client in policy", Options{BaseURL: "https://x", Servers: map[string]*ServerConfig{"a": {Scopes: []*Scope{{Name: "s"}}, Policies: okPolicy("s")}}}, "unknown client"},
		{"duplicate client", Options{BaseURL: "https://x", Clients: []*clientauth.Client{{ID: "c", Secret: "x"}, {ID: "c", Secret: "y"}}}, "defined twice"},
		{"valid minimal config", Options{BaseURL: "https://x", OrgSigningAlg: "RS256"}, ""},
	}
	for _, c := range cases {
		_, err := New(c.o)
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: unexpected error %v", c.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to mention %q", c.name, err, c.want)
		}
	}
}

// TestTokensVerifyForEveryAlgorithm: tokens signed through the issuer's
// compact-serialization path verify with jwx against the served JWKS,
// for every supported algorithm, and carry the expected header.
func TestTokensVerifyForEveryAlgorithm(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			iss, err := New(Options{
				BaseURL: "https://id.example.com",
				Servers: map[string]*ServerConfig{"a": {SigningAlg: alg, Scopes: []*Scope{{Name: "s", Default: true}},
					Policies: []*policy.Policy{{Name: "p", Clients: []string{"*"}, Rules: []*policy.Rule{{Name: "r", GrantTypes: []string{GrantClientCredentials}, Scopes: []string{"*"}}}}}}},
				Clients: []*clientauth.Client{{ID: "svc", Secret: "x"}},
			})
			if err != nil {
				t.Fatal(err)
			}
			startIssuer(t, iss, nil)
			req := httptest.NewRequest(http.MethodPost, "/oauth2/a/v1/token", strings.NewReader("grant_type=client_credentials"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth("svc", "x")
			rec := httptest.NewRecorder()
			iss.ServeHTTP(rec, req)
			var resp map[string]any
			_ = json.Unmarshal(rec.Body.Bytes(), &resp)
			tok, _ := resp["access_token"].(string)
			rec = httptest.NewRecorder()
			iss.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/oauth2/a/v1/keys", nil))
			set, err := jwk.Parse(rec.Body.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := jws.Verify([]byte(tok), jws.WithKeySet(set)); err != nil {
				t.Fatalf("token does not verify: %v", err)
			}
			msg, _ := jws.Parse([]byte(tok))
			h := msg.Signatures()[0].ProtectedHeaders()
			if string(h.Algorithm()) != alg || h.Type() != "at+jwt" || h.KeyID() != iss.servers["a"].keys.Current().Active.KeyID() {
				t.Fatalf("header: %v %v %v", h.Algorithm(), h.Type(), h.KeyID())
			}
		})
	}
}
