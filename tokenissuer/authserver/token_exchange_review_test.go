package authserver

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/inlinehook"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// TestTokenExchangeSubjectRevoked: revoking the subject access token
// itself at /v1/revoke (a token without a refresh-token family, so no
// family mark reaches what was exchanged from it) makes the tokens
// exchanged from it, down a chain, inactive at introspection, refuses
// exchanging them again and publishes them on the revocation feed (all
// a gateway following it sees); a token exchanged from another subject
// stays.
func TestTokenExchangeSubjectRevoked(t *testing.T) {
	e := newExchangeEnv(t, nil)
	subject := e.userToken("read")["access_token"].(string)
	_, b := e.exchange(inventoryEP, "api1", subject, nil)
	x, _ := b["access_token"].(string)
	_, b = e.exchange(inventoryEP, "api2", x, nil)
	y, _ := b["access_token"].(string)
	_, b = e.exchange(inventoryEP, "api1", e.userToken("read")["access_token"].(string), nil)
	other, _ := b["access_token"].(string)
	if x == "" || y == "" || other == "" || !e.activeAt("inventory", x) || !e.activeAt("inventory", y) {
		t.Fatalf("exchanges: %v", b)
	}
	view := e.iss.RevocationView()
	for i, tok := range []string{x, y} {
		if view.Revoked(payload(t, tok)["jti"].(string), "", "", "", time.Time{}) {
			t.Fatalf("exchanged token %d is on the feed before its subject was revoked", i)
		}
	}
	e.revoke("web", subject)
	if e.activeAt("default", subject) {
		t.Fatal("the revoked subject token is active")
	}
	for i, tok := range []string{x, y} {
		if e.activeAt("inventory", tok) {
			t.Errorf("token %d exchanged from a revoked access token is active", i)
		}
		if s, b := e.exchange(inventoryEP, "api2", tok, nil); s != http.StatusBadRequest || b["error"] != "invalid_grant" || e.lastDenial() != "revoked" {
			t.Errorf("token %d exchanged from a revoked access token exchanged again: %d %v", i, s, b["error"])
		}
		if !view.Revoked(payload(t, tok)["jti"].(string), "", "", "", time.Time{}) {
			t.Errorf("token %d exchanged from a revoked access token is not on the revocation feed", i)
		}
	}
	if !e.activeAt("inventory", other) || view.Revoked(payload(t, other)["jti"].(string), "", "", "", time.Time{}) {
		t.Error("a token exchanged from another subject fell with the revoked one")
	}
	// A chain record written before links named the jti (no "j") is
	// read, and checked for cut-offs only.
	jti := payload(t, other)["jti"].(string)
	old, _ := json.Marshal([]map[string]any{{"c": "web", "u": "u1", "t": time.Now().Add(-time.Hour).Unix()}})
	if err := e.iss.store.PutRecord(context.Background(), store.NSExchangeChain, jti, old, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if !e.activeAt("inventory", other) {
		t.Error("a link without a jti revoked its token")
	}
}

// TestTokenExchangeFamilyFullBeforeIssue: a subject token whose
// refresh-token family already has maxFamilyTokens live access tokens
// is refused before anything is issued: the rule's inline hook is not
// called, and the failure names no token (debugData has no jti).
func TestTokenExchangeFamilyFullBeforeIssue(t *testing.T) {
	// The family's index, and the index of the tokens exchanged from the
	// subject (exchangedKey), bound alike.
	for _, which := range []string{"family", "exchanged"} {
		t.Run(which, func(t *testing.T) { testExchangeFullBeforeIssue(t, which) })
	}
}

func testExchangeFullBeforeIssue(t *testing.T, which string) {
	el := &memEventLog{}
	h := newHookServer(t, answerJSON(`{"commands":[]}`))
	e := newExchangeEnvWith(t, el, func(o *Options) {
		o.InlineHooks = []*inlinehook.Config{{Name: "h", URL: h.srv.URL}}
		o.Servers["inventory"].Policies[0].Rules[0].InlineHook = "h"
	})
	subject := e.userToken("offline_access", "read")["access_token"].(string)
	ctx := context.Background()
	fam, err := e.iss.familyOf(ctx, payload(t, subject)["jti"].(string))
	if err != nil || fam == "" {
		t.Fatalf("family of the subject: %q %v", fam, err)
	}
	if which == "exchanged" {
		fam = exchangedKey(payload(t, subject)["jti"].(string))
	}
	list := make([]familyToken, maxFamilyTokens)
	for n := range list {
		list[n] = familyToken{JTI: "filler-" + strconv.Itoa(n), Iss: "https://id.example.com/oauth2/default", Exp: e.clock.Now().Add(time.Hour).Unix()}
	}
	v, _ := json.Marshal(list)
	if err := e.iss.store.PutRecord(ctx, store.NSFamilyTokens, fam, v, e.clock.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	s, b := e.exchange(inventoryEP, "api1", subject, nil)
	if s != http.StatusBadRequest || b["error"] != "invalid_request" {
		t.Fatalf("exchange from a full family: %d %v", s, b)
	}
	if n := len(h.calls0()); n != 0 {
		t.Errorf("the inline hook was called %d times for a refused exchange", n)
	}
	if f := e.event(EventTokenDenied); f["jti"] != nil {
		t.Errorf("the refusal names a token: jti %v", f["jti"])
	}
	e.iss.StopEvents()
	var failed int
	for _, ev := range el.all() {
		if ev.Outcome == nil || ev.Outcome.Result != "FAILURE" || ev.DebugContext == nil || ev.DebugContext.DebugData["grantType"] != GrantTokenExchange {
			continue
		}
		failed++
		if jti, ok := ev.DebugContext.DebugData["jti"]; ok {
			t.Errorf("the failure event names a token never handed out: jti %v", jti)
		}
	}
	if failed != 1 {
		t.Errorf("%d failure events of the exchange, want 1", failed)
	}
}

// TestTrustedServersWithoutExchangeRule: trusted_servers on a server
// none of whose rules names the token-exchange grant does nothing, and
// says so at load as a warning naming the server; a server with such a
// rule gets no warning.
func TestTrustedServersWithoutExchangeRule(t *testing.T) {
	e := newExchangeEnvWith(t, nil, func(o *Options) {
		o.Servers["billing"] = &ServerConfig{TrustedServers: []string{"default"}, Scopes: []*Scope{{Name: "bill"}},
			Policies: []*policy.Policy{{Name: "cc", Clients: []string{"api1"}, Rules: []*policy.Rule{{Name: "cc",
				GrantTypes: []string{GrantClientCredentials}, Scopes: []string{"*"}}}}}}
	})
	warned := map[string]bool{}
	for _, entry := range e.logs.FilterMessage("trusted_servers has no effect: no policy rule of the server names the token exchange grant").All() {
		if s, _ := entry.ContextMap()["authorization_server"].(string); s != "" {
			warned[s] = true
		}
	}
	if !warned["billing"] || warned["inventory"] || len(warned) != 1 {
		t.Fatalf("servers warned about: %v, want billing only", warned)
	}
}

// TestTokenExchangeSubjectRevokedMeanwhile: a subject token revoked
// while its exchange is issuing (here during the inline hook call, as a
// revocation that read the feed index before the new token was in it
// and marks after) refuses the exchange once the token is indexed, and
// the token, never handed out, is published on the feed and named by no
// event.
func TestTokenExchangeSubjectRevokedMeanwhile(t *testing.T) {
	var e *flowEnv
	var subject string
	h := newHookServer(t, func(w http.ResponseWriter, r *http.Request) {
		p := payload(t, subject)
		if err := e.iss.revoke(r.Context(), p["jti"].(string), time.Unix(int64(p["exp"].(float64)), 0)); err != nil {
			t.Error(err)
		}
		answerJSON(`{"commands":[]}`)(w, r)
	})
	e = newExchangeEnvWith(t, nil, func(o *Options) {
		o.InlineHooks = []*inlinehook.Config{{Name: "h", URL: h.srv.URL}}
		o.Servers["inventory"].Policies[0].Rules[0].InlineHook = "h"
	})
	subject = e.userToken("read")["access_token"].(string)
	s, b := e.exchange(inventoryEP, "api1", subject, nil)
	if s != http.StatusBadRequest || b["error"] != "invalid_grant" || e.lastDenial() != "revoked (a token it was exchanged from, while exchanging)" {
		t.Fatalf("exchange of a subject revoked meanwhile: %d %v (%s)", s, b["error"], e.lastDenial())
	}
	calls := h.calls0()
	if len(calls) != 1 {
		t.Fatalf("%d hook calls", len(calls))
	}
	access, _ := calls[0].body["data"].(map[string]any)["access"].(map[string]any)
	jti, _ := access["claims"].(map[string]any)["jti"].(string)
	if jti == "" || !e.iss.RevocationView().Revoked(jti, "", "", "", time.Time{}) {
		t.Errorf("the token issued meanwhile (jti %q) is not on the feed", jti)
	}
	if f := e.event(EventTokenDenied); f["jti"] != nil {
		t.Errorf("the refusal names a token never handed out: %v", f["jti"])
	}
}
