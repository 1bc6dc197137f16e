package tokenissuer_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// TestValidateRefusesCleartextRedirectURI: `caddy validate` (adapt, then
// provision without starting) refuses an http redirect URI to a host
// that is not loopback, naming the client, the list and the URI
// (finding 16).
func TestValidateRefusesCleartextRedirectURI(t *testing.T) {
	for field, want := range map[string]string{
		"redirect_uris":             `client "spa": redirect_uris: "http://app.example.com/callback" uses http for a host that is not loopback`,
		"post_logout_redirect_uris": `client "spa": post_logout_redirect_uris: "http://app.example.com/callback" uses http for a host that is not loopback`,
	} {
		t.Run(field, func(t *testing.T) {
			cfg := "{\n\ttoken_issuer {\nbase_url https://id.example.com\nclient spa {\nauth_method none\ngrant_types authorization_code\n" +
				field + " http://app.example.com/callback\n}\n\t}\n}\n"
			out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
			if err != nil {
				t.Fatalf("adapting: %v", err)
			}
			var c caddy.Config
			if err := json.Unmarshal(out, &c); err != nil {
				t.Fatal(err)
			}
			if err := caddy.Validate(&c); err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("caddy validate: %v, want an error containing %q", err, want)
			}
		})
	}
}
