package e2e_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/apiaccess/caddy-apiaccess/caddymodule"
	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
	_ "github.com/apiaccess/caddy-apiaccess/tokenissuer"
)

// freeAddr is a loopback address no one listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", testkit.CaddyPort(t))
}

// metricsConfig is an issuer with one custom server and a route behind
// require_token; extraScope (when set) is one more scope the policy
// grants, which a reload adds.
func metricsConfig(t *testing.T, admin, site, db, extraScope string) []byte {
	t.Helper()
	base := "http://" + site
	scopes := []map[string]any{{"name": "read", "default": true}}
	if extraScope != "" {
		scopes = append(scopes, map[string]any{"name": extraScope})
	}
	cfg := map[string]any{
		"admin":   map[string]any{"listen": admin, "config": map[string]any{"persist": false}},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "ERROR"}}},
		"apps": map[string]any{
			"token_issuer": map[string]any{
				"base_url":              base,
				"key_encryption_secret": strings.Repeat("m", 32),
				"storage":               map[string]any{"module": "embedded", "path": db},
				"clients":               []map[string]any{{"client_id": "svc", "client_secret": "svc-secret-0123456789"}},
				"authorization_servers": map[string]any{"default": map[string]any{
					"signing_alg": "ES256",
					"scopes":      scopes,
					"policies": []map[string]any{{"name": "All", "clients": []string{"*"},
						"rules": []map[string]any{{"name": "Any", "grant_types": []string{"client_credentials"}, "scopes": []string{"*"}}}}},
				}},
			},
			"http": map[string]any{"servers": map[string]any{"srv0": map[string]any{
				"listen": []string{site},
				"routes": []map[string]any{
					{"match": []map[string]any{{"path": []string{"/api/*"}}}, "handle": []map[string]any{
						{"handler": "require_token", "issuers": []map[string]any{{"url": base + "/oauth2/default"}}, "audience": []string{"api://default"}},
						{"handler": "static_response", "body": "api"},
					}},
					{"handle": []map[string]any{{"handler": "token_issuer"}}},
				},
			}}},
		},
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// scrape reads Caddy's admin /metrics into series -> value, the series
// spelled as in the text format: name{label="v",...} (labels sorted).
func scrape(t *testing.T, admin string) map[string]float64 {
	t.Helper()
	res, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", res.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// call sends a form (nil: a GET) to the site and returns the status and
// the decoded JSON body, if any.
func metricsCall(t *testing.T, method, target string, form url.Values, auth func(*http.Request)) (int, map[string]any) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, target, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if auth != nil {
		auth(req)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return res.StatusCode, out
}

// The issuer's and the gateway's metrics appear on Caddy's admin
// /metrics with the counts of what happened, and a reload (POST /load,
// what `caddy reload` does) continues them instead of starting again
// from zero.
func TestMetricsOnAdminEndpointSurviveReload(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_DATA_HOME", dir)
	t.Setenv("XDG_CONFIG_HOME", dir)
	admin, site := freeAddr(t), freeAddr(t)
	db := filepath.Join(dir, "issuer.db")
	if err := caddy.Load(metricsConfig(t, admin, site, db, ""), true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Closes the admin listener too, which Stop leaves open.
		_ = caddy.Load([]byte(`{"admin":{"disabled":true}}`), true)
		_ = caddy.Stop()
	})
	base := "http://" + site
	tokenURL := base + "/oauth2/default/v1/token"
	svc := func(r *http.Request) { r.SetBasicAuth("svc", "svc-secret-0123456789") }
	grant := func(scope string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}
	}

	const (
		ok       = `caddy_token_issuer_token_requests_total{grant_type="client_credentials",outcome="success",server="default"}`
		badCli   = `caddy_token_issuer_token_requests_total{grant_type="client_credentials",outcome="invalid_client",server="default"}`
		badScope = `caddy_token_issuer_token_requests_total{grant_type="client_credentials",outcome="invalid_scope",server="default"}`
		latCount = `caddy_token_issuer_token_request_duration_seconds_count{grant_type="client_credentials",server="default"}`
		latLE2   = `caddy_token_issuer_token_request_duration_seconds_bucket{grant_type="client_credentials",server="default",le="2"}`
		latSum   = `caddy_token_issuer_token_request_duration_seconds_sum{grant_type="client_credentials",server="default"}`
		active   = `caddy_token_issuer_introspections_total{active="true",server="default"}`
		revoked  = `caddy_token_issuer_revocations_total{outcome="success",server="default"}`
		accepted = `caddy_require_token_decisions_total{outcome="accepted",reason=""}`
	)
	before := scrape(t, admin)

	status, body := metricsCall(t, http.MethodPost, tokenURL, grant("read"), svc)
	if status != http.StatusOK {
		t.Fatalf("client_credentials: %d %v", status, body)
	}
	tok, _ := body["access_token"].(string)
	if status, body := metricsCall(t, http.MethodPost, tokenURL, grant("read"), func(r *http.Request) { r.SetBasicAuth("svc", "wrong") }); status != http.StatusUnauthorized {
		t.Fatalf("wrong secret: %d %v", status, body)
	}
	if status, body := metricsCall(t, http.MethodPost, tokenURL, grant("reload:marker"), svc); status != http.StatusBadRequest || body["error"] != "invalid_scope" {
		t.Fatalf("unknown scope: %d %v", status, body)
	}
	bearer := func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	if status, _ := metricsCall(t, http.MethodGet, base+"/api/x", nil, bearer); status != http.StatusOK {
		t.Fatalf("gateway with a valid token: %d", status)
	}
	if status, body := metricsCall(t, http.MethodPost, base+"/oauth2/default/v1/introspect", url.Values{"token": {tok}}, svc); status != http.StatusOK || body["active"] != true {
		t.Fatalf("introspect: %d %v", status, body)
	}
	if status, body := metricsCall(t, http.MethodPost, base+"/oauth2/default/v1/revoke", url.Values{"token": {tok}}, svc); status != http.StatusOK {
		t.Fatalf("revoke: %d %v", status, body)
	}

	got := scrape(t, admin)
	for _, c := range []struct {
		series string
		delta  float64
	}{{ok, 1}, {badCli, 1}, {badScope, 1}, {latCount, 3}, {latLE2, 3}, {active, 1}, {revoked, 1}, {accepted, 1}} {
		if d := got[c.series] - before[c.series]; d != c.delta {
			t.Errorf("%s went up by %v, want %v", c.series, d, c.delta)
		}
	}
	if got[latSum] <= before[latSum] {
		t.Errorf("%s did not grow: the histogram holds no durations", latSum)
	}

	// Reload with a changed config, as `caddy reload` does.
	res, err := http.Post("http://"+admin+"/load", "application/json", strings.NewReader(string(metricsConfig(t, admin, site, db, "reload:marker"))))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("POST /load: %s %s", res.Status, msg)
	}
	// The old config's server closes its idle connections as it stops;
	// a pooled one reused for the next POST would end in EOF (Go does
	// not retry a POST), which says nothing about the new config.
	http.DefaultClient.CloseIdleConnections()
	if status, body := metricsCall(t, http.MethodPost, tokenURL, grant("reload:marker"), svc); status != http.StatusOK {
		t.Fatalf("the reloaded config is not serving (new scope refused): %d %v", status, body)
	}
	status, body = metricsCall(t, http.MethodPost, tokenURL, grant("read"), svc)
	if status != http.StatusOK {
		t.Fatalf("client_credentials after reload: %d %v", status, body)
	}
	tok, _ = body["access_token"].(string)
	if status, _ := metricsCall(t, http.MethodGet, base+"/api/x", nil, bearer); status != http.StatusOK {
		t.Fatalf("gateway after reload: %d", status)
	}

	after := scrape(t, admin)
	for _, c := range []struct {
		series string
		delta  float64
	}{{ok, 2}, {badCli, 0}, {badScope, 0}, {latCount, 2}, {active, 0}, {revoked, 0}, {accepted, 1}} {
		if d := after[c.series] - got[c.series]; d != c.delta {
			t.Errorf("after reload: %s is %v, was %v before it; want %v more", c.series, after[c.series], got[c.series], c.delta)
		}
	}
}
