package authserver

import (
	"net/url"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
)

// TestRefreshReuseLeeway (RFC 9700 section 4.14.2): a rotated refresh
// token still works for the client's leeway, up to and including its
// last second, so a client that lost the answer can retry; used later it
// is a replay and revokes the whole family, the successor included.
func TestRefreshReuseLeeway(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	refresh := func(rt string) (int, map[string]any) {
		return e.post(tokenEP, "web", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	}
	_, tok := e.redeem("web", e.code("web", webCB, ""), webCB, "")
	first := tok["refresh_token"].(string)
	if status, body := refresh(first); status != 200 {
		t.Fatalf("first refresh: %d %v", status, body)
	}
	e.clock.Advance(clientauth.DefaultLeeway)
	status, body := refresh(first)
	if status != 200 {
		t.Fatalf("reuse at the end of the leeway: %d %v", status, body)
	}
	successor := body["refresh_token"].(string)
	e.clock.Advance(time.Second)
	if status, body := refresh(first); status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("reuse after the leeway: %d %v", status, body)
	}
	if status, body := refresh(successor); status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("successor after a replay: %d %v, want the family revoked", status, body)
	}
}
