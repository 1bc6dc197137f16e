package e2e

import (
	"net/url"
	"testing"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/postgres/pgtest"
)

// TestClusterRefreshRevocationAcrossNodes: the family link lives in the
// shared store, so a refresh token revoked at node A makes inactive at
// node B the access tokens issued from its family at either node, and
// an access token revoked at A leaves the refresh token working at B.
func TestClusterRefreshRevocationAcrossNodes(t *testing.T) {
	dsn := pgtest.DSN(t)
	schema := pgtest.FreshSchema(t, "apiaccess_revoke_")
	bin := testkit.CaddyBinary(t)
	const base = "http://localhost:9481" // an issuer name, never listened on
	a := newNode(t, "node A", base, testkit.CaddyPort(t), testkit.CaddyPort(t), dsn, schema)
	b := newNode(t, "node B", base, testkit.CaddyPort(t), testkit.CaddyPort(t), dsn, schema)
	a.launch(bin)
	b.launch(bin)
	a.wait()
	b.wait()

	pwd := url.Values{"grant_type": {"password"}, "username": {aliceLogin}, "password": {alicePass}, "scope": {"offline_access orders:read"}}
	first := a.token(pwd)
	second := b.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first["refresh_token"].(string)}})
	at1, at2, rt2 := first["access_token"].(string), second["access_token"].(string), second["refresh_token"].(string)

	// An access token revoked at A: its refresh token still works at B.
	other := a.token(pwd)
	if status, _ := a.post("/oauth2/default/v1/revoke", url.Values{"token": {other["access_token"].(string)}}); status != 200 {
		t.Fatalf("revoke access token at A: %d", status)
	}
	if b.active(other["access_token"].(string)) {
		t.Fatal("an access token revoked at A is active at B")
	}
	renewed := b.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {other["refresh_token"].(string)}})
	if !a.active(renewed["access_token"].(string)) {
		t.Fatal("the access token of a refresh after revoking the old access token is inactive")
	}

	if !b.active(at1) || !b.active(at2) {
		t.Fatal("family access tokens inactive before revocation")
	}
	if status, _ := a.post("/oauth2/default/v1/revoke", url.Values{"token": {rt2}}); status != 200 {
		t.Fatalf("revoke refresh token at A: %d", status)
	}
	if b.active(at1) || b.active(at2) {
		t.Fatalf("after revoking the refresh token at A, B says first %v, refreshed %v; want both inactive", b.active(at1), b.active(at2))
	}
	if !b.active(renewed["access_token"].(string)) {
		t.Fatal("another family's access token went inactive")
	}
}
