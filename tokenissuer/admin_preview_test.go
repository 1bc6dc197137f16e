package tokenissuer_test

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
	"github.com/apiaccess/caddy-apiaccess/internal/testkit/caddytester"
)

// previewEnv is startUserEnv's issuer (Alice in finance, Bob suspended,
// Carol a contractor; rule Staff excludes contractors) with a client
// for client_credentials and a rule for it.
func previewEnv(t *testing.T) {
	t.Helper()
	users := []map[string]any{
		{"id": "00u-alice", "login": "alice@example.com", "groups": []string{"finance", "staff"},
			"profile": map[string]any{"email": "alice@example.com", "given_name": "Alice"}},
		{"id": "00u-carol", "login": "carol@example.com", "groups": []string{"contractors"}},
	}
	clients := []map[string]any{
		{"client_id": "web", "client_secret": "web-secret-0123456789", "grant_types": []string{"authorization_code", "refresh_token"},
			"redirect_uris": []string{"https://app.test/cb"}},
		{"client_id": "svc", "client_secret": "svc-secret-0123456789"},
	}
	startIssuer(t, issuerSetup{users: users, clients: clients, server: map[string]any{
		"scopes": []map[string]any{{"name": "orders:read", "default": true}},
		"claims": []map[string]any{
			{"name": "login_name", "language": "okta", "value": `String.substringBefore(user.login, "@")`},
			{"name": "where", "value": `client.id + "@" + server.id`},
			{"name": "dept_groups", "groups": map[string]any{"type": "starts_with", "value": "fin"}},
		},
		"policies": []map[string]any{
			{"name": "Employees", "clients": []string{"web"}, "rules": []map[string]any{{
				"name": "Staff", "grant_types": []string{"authorization_code"}, "scopes": []string{"*"},
				"people":                map[string]any{"exclude_groups": []string{"contractors"}},
				"access_token_lifetime": "10m", "refresh_token_lifetime": "1d", "refresh_token_idle": "1h",
			}}},
			{"name": "Machines", "clients": []string{"svc"}, "rules": []map[string]any{{
				"name": "Read", "grant_types": []string{"client_credentials"}, "scopes": []string{"orders:read"},
			}}},
		},
	}})
}

func postPreview(t *testing.T, as, body string) (int, map[string]any) {
	t.Helper()
	res, err := http.Post(adminURL+"/token_issuer/"+as+"/preview", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		t.Fatalf("preview answer is not JSON: %v", err)
	}
	return res.StatusCode, out
}

// TestTokenPreviewAdminAPI: the preview through real Caddy's admin API:
// a matched rule with its claims and tokens, a denied user with the
// reasons, and the errors (unknown server, client, user; a grant the
// client may not use; an unknown scope; a bad body; GET).
func TestTokenPreviewAdminAPI(t *testing.T) {
	previewEnv(t)
	code, p := postPreview(t, "default", `{"client_id":"web","grant_type":"authorization_code","user":"alice@example.com","scopes":["openid","offline_access"]}`)
	if code != 200 || p["policy"] != "Employees" || p["rule"] != "Staff" {
		t.Fatalf("preview %d %v, want Employees/Staff", code, p)
	}
	at := p["access_token"].(map[string]any)
	claims := at["claims"].(map[string]any)
	if claims["login_name"] != "alice" || claims["where"] != "web@default" || claims["uid"] != "00u-alice" || at["lifetime_seconds"] != float64(600) {
		t.Errorf("access token %v", at)
	}
	if g, _ := json.Marshal(claims["dept_groups"]); string(g) != `["finance"]` {
		t.Errorf("dept_groups %s", g)
	}
	if id, _ := p["id_token"].(map[string]any); id == nil || id["claims"].(map[string]any)["sub"] != "00u-alice" {
		t.Errorf("id token %v", p["id_token"])
	}
	if rt, _ := p["refresh_token"].(map[string]any); rt == nil || rt["issued"] != true || rt["idle_seconds"] != float64(3600) {
		t.Errorf("refresh %v", p["refresh_token"])
	}

	code, p = postPreview(t, "default", `{"client_id":"web","grant_type":"authorization_code","user":"00u-carol"}`)
	e, _ := p["error"].(map[string]any)
	if code != 200 || e == nil || e["error"] != "access_denied" || p["access_token"] != nil {
		t.Fatalf("Carol: %d %v, want access_denied and no tokens", code, p)
	}
	rules := p["evaluation"].(map[string]any)["policies"].([]any)[0].(map[string]any)["rules"].([]any)
	if r := rules[0].(map[string]any); r["people_included"] != false || !strings.Contains(r["people_reason"].(string), "contractors") {
		t.Errorf("Staff for Carol: %v", r)
	}

	for _, c := range []struct {
		as, body string
		status   int
		text     string
	}{
		{"nope", `{"client_id":"svc","grant_type":"client_credentials"}`, 404, `unknown authorization server "nope"`},
		{"default", `{"client_id":"nope","grant_type":"client_credentials"}`, 404, `unknown client "nope"`},
		{"default", `{"client_id":"web","grant_type":"authorization_code","user":"zed"}`, 404, `unknown user "zed"`},
		{"default", `{"client_id":"svc","grant_type":"authorization_code","user":"alice@example.com"}`, 400, "unauthorized_client"},
		{"default", `{"client_id":"svc","grant_type":"client_credentials","scopes":["orders:write"]}`, 400, "unknown scope orders:write"},
		{"default", `{"client_id":"svc","grant_type":"client_credentials","extra":1}`, 400, "unknown field"},
		{"default", `{"client_id":"svc"} {}`, 400, "one JSON object"},
	} {
		code, p := postPreview(t, c.as, c.body)
		if msg, _ := p["error"].(string); code != c.status || !strings.Contains(msg, c.text) {
			t.Errorf("%s %s: %d %v, want %d with %q", c.as, c.body, code, p, c.status, c.text)
		}
	}
	res, err := http.Get(adminURL + "/token_issuer/default/preview")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET preview: %d, want 405", res.StatusCode)
	}
}

// TestTokenPreviewCommand: `caddy apiaccess-token-preview` against the
// admin API of a running Caddy: through its cobra command in this
// process (readable and --json output, an error answer) and as the real
// caddy binary of cmd/caddy.
func TestTokenPreviewCommand(t *testing.T) {
	previewEnv(t)
	addr := caddytester.AdminAddr()
	run := func(args ...string) (string, error) {
		c, ok := caddycmd.Commands()["apiaccess-token-preview"]
		if !ok {
			t.Fatal("apiaccess-token-preview is not registered")
		}
		cmd := &cobra.Command{Use: c.Name}
		c.CobraFunc(cmd)
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(args)
		err := cmd.Execute()
		return out.String(), err
	}
	out, err := run("--address", addr, "--client", "web", "--user", "alice@example.com", "--scope", "openid offline_access")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		`policy "Employees" (priority 0): covers the client`,
		`rule "Staff" (priority 0): MATCHES: decides`,
		`policy "Machines" (priority 0): does not cover the client, after the decision`,
		`Matched: policy "Employees", rule "Staff"`,
		"Access token (lifetime 10m0s):",
		`  login_name: "alice"`,
		`  dept_groups: ["finance"]`,
		"ID token (lifetime 1h0m0s):",
		"Refresh token: issued, lifetime 24h0m0s, idle window 1h0m0s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, err = run("--address", addr, "--client", "svc", "--grant-type", "client_credentials", "--json")
	var p map[string]any
	if err != nil || json.Unmarshal([]byte(out), &p) != nil || p["rule"] != "Read" || p["default_scopes"] != true {
		t.Fatalf("--json: %v %s", err, out)
	}
	out, err = run("--address", addr, "--client", "web", "--user", "carol@example.com")
	if err != nil || !strings.Contains(out, "No rule matched") || !strings.Contains(out, `excluded: the user is in group "contractors" of exclude_groups`) ||
		!strings.Contains(out, "A real request gets: access_denied") {
		t.Errorf("Carol: %v\n%s", err, out)
	}
	if _, err := run("--address", addr, "--client", "nope", "--grant-type", "client_credentials"); err == nil || !strings.Contains(err.Error(), `HTTP 404`) || !strings.Contains(err.Error(), `unknown client \"nope\"`) {
		t.Errorf("unknown client: %v", err)
	}

	bin := testkit.CaddyBinary(t)
	b, err := exec.Command(bin, "apiaccess-token-preview", "--address", addr, "--client", "svc", "--grant-type", "client_credentials").CombinedOutput()
	if err != nil || !strings.Contains(string(b), `Matched: policy "Machines", rule "Read"`) || !strings.Contains(string(b), `  where: "svc@default"`) {
		t.Errorf("caddy binary: %v\n%s", err, b)
	}
}

// TestTokenPreviewAdminBody: the body is one JSON object of at most
// 64 KiB: null, an array or a string are 400 (null is not an empty
// request), a larger body 413, and a body just under the limit is read.
func TestTokenPreviewAdminBody(t *testing.T) {
	previewEnv(t)
	for _, c := range []struct {
		name, body string
		status     int
		text       string
	}{
		{"null", `null`, 400, "the body must be one JSON object"},
		{"array", `[{"client_id":"svc"}]`, 400, "the body must be one JSON object"},
		{"string", `"svc"`, 400, "the body must be one JSON object"},
		{"empty", ``, 400, "EOF"},
		{"over 64 KiB", `{"client_id":"svc","grant_type":"client_credentials","user":"` + strings.Repeat("u", 64<<10) + `"}`, 413,
			"the body is larger than 65536 bytes"},
		// Read and decoded: the preview's own refusal of a user for client_credentials.
		{"under 64 KiB", `{"client_id":"svc","grant_type":"client_credentials","user":"` + strings.Repeat("u", 60<<10) + `"}`, 400,
			"the client_credentials grant has no user"},
	} {
		code, p := postPreview(t, "default", c.body)
		if msg, _ := p["error"].(string); code != c.status || !strings.Contains(msg, c.text) {
			t.Errorf("%s: %d %.200v, want %d with %q", c.name, code, p, c.status, c.text)
		}
	}
}

// TestTokenPreviewCommandFlags: without --address the command finds the
// admin API in --config (JSON, or a Caddyfile with --adapter), and uses
// that address (a config naming an address nobody listens on fails
// there); --scope keeps a comma inside a scope (RFC 6749 section 3.3
// allows it) and splits on spaces.
func TestTokenPreviewCommandFlags(t *testing.T) {
	previewEnv(t)
	run := func(args ...string) (string, error) {
		c := caddycmd.Commands()["apiaccess-token-preview"]
		cmd := &cobra.Command{Use: c.Name}
		c.CobraFunc(cmd)
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(args)
		err := cmd.Execute()
		return out.String(), err
	}
	dir := t.TempDir()
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	jsonCfg := write("caddy.json", `{"admin":{"listen":"`+caddytester.AdminAddr()+`"}}`)
	caddyfile := write("Caddyfile", "{\n\tadmin "+caddytester.AdminAddr()+"\n}\n")
	for _, args := range [][]string{{"--config", jsonCfg}, {"--config", caddyfile, "--adapter", "caddyfile"}} {
		out, err := run(append(args, "--client", "svc", "--grant-type", "client_credentials")...)
		if err != nil || !strings.Contains(out, `Matched: policy "Machines", rule "Read"`) {
			t.Errorf("%v: %v\n%s", args, err, out)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	unused := l.Addr().String()
	l.Close()
	elsewhere := write("elsewhere.json", `{"admin":{"listen":"`+unused+`"}}`)
	if _, err := run("--config", elsewhere, "--client", "svc", "--grant-type", "client_credentials"); err == nil || !strings.Contains(err.Error(), unused) {
		t.Errorf("config naming %s: %v, want a failure to reach it", unused, err)
	}

	_, err = run("--address", caddytester.AdminAddr(), "--client", "svc", "--grant-type", "client_credentials", "--scope", "orders:read,orders:write")
	if err == nil || !strings.Contains(err.Error(), "unknown scope orders:read,orders:write") {
		t.Errorf("--scope with a comma: %v, want the scope kept whole", err)
	}
	out, err := run("--address", caddytester.AdminAddr(), "--client", "web", "--user", "alice@example.com", "--scope", "openid offline_access", "--scope", "orders:read", "--json")
	var p map[string]any
	if err != nil || json.Unmarshal([]byte(out), &p) != nil {
		t.Fatalf("--json: %v %s", err, out)
	}
	if g, _ := json.Marshal(p["scopes"]); string(g) != `["openid","offline_access","orders:read"]` {
		t.Errorf("scopes %s, want the spaces split and the flags repeated", g)
	}
}
