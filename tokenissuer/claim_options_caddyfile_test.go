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

// TestClaimOptionsCaddyfileErrors: the claim subdirectives `disabled`
// and `always_include_in_token` refuse bad arguments and repeats with
// the file and line of the offending subdirective.
func TestClaimOptionsCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body string // inside `token_issuer { ... }`, from line 3
		want       string
		line       int
	}{
		{"always_include_in_token not a boolean", "base_url https://id.example.com\nauthorization_server default {\nclaim login user.login {\ntoken id_token\nalways_include_in_token sometimes\n}\n}",
			`always_include_in_token "sometimes": must be true or false`, 7},
		{"always_include_in_token in another spelling", "base_url https://id.example.com\nauthorization_server default {\nclaim login user.login {\nalways_include_in_token TRUE\n}\n}",
			`always_include_in_token "TRUE": must be true or false`, 6},
		{"always_include_in_token without argument", "base_url https://id.example.com\nauthorization_server default {\nclaim login user.login {\nalways_include_in_token\n}\n}",
			"wrong argument count", 6},
		{"always_include_in_token twice", "base_url https://id.example.com\nauthorization_server default {\nclaim login user.login {\ntoken id_token\nalways_include_in_token true\nalways_include_in_token false\n}\n}",
			`duplicate subdirective "always_include_in_token"`, 8},
		{"disabled with an argument", "base_url https://id.example.com\nauthorization_server default {\nclaim tier `\"a\"` {\ndisabled true\n}\n}",
			"wrong argument count", 6},
		{"disabled twice", "base_url https://id.example.com\nauthorization_server default {\nclaim tier `\"a\"` {\ndisabled\ndisabled\n}\n}",
			`duplicate subdirective "disabled"`, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := "{\n\ttoken_issuer {\n" + tc.body + "\n\t}\n}\n"
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
			at := "Caddyfile:" + strconv.Itoa(tc.line)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), at) {
				t.Errorf("adapt: got %v, want an error containing %q at %s", err, tc.want, at)
			}
		})
	}
}

// TestClaimOptionsCheckErrors: the load-time checks of the claim
// options run while adapting, at the line of the offending value, and
// Provision refuses the same JSON with the same words: false for an
// access-token claim (Okta: always true there), and a disabled claim is
// still checked.
func TestClaimOptionsCheckErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body string // inside `token_issuer { ... }` after base_url, from line 4
		want       string
		line       int
	}{
		{"always false on an access-token claim", "authorization_server default {\nclaim tier `\"a\"` {\ntoken access_token\nalways_include_in_token false\n}\n}",
			`claim "tier": always_include_in_token false applies to id_token claims only`, 7},
		{"always false on a default-token claim", "authorization_server default {\nclaim tier `\"a\"` {\nalways_include_in_token false\n}\n}",
			`claim "tier": always_include_in_token false applies to id_token claims only`, 6},
		{"disabled claim with an unknown field", "authorization_server default {\nclaim team `client.nosuch` {\ndisabled\n}\n}",
			"undefined field 'nosuch'", 5},
		{"disabled claim with an unknown scope", "authorization_server default {\nclaim team `\"a\"` {\ndisabled\nscopes nosuch\n}\n}",
			`claim "team": unknown scope "nosuch"`, 7},
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
