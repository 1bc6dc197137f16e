package tokenissuer_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/okta/okta-sdk-golang/v5/okta"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
	"github.com/apiaccess/caddy-apiaccess/internal/testkit/browser"
	"github.com/apiaccess/caddy-apiaccess/internal/testkit/caddytester"
)

// Okta's management SDKs list and revoke a user's consent grants
// through the User Grants API unchanged: @okta/okta-sdk-nodejs 8.1.0
// (tokenissuer/interop/okta-sdk-grants.test.mjs) and okta-sdk-golang/v5
// v5.0.2 (UserAPI).

// TestUserGrantsOktaSDKs: alice consents to the consent-required scope
// on the consent page; each SDK lists the grant in Okta's shape, finds
// it by id, client and user clients, and revokes it (by id with Node,
// by client with Go); the next authorize shows the consent page again,
// and the System Log has Okta's consent revoke event.
func TestUserGrantsOktaSDKs(t *testing.T) {
	startGrantsEnv(t)
	issuer := base + "/oauth2/default"

	t.Run("node", func(t *testing.T) {
		node := needNode(t, "@okta/okta-sdk-nodejs")
		b := browser.New(t, base)
		webCodeFlow(t, b, issuer, "openid", consentOnly)
		if asksConsent(t, b) {
			t.Fatal("asked again right after consenting")
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, node, "--test", "tokenissuer/interop/okta-sdk-grants.test.mjs")
		cmd.Dir = ".." // the repository root
		cmd.Env = append(os.Environ(),
			"APIACCESS_BASE="+base,
			"APIACCESS_API_TOKEN="+logAPIToken,
			"APIACCESS_USER_ID="+aliceID,
			"APIACCESS_CLIENT_ID="+interopWeb,
			"APIACCESS_SCOPE="+consentOnly,
			"APIACCESS_ISSUER="+issuer,
			"NO_COLOR=1",
		)
		runNodeTest(t, cmd)
		if !asksConsent(t, b) {
			t.Fatal("not asked again after revokeUserGrant")
		}
		waitForEvent(t, "app.oauth2.as.consent.revoke")
	})

	t.Run("go", func(t *testing.T) {
		b := browser.New(t, base) // signs in again: webCodeFlow starts signed out
		webCodeFlow(t, b, issuer, "openid", consentOnly)
		ctx := context.Background()
		users := oktaLogClient(t, logAPIToken).UserAPI
		grants, _, err := users.ListUserGrants(ctx, aliceID).Execute()
		if err != nil || len(grants) != 1 {
			t.Fatalf("ListUserGrants: %d grants, %v %s", len(grants), err, errBody(err))
		}
		g := grants[0]
		if g.GetStatus() != "ACTIVE" || g.GetUserId() != aliceID || g.GetClientId() != interopWeb || g.GetScopeId() != consentOnly ||
			g.GetIssuer() != issuer || g.GetSource() != "END_USER" || time.Since(g.GetCreated()) > 5*time.Minute {
			b, _ := json.Marshal(g)
			t.Fatalf("grant %s", b)
		}
		one, _, err := users.GetUserGrant(ctx, aliceID, g.GetId()).Execute()
		if err != nil || one.GetId() != g.GetId() {
			t.Fatalf("GetUserGrant: %v %s", err, errBody(err))
		}
		byClient, _, err := users.ListGrantsForUserAndClient(ctx, aliceID, interopWeb).Execute()
		if err != nil || len(byClient) != 1 || byClient[0].GetId() != g.GetId() {
			t.Fatalf("ListGrantsForUserAndClient: %d, %v %s", len(byClient), err, errBody(err))
		}
		clients, _, err := users.ListUserClients(ctx, aliceID).Execute()
		if err != nil || len(clients) != 1 || clients[0].GetClientId() != interopWeb {
			t.Fatalf("ListUserClients: %d, %v %s", len(clients), err, errBody(err))
		}
		_, resp, err := users.GetUserGrant(ctx, aliceID, "oagNoSuchGrant000000").Execute()
		wantAPIError(t, "GetUserGrant of no grant", http.StatusNotFound, "E0000007", resp, err)
		resp, err = oktaLogClient(t, "wrong-"+logAPIToken).UserAPI.RevokeGrantsForUserAndClient(ctx, aliceID, interopWeb).Execute()
		wantAPIError(t, "wrong API token", http.StatusUnauthorized, "E0000011", resp, err)

		if resp, err := users.RevokeGrantsForUserAndClient(ctx, aliceID, interopWeb).Execute(); err != nil || resp.StatusCode != http.StatusNoContent {
			t.Fatalf("RevokeGrantsForUserAndClient: %v %s", err, errBody(err))
		}
		if left, _, err := users.ListUserGrants(ctx, aliceID).Execute(); err != nil || len(left) != 0 {
			t.Fatalf("after the revoke: %d grants, %v", len(left), err)
		}
		if !asksConsent(t, b) {
			t.Fatal("not asked again after RevokeGrantsForUserAndClient")
		}
		waitForEvent(t, "app.oauth2.as.consent.revoke.user.client")
	})
}

// startGrantsEnv starts the real-client issuer (alice, the consent-only
// scope) with the API token logAPIToken added by a config reload.
func startGrantsEnv(t *testing.T) {
	t.Helper()
	startSDKIssuer(t, nil, nil)
	reloadIssuer(t, func(ti map[string]any) { ti["api_tokens"] = []string{logAPIToken} })
}

// reloadIssuer reloads the running Caddy with its token_issuer app's
// config changed by edit (read back through the admin API).
func reloadIssuer(t *testing.T, edit func(ti map[string]any)) {
	t.Helper()
	res, err := http.Get(caddytester.AdminURL() + "/config/")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(res.Body)
	res.Body.Close()
	var cfg map[string]any
	if err != nil || res.StatusCode != 200 || json.Unmarshal(raw, &cfg) != nil {
		t.Fatalf("the running config: %d %v", res.StatusCode, err)
	}
	edit(cfg["apps"].(map[string]any)["token_issuer"].(map[string]any))
	b, _ := json.Marshal(cfg)
	caddytester.NewTester(t).InitServer(string(b), "json")
}

// asksConsent reports whether the web app's authorize for the
// consent-only scope shows the consent page (alice is signed in).
func asksConsent(t *testing.T, b *browser.Browser) bool {
	t.Helper()
	q := url.Values{"client_id": {interopWeb}, "response_type": {"code"}, "scope": {"openid " + consentOnly}, "state": {"s"},
		"redirect_uri": {sdkRedirect}, "code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}
	res, page := b.Get(base + "/oauth2/default/v1/authorize?" + q.Encode())
	switch {
	case res.StatusCode == http.StatusOK && strings.Contains(page, "Make payments for you"):
		return true
	case res.StatusCode/100 == 3 && strings.Contains(res.Header.Get("Location"), "code="):
		return false
	}
	t.Fatalf("authorize: %d %q, neither the consent page nor a code", res.StatusCode, res.Header.Get("Location"))
	return false
}

// wantAPIError checks an okta-sdk-golang call failed with Okta's error.
func wantAPIError(t *testing.T, what string, status int, code string, resp *okta.APIResponse, err error) {
	t.Helper()
	var apiErr *okta.GenericOpenAPIError
	var body okta.Error
	if !errors.As(err, &apiErr) || resp == nil || resp.StatusCode != status ||
		json.Unmarshal(apiErr.Body(), &body) != nil || body.GetErrorCode() != code || body.GetErrorId() == "" {
		t.Fatalf("%s: %v (%T) %s, want %d %s", what, err, err, errBody(err), status, code)
	}
}

// waitForEvent waits until the System Log holds an event of type typ
// (a bounded query: a polling one leaves out the newest events).
func waitForEvent(t *testing.T, typ string) {
	t.Helper()
	testkit.WaitFor(t, typ+" in the System Log", 10*time.Second, func() bool {
		now := time.Now().UTC()
		q := url.Values{"filter": {`eventType eq "` + typ + `"`}, "since": {now.Add(-time.Hour).Format(time.RFC3339)},
			"until": {now.Add(time.Second).Format(time.RFC3339Nano)}}
		req := mustReq(http.MethodGet, base+"/api/v1/logs?"+q.Encode())
		req.Header.Set("Authorization", "SSWS "+logAPIToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var events []map[string]any
		return res.StatusCode == 200 && json.NewDecoder(res.Body).Decode(&events) == nil && len(events) > 0
	})
}
