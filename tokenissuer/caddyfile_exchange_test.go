package tokenissuer_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer"
)

// TestCaddyfileTrustedServersErrors: a trusted server must be a custom
// authorization server of the issuer, reported at the line of
// `trusted_servers` by `caddy adapt`, and by Provision with the same
// words for the JSON; the directive takes one or more ids, once; a
// public client cannot list the token exchange grant.
func TestCaddyfileTrustedServersErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body string // inside `token_issuer { ... }` after base_url, from line 4
		want       string
		line       int
		provision  bool // also refused by Provision (a check, not syntax)
	}{
		{"unknown trusted server", "authorization_server orders\nauthorization_server inventory {\nscope read\ntrusted_servers orders billing\n}",
			`authorization server "inventory": unknown authorization server "billing" in trusted_servers`, 7, true},
		{"the org server", "authorization_server inventory {\ntrusted_servers org\n}",
			`unknown authorization server "org" in trusted_servers`, 5, true},
		{"no id", "authorization_server inventory {\ntrusted_servers\n}", "wrong argument count", 5, false},
		// tokenExchange refuses public clients whatever their grant_types.
		{"public client with the grant", "client spa {\nauth_method none\ngrant_types urn:ietf:params:oauth:grant-type:token-exchange\n}",
			`client "spa": a public client cannot use client_credentials, password or token exchange`, 6, true},
		{"twice", "authorization_server orders\nauthorization_server inventory {\ntrusted_servers orders\ntrusted_servers orders\n}", `duplicate subdirective "trusted_servers"`, 7, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := "{\n\ttoken_issuer {\nbase_url https://id.example.com\n" + tc.body + "\n\t}\n}\n"
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
			at := "Caddyfile:" + strconv.Itoa(tc.line)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), at) {
				t.Fatalf("adapt: got %v, want an error containing %q at %s", err, tc.want, at)
			}
			if !tc.provision {
				return
			}
			tokenissuer.SkipProvisionChecks(true)
			out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
			tokenissuer.SkipProvisionChecks(false)
			if err != nil {
				t.Fatalf("adapting without the checks: %v", err)
			}
			var c caddy.Config
			if err := json.Unmarshal(out, &c); err != nil {
				t.Fatal(err)
			}
			if err := caddy.Validate(&c); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("JSON: got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
