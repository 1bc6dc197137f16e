package caddymodule_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// writeTestKeyPEM writes a P-256 private key (PKCS #8 PEM) to a
// temporary file and returns its path.
func writeTestKeyPEM(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "gateway-key.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRevocationsCaddyfileErrors checks that mistakes in the
// `revocations` block fail with the problem and its line.
func TestRevocationsCaddyfileErrors(t *testing.T) {
	const good = "feed https://idp.example.com\nclient_id gw\nclient_secret s\n"
	for _, tc := range []struct {
		name, block string // inside `revocations { ... }`, from line 5
		want        []string
	}{
		{"unknown subdirective", good + "stale 1s", []string{`unknown subdirective "stale"`, "Caddyfile:8"}},
		{"bad duration", good + "stale_after soon", []string{`stale_after "soon"`, "Caddyfile:8"}},
		{"zero duration", good + "stale_after 0s", []string{`stale_after "0s": zero would mean the default`, "Caddyfile:8"}},
		{"on_stale value", good + "on_stale deny", []string{`on_stale "deny": want warn or fail`, "Caddyfile:8"}},
		{"feed over http", "feed http://idp.example.com\nclient_id gw\nclient_secret s", []string{"must be https (http only to a loopback address)", "Caddyfile:5"}},
		{"feed with a query", "feed https://idp.example.com/?x=1\nclient_id gw\nclient_secret s", []string{"without query", "Caddyfile:5"}},
		{"client_id without feed", "stale_after 1m\nclient_id gw\nclient_secret s", []string{"revocations: client_id is for a feed, and feed is not set", "Caddyfile:6"}},
		{"secret without feed", "on_stale fail\nclient_secret s", []string{"revocations: client_secret is for a feed", "Caddyfile:6"}},
		{"private_key without feed", "private_key /k.pem kid", []string{"revocations: private_key is for a feed", "Caddyfile:5"}},
		{"no client_id", "feed https://idp.example.com\nclient_secret s", []string{"revocations: client_id is required", "Caddyfile:7"}},
		{"no credentials", "feed https://idp.example.com\nclient_id gw", []string{"revocations: client_secret or private_key is required", "Caddyfile:7"}},
		{"both credentials", good + "private_key /k.pem", []string{"client_secret or private_key, not both", "Caddyfile:8"}},
		{"private_key arguments", "feed https://idp.example.com\nclient_id gw\nprivate_key /k.pem kid extra", []string{"wrong argument count", "Caddyfile:7"}},
		{"duplicate feed", good + "feed https://idp.example.com", []string{`duplicate subdirective "feed"`, "Caddyfile:8"}},
		{"duplicate stale_after", good + "stale_after 1m\nstale_after 1m", []string{`duplicate subdirective "stale_after"`, "Caddyfile:9"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := "api.example.com {\n\trequire_token https://idp.example.com/oauth2/default api://default {\n\t\tscopes read\n\t\trevocations {\n" + tc.block + "\n\t\t}\n\t}\n}\n"
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
			if err == nil {
				t.Fatalf("no error for:\n%s", cfg)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	t.Run("revocations twice", func(t *testing.T) {
		cfg := "api.example.com {\n\trequire_token https://idp.example.com/oauth2/default api://default {\n\t\trevocations {\n" + good + "}\n\t\trevocations {\n" + good + "}\n\t}\n}\n"
		_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
		if err == nil || !strings.Contains(err.Error(), `duplicate subdirective "revocations"`) || !strings.Contains(err.Error(), "Caddyfile:8") {
			t.Fatalf("err %v", err)
		}
	})
}

// TestRevocationsProvisionErrors checks what only provisioning can
// see (JSON configs, placeholders), as `caddy validate` does.
func TestRevocationsProvisionErrors(t *testing.T) {
	t.Setenv("EMPTY_FEED_SECRET", "")
	for _, tc := range []struct{ name, handler, want string }{
		{"feed covering no issuer", `"revocations":{"feed":"https://other.example.com","client_id":"gw","client_secret":"s"}`,
			"the feed https://other.example.com covers none of the route's issuers"},
		{"feed over http (JSON)", `"revocations":{"feed":"http://idp.example.com","client_id":"gw","client_secret":"s"}`,
			"must be https"},
		{"empty secret", `"revocations":{"feed":"https://idp.example.com","client_id":"gw","client_secret":"{env.EMPTY_FEED_SECRET}"}`,
			"revocations client_secret"},
		{"client_id without feed (JSON)", `"revocations":{"client_id":"gw","stale_after":20000000000}`,
			"client_id, client_secret and private_key are for a feed, and feed is not set"},
		{"no feed, no local issuer", `"revocations":{"on_stale":"fail"}`,
			"no issuer of the route is served by a token_issuer app of this Caddy"},
		{"no client_id", `"revocations":{"feed":"https://idp.example.com","client_secret":"s"}`,
			"client_id is required"},
		{"on_stale (JSON)", `"revocations":{"feed":"https://idp.example.com","client_id":"gw","client_secret":"s","on_stale":"deny"}`,
			`on_stale "deny"`},
		{"missing key file", `"revocations":{"feed":"https://idp.example.com","client_id":"gw","private_key":"/nonexistent/k.pem"}`,
			"revocations private_key"},
		{"key file not a key", `"revocations":{"feed":"https://idp.example.com","client_id":"gw","private_key":"` + filepath.Join(t.TempDir()) + `"}`,
			"revocations private_key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			js := `{"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:0"],"routes":[{"handle":[{"handler":"require_token",` +
				`"issuers":[{"url":"https://idp.example.com/oauth2/default","audience":["api://default"]}],` + tc.handler + `}]}]}}}}}`
			var c caddy.Config
			if err := json.Unmarshal([]byte(js), &c); err != nil {
				t.Fatal(err)
			}
			err := caddy.Validate(&c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}
