package authserver

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/hashgate"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
)

// signTestAccess completes c for s with lifetime and signs it, as plan
// and signMint do, for tokens no grant gives.
func signTestAccess(i *Issuer, s *Server, c accessClaims, lifetime time.Duration) (string, *oauth.Error) {
	i.completeAccess(s, &c, lifetime)
	return i.signAccess(context.Background(), s, c, nil)
}

// fullSignGate replaces the signing gate with one of a single slot,
// held until the returned release is called, and no queue to speak of.
func fullSignGate(t *testing.T) (release func()) {
	t.Helper()
	old := signGate
	signGate = hashgate.New(hashgate.Config{Concurrency: 1, Queue: 1, Wait: 10 * time.Millisecond})
	held, done := make(chan struct{}), make(chan struct{})
	go func() { _ = signGate.Run(context.Background(), 0, func() { close(held); <-done }) }()
	<-held
	var once bool
	release = func() {
		if !once {
			once = true
			close(done)
		}
	}
	t.Cleanup(func() { release(); signGate = old })
	return release
}

// TestSigningQueueFullKeepsTheCode: when no signature can be made in
// time the token endpoint answers 503 temporarily_unavailable with
// Retry-After, and the authorization code or the approved device grant
// it would have used up is kept, so the client's retry works instead of
// sending the user through sign-in again.
func TestSigningQueueFullKeepsTheCode(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	code := e.code("web", webCB, "")
	// An approved device grant.
	da := e.deviceAuthorize()
	victim := e.session("u1")
	w := e.browse(http.MethodGet, strings.TrimPrefix(da.complete, "https://id.example.com"), nil, victim)
	f := approvalForm(w.Body.String(), "allow")
	f.Set("code_matches", "yes")
	if w = e.browse(http.MethodPost, devicePage, f, victim, cookieOf(w, "__Host-apiaccess_txn")); w.Code != 200 {
		t.Fatalf("device approval: %d", w.Code)
	}

	release := fullSignGate(t)
	if status, body := e.redeem("web", code, webCB, ""); status != http.StatusServiceUnavailable || body["error"] != "temporarily_unavailable" {
		t.Fatalf("code while signing is full: %d %v", status, body)
	}
	if b := e.poll(da); b["error"] != "temporarily_unavailable" {
		t.Fatalf("device grant while signing is full: %v", b)
	}
	release()
	if status, body := e.redeem("web", code, webCB, ""); status != 200 || body["access_token"] == nil {
		t.Fatalf("the code retried: %d %v", status, body)
	}
	e.clock.Advance(time.Second) // sooner than the poll interval
	if _, b := e.post(tokenEP, "tv", url.Values{"grant_type": {GrantDeviceCode}, "device_code": {da.deviceCode}}); b["access_token"] == nil {
		t.Fatalf("the device grant retried: %v", b)
	}
	// Still single use.
	if status, body := e.redeem("web", code, webCB, ""); status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("the code a third time: %d %v", status, body)
	}
}
