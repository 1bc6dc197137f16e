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

// TestCaddyfileInlineHookErrors: a hook's mistakes and a rule naming no
// hook are reported by `caddy adapt` at their line, and by Provision
// (`caddy validate` of the JSON) in the same words.
func TestCaddyfileInlineHookErrors(t *testing.T) {
	const rule = "authorization_server default {\nscope read\npolicy p {\nclients *\nrule r {\ngrant_types client_credentials\nscopes *\n" // rule body from line 11
	for _, tc := range []struct {
		name, body string // inside `token_issuer { ... }` after base_url, from line 4
		want       string
		line       int
	}{
		{"unknown hook in a rule", rule + "inline_hook nosuch\n}\n}\n}", `rule "r": unknown inline hook "nosuch"`, 11},
		{"unknown hook beside a defined one", "inline_hook enrich {\nurl https://hooks.example.com/t\n}\n" + rule + "inline_hook enrch\n}\n}\n}", `unknown inline hook "enrch"`, 14},
		{"plain http to another host", "inline_hook enrich {\nurl http://hooks.example.com/t\n}", `inline hook "enrich": url "http://hooks.example.com/t" must use https`, 5},
		{"timeout over Okta's", "inline_hook enrich {\nurl https://hooks.example.com/t\ntimeout 5s\n}", "timeout 5s must be positive and at most 3s", 6},
		{"reserved header", "inline_hook enrich {\nurl https://hooks.example.com/t\nheader Content-Type text/plain\n}", `header "Content-Type" cannot be set`, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := "{\n\ttoken_issuer {\nbase_url https://id.example.com\n" + tc.body + "\n\t}\n}\n"
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
			at := "Caddyfile:" + strconv.Itoa(tc.line)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasSuffix(err.Error(), ", at "+at) {
				t.Errorf("adapt: got %v, want an error containing %q at %s", err, tc.want, at)
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

// TestCaddyfileInlineHookSyntax: the parser's own errors name the line.
func TestCaddyfileInlineHookSyntax(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"defined twice", "inline_hook h {\nurl https://a.test/\n}\ninline_hook h {\nurl https://b.test/\n}", "Caddyfile:7"},
		{"unknown subdirective", "inline_hook h {\nuri https://a.test/\n}", "Caddyfile:5"},
		{"header without a value", "inline_hook h {\nurl https://a.test/\nheader X-A\n}", "Caddyfile:6"},
		{"url twice", "inline_hook h {\nurl https://a.test/\nurl https://b.test/\n}", "Caddyfile:6"},
		{"rule hook twice", "inline_hook h {\nurl https://a.test/\n}\nauthorization_server default {\npolicy p {\nclients *\nrule r {\ngrant_types client_credentials\nscopes *\ninline_hook h\ninline_hook h\n}\n}\n}", "Caddyfile:14"},
	} {
		cfg := "{\n\ttoken_issuer {\nbase_url https://id.example.com\n" + tc.body + "\n\t}\n}\n"
		_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error at %s", tc.name, err, tc.want)
		}
	}
}

// TestCaddyfileInlineHookPlaceholders: a url and an authorization
// holding placeholders adapt; they are checked once resolved.
func TestCaddyfileInlineHookPlaceholders(t *testing.T) {
	cfg := "{\n\ttoken_issuer {\nbase_url https://id.example.com\ninline_hook h {\nurl {env.HOOK_URL}\nauthorization {env.HOOK_SECRET}\n}\nauthorization_server default {\npolicy p {\nclients *\nrule r {\ngrant_types client_credentials\nscopes *\ninline_hook h\n}\n}\n}\n\t}\n}\n"
	if _, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil); err != nil {
		t.Fatalf("adapt: %v", err)
	}
}
