package authserver

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestRevokeAllOfASubject: Okta's admin routes revoke every token of a
// user at a client, of a client (app), and a user's sessions (with
// oauthTokens=true, their tokens too): what was issued before is
// refused (introspection, refresh, the SSO session), what is issued
// after works; the routes need the API token and name real users and
// clients.
func TestRevokeAllOfASubject(t *testing.T) {
	e, el := grantsEnv(t, nil)
	userTokens := func() (string, string) {
		t.Helper()
		status, tok := e.redeem("web", e.code("web", webCB, ""), webCB, "")
		if status != 200 {
			t.Fatalf("redeem: %d %v", status, tok)
		}
		return tok["access_token"].(string), tok["refresh_token"].(string)
	}
	serviceToken := func() string {
		t.Helper()
		status, tok := e.post(tokenEP, "svc", url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}})
		if status != 200 {
			t.Fatalf("client_credentials: %d %v", status, tok)
		}
		return tok["access_token"].(string)
	}

	// A user's tokens at one client, and a code not yet redeemed.
	at, rt := userTokens()
	svc := serviceToken()
	pendingCode := e.code("web", webCB, "")
	e.clock.Advance(2 * time.Second)
	if w := e.grantsAPI(http.MethodDelete, "/api/v1/users/u1/clients/web/tokens"); w.Code != http.StatusNoContent {
		t.Fatalf("revoke u1 at web: %d %s", w.Code, w.Body)
	}
	if e.active(at) {
		t.Fatal("an access token of u1 at web is active after the revocation")
	}
	if e.active(rt) {
		t.Fatal("a refresh token of u1 at web introspects active after the revocation")
	}
	if status, body := e.refresh("web", rt); status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("refresh after the revocation: %d %v", status, body)
	}
	if status, body := e.redeem("web", pendingCode, webCB, ""); status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("a code issued before the revocation redeemed: %d %v", status, body)
	}
	if !e.active(svc) {
		t.Fatal("another client's token was revoked too")
	}
	e.clock.Advance(2 * time.Second)
	at2, rt2 := userTokens()
	if !e.active(at2) {
		t.Fatal("a token issued after the revocation is refused")
	}
	if status, _ := e.refresh("web", rt2); status != 200 {
		t.Fatalf("a refresh token issued after the revocation: %d", status)
	}

	// Every token of a client.
	if w := e.grantsAPI(http.MethodDelete, "/api/v1/apps/svc/tokens"); w.Code != http.StatusNoContent {
		t.Fatalf("revoke svc's tokens: %d %s", w.Code, w.Body)
	}
	if e.active(svc) {
		t.Fatal("svc's token is active after its app's tokens were revoked")
	}
	e.clock.Advance(2 * time.Second)
	if !e.active(serviceToken()) {
		t.Fatal("svc's new token is refused")
	}

	// A user's sessions, then with their tokens.
	sess := e.session("u1")
	e.clock.Advance(2 * time.Second)
	if w := e.grantsAPI(http.MethodDelete, "/api/v1/users/u1/sessions"); w.Code != http.StatusNoContent {
		t.Fatalf("clear u1's sessions: %d %s", w.Code, w.Body)
	}
	if w := e.browse(http.MethodGet, "/api/v1/sessions/me", nil, sess); w.Code != http.StatusNotFound {
		t.Fatalf("the Sessions API shows a cleared session: %d %s", w.Code, w.Body)
	}
	q := url.Values{"client_id": {"web"}, "response_type": {"code"}, "redirect_uri": {webCB}, "scope": {"openid"}, "state": {"s"},
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}
	if w := e.browse(http.MethodGet, "/oauth2/default/v1/authorize?"+q.Encode(), nil, sess); !strings.Contains(w.Body.String(), `name="password"`) {
		t.Fatalf("a cleared session still signs in: %d %q", w.Code, w.Header().Get("Location"))
	}
	e.clock.Advance(2 * time.Second)
	at3, _ := userTokens()
	if !e.active(at3) {
		t.Fatal("clearing sessions without oauthTokens revoked a token")
	}
	e.clock.Advance(2 * time.Second)
	if w := e.grantsAPI(http.MethodDelete, "/api/v1/users/u1/sessions?oauthTokens=true"); w.Code != http.StatusNoContent {
		t.Fatalf("clear u1's sessions and tokens: %d", w.Code)
	}
	if e.active(at3) {
		t.Fatal("oauthTokens=true left a token active")
	}

	// Refusals.
	for _, c := range []struct {
		method, path string
		auth         []string
		status       int
		code         string
	}{
		{http.MethodDelete, "/api/v1/users/u1/sessions", []string{"SSWS wrong-" + logsToken}, 401, "E0000011"},
		{http.MethodDelete, "/api/v1/apps/svc/tokens", []string{}, 401, "E0000011"},
		{http.MethodPost, "/api/v1/users/u1/clients/web/tokens", nil, 405, "E0000022"},
		{http.MethodDelete, "/api/v1/users/nobody/sessions", nil, 404, "E0000007"},
		{http.MethodDelete, "/api/v1/users/u1/clients/nope/tokens", nil, 404, "E0000007"},
		{http.MethodDelete, "/api/v1/apps/nope/tokens", nil, 404, "E0000007"},
		{http.MethodDelete, "/api/v1/apps/svc/other", nil, 404, ""},
		{http.MethodDelete, "/api/v1/users/u1/clients//tokens", nil, 404, ""},
		{http.MethodDelete, "/api/v1/users/u1/sessions?oauthTokens=yes", nil, 400, "E0000001"},
		{http.MethodDelete, "/api/v1/apps/svc%2Ftokens", nil, 404, ""},
	} {
		w := e.grantsAPI(c.method, c.path, c.auth...)
		if w.Code != c.status || (c.code != "" && !strings.Contains(w.Body.String(), c.code)) {
			t.Errorf("%s %s: %d %s, want %d %s", c.method, c.path, w.Code, w.Body, c.status, c.code)
		}
	}

	// The API token acts in the System Log, the user is the target.
	e.iss.StopEvents()
	clears := ofType(el.all(), "user.session.clear")
	if len(clears) != 2 || clears[1].DebugContext.DebugData["oauthTokens"] != "true" {
		t.Fatalf("%d session clear events: %+v", len(clears), clears)
	}
	clear := clears[0]
	if clear.Actor.Type != "SystemPrincipal" || targetOf(clear, "User") == nil || targetOf(clear, "User").ID != "u1" {
		t.Fatalf("session clear event: actor %+v targets %+v", clear.Actor, clear.Target)
	}
}
