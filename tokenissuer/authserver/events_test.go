package authserver

import (
	"context"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// event returns the fields of the last event named name, or fails.
func (e *flowEnv) event(name string) map[string]any {
	e.t.Helper()
	var found map[string]any
	for _, entry := range e.logs.FilterMessage(name).All() {
		found = entry.ContextMap()
	}
	if found == nil {
		e.t.Fatalf("no %s event", name)
	}
	return found
}

// TestTokenEventFields: every token decision is one event saying who
// (client, user), what (grant type, scopes), why (policy and rule, or
// the error and its reason) and which token (jti), for the server that
// decided; and none of them holds the code, a secret or a token.
func TestTokenEventFields(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	code := e.code("web", webCB, "")
	_, tok := e.redeem("web", code, webCB, "")
	at, _ := tok["access_token"].(string)
	got := e.event(EventTokenGrant)
	jti, _ := got["jti"].(string)
	want := map[string]any{"authorization_server": "default", "issuer": "https://id.example.com/oauth2/default",
		"client_id": "web", "user_id": "u1", "grant_type": "authorization_code",
		"scopes": []any{"openid", "offline_access", "read"}, "policy": "p", "rule": "r", "jti": jti, "outcome": "SUCCESS"}
	if !strings.HasPrefix(jti, "AT.") || !reflect.DeepEqual(got, want) {
		t.Fatalf("grant event:\n got %v\nwant %v", got, want)
	}

	// The same code again: a failure event with the error and a reason.
	e.redeem("web", code, webCB, "")
	got = e.event(EventTokenDenied)
	// The reason is the issuer's own, for the log, not the description
	// the client was told.
	_, answer := e.redeem("web", code, webCB, "")
	if got["outcome"] != "FAILURE" || got["error"] != "invalid_grant" || got["reason"] == "" || got["reason"] == answer["error_description"] ||
		got["client_id"] != "web" || got["grant_type"] != "authorization_code" {
		t.Fatalf("denied event: %v", got)
	}

	// client_credentials: no user in the event.
	e.post(tokenEP, "svc", url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}})
	got = e.event(EventTokenGrant)
	if _, ok := got["user_id"]; ok || got["client_id"] != "svc" || got["grant_type"] != "client_credentials" {
		t.Fatalf("client_credentials event: %v", got)
	}

	for _, entry := range e.logs.All() {
		line := fmt.Sprint(entry.Message, entry.ContextMap())
		for _, secret := range []string{code, at, tok["refresh_token"].(string), tok["id_token"].(string), "web-secret", "svc-secret"} {
			if strings.Contains(line, secret) {
				t.Fatalf("event %q holds a secret: %s", entry.Message, line)
			}
		}
	}
}

// rotations returns the key rollover events of server id, oldest first.
func (e *flowEnv) rotations(id string) []map[string]any {
	var out []map[string]any
	for _, entry := range e.logs.FilterMessage(EventKeyRollover).All() {
		if m := entry.ContextMap(); m["authorization_server"] == id {
			out = append(out, m)
		}
	}
	return out
}

// TestKeyRotationEvents: the first key, an admin rotation and a
// scheduled one are each logged with the reason and the kid that signs
// from then on, which is the first key the JWKS publishes.
func TestKeyRotationEvents(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	const jwks = "/oauth2/default/v1/keys"
	check := func(n int, reason string) {
		t.Helper()
		ev := e.rotations("default")
		if len(ev) != n {
			t.Fatalf("%d rollover events, want %d: %v", len(ev), n, ev)
		}
		last := ev[n-1]
		if active := publishedKids(t, e.iss, jwks)[0]; last["active_kid"] != active || last["outcome"] != "SUCCESS" || last["reason"] != reason {
			t.Fatalf("event %v, want reason %q and active kid %s", last, reason, active)
		}
	}
	check(1, "created")
	kid, err := e.iss.RotateKeys(context.Background(), "default")
	if err != nil {
		t.Fatal(err)
	}
	check(2, "manual")
	if got := e.rotations("default")[1]["active_kid"]; got != kid {
		t.Fatalf("manual rotation logged %v, RotateKeys said %s", got, kid)
	}
	e.clock.Advance(25 * time.Hour)
	e.iss.maintainOnce(context.Background(), 24*time.Hour)
	check(3, "scheduled")
}

// TestQuietMaintenance: a maintenance pass with nothing due logs
// nothing, and an issuer started again on the same store finds its
// keys and logs no rollover.
func TestQuietMaintenance(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	before := e.logs.Len()
	e.iss.maintainOnce(context.Background(), 24*time.Hour)
	if e.logs.Len() != before {
		t.Fatalf("a maintenance pass with nothing due logged %v", e.logs.All()[before:])
	}
	again, err := New(Options{BaseURL: "https://id.example.com", Logger: zap.New(e.core), Now: e.clock.Now, OrgSigningAlg: "ES256",
		Servers: map[string]*ServerConfig{"default": {SigningAlg: "ES256"}}})
	if err != nil {
		t.Fatal(err)
	}
	startIssuer(t, again, e.st)
	if n := len(e.rotations("default")); n != 1 {
		t.Fatalf("%d rollover events after a restart on the same keys, want the first one only", n)
	}
}
