package authserver

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

// TestRevocationRecordsBounded replays the store-growth attack: one
// client mints token pairs and revokes them as fast as it can, each
// revocation leaving a record. Repeated revocations of a token write
// nothing and cost nothing; past the per-client budget the client gets
// Okta's 429 and no record is written (the token stays active); another
// client is unaffected; the next window allows revocations again.
func TestRevocationRecordsBounded(t *testing.T) {
	old := revokeBudget
	revokeBudget = 5
	t.Cleanup(func() { revokeBudget = old })
	e := newFlowEnv(t, "https://id.example.com")
	mint := func(client string) string {
		t.Helper()
		status, body := e.post(tokenEP, client, url.Values{"grant_type": {"client_credentials"}})
		if status != 200 {
			t.Fatalf("mint: %d %v", status, body)
		}
		return body["access_token"].(string)
	}
	revoke := func(client, tok string) (int, map[string]any) {
		t.Helper()
		return e.post("/oauth2/default/v1/revoke", client, url.Values{"token": {tok}})
	}
	first := mint("svc")
	for range 20 {
		if status, body := revoke("svc", first); status != 200 {
			t.Fatalf("revoking a revoked token again: %d %v", status, body)
		}
	}
	// A refresh-token family revoked again costs nothing either.
	_, pair := e.redeem("web", e.code("web", webCB, ""), webCB, "")
	for range 10 {
		if status, body := revoke("web", pair["refresh_token"].(string)); status != 200 {
			t.Fatalf("revoking a revoked family again: %d %v", status, body)
		}
	}
	revoked := 1
	var status int
	var body map[string]any
	var last string
	for n := 0; n < 50; n++ {
		last = mint("svc")
		if status, body = revoke("svc", last); status != 200 {
			break
		}
		revoked++
	}
	if revoked != revokeBudget {
		t.Fatalf("%d revocations recorded in one window, budget %d", revoked, revokeBudget)
	}
	if status != http.StatusTooManyRequests || body["errorCode"] != "E0000047" || body["errorSummary"] != "API call exceeded rate limit due to too many requests." {
		t.Fatalf("over budget: %d %v", status, body)
	}
	if !e.active(last) {
		t.Fatal("a revocation refused for the budget was recorded anyway")
	}
	if status, _ := revoke("web", pair["access_token"].(string)); status != 200 {
		t.Fatalf("another client's revocation: %d", status)
	}
	e.clock.Advance(revokeWindow)
	if status, body := revoke("svc", last); status != 200 || e.active(last) {
		t.Fatalf("next window: %d %v", status, body)
	}
}

// TestRevokeExpiredWritesNothing: an expired access token is answered
// 200 (RFC 7009 section 2.2) without spending the budget.
func TestRevokeExpiredWritesNothing(t *testing.T) {
	old := revokeBudget
	revokeBudget = 1
	t.Cleanup(func() { revokeBudget = old })
	e := newFlowEnv(t, "https://id.example.com")
	_, body := e.post(tokenEP, "svc", url.Values{"grant_type": {"client_credentials"}})
	expired := body["access_token"].(string)
	e.clock.Advance(2 * time.Hour)
	for range 3 {
		if status, _ := e.post("/oauth2/default/v1/revoke", "svc", url.Values{"token": {expired}}); status != 200 {
			t.Fatalf("expired token: %d", status)
		}
	}
	_, body = e.post(tokenEP, "svc", url.Values{"grant_type": {"client_credentials"}})
	if status, _ := e.post("/oauth2/default/v1/revoke", "svc", url.Values{"token": {body["access_token"].(string)}}); status != 200 {
		t.Fatalf("live token after expired ones: %d", status)
	}
}

// The budget is per client and subject: one user of a shared app who
// spends it (mint and revoke in a loop) does not stop another user's
// revocations, which okta-auth-js's signOut() awaits.
func TestRevocationBudgetPerSubject(t *testing.T) {
	old := revokeBudget
	revokeBudget = 3
	t.Cleanup(func() { revokeBudget = old })
	e := newFlowEnv(t, "https://id.example.com")
	revoke := func(tok string) int {
		t.Helper()
		status, _ := e.post("/oauth2/default/v1/revoke", "web", url.Values{"token": {tok}})
		return status
	}
	spent := false
	for n := 0; n < 10 && !spent; n++ {
		_, pair := e.redeem("web", e.codeFor("u2", "web", webCB, ""), webCB, "")
		spent = revoke(pair["access_token"].(string)) == http.StatusTooManyRequests
	}
	if !spent {
		t.Fatal("one user's loop never met the budget")
	}
	_, pair := e.redeem("web", e.codeFor("u1", "web", webCB, ""), webCB, "")
	if status := revoke(pair["refresh_token"].(string)); status != 200 {
		t.Fatalf("another user's revocation after the first spent the budget: %d", status)
	}
	if status := revoke(pair["access_token"].(string)); status != 200 || e.active(pair["access_token"].(string)) {
		t.Fatalf("another user's access token revocation: %d", status)
	}
}
