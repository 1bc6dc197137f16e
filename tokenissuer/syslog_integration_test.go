package tokenissuer_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
	"github.com/apiaccess/caddy-apiaccess/internal/testkit/caddytester"
)

const logAPIToken = "syslog-test-api-token-0123456789"

// TestSystemLogThroughCaddy: in a real Caddy with the embedded store, a
// grant becomes a stored event in Okta's LogEvent shape, readable with
// an API token at GET /api/v1/logs, with a filter; without the token
// the API answers Okta's E0000011; no secret reaches the log.
func TestSystemLogThroughCaddy(t *testing.T) {
	e := newEnv(t) // the standard issuer, then the same with an API token
	var cfg map[string]any
	if err := json.Unmarshal([]byte(e.config), &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["apps"].(map[string]any)["token_issuer"].(map[string]any)["api_tokens"] = []string{logAPIToken}
	b, _ := json.Marshal(cfg)
	e.tester = caddytester.NewTester(t)
	e.tester.InitServer(string(b), "json")

	res, body := post(t, "/oauth2/default/v1/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"billing:read"}}, basicAuth(basicID, basicSec))
	if res.StatusCode != 200 {
		t.Fatalf("grant: %d %v", res.StatusCode, body)
	}
	token, _ := body["access_token"].(string)

	logs := func(auth string, q url.Values) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/logs?"+q.Encode(), nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(raw)
	}
	if status, raw := logs("", nil); status != http.StatusUnauthorized || !strings.Contains(raw, "E0000011") {
		t.Fatalf("no API token: %d %s", status, raw)
	}
	if status, raw := logs("SSWS wrong-token-0123456789012345", nil); status != http.StatusUnauthorized || !strings.Contains(raw, "E0000011") {
		t.Fatalf("wrong API token: %d %s", status, raw)
	}

	q := url.Values{"filter": {`eventType eq "app.oauth2.as.token.grant.access_token" and debugContext.debugData.grantType eq "client_credentials"`},
		// Bounded: a polling page ends syslog.PollSettle before now.
		"since": {time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)}, "until": {time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}}
	var events []map[string]any
	var raw string
	testkit.WaitFor(t, "the grant's event in the System Log", 10*time.Second, func() bool {
		var status int
		status, raw = logs("SSWS "+logAPIToken, q)
		events = nil
		return status == 200 && json.Unmarshal([]byte(raw), &events) == nil && len(events) > 0
	})
	ev := events[0]
	outcome, _ := ev["outcome"].(map[string]any)
	client, _ := ev["client"].(map[string]any)
	tx, _ := ev["transaction"].(map[string]any)
	if outcome["result"] != "SUCCESS" || client["ipAddress"] == "" || tx["id"] == "" || ev["uuid"] == "" || ev["published"] == "" {
		t.Errorf("event shape: %v", ev)
	}
	for _, secret := range []string{token, basicSec, logAPIToken, strings.Split(token, ".")[2]} {
		if strings.Contains(raw, secret) {
			t.Fatalf("the System Log holds a secret (%.12s...)", secret)
		}
	}
}
