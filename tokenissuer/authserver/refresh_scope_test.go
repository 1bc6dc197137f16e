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

// TestNarrowedRefreshKeepsTheGrant: a refresh that asks for less
// (here without offline_access) gets an access token of that scope and
// still a successor refresh token, whose scope is the one originally
// granted (RFC 6749 section 6: "the refresh token scope MUST be
// identical to that of the refresh token included by the client").
// The presented token is rotated either way, so without a successor the
// client would be stranded.
func TestNarrowedRefreshKeepsTheGrant(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	_, tok := e.redeem("web", e.code("web", webCB, ""), webCB, "")
	granted := tok["scope"]
	refresh := func(rt, scope string) (int, map[string]any) {
		f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
		if scope != "" {
			f.Set("scope", scope)
		}
		return e.post(tokenEP, "web", f)
	}
	status, narrow := refresh(tok["refresh_token"].(string), "read")
	if status != 200 || narrow["scope"] != "read" {
		t.Fatalf("narrower refresh: %d %v", status, narrow)
	}
	next, _ := narrow["refresh_token"].(string)
	if next == "" {
		t.Fatalf("narrower refresh gave no successor refresh token: %v", narrow)
	}
	if status, full := refresh(next, ""); status != 200 || full["scope"] != granted {
		t.Fatalf("refresh with the successor and no scope: %d %v, want the original grant %q", status, full, granted)
	}
}
