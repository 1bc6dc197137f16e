package authserver

import (
	"net/url"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/claims"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
)

// TestClaimRunTimeFailureLeavesClaimOut: a claim whose expression fails
// at run time (here a division by zero for a client with one scope)
// does not turn the token request into a 500: the token is issued
// without that claim, with the others, and a warning names the claim
// and the server, never the client's secret or the token.
func TestClaimRunTimeFailureLeavesClaimOut(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	iss, err := New(Options{
		BaseURL: "https://id.example.com", Logger: zap.New(core), OrgSigningAlg: "ES256",
		Servers: map[string]*ServerConfig{"default": {
			SigningAlg: "ES256",
			Scopes:     []*Scope{{Name: "read", Default: true}},
			Claims: []*claims.Claim{
				{Name: "tier", Value: `client.id == "svc" ? "internal" : "partner"`},
				{Name: "ratio", Value: `10 / (size(scopes) - 1)`},
			},
			Policies: []*policy.Policy{{Name: "p", Clients: []string{"*"}, Rules: []*policy.Rule{
				{Name: "r", GrantTypes: []string{GrantClientCredentials}, Scopes: []string{"*"}}}}},
		}},
		Clients: []*clientauth.Client{{ID: "svc", Secret: "svc-secret"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &flowEnv{t: t, iss: iss, st: startIssuer(t, iss, nil)}
	code, body := e.post(tokenEP, "svc", url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}})
	if code != 200 {
		t.Fatalf("token request: %d %v, want 200", code, body)
	}
	tok, _ := body["access_token"].(string)
	claims := payload(t, tok)
	if _, ok := claims["ratio"]; ok || claims["tier"] != "internal" {
		t.Fatalf("claims tier=%v ratio=%v, want tier internal and no ratio", claims["tier"], claims["ratio"])
	}
	warned := logs.FilterMessage("claim left out: its expression failed").All()
	if len(warned) != 1 || warned[0].Level != zap.WarnLevel {
		t.Fatalf("warnings %v, want one", warned)
	}
	fields := warned[0].ContextMap()
	if fields["claim"] != "ratio" || fields["authorization_server"] != "default" || fields["client_id"] != "svc" {
		t.Errorf("warning fields %v, want claim ratio, authorization_server default, client_id svc", fields)
	}
	for _, entry := range logs.All() {
		for k, v := range entry.ContextMap() {
			if s, _ := v.(string); strings.Contains(s, "svc-secret") || (tok != "" && strings.Contains(s, tok)) {
				t.Errorf("log %q field %s holds a secret or the token", entry.Message, k)
			}
		}
	}
}
