package authserver

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"
)

// recorder is an Observer that keeps what it was told, one line per call.
type recorder struct {
	mu    sync.Mutex
	calls []string
	slow  time.Duration // longest token-request latency seen
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, s)
}

func (r *recorder) TokenRequest(server, grantType, outcome string, elapsed time.Duration) {
	r.add(fmt.Sprintf("token %s %s %s", server, grantType, outcome))
	r.mu.Lock()
	r.slow = max(r.slow, elapsed)
	r.mu.Unlock()
}
func (r *recorder) Introspection(server string, active bool) {
	r.add(fmt.Sprintf("introspect %s %v", server, active))
}
func (r *recorder) Revocation(server, outcome string) { r.add("revoke " + server + " " + outcome) }
func (r *recorder) KeyRotation(server, reason string) { r.add("rotate " + server + " " + reason) }

// take returns the calls so far and forgets them.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

// Each answer of the token, introspection and revocation endpoints and
// each key rotation is reported once, with the server, the grant type
// and the outcome (OAuth error code on failure).
func TestObserverSeesEveryAnswer(t *testing.T) {
	e := newFlowEnv(t, "https://id.test")
	rec := &recorder{}
	e.iss.obs = rec
	want := func(what string, calls ...string) {
		t.Helper()
		if got := rec.take(); !slices.Equal(got, calls) {
			t.Errorf("%s: observed %q, want %q", what, got, calls)
		}
	}

	status, body := e.post(tokenEP, "svc", url.Values{"grant_type": {GrantClientCredentials}, "scope": {"read"}})
	if status != http.StatusOK {
		t.Fatalf("client_credentials: %d %v", status, body)
	}
	tok := body["access_token"].(string)
	want("grant", "token default client_credentials success")
	if rec.slow <= 0 {
		t.Error("a token request was reported with no elapsed time")
	}
	e.post(tokenEP, "svc", url.Values{"grant_type": {GrantClientCredentials}, "scope": {"nosuch"}})
	want("bad scope", "token default client_credentials invalid_scope")
	e.post(tokenEP, "", url.Values{"grant_type": {GrantClientCredentials}, "client_id": {"svc"}, "client_secret": {"wrong"}})
	want("bad secret", "token default client_credentials invalid_client")
	e.post(tokenEP, "svc", url.Values{"grant_type": {"urn:example:made-up"}})
	want("unknown grant", "token default urn:example:made-up unsupported_grant_type")

	if !e.active(tok) {
		t.Fatal("fresh token inactive")
	}
	want("introspect", "introspect default true")
	e.active("not-a-token")
	want("introspect junk", "introspect default false")
	e.post("/oauth2/default/v1/introspect", "", url.Values{"token": {tok}, "client_id": {"web"}, "client_secret": {"wrong"}})
	want("introspect, bad client")

	e.post("/oauth2/default/v1/revoke", "other", url.Values{"token": {tok}})
	want("revoke another's", "revoke default invalid_request")
	if status, _ := e.post("/oauth2/default/v1/revoke", "svc", url.Values{"token": {tok}}); status != http.StatusOK {
		t.Fatalf("revoke: %d", status)
	}
	want("revoke", "revoke default success")
	if e.active(tok) {
		t.Fatal("revoked token active")
	}
	want("introspect revoked", "introspect default false")

	if _, err := e.iss.RotateKeys(context.Background(), "default"); err != nil {
		t.Fatal(err)
	}
	want("admin rotation", "rotate default admin")
	e.clock.Advance(100 * 24 * time.Hour)
	e.iss.maintainOnce(context.Background(), 90*24*time.Hour)
	want("scheduled rotation", "rotate org scheduled", "rotate default scheduled")
}

// A signing_alg change seen at start publishes a key of the new
// algorithm as NEXT, reported as such; Options
// carries the Observer.
func TestObserverSeesAlgChange(t *testing.T) {
	e := newFlowEnv(t, "https://id.test")
	rec := &recorder{}
	iss, err := New(Options{BaseURL: "https://id.test", OrgSigningAlg: "ES256", Observer: rec,
		Servers: map[string]*ServerConfig{"default": {SigningAlg: "EdDSA"}}})
	if err != nil {
		t.Fatal(err)
	}
	startIssuer(t, iss, e.st)
	if got := rec.take(); !slices.Equal(got, []string{"rotate default published"}) {
		t.Fatalf("observed %q", got)
	}
}

// An Issuer without an Observer serves as before.
func TestNoObserver(t *testing.T) {
	e := newFlowEnv(t, "https://id.test")
	if _, ok := e.iss.obs.(noObserver); !ok {
		t.Fatalf("default observer %T", e.iss.obs)
	}
	if status, body := e.post(tokenEP, "svc", url.Values{"grant_type": {GrantClientCredentials}}); status != http.StatusOK {
		t.Fatalf("client_credentials: %d %v", status, body)
	}
}
