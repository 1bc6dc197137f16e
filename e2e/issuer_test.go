package e2e

import (
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit/caddytester"
)

// Helpers of tokenissuer's integration tests that the tests moved here
// from there use (tokenissuer_test keeps its own copies).

const (
	sealSecret = "integration-test-seal-secret-0123456789"
	spaID      = "spa"
	aliceLogin = "alice@example.com"
	alicePass  = "alice-password"
	aliceID    = "00u-alice"
)

// issuerSetup is an issuer in this process on base: users in a
// directory file, clients, the "default" authorization server, and the
// site's routes (default: the issuer).
type issuerSetup struct {
	users   []map[string]any
	clients []map[string]any
	server  map[string]any
	routes  []map[string]any
	// site holds more settings of the HTTP server (e.g. trusted_proxies).
	site map[string]any
}

func startIssuer(t *testing.T, s issuerSetup) {
	t.Helper()
	dir := t.TempDir()
	b, _ := json.Marshal(map[string]any{"users": s.users})
	usersPath := filepath.Join(dir, "users.json")
	if err := os.WriteFile(usersPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if s.routes == nil {
		s.routes = []map[string]any{{"handle": []map[string]any{{"handler": "token_issuer"}}}}
	}
	srv := map[string]any{"listen": []string{":" + issuerPort}, "routes": s.routes}
	for k, v := range s.site {
		srv[k] = v
	}
	cfg := map[string]any{
		"admin": map[string]any{"listen": caddytester.AdminAddr()},
		"apps": map[string]any{
			"token_issuer": map[string]any{
				"base_url":              base,
				"key_encryption_secret": sealSecret,
				"storage":               map[string]any{"module": "embedded", "path": filepath.Join(dir, "issuer.db")},
				"directory":             map[string]any{"source": "file", "path": usersPath},
				"clients":               s.clients,
				"authorization_servers": map[string]any{"default": s.server},
			},
			"http": map[string]any{"servers": map[string]any{"srv0": srv}},
		},
	}
	cb, _ := json.Marshal(cfg)
	caddytester.NewTester(t).InitServer(string(cb), "json")
}

// browser is an HTTP client with cookies that does not follow
// redirects, so each step of the flow can be checked.
type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) get(u string) (*http.Response, string) {
	b.t.Helper()
	res, err := b.c.Get(u)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

func (b *browser) post(u string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	res, err := b.c.PostForm(u, form)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

var hidden = regexp.MustCompile(`name="(txn|csrf|code|state|iss)" value="([^"]*)"`)

// fields reads the hidden inputs of a page.
func fields(page string) url.Values {
	v := url.Values{}
	for _, m := range hidden.FindAllStringSubmatch(page, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	return v
}

// signIn posts credentials on a sign-in page.
func (b *browser) signIn(page, user, pw string) (*http.Response, string) {
	b.t.Helper()
	f := fields(page)
	if f.Get("txn") == "" || f.Get("csrf") == "" {
		b.t.Fatalf("not a sign-in page: %.300s", page)
	}
	f.Set("username", user)
	f.Set("password", pw)
	return b.post(base+"/oauth2/v1/signin", f)
}

// callback parses a redirect to the relying party.
func callback(t *testing.T, res *http.Response, redirect string) url.Values {
	t.Helper()
	loc := res.Header.Get("Location")
	if res.StatusCode != http.StatusFound || !strings.HasPrefix(loc, redirect) {
		t.Fatalf("want a redirect to %s, got %d %q", redirect, res.StatusCode, loc)
	}
	u, _ := url.Parse(loc)
	return u.Query()
}
