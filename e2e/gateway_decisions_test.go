package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
	"github.com/apiaccess/caddy-apiaccess/internal/testkit/caddytester"
)

const decisionsAPIToken = "gateway-decisions-api-token-0123456789"

// TestGatewayDecisionsInSystemLog: require_token routes in the issuer's
// Caddy record their decisions in its System Log, per route: all of
// them, rejections only (the default) or none. One GET /api/v1/logs
// query shows who called which route, with the reason of a refusal, the
// client and subject of a verified token, and Caddy's request id as the
// transaction id; no token reaches the log.
func TestGatewayDecisionsInSystemLog(t *testing.T) {
	be, _ := backend(t)
	issuer := gw + "/oauth2/default"
	route := func(path, name, mode string) map[string]any {
		rt := map[string]any{"handler": "require_token", "issuers": []map[string]any{{"url": issuer}}, "audience": []string{"api://default"},
			"scopes": []string{"orders:read"}, "route_name": name}
		if mode != "" {
			rt["log_decisions"] = mode
		}
		return map[string]any{"match": []map[string]any{{"path": []string{path}}}, "handle": []map[string]any{
			{"handler": "headers", "response": map[string]any{"set": map[string]any{"X-Request-Id": []string{"{http.request.uuid}"}}}},
			rt,
			{"handler": "reverse_proxy", "upstreams": []map[string]any{{"dial": strings.TrimPrefix(be.URL, "http://")}}},
		}}
	}
	app := issuerApp(gw, filepath.Join(t.TempDir(), "db"))
	app["api_tokens"] = []string{decisionsAPIToken}
	cfg := map[string]any{
		"admin": map[string]any{"listen": caddytester.AdminAddr()},
		"apps": map[string]any{
			"token_issuer": app,
			"http": map[string]any{"servers": map[string]any{"srv0": map[string]any{"listen": []string{":" + gwPort}, "routes": []map[string]any{
				route("/all/*", "orders-all", "all"),
				route("/default/*", "orders-default", ""),
				route("/none/*", "orders-none", "none"),
				{"handle": []map[string]any{{"handler": "token_issuer"}}},
			}}}},
		},
	}
	caddytester.NewTester(t).InitServer(mustJSON(t, cfg), "json")
	since := time.Now().Add(-time.Minute).UTC()

	good := token(t, gw, "default", "orders:read")
	noScope := token(t, gw, "other") // of another server: wrong issuer for these routes
	narrow := token(t, gw, "default", "ops")
	want := map[string]string{} // request id -> "route outcome reason"
	do := func(path, tok string, status int, expect string) {
		t.Helper()
		res, body := call(t, path, tok, "User-Agent", "decisions-test/1.0")
		if res.StatusCode != status {
			t.Fatalf("%s: %d %s, want %d", path, res.StatusCode, body, status)
		}
		if expect != "" {
			want[res.Header.Get("X-Request-Id")] = expect
		}
	}
	do("/all/1", good, 200, "orders-all ALLOW ")
	do("/all/2", "", 401, "orders-all DENY no_token")
	do("/default/1", good, 200, "")
	do("/default/2", narrow, 403, "orders-default DENY insufficient_scope")
	do("/default/3", noScope, 401, "orders-default DENY wrong_issuer")
	do("/none/1", good, 200, "")
	do("/none/2", "", 401, "")

	var events []map[string]any
	var raw string
	q := url.Values{"filter": {`eventType eq "apiaccess.gateway.request"`}, "since": {since.Format(time.RFC3339)},
		"until": {time.Now().Add(time.Minute).UTC().Format(time.RFC3339)}}
	testkit.WaitFor(t, "the gateway's decisions in the System Log", 10*time.Second, func() bool {
		var status int
		status, raw = systemLog(t, q)
		events = nil
		return status == 200 && json.Unmarshal([]byte(raw), &events) == nil && len(events) >= len(want)
	})
	if len(events) != len(want) {
		t.Fatalf("%d gateway events, want %d (all: both, default: refusals, none: nothing): %s", len(events), len(want), raw)
	}
	for _, ev := range events {
		txn, _ := ev["transaction"].(map[string]any)
		id, _ := txn["id"].(string)
		exp, ok := want[id]
		if !ok {
			t.Fatalf("event of request %q, which should not be logged: %v", id, ev)
		}
		outcome, _ := ev["outcome"].(map[string]any)
		reason, _ := outcome["reason"].(string)
		var routeName string
		for _, tg := range ev["target"].([]any) {
			if m := tg.(map[string]any); m["type"] == "apiaccess.Route" {
				routeName, _ = m["id"].(string)
			}
		}
		if got := routeName + " " + outcome["result"].(string) + " " + reason; got != exp {
			t.Errorf("request %s: event %q, want %q", id, got, exp)
		}
		actor, _ := ev["actor"].(map[string]any)
		client, _ := ev["client"].(map[string]any)
		ua, _ := client["userAgent"].(map[string]any)
		dd := ev["debugContext"].(map[string]any)["debugData"].(map[string]any)
		switch reason {
		case "", "insufficient_scope": // a verified token: its client acts
			if actor["id"] != clientID || actor["type"] != "PublicClientApp" || dd["jti"] == nil {
				t.Errorf("%s: actor %v debugData %v, want the token's client and jti", exp, actor, dd)
			}
		default: // no verified token: nobody is named
			if actor["id"] != "unknown" || dd["jti"] != nil || dd["clientId"] != nil {
				t.Errorf("%s: actor %v debugData %v, want nobody", exp, actor, dd)
			}
		}
		if client["ipAddress"] != "127.0.0.1" || ua["rawUserAgent"] != "decisions-test/1.0" || !strings.HasPrefix(dd["requestUri"].(string), "/") {
			t.Errorf("%s: client %v debugData %v", exp, client, dd)
		}
	}

	// The route is a target, so a filter finds one route's decisions.
	status, one := systemLog(t, url.Values{"filter": {`target.id eq "orders-default" and outcome.result eq "DENY"`},
		"since": q["since"], "until": q["until"]})
	var byRoute []map[string]any
	if status != 200 || json.Unmarshal([]byte(one), &byRoute) != nil || len(byRoute) != 2 {
		t.Fatalf("filter by route: %d %s", status, one)
	}
	secrets := []string{decisionsAPIToken, clientSec}
	for _, tok := range []string{good, narrow, noScope} {
		secrets = append(secrets, tok, tok[strings.LastIndexByte(tok, '.')+1:]) // and its signature alone
	}
	for _, secret := range secrets {
		if strings.Contains(raw, secret) {
			t.Fatalf("the System Log holds a secret (%.12s...)", secret)
		}
	}
}

// systemLog queries GET /api/v1/logs of the gateway's Caddy.
func systemLog(t *testing.T, q url.Values) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, gw+"/api/v1/logs?"+q.Encode(), nil)
	req.Header.Set("Authorization", "SSWS "+decisionsAPIToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}
