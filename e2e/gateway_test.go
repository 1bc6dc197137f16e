package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2/clientcredentials"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
	"github.com/apiaccess/caddy-apiaccess/internal/testkit/caddytester"

	_ "github.com/apiaccess/caddy-apiaccess/caddymodule"
	_ "github.com/apiaccess/caddy-apiaccess/tokenissuer"
)

const (
	clientID  = "orders-job"
	clientSec = "orders-job-secret-0123456789"
)

// backend is the API behind the gateway: it answers with the request
// headers it received, so tests see exactly what the upstream sees.
func backend(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(r.Header)
	}))
	t.Cleanup(s.Close)
	return s, &hits
}

// issuerApp is a token_issuer app with two custom servers.
func issuerApp(base, dbPath string) map[string]any {
	rule := func(scopes ...string) []map[string]any {
		return []map[string]any{{"name": "All", "clients": []string{"*"}, "rules": []map[string]any{
			{"name": "Any", "grant_types": []string{"client_credentials"}, "scopes": scopes, "access_token_lifetime": "5m"}}}}
	}
	return map[string]any{
		"base_url":              base,
		"key_encryption_secret": "gateway-test-seal-secret-0123456789",
		"storage":               map[string]any{"module": "embedded", "path": dbPath},
		"clients":               []map[string]any{{"client_id": clientID, "client_secret": clientSec}},
		"authorization_servers": map[string]any{
			"default": map[string]any{
				"scopes":   []map[string]any{{"name": "orders:read", "default": true}, {"name": "orders:write"}, {"name": "ops"}},
				"claims":   []map[string]any{{"name": "department", "value": `"billing"`}, {"name": "groups", "value": `["finance", "staff, senior"]`}},
				"policies": rule("*"),
			},
			"other": map[string]any{
				"scopes":   []map[string]any{{"name": "orders:read", "default": true}},
				"policies": rule("*"),
			},
		},
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func token(t *testing.T, base, as string, scopes ...string) string {
	t.Helper()
	cc := clientcredentials.Config{ClientID: clientID, ClientSecret: clientSec, TokenURL: base + "/oauth2/" + as + "/v1/token", Scopes: scopes}
	tok, err := cc.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
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

// TestGatewayWithIssuerInProcess: issuer and gateway in one Caddy; the
// gateway reads keys in process. Covers scopes, claims, CEL, header
// stripping and forwarding, placeholders and handle_errors.
func TestGatewayWithIssuerInProcess(t *testing.T) {
	be, hits := backend(t)
	issuer := gw + "/oauth2/default"
	gated := []map[string]any{
		{"handler": "require_token", "issuers": []map[string]any{{"url": issuer}}, "audience": []string{"api://default"},
			"scopes": []string{"orders:read"}, "any_scope": []string{"orders:write", "ops"},
			"claims":     []map[string]any{{"name": "department", "value": "billing"}, {"name": "groups", "regexp": "fin.*"}},
			"expression": `request.method == "GET" && "finance" in claims.groups`,
			"forward_claims": []map[string]any{
				{"claim": "sub", "header": "X-User-Id"}, {"claim": "scp", "header": "X-Scopes"}, {"claim": "groups", "header": "X-Groups"},
				// The token carries no tenant: only stripping keeps a
				// client's X-Tenant from the upstream.
				{"claim": "tenant", "header": "X-Tenant"},
			}},
		{"handler": "headers", "request": map[string]any{"set": map[string]any{
			"X-Placeholder-User": []string{"{http.auth.user.id}"}, "X-Placeholder-Dept": []string{"{http.auth.token.claims.department}"}}}},
		{"handler": "reverse_proxy", "upstreams": []map[string]any{{"dial": strings.TrimPrefix(be.URL, "http://")}}},
	}
	routes := []map[string]any{
		{"match": []map[string]any{{"path": []string{"/orders/*"}}}, "handle": gated},
		{"match": []map[string]any{{"path": []string{"/both/*"}}}, "handle": []map[string]any{
			{"handler": "require_token", "issuers": []map[string]any{{"url": issuer}}, "audience": []string{"api://default"},
				"scopes": []string{"orders:read", "orders:write"}},
			{"handler": "static_response", "body": "ok"},
		}},
		{"handle": []map[string]any{{"handler": "token_issuer"}}},
	}
	errorRoutes := map[string]any{"routes": []map[string]any{{"handle": []map[string]any{
		{"handler": "static_response", "body": "denied: {http.auth.token.error}"}}}}}
	cfg := map[string]any{
		"admin": map[string]any{"listen": caddytester.AdminAddr()},
		"apps": map[string]any{
			"token_issuer": issuerApp(gw, filepath.Join(t.TempDir(), "db")),
			"http": map[string]any{"servers": map[string]any{
				"srv0": map[string]any{"listen": []string{":" + gwPort}, "routes": routes, "errors": errorRoutes},
				// Caddy drops client headers spelled with `_` or `.`
				// unless allowed; a server that allows them (for a CGI
				// backend, say) lets them reach require_token, which must
				// strip them as aliases of the forwarded X-User-Id.
				"srv1": map[string]any{"listen": []string{":" + gw2Port}, "routes": routes, "errors": errorRoutes,
					"expected_underscore_headers": []string{"X_User_Id"}, "expected_dot_headers": []string{"X.User.Id"}},
			}},
		},
	}
	caddytester.NewTester(t).InitServer(mustJSON(t, cfg), "json")

	good := token(t, gw, "default", "orders:read", "orders:write")
	res, body := call(t, "/orders/1", good, "X-User-Id", "admin", "x-groups", "root", "X-Tenant", "evil", "x-tenant", "evil2")
	if res.StatusCode != 200 {
		t.Fatalf("valid token: %d %s", res.StatusCode, body)
	}
	var seen map[string][]string
	if err := json.Unmarshal([]byte(body), &seen); err != nil {
		t.Fatal(err)
	}
	if got := seen["X-User-Id"]; len(got) != 1 || got[0] != clientID {
		t.Errorf("upstream X-User-Id = %v, want only %q (client copies must be stripped)", got, clientID)
	}
	if got, ok := seen["X-Tenant"]; ok {
		t.Errorf("upstream X-Tenant = %v: a client header named like a forward_claim whose claim the token lacks must be stripped", got)
	}

	// The other spellings, through the server that lets them in.
	req, _ := http.NewRequest(http.MethodGet, gw2+"/orders/1", nil)
	req.Header.Set("Authorization", "Bearer "+good)
	req.Header["X_User_Id"] = []string{"admin"}
	req.Header["X.User.Id"] = []string{"admin"}
	req.Header["x_tenant"] = []string{"evil"}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	seen = nil
	if err := json.Unmarshal(b, &seen); err != nil || res.StatusCode != 200 {
		t.Fatalf("aliases: %d %s %v", res.StatusCode, b, err)
	}
	if got := seen["X-User-Id"]; len(got) != 1 || got[0] != clientID {
		t.Errorf("upstream X-User-Id = %v, want only %q", got, clientID)
	}
	for name, v := range seen {
		n := strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(name))
		if (n == "x-user-id" && name != "X-User-Id") || n == "x-tenant" {
			t.Errorf("a client-sent alias %s: %v reached the upstream", name, v)
		}
	}
	if got := seen["X-Groups"]; len(got) != 1 || got[0] != `["finance","staff, senior"]` {
		t.Errorf("X-Groups = %v, want the array as JSON", got)
	}
	if got := seen["X-Scopes"]; len(got) != 1 || got[0] != `["orders:read","orders:write"]` {
		t.Errorf("X-Scopes = %v", got)
	}
	if seen["X-Placeholder-User"][0] != clientID || seen["X-Placeholder-Dept"][0] != "billing" {
		t.Errorf("placeholders: user %v dept %v", seen["X-Placeholder-User"], seen["X-Placeholder-Dept"])
	}
	if _, ok := seen["Authorization"]; !ok {
		t.Error("the Authorization header should still reach the upstream (it may call on with it)")
	}

	before := hits.Load()
	cases := []struct {
		name, tok, reason string
		status            int
		challenge         string
	}{
		{"no token", "", "no_token", 401, `Bearer realm="localhost:` + gwPort + `"`},
		{"garbage", "abc.def.ghi", "malformed", 401, `error="invalid_token"`},
		{"missing required scope", token(t, gw, "default", "orders:write"), "insufficient_scope", 403, `error="insufficient_scope", scope="orders:read orders:write ops"`},
		{"missing any_scope", token(t, gw, "default", "orders:read"), "insufficient_scope", 403, `error="insufficient_scope"`},
		{"token of another custom server", token(t, gw, "other"), "wrong_issuer", 401, `error="invalid_token"`},
	}
	for _, c := range cases {
		res, body := call(t, "/orders/1", c.tok)
		if res.StatusCode != c.status || !strings.Contains(res.Header.Get("WWW-Authenticate"), c.challenge) {
			t.Errorf("%s: %d %q, want %d and a challenge containing %q", c.name, res.StatusCode, res.Header.Get("WWW-Authenticate"), c.status, c.challenge)
		}
		if body != "denied: "+c.reason {
			t.Errorf("%s: handle_errors saw %q, want reason %q", c.name, body, c.reason)
		}
		if strings.Contains(body, "orders:") || strings.Contains(res.Header.Get("WWW-Authenticate"), clientID) {
			t.Errorf("%s: the answer leaks token content", c.name)
		}
	}
	// `scopes a b`: a token with only one of them is refused.
	for _, held := range []string{"orders:read", "orders:write"} {
		res, body := call(t, "/both/1", token(t, gw, "default", held))
		if res.StatusCode != 403 || !strings.Contains(res.Header.Get("WWW-Authenticate"), `error="insufficient_scope", scope="orders:read orders:write"`) || body != "denied: insufficient_scope" {
			t.Errorf("scopes orders:read orders:write, token with %s only: %d %q %q", held, res.StatusCode, res.Header.Get("WWW-Authenticate"), body)
		}
	}
	if res, body := call(t, "/both/1", good); res.StatusCode != 200 {
		t.Errorf("scopes orders:read orders:write, token with both: %d %s", res.StatusCode, body)
	}
	// The expression sees the request: POST fails it.
	req, _ = http.NewRequest(http.MethodPost, gw+"/orders/1", nil)
	req.Header.Set("Authorization", "Bearer "+good)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 403 {
		t.Fatalf("POST against a GET-only expression: %v %v", res.StatusCode, err)
	}
	if hits.Load() != before {
		t.Fatalf("%d rejected requests reached the upstream", hits.Load()-before)
	}

	// Metrics count the decisions by reason.
	mres, err := http.Get(adminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(mres.Body)
	mres.Body.Close()
	for _, want := range []string{`caddy_require_token_decisions_total{outcome="accepted",reason=""}`, `reason="wrong_issuer"`, `reason="expression_false"`} {
		if !strings.Contains(string(mb), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestRotationUnderLoad: the issuer rotates its keys three times while
// clients keep calling the API with old and new tokens; no request
// fails, and tokens signed with each new key are accepted at once.
func TestRotationUnderLoad(t *testing.T) {
	be, _ := backend(t)
	cfg := map[string]any{
		"admin": map[string]any{"listen": caddytester.AdminAddr()},
		"apps": map[string]any{
			"token_issuer": issuerApp(gw, filepath.Join(t.TempDir(), "db")),
			"http": map[string]any{"servers": map[string]any{"srv0": map[string]any{
				"listen": []string{":" + gwPort},
				"routes": []map[string]any{
					{"match": []map[string]any{{"path": []string{"/orders/*"}}}, "handle": []map[string]any{
						{"handler": "require_token", "issuers": []map[string]any{{"url": gw + "/oauth2/default", "audience": []string{"api://default"}}}},
						{"handler": "reverse_proxy", "upstreams": []map[string]any{{"dial": strings.TrimPrefix(be.URL, "http://")}}},
					}},
					{"handle": []map[string]any{{"handler": "token_issuer"}}},
				},
			}}},
		},
	}
	caddytester.NewTester(t).InitServer(mustJSON(t, cfg), "json")

	var (
		mu     sync.Mutex
		tokens = []string{token(t, gw, "default")}
		failed atomic.Int64
		done   atomic.Int64
		stop   = make(chan struct{})
		wg     sync.WaitGroup
	)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}, Timeout: 10 * time.Second}
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				tok := tokens[(i+w)%len(tokens)]
				mu.Unlock()
				req, _ := http.NewRequest(http.MethodGet, gw+"/orders/1", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				res, err := client.Do(req)
				if err != nil || res.StatusCode != 200 {
					failed.Add(1)
				}
				if res != nil {
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
				done.Add(1)
			}
		}()
	}
	for range 3 {
		time.Sleep(200 * time.Millisecond)
		res, err := http.Post(adminURL+"/token_issuer/default/keys/rotate", "application/json", nil)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("rotate: %v %v", err, res.StatusCode)
		}
		res.Body.Close()
		tok := token(t, gw, "default") // signed by the new key
		mu.Lock()
		tokens = append(tokens, tok)
		mu.Unlock()
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if done.Load() < 50 {
		t.Fatalf("only %d requests ran", done.Load())
	}
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed during rotation", failed.Load(), done.Load())
	}
}

// remoteIssuer is a second Caddy process serving only the issuer.
type remoteIssuer struct {
	t       *testing.T
	bin     string
	cfgPath string
	dataDir string
	proc    *testkit.Proc
}

// The remote issuer's ports, kept across its restarts.
var (
	remotePort  = testkit.ProcessPortString("remote-issuer")
	remoteBase  = "http://localhost:" + remotePort
	remoteAdmin = "localhost:" + testkit.ProcessPortString("remote-issuer-admin")
)

func newRemoteIssuer(t *testing.T) *remoteIssuer {
	dir := t.TempDir()
	r := &remoteIssuer{t: t, bin: testkit.CaddyBinary(t), cfgPath: filepath.Join(dir, "caddy.json"), dataDir: dir}
	cfg := map[string]any{
		"admin": map[string]any{"listen": remoteAdmin},
		"apps": map[string]any{
			"token_issuer": issuerApp(remoteBase, filepath.Join(dir, "issuer.db")),
			"http": map[string]any{"servers": map[string]any{"issuer": map[string]any{
				"listen": []string{":" + remotePort},
				"routes": []map[string]any{{"handle": []map[string]any{{"handler": "token_issuer"}}}},
			}}},
		},
	}
	if err := os.WriteFile(r.cfgPath, []byte(mustJSON(t, cfg)), 0o600); err != nil {
		t.Fatal(err)
	}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *remoteIssuer) start() {
	r.t.Helper()
	cmd := exec.Command(r.bin, "run", "--config", r.cfgPath)
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+r.dataDir, "XDG_CONFIG_HOME="+r.dataDir)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	r.proc = testkit.Start(r.t, cmd)
	testkit.WaitFor(r.t, "the remote issuer", 20*time.Second, func() bool {
		res, err := http.Get(remoteBase + "/oauth2/default/.well-known/openid-configuration")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
}

func (r *remoteIssuer) stop() {
	if r.proc == nil {
		return
	}
	r.proc.Stop()
	r.proc = nil
	testkit.WaitFor(r.t, "the remote issuer to stop", 20*time.Second, func() bool {
		_, err := http.Get(remoteBase + "/oauth2/v1/keys")
		return err != nil
	})
}

// TestGatewayWithRemoteIssuer: the issuer runs in another Caddy; the
// gateway discovers its JWKS over HTTP, keeps validating with cached
// keys while the issuer is down, and follows key rotations.
func TestGatewayWithRemoteIssuer(t *testing.T) {
	remote := newRemoteIssuer(t)
	be, _ := backend(t)
	cfg := map[string]any{
		"admin": map[string]any{"listen": caddytester.AdminAddr()},
		"apps": map[string]any{"http": map[string]any{"servers": map[string]any{"srv0": map[string]any{
			"listen": []string{":" + gwPort},
			"routes": []map[string]any{{"handle": []map[string]any{
				{"handler": "require_token", "issuers": []map[string]any{{"url": remoteBase + "/oauth2/default", "audience": []string{"api://default"}, "min_refresh": "1s"}},
					"scopes": []string{"orders:read"}},
				{"handler": "reverse_proxy", "upstreams": []map[string]any{{"dial": strings.TrimPrefix(be.URL, "http://")}}},
			}}},
		}}}},
	}
	caddytester.NewTester(t).InitServer(mustJSON(t, cfg), "json")

	t1 := token(t, remoteBase, "default")
	if res, body := call(t, "/orders", t1); res.StatusCode != 200 {
		t.Fatalf("remote token: %d %s", res.StatusCode, body)
	}
	t2 := token(t, remoteBase, "default") // not yet seen by the gateway
	remote.stop()
	for _, tok := range []string{t1, t2} {
		if res, _ := call(t, "/orders", tok); res.StatusCode != 200 {
			t.Fatalf("issuer down: a token signed with a known key got %d", res.StatusCode)
		}
	}
	remote.start() // same store: same keys
	if res, _ := call(t, "/orders", token(t, remoteBase, "default")); res.StatusCode != 200 {
		t.Fatalf("after the issuer came back: %d", res.StatusCode)
	}

	rotate := func() {
		res, err := http.Post("http://"+remoteAdmin+"/token_issuer/default/keys/rotate", "application/json", nil)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("rotate: %v", err)
		}
		res.Body.Close()
	}
	// The first rotation activates the NEXT key the gateway already has.
	rotate()
	if res, _ := call(t, "/orders", token(t, remoteBase, "default")); res.StatusCode != 200 {
		t.Fatalf("token of the promoted NEXT key: %d", res.StatusCode)
	}
	// Two rotations: a key the gateway has never seen; it refetches
	// (after min_refresh) and accepts it.
	rotate()
	rotate()
	tok := token(t, remoteBase, "default")
	time.Sleep(1100 * time.Millisecond) // min_refresh since the last fetch
	if res, _ := call(t, "/orders", tok); res.StatusCode != 200 {
		t.Fatalf("token of a newly published key: %d", res.StatusCode)
	}
}

// TestTokenSources: where a token may come from, and how ambiguous
// requests are refused (RFC 6750 section 2).
func TestTokenSources(t *testing.T) {
	route := func(path string, extra map[string]any) map[string]any {
		h := map[string]any{"handler": "require_token", "issuers": []map[string]any{{"url": gw + "/oauth2/default"}}, "audience": []string{"api://default"}}
		for k, v := range extra {
			h[k] = v
		}
		return map[string]any{"match": []map[string]any{{"path": []string{path}}}, "handle": []map[string]any{h, {"handler": "static_response", "body": "ok"}}}
	}
	cfg := map[string]any{
		"admin": map[string]any{"listen": caddytester.AdminAddr()},
		"apps": map[string]any{
			"token_issuer": issuerApp(gw, filepath.Join(t.TempDir(), "db")),
			"http": map[string]any{"servers": map[string]any{"srv0": map[string]any{
				"listen": []string{":" + gwPort},
				"routes": []map[string]any{
					route("/header", nil),
					route("/flexible", map[string]any{"token_cookie": "at", "token_query": "access_token"}),
					{"handle": []map[string]any{{"handler": "token_issuer"}}},
				},
			}}},
		},
	}
	caddytester.NewTester(t).InitServer(mustJSON(t, cfg), "json")
	tok := token(t, gw, "default")
	cases := []struct {
		name   string
		path   string
		mod    func(*http.Request)
		status int
		errStr string
	}{
		{"Bearer header", "/header", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }, 200, ""},
		// RFC 7235 section 2.1: the scheme is case-insensitive.
		{"lower-case bearer", "/header", func(r *http.Request) { r.Header.Set("Authorization", "bearer "+tok) }, 200, ""},
		{"two Authorization headers", "/header", func(r *http.Request) {
			r.Header.Add("Authorization", "Bearer "+tok)
			r.Header.Add("Authorization", "Bearer "+tok)
		}, 400, `error="invalid_request"`},
		{"Basic instead of Bearer", "/header", func(r *http.Request) { r.SetBasicAuth("a", "b") }, 401, `Bearer realm=`},
		{"two spaces", "/header", func(r *http.Request) { r.Header.Set("Authorization", "Bearer  "+tok) }, 401, `error="invalid_token"`},
		{"token in query not allowed", "/header?access_token=" + tok, nil, 401, `Bearer realm=`},
		{"token in cookie not allowed", "/header", func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "at", Value: tok}) }, 401, `Bearer realm=`},
		{"query when allowed", "/flexible?access_token=" + tok, nil, 200, ""},
		{"cookie when allowed", "/flexible", func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "at", Value: tok}) }, 200, ""},
		{"header and query", "/flexible?access_token=" + tok, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }, 400, `error="invalid_request"`},
		{"query twice", "/flexible?access_token=" + tok + "&access_token=" + tok, nil, 400, `error="invalid_request"`},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(http.MethodGet, gw+c.path, nil)
		if c.mod != nil {
			c.mod(req)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != c.status || !strings.Contains(res.Header.Get("WWW-Authenticate"), c.errStr) {
			t.Errorf("%s: %d %q, want %d with %q", c.name, res.StatusCode, res.Header.Get("WWW-Authenticate"), c.status, c.errStr)
		}
	}
}

// TestOrgIssuerRefused: the org authorization server's access tokens
// are only for its own userinfo; naming it as a gateway issuer is a
// configuration error, not a silent acceptance.
func TestOrgIssuerRefused(t *testing.T) {
	cfg := map[string]any{
		"admin": map[string]any{"listen": caddytester.AdminAddr()},
		"apps": map[string]any{
			"token_issuer": issuerApp(gw, filepath.Join(t.TempDir(), "db")),
			"http": map[string]any{"servers": map[string]any{"srv0": map[string]any{
				"listen": []string{":" + gwPort},
				"routes": []map[string]any{{"handle": []map[string]any{
					{"handler": "require_token", "issuers": []map[string]any{{"url": gw}}, "audience": []string{gw}},
				}}},
			}}},
		},
	}
	caddytester.AssertLoadError(t, mustJSON(t, cfg), "json", "org authorization server")
}

// TestIntrospectionSeesRevocation: a route in introspection mode
// refuses a token the moment it is revoked, and so does a locally
// validating route of the same Caddy (the issuer's revocation view, in
// process, updated before the revocation is answered).
func TestIntrospectionSeesRevocation(t *testing.T) {
	issuer := gw + "/oauth2/default"
	startRevocationRoutes(t, issuerApp(gw, filepath.Join(t.TempDir(), "db")))
	tok := token(t, gw, "default")
	for _, p := range []string{"/strict", "/local"} {
		if res, body := call(t, p, tok); res.StatusCode != 200 || body != "ok "+clientID {
			t.Fatalf("%s before revocation: %d %q", p, res.StatusCode, body)
		}
	}
	form := strings.NewReader("token=" + tok)
	req, _ := http.NewRequest(http.MethodPost, issuer+"/v1/revoke", form)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, clientSec)
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("revoke: %v", err)
	}
	res.Body.Close()
	if res, _ := call(t, "/strict", tok); res.StatusCode != 401 || !strings.Contains(res.Header.Get("WWW-Authenticate"), "invalid_token") {
		t.Fatalf("introspection route after revocation: %d", res.StatusCode)
	}
	if res, _ := call(t, "/local", tok); res.StatusCode != 401 || !strings.Contains(res.Header.Get("WWW-Authenticate"), "invalid_token") {
		t.Fatalf("local route right after the revocation: %d %q", res.StatusCode, res.Header.Get("WWW-Authenticate"))
	}
	if res, body := call(t, "/local", token(t, gw, "default")); res.StatusCode != 200 || body != "ok "+clientID {
		t.Fatalf("local route, another token: %d %q", res.StatusCode, body)
	}
	// Scopes are enforced from the introspection answer too.
	if res, _ := call(t, "/strict", token(t, gw, "default", "orders:write")); res.StatusCode != 403 {
		t.Fatalf("introspection route, missing scope: %d", res.StatusCode)
	}
}

// TestIDTokenRefusedInProcess replays the review's finding with a real
// ID token of the in-process issuer: the route accepts audience
// `reports`, which is also a client's id, so that client's ID token (aud
// `reports`, another sub, an hour's life, no revocation) passed the
// audience check and got 200. It must be refused while the same grant's
// access token passes.
func TestIDTokenRefusedInProcess(t *testing.T) {
	const (
		reports    = "reports"
		reportsSec = "reports-secret-0123456789"
		alice      = "alice@example.com"
		alicePass  = "alice-password-0123"
	)
	hash, err := bcrypt.GenerateFromPassword([]byte(alicePass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	app := issuerApp(gw, filepath.Join(t.TempDir(), "db"))
	app["directory"] = map[string]any{"source": "static", "users": []map[string]any{{"id": "00u-alice", "login": alice, "password_hash": string(hash)}}}
	app["clients"] = []map[string]any{{"client_id": reports, "client_secret": reportsSec, "grant_types": []string{"password"}}}
	app["authorization_servers"].(map[string]any)["default"].(map[string]any)["policies"] = []map[string]any{{"name": "All", "clients": []string{"*"},
		"rules": []map[string]any{{"name": "Any", "grant_types": []string{"password"}, "scopes": []string{"*"}, "access_token_lifetime": "5m"}}}}
	be, hits := backend(t)
	cfg := map[string]any{
		"admin": map[string]any{"listen": caddytester.AdminAddr()},
		"apps": map[string]any{
			"token_issuer": app,
			"http": map[string]any{"servers": map[string]any{"srv0": map[string]any{
				"listen": []string{":" + gwPort},
				"routes": []map[string]any{
					{"match": []map[string]any{{"path": []string{"/reports/*"}}}, "handle": []map[string]any{
						{"handler": "require_token", "issuers": []map[string]any{{"url": gw + "/oauth2/default"}}, "audience": []string{reports, "api://default"}},
						{"handler": "reverse_proxy", "upstreams": []map[string]any{{"dial": strings.TrimPrefix(be.URL, "http://")}}},
					}},
					{"handle": []map[string]any{{"handler": "token_issuer"}}},
				},
				"errors": map[string]any{"routes": []map[string]any{{"handle": []map[string]any{
					{"handler": "static_response", "body": "denied: {http.auth.token.error}"}}}}},
			}}},
		},
	}
	caddytester.NewTester(t).InitServer(mustJSON(t, cfg), "json")

	form := strings.NewReader("grant_type=password&scope=openid+orders%3Aread&username=" + url.QueryEscape(alice) + "&password=" + url.QueryEscape(alicePass))
	req, _ := http.NewRequest(http.MethodPost, gw+"/oauth2/default/v1/token", form)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(reports, reportsSec)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var grant struct {
		AccessToken string `json:"access_token"`
		IDToken     string `json:"id_token"`
	}
	err = json.NewDecoder(res.Body).Decode(&grant)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 || grant.IDToken == "" || grant.AccessToken == "" {
		t.Fatalf("password grant: %d %v %+v", res.StatusCode, err, grant)
	}
	// The attack's precondition: the ID token is genuine, for `reports`.
	idt, err := jwt.ParseInsecure([]byte(grant.IDToken))
	if err != nil || len(idt.Audience()) != 1 || idt.Audience()[0] != reports {
		t.Fatalf("ID token: %v, aud %v", err, idt.Audience())
	}

	if res, body := call(t, "/reports/1", grant.AccessToken); res.StatusCode != 200 {
		t.Fatalf("access token: %d %s", res.StatusCode, body)
	}
	before := hits.Load()
	res, body := call(t, "/reports/1", grant.IDToken)
	if res.StatusCode != 401 || !strings.Contains(res.Header.Get("WWW-Authenticate"), `error="invalid_token"`) || body != "denied: not_access_token" {
		t.Fatalf("ID token as an access token: %d %q %q; want 401 invalid_token not_access_token", res.StatusCode, res.Header.Get("WWW-Authenticate"), body)
	}
	if hits.Load() != before {
		t.Fatal("the ID token reached the upstream")
	}
}

// TestForwardedNamesStrippedFromTrailers replays the review's finding:
// a client-sent request trailer `X-Client-Id` reached the upstream
// through reverse_proxy, past the stripping of forward_claim headers.
// The request is written by hand, chunked, with the forged name declared
// in the Trailer header, sent undeclared beside a declared checksum, and
// spelled with `_`; the upstream records every trailer it receives.
func TestForwardedNamesStrippedFromTrailers(t *testing.T) {
	type seen struct {
		Body    string
		Header  http.Header
		Trailer http.Header
	}
	got := make(chan seen, 4)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body) // trailers are there after EOF
		got <- seen{string(b), r.Header.Clone(), r.Trailer.Clone()}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer up.Close()
	cfg := map[string]any{
		"admin": map[string]any{"listen": caddytester.AdminAddr()},
		"apps": map[string]any{
			"token_issuer": issuerApp(gw, filepath.Join(t.TempDir(), "db")),
			"http": map[string]any{"servers": map[string]any{"srv0": map[string]any{
				"listen": []string{":" + gwPort},
				"routes": []map[string]any{
					{"match": []map[string]any{{"path": []string{"/orders/*"}}}, "handle": []map[string]any{
						{"handler": "require_token", "issuers": []map[string]any{{"url": gw + "/oauth2/default"}}, "audience": []string{"api://default"},
							"forward_claims": []map[string]any{{"claim": "cid", "header": "X-Client-Id"}, {"claim": "absent_claim", "header": "X-Tenant"}}},
						{"handler": "reverse_proxy", "upstreams": []map[string]any{{"dial": strings.TrimPrefix(up.URL, "http://")}}},
					}},
					{"handle": []map[string]any{{"handler": "token_issuer"}}},
				},
			}}},
		},
	}
	caddytester.NewTester(t).InitServer(mustJSON(t, cfg), "json")
	tok := token(t, gw, "default")

	cases := []struct {
		name, declare, trailers string
	}{
		{"declared", "X-Client-Id, X-Checksum", "X-Client-Id: admin\r\nX-Checksum: abc\r\n"},
		{"undeclared beside a declared one", "X-Checksum", "X-Checksum: abc\r\nX-Client-Id: admin\r\nx-tenant: acme\r\n"},
		{"spelled with underscores and case", "X-Checksum, x_client_id", "X-Checksum: abc\r\nx_client_id: admin\r\nX_TENANT: acme\r\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", "localhost:"+gwPort)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(conn, "POST /orders/1 HTTP/1.1\r\nHost: localhost:%s\r\nAuthorization: Bearer %s\r\nTransfer-Encoding: chunked\r\nTrailer: %s\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n%s\r\n",
				gwPort, tok, c.declare, c.trailers)
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusNoContent {
				t.Fatalf("status %d", res.StatusCode)
			}
			var s seen
			select {
			case s = <-got:
			default:
				t.Fatal("the upstream saw no request")
			}
			if s.Body != "hello" || s.Trailer.Get("X-Checksum") != "abc" {
				t.Fatalf("upstream got body %q, trailers %v: the request and its other trailers must pass", s.Body, s.Trailer)
			}
			for name, v := range s.Trailer {
				if n := strings.ReplaceAll(strings.ToLower(name), "_", "-"); n == "x-client-id" || n == "x-tenant" {
					t.Errorf("client trailer %s: %v reached the upstream", name, v)
				}
			}
			if v := s.Header.Values("X-Client-Id"); len(v) != 1 || v[0] != clientID {
				t.Errorf("upstream X-Client-Id header %v, want only %q", v, clientID)
			}
		})
	}
}

// startRevocationRoutes loads app (a token_issuer app on gw) behind the
// routes of the revocation tests: /strict asks the issuer's
// introspection about every token (as clientID), /local validates
// tokens locally; both need orders:read for api://default.
func startRevocationRoutes(t *testing.T, app map[string]any) {
	t.Helper()
	route := func(path string, extra map[string]any) map[string]any {
		h := map[string]any{"handler": "require_token", "issuers": []map[string]any{{"url": gw + "/oauth2/default"}}, "audience": []string{"api://default"}, "scopes": []string{"orders:read"}}
		for k, v := range extra {
			h[k] = v
		}
		return map[string]any{"match": []map[string]any{{"path": []string{path}}}, "handle": []map[string]any{h, {"handler": "static_response", "body": "ok {http.auth.user.id}"}}}
	}
	cfg := map[string]any{
		"admin": map[string]any{"listen": caddytester.AdminAddr()},
		"apps": map[string]any{
			"token_issuer": app,
			"http": map[string]any{"servers": map[string]any{"srv0": map[string]any{
				"listen": []string{":" + gwPort},
				"routes": []map[string]any{
					route("/strict", map[string]any{"introspection": map[string]any{"client_id": clientID, "client_secret": clientSec}}),
					route("/local", nil),
					{"handle": []map[string]any{{"handler": "token_issuer"}}},
				},
			}}},
		},
	}
	caddytester.NewTester(t).InitServer(mustJSON(t, cfg), "json")
}
