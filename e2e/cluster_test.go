package e2e

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/postgres/pgtest"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit/browser"
)

// Cluster mode (issue 5): separate Caddy processes, one PostgreSQL.

const (
	clusterClient = "cluster-web"
	clusterSecret = "cluster-web-secret-0123456789"
	clusterRedir  = "http://localhost:9400/cb"
)

// node is one Caddy process of the cluster.
type node struct {
	t           *testing.T
	name        string
	url, admin  string
	cfg, dir    string
	proc        *testkit.Proc
	logPath     string
	stopWaiting chan struct{}
}

// clusterConfig is a node's config: the issuer on PostgreSQL, and
// require_token on /api/ validating in process; apiTokens, if any, may
// read the System Log (GET /api/v1/logs, routed to the issuer).
func clusterConfig(t *testing.T, base string, adminPort, httpPort int, dsn, schema string, apiTokens ...string) string {
	t.Helper()
	hash, err := directory.HashBcrypt(alicePass)
	if err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{
		"admin": map[string]any{"listen": fmt.Sprintf("localhost:%d", adminPort)},
		"apps": map[string]any{
			"token_issuer": map[string]any{
				"base_url":              base,
				"key_encryption_secret": sealSecret,
				"maintenance_interval":  "1s",
				"storage":               map[string]any{"module": "postgres", "dsn": dsn, "schema": schema, "connect_timeout": "2s"},
				"directory": map[string]any{"source": "static", "users": []map[string]any{
					{"id": aliceID, "login": aliceLogin, "password_hash": hash},
				}},
				"clients": []map[string]any{{
					"client_id": clusterClient, "client_secret": clusterSecret, "redirect_uris": []string{clusterRedir},
					"grant_types": []string{"authorization_code", "refresh_token", "client_credentials", "password"},
				}},
				"authorization_servers": map[string]any{"default": map[string]any{
					"scopes": []map[string]any{{"name": "orders:read", "default": true}},
					"policies": []map[string]any{{"name": "All", "clients": []string{"*"}, "rules": []map[string]any{{
						"name": "All", "grant_types": []string{"authorization_code", "client_credentials", "password"}, "scopes": []string{"*"},
					}}}},
				}},
			},
			"http": map[string]any{"servers": map[string]any{"srv": map[string]any{
				"listen": []string{fmt.Sprintf("127.0.0.1:%d", httpPort)},
				"routes": []map[string]any{
					{"match": []map[string]any{{"path": []string{"/api/*"}}}, "handle": []map[string]any{
						{"handler": "require_token", "issuers": []map[string]any{{"url": base + "/oauth2/default", "audience": []string{"api://default"}}},
							"scopes": []string{"orders:read"}},
						{"handler": "static_response", "body": "ok"},
					}},
					{"handle": []map[string]any{{"handler": "token_issuer"}}},
				},
			}}},
		},
	}
	if len(apiTokens) > 0 {
		apps := cfg["apps"].(map[string]any)
		apps["token_issuer"].(map[string]any)["api_tokens"] = apiTokens
		// Okta's System Log API is below /api/ too: the issuer's, not the gateway's.
		srv := apps["http"].(map[string]any)["servers"].(map[string]any)["srv"].(map[string]any)
		srv["routes"] = append([]map[string]any{{"match": []map[string]any{{"path": []string{"/api/v1/logs"}}},
			"handle": []map[string]any{{"handler": "token_issuer"}}}}, srv["routes"].([]map[string]any)...)
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func newNode(t *testing.T, name, base string, adminPort, httpPort int, dsn, schema string, apiTokens ...string) *node {
	dir := t.TempDir()
	n := &node{t: t, name: name, url: fmt.Sprintf("http://localhost:%d", httpPort), admin: fmt.Sprintf("http://localhost:%d", adminPort),
		cfg: filepath.Join(dir, "caddy.json"), dir: dir, logPath: filepath.Join(dir, "caddy.log")}
	if err := os.WriteFile(n.cfg, []byte(clusterConfig(t, base, adminPort, httpPort, dsn, schema, apiTokens...)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.stop()
		if t.Failed() {
			b, _ := os.ReadFile(n.logPath)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			t.Logf("%s log (last lines):\n%s", n.name, strings.Join(lines[max(0, len(lines)-25):], "\n"))
		}
	})
	return n
}

// launch starts the process; wait blocks until it serves.
func (n *node) launch(bin string) {
	n.t.Helper()
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		n.t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", n.cfg)
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+n.dir, "XDG_CONFIG_HOME="+n.dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	n.proc = testkit.Start(n.t, cmd)
	logf.Close()
}

func (n *node) wait() {
	n.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(n.url + "/oauth2/default/v1/keys")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%s did not start", n.name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (n *node) stop() {
	if n.proc == nil {
		return
	}
	n.proc.Stop()
	n.proc = nil
}

// post sends a form to one of the node's endpoints with the client's
// credentials.
func (n *node) post(path string, form url.Values) (int, map[string]any) {
	n.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, n.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clusterClient, clusterSecret)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatalf("%s %s: %v", n.name, path, err)
	}
	defer res.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(res.Body).Decode(&m)
	return res.StatusCode, m
}

func (n *node) token(form url.Values) map[string]any {
	n.t.Helper()
	status, m := n.post("/oauth2/default/v1/token", form)
	if status != 200 {
		n.t.Fatalf("%s token %v: %d %v", n.name, form.Get("grant_type"), status, m)
	}
	return m
}

func (n *node) active(tok string) bool {
	n.t.Helper()
	status, m := n.post("/oauth2/default/v1/introspect", url.Values{"token": {tok}})
	if status != 200 {
		n.t.Fatalf("%s introspect: %d %v", n.name, status, m)
	}
	return m["active"] == true
}

func (n *node) kids() []string {
	n.t.Helper()
	res, err := http.Get(n.url + "/oauth2/default/v1/keys")
	if err != nil {
		n.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	set, err := jwk.Parse(b)
	if err != nil {
		n.t.Fatalf("%s keys: %v", n.name, err)
	}
	var out []string
	for i := range set.Len() {
		k, _ := set.Key(i)
		out = append(out, k.KeyID())
	}
	slices.Sort(out)
	return out
}

func kidOfToken(t *testing.T, tok string) string {
	t.Helper()
	msg, err := jws.Parse([]byte(tok))
	if err != nil {
		t.Fatal(err)
	}
	return msg.Signatures()[0].ProtectedHeaders().KeyID()
}

// TestClusterTwoNodes: two Caddy processes started together on an empty
// PostgreSQL schema behave as one issuer: they agree on one key set; a
// code from A is redeemed at B; a refresh token from B is refreshed at
// A; a token revoked at A is inactive at B; a key rotated at A is
// published and used by B within the maintenance interval (1s here).
func TestClusterTwoNodes(t *testing.T) {
	dsn := pgtest.DSN(t)
	schema := pgtest.FreshSchema(t, "apiaccess_cluster_")
	bin := testkit.CaddyBinary(t)
	const base = "http://localhost:9480" // the load balancer's address: an issuer name, never listened on
	a := newNode(t, "node A", base, testkit.CaddyPort(t), testkit.CaddyPort(t), dsn, schema)
	b := newNode(t, "node B", base, testkit.CaddyPort(t), testkit.CaddyPort(t), dsn, schema)
	a.launch(bin)
	b.launch(bin)
	a.wait()
	b.wait()

	// One key set, though both nodes found an empty database.
	if ka, kb := a.kids(), b.kids(); len(ka) != 2 || !slices.Equal(ka, kb) {
		t.Fatalf("nodes disagree on keys: A %v, B %v", ka, kb)
	}

	// A code from A, redeemed at B (with PKCE).
	br := browser.New(t, base)
	verifier := strings.Repeat("v", 50)
	authURL := a.url + "/oauth2/default/v1/authorize?" + url.Values{
		"client_id": {clusterClient}, "response_type": {"code"}, "redirect_uri": {clusterRedir}, "state": {"s1"},
		"scope": {"openid orders:read offline_access"}, "nonce": {"n1"},
		"code_challenge": {pkceS256(verifier)}, "code_challenge_method": {"S256"},
	}.Encode()
	res, page := br.Get(authURL)
	if res.StatusCode != 200 {
		t.Fatalf("authorize at A: %d", res.StatusCode)
	}
	f := browser.Fields(page)
	f.Set("username", aliceLogin)
	f.Set("password", alicePass)
	res, _ = br.Post(a.url+"/oauth2/v1/signin", f)
	q := browser.Callback(t, res, clusterRedir)
	tok := b.token(url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {clusterRedir}, "code_verifier": {verifier}})
	rt, _ := tok["refresh_token"].(string)
	if rt == "" || tok["id_token"] == nil {
		t.Fatalf("code redeemed at B: %v", tok)
	}

	// Refreshed at A; the rotated token is replaced at B too.
	next := a.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	rt2, _ := next["refresh_token"].(string)
	if rt2 == "" || rt2 == rt || !b.active(rt2) || b.active(rt) {
		t.Fatalf("refresh at A: new %v active at B %v, old active at B %v", rt2 != "", b.active(rt2), b.active(rt))
	}

	// Revoked at A, inactive at B.
	at := a.token(url.Values{"grant_type": {"client_credentials"}, "scope": {"orders:read"}})["access_token"].(string)
	if !b.active(at) {
		t.Fatal("A's access token inactive at B")
	}
	if status, _ := a.post("/oauth2/default/v1/revoke", url.Values{"token": {at}}); status != 200 {
		t.Fatalf("revoke at A: %d", status)
	}
	if b.active(at) {
		t.Fatal("a token revoked at A is active at B")
	}

	// The code is spent cluster-wide: a second use at A fails and
	// revokes what B issued from it.
	if status, m := a.post("/oauth2/default/v1/token", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {clusterRedir}, "code_verifier": {verifier}}); status != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("code reused at A: %d %v", status, m)
	}
	if b.active(rt2) {
		t.Fatal("the refresh token family of a replayed code is still active at B")
	}

	// Rotated at A: B publishes the new key and signs with it within
	// the maintenance interval.
	req, _ := http.NewRequest(http.MethodPost, a.admin+"/token_issuer/default/keys/rotate", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var rot map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&rot)
	resp.Body.Close()
	kid := rot["active_kid"]
	if resp.StatusCode != 200 || kid == "" {
		t.Fatalf("rotate at A: %d %v", resp.StatusCode, rot)
	}
	rotated := time.Now()
	for {
		cc := url.Values{"grant_type": {"client_credentials"}, "scope": {"orders:read"}}
		ka, kb := a.kids(), b.kids()
		kidA := kidOfToken(t, a.token(cc)["access_token"].(string))
		kidB := kidOfToken(t, b.token(cc)["access_token"].(string))
		if slices.Equal(ka, kb) && kidA == kid && kidB == kid {
			t.Logf("B followed A's rotation after %v", time.Since(rotated).Round(time.Millisecond))
			break
		}
		if time.Since(rotated) > 5*time.Second {
			t.Fatalf("5s after rotating at A: keys A %v B %v, A signs with %s, B with %s, want %s", ka, kb, kidA, kidB, kid)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pkceS256 is the RFC 7636 S256 challenge of a verifier.
func pkceS256(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// privatePostgres runs a PostgreSQL server of its own (initdb into a
// temporary directory), so the test may stop and start it without
// disturbing tests that share the machine's server. It returns the DSN
// and a function that stops the server for the given time and starts
// it again.
func privatePostgres(t *testing.T) (string, func(down time.Duration) error) {
	t.Helper()
	// A free loopback port, not a fixed one: a server left behind by an
	// interrupted run must not make this one fail.
	port := testkit.FreePort(t)
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	testkit.Need(t, len(bins) > 0, "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb) to run a private server")
	binDir := filepath.Dir(bins[len(bins)-1])
	var prefix []string
	var uid, gid = -1, -1
	if os.Geteuid() == 0 {
		// initdb refuses to run as root.
		u, err := user.Lookup("postgres")
		testkit.Need(t, err == nil, "running as root without a postgres user for a private PostgreSQL server")
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		prefix = []string{"runuser", "-u", "postgres", "--"}
	}
	dir, err := os.MkdirTemp("", "apiaccess-pg")
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if uid >= 0 {
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	logPath := filepath.Join(dir, "server.log")
	// run returns a failure with the server's log: pg_ctl only says
	// "Examine the log output", and the directory is removed at the end.
	run := func(args ...string) error {
		args = append(prefix, args...)
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			serverLog, _ := os.ReadFile(logPath)
			return fmt.Errorf("%s: %v\n%s\nserver log:\n%s", strings.Join(args, " "), err, out, serverLog)
		}
		return nil
	}
	if err := run(filepath.Join(binDir, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"); err != nil {
		t.Fatal(err)
	}
	start := func() error {
		return run(filepath.Join(binDir, "pg_ctl"), "-D", data, "-w", "-l", logPath,
			"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", port, dir), "start")
	}
	stop := func(mode string) error {
		return run(filepath.Join(binDir, "pg_ctl"), "-D", data, "-w", "-m", mode, "stop")
	}
	if err := start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stop("immediate"); err != nil {
			t.Error(err)
		}
		os.RemoveAll(dir)
	})
	// restart may run outside the test's goroutine: it returns its error.
	restart := func(down time.Duration) error {
		if err := stop("fast"); err != nil {
			return err
		}
		time.Sleep(down)
		return start()
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port), restart
}

// TestClusterSurvivesPostgresRestart: two nodes refresh token chains
// alternately while PostgreSQL is stopped for 1.5s and started again.
// During the outage answers are 503 temporarily_unavailable (never a
// 500, never a token), the gateway keeps validating, service resumes by
// itself, and afterwards the last refresh token of every chain works:
// no refresh token a client received was lost.
func TestClusterSurvivesPostgresRestart(t *testing.T) {
	dsn, restart := privatePostgres(t)
	bin := testkit.CaddyBinary(t)
	const base = "http://localhost:9485" // an issuer name, never listened on
	nodes := []*node{
		newNode(t, "node A", base, testkit.CaddyPort(t), testkit.CaddyPort(t), dsn, "apiaccess"),
		newNode(t, "node B", base, testkit.CaddyPort(t), testkit.CaddyPort(t), dsn, "apiaccess"),
	}
	for _, n := range nodes {
		n.launch(bin)
	}
	for _, n := range nodes {
		n.wait()
	}

	const chains = 6
	current := make([]string, chains)
	for i := range current {
		m := nodes[i%2].token(url.Values{"grant_type": {"password"}, "username": {aliceLogin}, "password": {alicePass},
			"scope": {"orders:read offline_access"}})
		current[i], _ = m["refresh_token"].(string)
	}
	at := nodes[0].token(url.Values{"grant_type": {"client_credentials"}, "scope": {"orders:read"}})["access_token"].(string)

	var ok, unavailable atomic.Int64
	var mu sync.Mutex
	var problems []string
	problem := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		if len(problems) < 10 {
			problems = append(problems, s)
		}
	}
	stopLoad := make(chan struct{})
	var wg sync.WaitGroup
	for i := range chains {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 10 * time.Second}
			for hop := 0; ; hop++ {
				select {
				case <-stopLoad:
					return
				default:
				}
				n := nodes[(i+hop)%2]
				req, _ := http.NewRequest(http.MethodPost, n.url+"/oauth2/default/v1/token",
					strings.NewReader(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {current[i]}}.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth(clusterClient, clusterSecret)
				res, err := client.Do(req)
				if err != nil {
					problem(fmt.Sprintf("chain %d at %s: %v", i, n.name, err))
					return
				}
				var m map[string]any
				_ = json.NewDecoder(res.Body).Decode(&m)
				res.Body.Close()
				switch {
				case res.StatusCode == 200 && m["refresh_token"] != nil:
					current[i] = m["refresh_token"].(string)
					ok.Add(1)
				case res.StatusCode == 503 && m["error"] == "temporarily_unavailable" && m["access_token"] == nil && res.Header.Get("Retry-After") != "":
					unavailable.Add(1)
					time.Sleep(50 * time.Millisecond)
				default:
					problem(fmt.Sprintf("chain %d at %s: %d %v", i, n.name, res.StatusCode, m))
					return
				}
			}
		}()
	}

	time.Sleep(time.Second)
	before := ok.Load()
	restarted := make(chan error, 1)
	go func() { restarted <- restart(1500 * time.Millisecond) }()
	// The gateway validates locally while the database is away.
	time.Sleep(700 * time.Millisecond)
	req, _ := http.NewRequest(http.MethodGet, nodes[0].url+"/api/orders", nil)
	req.Header.Set("Authorization", "Bearer "+at)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 200 {
		t.Errorf("gateway during the outage: %v %v", res, err)
	} else {
		res.Body.Close()
	}
	if err := <-restarted; err != nil {
		close(stopLoad)
		wg.Wait()
		t.Fatalf("restarting PostgreSQL: %v", err)
	}
	during := ok.Load()
	time.Sleep(2 * time.Second)
	close(stopLoad)
	wg.Wait()
	after := ok.Load()
	t.Logf("refreshes: %d before the restart, %d by its end, %d in all; %d answered 503", before, during, after, unavailable.Load())
	if len(problems) > 0 {
		t.Fatalf("unexpected answers under load:\n%s", strings.Join(problems, "\n"))
	}
	if before == 0 || after <= during {
		t.Fatalf("service did not resume after the restart: %d before, %d at restart, %d at the end", before, during, after)
	}
	if unavailable.Load() == 0 {
		t.Fatal("no request saw the outage: the test did not test it")
	}
	// Every chain's last token still refreshes, at either node.
	for i, rt := range current {
		status, m := nodes[i%2].post("/oauth2/default/v1/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
		if status != 200 || m["refresh_token"] == nil {
			t.Errorf("chain %d: its last refresh token after the restart: %d %v", i, status, m)
		}
	}
}
