package authserver

import (
	"net/url"
	"testing"
)

// TestRefreshCannotWidenScope (RFC 6749 section 6): a refresh may ask
// for less than was granted, never more; in particular not for a
// consent-required scope the user never approved. A refused attempt
// leaves the refresh token usable.
func TestRefreshCannotWidenScope(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	_, tok := e.redeem("web", e.code("web", webCB, ""), webCB, "")
	rt := tok["refresh_token"].(string)
	refresh := func(scope string) (int, map[string]any) {
		f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
		if scope != "" {
			f.Set("scope", scope)
		}
		return e.post(tokenEP, "web", f)
	}
	for _, wider := range []string{"pay", "read pay", "openid offline_access read pay", "profile"} {
		if status, body := refresh(wider); status != 400 || body["error"] != "invalid_scope" || body["access_token"] != nil {
			t.Fatalf("refresh asking %q: %d %v", wider, status, body)
		}
	}
	if status, body := refresh("offline_access read"); status != 200 || body["scope"] != "offline_access read" {
		t.Fatalf("narrower refresh: %d %v", status, body)
	}
}
