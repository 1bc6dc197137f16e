package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/apiaccess/caddy-apiaccess/caddymodule"
	_ "github.com/apiaccess/caddy-apiaccess/tokenissuer"
)

// TestUnissuedAudienceWarning: `caddy validate` of a route that names an
// issuer of the same Caddy with an audience that issuer never issues
// logs a warning naming the issuer and both audiences; with the issued
// audience there is none. Nothing is fetched: the app answers in process.
func TestUnissuedAudienceWarning(t *testing.T) {
	for _, tc := range []struct {
		audience string
		warn     bool
	}{{"api://billing", true}, {"api://default", false}} {
		t.Run(tc.audience, func(t *testing.T) {
			logFile := filepath.Join(t.TempDir(), "caddy.log")
			cfg := `{
	log {
		output file ` + logFile + `
		level WARN
	}
	token_issuer {
		base_url https://id.example.com
		authorization_server default
	}
}
api.example.com {
	require_token https://id.example.com/oauth2/default ` + tc.audience + `
	respond "ok"
}
`
			out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
			if err != nil {
				t.Fatal(err)
			}
			var c caddy.Config
			if err := json.Unmarshal(out, &c); err != nil {
				t.Fatal(err)
			}
			if err := caddy.Validate(&c); err != nil {
				t.Fatalf("validate: %v", err)
			}
			logs, _ := os.ReadFile(logFile)
			var found bool
			for _, line := range strings.Split(string(logs), "\n") {
				if !strings.Contains(line, "accepts no audience this issuer issues") {
					continue
				}
				found = true
				var entry map[string]any
				if err := json.Unmarshal([]byte(line), &entry); err != nil {
					t.Fatalf("log line %q: %v", line, err)
				}
				if entry["level"] != "warn" || entry["issuer"] != "https://id.example.com/oauth2/default" ||
					!strings.Contains(line, `"issued_audiences":["api://default"]`) || !strings.Contains(line, `"accepted_audiences":["api://billing"]`) {
					t.Errorf("warning %s", line)
				}
			}
			if found != tc.warn {
				t.Fatalf("warning logged: %v, want %v; log:\n%s", found, tc.warn, logs)
			}
		})
	}
}
