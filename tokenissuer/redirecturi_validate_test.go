package tokenissuer_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// TestValidateRefusesCleartextRedirectURI: `caddy validate` of a JSON
// config (provision without starting) refuses an http redirect URI to a
// host that is not loopback, naming the client, the list and the URI
// (finding 16). The Caddyfile refuses it while parsing, with the line
// (TestCaddyfileErrors).
func TestValidateRefusesCleartextRedirectURI(t *testing.T) {
	for field, want := range map[string]string{
		"redirect_uris":             `client "spa": redirect_uris: "http://app.example.com/callback" uses http for a host that is not loopback`,
		"post_logout_redirect_uris": `client "spa": post_logout_redirect_uris: "http://app.example.com/callback" uses http for a host that is not loopback`,
	} {
		t.Run(field, func(t *testing.T) {
			cfg := `{"apps": {"token_issuer": {"base_url": "https://id.example.com", "clients": [{"client_id": "spa", "token_endpoint_auth_method": "none",
				"grant_types": ["authorization_code"], "` + field + `": ["http://app.example.com/callback"]}]}}}`
			var c caddy.Config
			if err := json.Unmarshal([]byte(cfg), &c); err != nil {
				t.Fatal(err)
			}
			if err := caddy.Validate(&c); err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("caddy validate: %v, want an error containing %q", err, want)
			}
		})
	}
}
