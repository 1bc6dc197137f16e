package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit/caddytester"
)

// The issuer set-up of tokenissuer's integration tests, for the tests
// moved here from there (tokenissuer_test keeps its own copy; the
// browser both use is internal/testkit/browser).

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
