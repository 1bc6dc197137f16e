package caddymodule

import (
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/apiaccess/caddy-apiaccess/caddymodule/validator"
)

// fakeIssuer issues api://default for one issuer URL.
type fakeIssuer struct{}

func (fakeIssuer) Audiences(iss string) ([]string, bool) {
	if iss == "https://id.example.com/oauth2/default" {
		return []string{"api://default"}, true
	}
	return nil, false
}

// TestWarnUnissuedAudience: a route naming an issuer of this Caddy with
// audiences that issuer never issues is warned about at load; a route
// accepting the issued audience, or naming an issuer elsewhere, is not.
func TestWarnUnissuedAudience(t *testing.T) {
	for _, tc := range []struct {
		name string
		is   validator.Issuer
		warn bool
	}{
		{"audience never issued", validator.Issuer{URL: "https://id.example.com/oauth2/default", Audiences: []string{"api://billing", "api://other"}}, true},
		{"issued audience among others", validator.Issuer{URL: "https://id.example.com/oauth2/default", Audiences: []string{"api://billing", "api://default"}}, false},
		{"issuer not of this Caddy", validator.Issuer{URL: "https://login.example.org", Audiences: []string{"api://billing"}}, false},
		{"no audience (refused later)", validator.Issuer{URL: "https://id.example.com/oauth2/default"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.WarnLevel)
			warnUnissuedAudience(fakeIssuer{}, &tc.is, zap.New(core))
			if got := logs.Len(); got != map[bool]int{true: 1, false: 0}[tc.warn] {
				t.Fatalf("%d warnings, want warn=%v: %v", got, tc.warn, logs.All())
			}
			if tc.warn {
				f := logs.All()[0].ContextMap()
				if f["issuer"] != tc.is.URL || len(f["issued_audiences"].([]any)) != 1 {
					t.Errorf("warning fields %v", f)
				}
			}
		})
	}
}
