package apiaccess_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	// Caddy's standard modules: the log filter encoder, redir.
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

// readmeRecipe returns the first caddyfile block after heading in
// README.md, so that the test runs what the README shows.
func readmeRecipe(t *testing.T, heading string) string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("README.md has no heading %q", heading)
	}
	s = s[i:]
	const open = "\n```caddyfile\n"
	j := strings.Index(s, open)
	if j < 0 {
		t.Fatalf("no caddyfile block after %q in README.md", heading)
	}
	s = s[j+len(open):]
	k := strings.Index(s, "\n```\n")
	if k < 0 {
		t.Fatalf("unterminated caddyfile block after %q in README.md", heading)
	}
	return s[:k+1]
}

// replaceOnce replaces old, which must occur exactly once, so that an
// edit of the README recipe fails here instead of testing something else.
func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if n := strings.Count(s, old); n != 1 {
		t.Fatalf("README recipe: %q occurs %d times, want 1 (update the test with the README)", old, n)
	}
	return strings.Replace(s, old, new, 1)
}

func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestAccessLogRecipe runs README's access-log recipe on a Caddy with the
// issuer and checks that the secrets a request line, a Referer or a
// redirect can carry do not reach the access log, while the other query
// values do.
func TestAccessLogRecipe(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_DATA_HOME", filepath.Join(dir, "data"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	logPath := filepath.Join(dir, "access.log")
	port := freeLoopbackPort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)

	recipe := readmeRecipe(t, "### Access logs without secrets")
	recipe = replaceOnce(t, recipe, "\nid.example.com {\n", "\n"+base+" {\n")
	recipe = replaceOnce(t, recipe, "output file /var/log/caddy/id.example.com.log", "output file "+logPath)
	// A stand-in for the authorize endpoint's redirect to the client,
	// which carries the code (RFC 6749 section 4.1.2).
	recipe = replaceOnce(t, recipe, "\n\ttoken_issuer\n}\n",
		"\n\ttoken_issuer\n\tredir /callback \"http://app.example/cb?code={query.code}&state={query.state}\" 302\n}\n")
	caddyfile := `{
	admin off
	persist_config off
	default_bind 127.0.0.1
	storage file_system ` + filepath.Join(dir, "data", "caddy") + `
	token_issuer {
		base_url ` + base + `
		key_encryption_secret 0123456789abcdef0123456789abcdef
		client app {
			secret app-secret
		}
		authorization_server default {
			audience api://default
		}
	}
}
` + recipe

	adapter := caddyconfig.GetAdapter("caddyfile")
	cfg, _, err := adapter.Adapt([]byte(caddyfile), map[string]any{"filename": "README.md"})
	if err != nil {
		t.Fatalf("adapting the README recipe: %v\n%s", err, caddyfile)
	}
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatalf("loading the README recipe: %v", err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })

	client := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	secrets := []string{"SECRETcode1", "SECRETcode2", "SECREThint", "SECRETclient", "SECRETaccess",
		"SECRETrefresh", "SECRETtoken", "SECRETreferer", "SECRETlocation", "SECRETbearer", "SECRETcookie"}
	kept := []string{"state=st-kept", "client_id=app", "scope=openid", "grant_type=refresh_token",
		"state=ref-kept", "state=loc-kept", "post_logout_redirect_uri="}
	requests := []struct {
		method, path string
		header       http.Header
		wantStatus   int
	}{
		{"GET", "/oauth2/default/v1/authorize?client_id=app&scope=openid&state=st-kept&code=SECRETcode1&code=SECRETcode2",
			http.Header{
				"Referer":       {"http://app.example/cb?code=SECRETreferer&state=ref-kept"},
				"Authorization": {"Bearer SECRETbearer"},
				"Cookie":        {"sid=SECRETcookie"},
			}, 0},
		{"GET", "/oauth2/v1/logout?id_token_hint=SECREThint&post_logout_redirect_uri=" + url.QueryEscape("http://app.example/"), nil, 0},
		{"POST", "/oauth2/default/v1/token?grant_type=refresh_token&client_id=app&client_secret=SECRETclient" +
			"&access_token=SECRETaccess&refresh_token=SECRETrefresh&token=SECRETtoken", nil, 0},
		// Okta's Go SDK sends its client assertion in the query string.
		{"POST", "/oauth2/v1/token?grant_type=client_credentials&scope=ssf.read&client_assertion_type=" +
			url.QueryEscape("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") + "&client_assertion=SECRETassertion", nil, 0},
		{"GET", "/callback?code=SECRETlocation&state=loc-kept", nil, http.StatusFound},
	}
	for _, rq := range requests {
		req, err := http.NewRequest(rq.method, base+rq.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range rq.header {
			req.Header[k] = v
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if rq.wantStatus != 0 && resp.StatusCode != rq.wantStatus {
			t.Fatalf("%s %s: status %d, want %d", rq.method, rq.path, resp.StatusCode, rq.wantStatus)
		}
		if rq.wantStatus == http.StatusFound && !strings.Contains(resp.Header.Get("Location"), "SECRETlocation") {
			t.Fatalf("the stand-in redirect lost its code: %q", resp.Header.Get("Location"))
		}
	}

	// Caddy writes the access entry after the response; wait for all.
	var log []byte
	deadline := time.Now().Add(10 * time.Second)
	for {
		log, _ = os.ReadFile(logPath)
		if bytes.Count(log, []byte("\n")) >= len(requests) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var entries int
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e struct {
			Msg string `json:"msg"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("access log line is not JSON (wrap json): %v: %s", err, sc.Bytes())
		}
		if e.Msg == "handled request" {
			entries++
		}
	}
	if entries != len(requests) {
		t.Fatalf("%d access log entries, want %d:\n%s", entries, len(requests), log)
	}
	// The log holds JSON-escaped URLs; unescape & and = for the checks.
	text := strings.NewReplacer(`\u0026`, "&", `\u003d`, "=").Replace(string(log))
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("access log contains %s", s)
		}
	}
	for _, s := range kept {
		if !strings.Contains(text, s) {
			t.Errorf("access log lost %s (the recipe must delete only the secret values)", s)
		}
	}
	if !strings.Contains(text, `"Authorization":["REDACTED"]`) {
		t.Errorf("Authorization header not logged as REDACTED (log_credentials on?)")
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("access log:\n%s", text)
	}
}
