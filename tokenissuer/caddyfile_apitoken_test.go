package tokenissuer_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer"
)

// TestCaddyfileAPITokenErrors: a literal api_token shorter than 20
// characters, a repeated one, or one with extra arguments is refused at
// its line, without repeating the token; as JSON, Provision refuses the
// short one with the same words.
func TestCaddyfileAPITokenErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
		line             string
		json             bool
	}{
		{"short", "api_token 00abcdefghijklmnopqrstuvwxyz\napi_token tooShort19character", "api_token must be at least 20 characters", "Caddyfile:5", true},
		{"twice", "api_token 00abcdefghijklmnopqrstuvwxyz\napi_token 00abcdefghijklmnopqrstuvwxyz", "api_token given twice", "Caddyfile:5", false},
		{"two arguments", "api_token 00abcdefghijklmnopqrstuvwxyz 00abcdefghijklmnopqrstuvwxyz", "wrong argument count", "Caddyfile:4", false},
		{"no argument", "api_token", "wrong argument count", "Caddyfile:4", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := "{\n\ttoken_issuer {\nbase_url https://id.example.com\n" + tc.body + "\n\t}\n}\n"
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.line) {
				t.Fatalf("adapt: got %v, want %q at %s", err, tc.want, tc.line)
			}
			if strings.Contains(err.Error(), "tooShort") {
				t.Errorf("the error repeats the token: %v", err)
			}
			if !tc.json {
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
			if err := caddy.Validate(&c); err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "tooShort") {
				t.Errorf("JSON: got %v, want %q", err, tc.want)
			}
		})
	}
}

// TestAPITokenPlaceholder: a placeholder is resolved at provision; one
// that resolves to a short value is refused then.
func TestAPITokenPlaceholder(t *testing.T) {
	t.Setenv("APIACCESS_TEST_API_TOKEN", "short")
	cfg := "{\n\ttoken_issuer {\nbase_url https://id.example.com\napi_token {env.APIACCESS_TEST_API_TOKEN}\n\t}\n}\n"
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	var c caddy.Config
	if err := json.Unmarshal(out, &c); err != nil {
		t.Fatal(err)
	}
	if err := caddy.Validate(&c); err == nil || !strings.Contains(err.Error(), "api_token must be at least 20 characters") {
		t.Errorf("short resolved token: %v", err)
	}
	t.Setenv("APIACCESS_TEST_API_TOKEN", strings.Repeat("t", 42))
	if err := caddy.Validate(&c); err != nil {
		t.Errorf("valid resolved token: %v", err)
	}
}
