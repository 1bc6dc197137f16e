package authserver

import (
	"net/url"
	"testing"
)

// TestIntrospectPublicClientSeesOnlyItsTokens: a public client (auth
// method none) proves nothing but its client_id, so it may introspect
// only tokens issued to it; any other token is {"active": false},
// without details (RFC 7662 sections 2.2 and 4). A confidential client
// still sees every token of the server, as a resource server must.
func TestIntrospectPublicClientSeesOnlyItsTokens(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	_, web := e.redeem("web", e.code("web", webCB, ""), webCB, "")
	_, pub := e.redeem("pub", e.code("pub", pubCB, verifier), pubCB, verifier)
	_, svc := e.post(tokenEP, "svc", url.Values{"grant_type": {"client_credentials"}})
	introspect := func(client, tok string) map[string]any {
		t.Helper()
		status, body := e.post("/oauth2/default/v1/introspect", client, url.Values{"token": {tok}})
		if status != 200 {
			t.Fatalf("introspect as %s: %d %v", client, status, body)
		}
		return body
	}
	for _, foreign := range []any{web["access_token"], web["refresh_token"], svc["access_token"]} {
		if body := introspect("pub", foreign.(string)); body["active"] != false || len(body) != 1 {
			t.Errorf("public client introspected another client's token: %v", body)
		}
	}
	for _, own := range []any{pub["access_token"], pub["refresh_token"]} {
		if body := introspect("pub", own.(string)); body["active"] != true || body["client_id"] != "pub" {
			t.Errorf("public client's own token: %v", body)
		}
	}
	for _, any := range []any{web["access_token"], pub["access_token"], pub["refresh_token"], svc["access_token"]} {
		if body := introspect("other", any.(string)); body["active"] != true {
			t.Errorf("confidential client: %v", body)
		}
	}
}
