package tokenissuer_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit/caddytester"
)

func kids(set jwk.Set) []string {
	var out []string
	for i := range set.Len() {
		k, _ := set.Key(i)
		out = append(out, k.KeyID())
	}
	return out
}

func token(t *testing.T, as string, scopes ...string) string {
	t.Helper()
	cc := clientcredentials.Config{ClientID: basicID, ClientSecret: basicSec, TokenURL: base + "/oauth2/" + as + "/v1/token", Scopes: scopes}
	tok, err := cc.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

func kidOf(t *testing.T, tok string) string {
	t.Helper()
	m, err := jws.Parse([]byte(tok))
	if err != nil {
		t.Fatal(err)
	}
	return m.Signatures()[0].ProtectedHeaders().KeyID()
}

func introspect(t *testing.T, as, tok string) map[string]any {
	t.Helper()
	res, body := post(t, "/oauth2/"+as+"/v1/introspect", url.Values{"token": {tok}}, basicAuth(basicID, basicSec))
	if res.StatusCode != 200 {
		t.Fatalf("introspect: %d %v", res.StatusCode, body)
	}
	return body
}

func rotate(t *testing.T, as string) string {
	t.Helper()
	res, err := http.Post(adminURL+"/token_issuer/"+as+"/keys/rotate", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]string
	_ = json.NewDecoder(res.Body).Decode(&out)
	if res.StatusCode != 200 || out["active_kid"] == "" {
		t.Fatalf("rotate: %d %v", res.StatusCode, out)
	}
	return out["active_kid"]
}

// TestKeyRotation: after a rotation old tokens still verify against the
// published keys, new tokens carry the new kid, and the new kid was
// published (as NEXT) before it signed anything.
func TestKeyRotation(t *testing.T) {
	newEnv(t)
	before := kids(fetchKeys(t, "default"))
	if len(before) != 2 {
		t.Fatalf("want ACTIVE and NEXT published, got %v", before)
	}
	old := token(t, "default")
	if kidOf(t, old) != before[0] {
		t.Fatalf("token kid %s is not the active key %s", kidOf(t, old), before[0])
	}
	newKid := rotate(t, "default")
	if newKid != before[1] {
		t.Fatalf("rotation promoted %s, want the published NEXT key %s", newKid, before[1])
	}
	after := kids(fetchKeys(t, "default"))
	if !slices.Contains(after, before[0]) || !slices.Contains(after, newKid) || len(after) != 3 {
		t.Fatalf("after rotation JWKS = %v, want new active, new next and the old (expired) key", after)
	}
	fresh := token(t, "default")
	if kidOf(t, fresh) != newKid {
		t.Fatalf("new token kid %s, want %s", kidOf(t, fresh), newKid)
	}
	for _, tok := range []string{old, fresh} {
		if _, err := jws.Verify([]byte(tok), jws.WithKeySet(fetchKeys(t, "default"))); err != nil {
			t.Fatalf("token no longer verifies after rotation: %v", err)
		}
		if introspect(t, "default", tok)["active"] != true {
			t.Fatal("token inactive after rotation")
		}
	}
	// Other servers' keys are untouched.
	es := kids(fetchKeys(t, "es"))
	if slices.Contains(es, newKid) || len(es) != 2 {
		t.Fatalf("es keys changed by rotating default: %v", es)
	}
	res, _ := doRaw(t, mustReq(http.MethodPost, adminURL+"/token_issuer/nope/keys/rotate"))
	if res.StatusCode != 404 {
		t.Fatalf("rotating an unknown server: %d", res.StatusCode)
	}
}

// TestRestartAndReloadKeepState: a config reload and a full stop and
// start keep signing keys and revocations; nothing is regenerated.
func TestRestartAndReloadKeepState(t *testing.T) {
	e := newEnv(t)
	keysBefore := kids(fetchKeys(t, "default"))
	revoked, kept := token(t, "default"), token(t, "default")
	res, _ := post(t, "/oauth2/default/v1/revoke", url.Values{"token": {revoked}}, basicAuth(basicID, basicSec))
	if res.StatusCode != 200 {
		t.Fatalf("revoke: %d", res.StatusCode)
	}
	if introspect(t, "default", revoked)["active"] != false {
		t.Fatal("revoked token still active")
	}

	// Reload with a changed config (one more scope).
	e.tester.InitServer(e.render([]string{"extra:scope"}), "json")
	if got := kids(fetchKeys(t, "default")); !slices.Equal(got, keysBefore) {
		t.Fatalf("reload changed keys: %v -> %v", keysBefore, got)
	}
	// Stop the issuer entirely (the store file is closed), then start.
	e.tester.InitServer(`{"admin":{"listen":"`+caddytester.AdminAddr()+`"}}`, "json")
	e.tester.InitServer(e.config, "json")
	if got := kids(fetchKeys(t, "default")); !slices.Equal(got, keysBefore) {
		t.Fatalf("restart changed keys: %v -> %v", keysBefore, got)
	}
	if introspect(t, "default", revoked)["active"] != false {
		t.Fatal("revocation lost across restart")
	}
	if introspect(t, "default", kept)["active"] != true {
		t.Fatal("unrevoked token inactive after restart")
	}
	if kidOf(t, token(t, "default")) != keysBefore[0] {
		t.Fatal("restart changed the signing key")
	}
}

// TestDecisionLog: every decision is one structured event named like
// Okta's System Log, and no token or secret ever reaches the log.
func TestDecisionLog(t *testing.T) {
	e := newEnv(t)
	tok := token(t, "default")
	post(t, "/oauth2/default/v1/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"admin"}}, basicAuth(basicID, basicSec))
	post(t, "/oauth2/default/v1/token", url.Values{"grant_type": {"client_credentials"}}, basicAuth(basicID, "wrong-"+basicSec))
	post(t, "/oauth2/default/v1/revoke", url.Values{"token": {tok}}, basicAuth(basicID, basicSec))
	rotate(t, "default")

	f, err := os.Open(e.logPath)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(f)
	f.Close()
	log := string(raw)
	for _, secret := range []string{tok, strings.Split(tok, ".")[2], basicSec, postSec, sealSecret} {
		if strings.Contains(log, secret) {
			t.Fatalf("log contains a token or secret: %.20s...", secret)
		}
	}
	var events []map[string]any
	for _, line := range strings.Split(log, "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) == nil && ev["logger"] == "token_issuer" {
			events = append(events, ev)
		}
	}
	want := []struct{ msg, outcome, field, value string }{
		{"app.oauth2.as.token.grant.access_token", "SUCCESS", "rule", "Readers"},
		{"app.oauth2.as.token.grant", "FAILURE", "error", "access_denied"},
		{"app.oauth2.as.token.grant", "FAILURE", "reason", "wrong client secret"},
		{"app.oauth2.as.token.revoke", "SUCCESS", "client_id", basicID},
		{"app.oauth2.as.key.rollover", "SUCCESS", "reason", "manual"},
	}
	for _, w := range want {
		if !slices.ContainsFunc(events, func(ev map[string]any) bool {
			return ev["msg"] == w.msg && ev["outcome"] == w.outcome && ev[w.field] == w.value && ev["authorization_server"] == "default"
		}) {
			t.Errorf("no %s event with outcome %s and %s=%s in %v", w.msg, w.outcome, w.field, w.value, events)
		}
	}
}
