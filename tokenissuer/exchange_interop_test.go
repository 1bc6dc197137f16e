package tokenissuer_test

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit/browser"
)

// The service app of the token exchange interop test.
const (
	exchangeClient = "interop-api1"
	exchangeSecret = "interop-api1-secret-0123456789"
)

// TestTokenExchangeOpenIDClient: openid-client 6.9.0 (panva), as the
// service app of Okta's On-Behalf-Of Token Exchange guide, runs
// tokenissuer/interop/token-exchange.test.mjs: discovery of the server
// "inventory" lists the grant; genericGrantRequest exchanges alice's
// access token from "default" (which inventory trusts) for an inventory
// token for alice with the app as actor; a wrong audience and a bad
// subject token are OAuth errors in Okta's words.
func TestTokenExchangeOpenIDClient(t *testing.T) {
	node := needNode(t, "openid-client")
	startSDKIssuer(t, nil, nil)
	reloadIssuer(t, func(ti map[string]any) {
		ti["clients"] = append(ti["clients"].([]any), map[string]any{"client_id": exchangeClient, "client_secret": exchangeSecret,
			"grant_types": []string{"urn:ietf:params:oauth:grant-type:token-exchange"}})
		ti["authorization_servers"].(map[string]any)["inventory"] = map[string]any{
			"audience": "api://inventory", "trusted_servers": []string{"default"},
			"scopes": []map[string]any{{"name": "stock:read"}},
			"policies": []map[string]any{{"name": "API1 to inventory", "clients": []string{exchangeClient}, "rules": []map[string]any{{
				"name": "On behalf of the user", "grant_types": []string{"urn:ietf:params:oauth:grant-type:token-exchange"}, "scopes": []string{"stock:read"}}}}},
		}
	})
	tok, _ := webCodeFlow(t, browser.New(t, base), base+"/oauth2/default", "openid", "orders:read")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "tokenissuer/interop/token-exchange.test.mjs")
	cmd.Dir = ".." // the repository root
	cmd.Env = append(os.Environ(),
		"APIACCESS_ISSUER="+base+"/oauth2/inventory",
		"APIACCESS_CLIENT_ID="+exchangeClient,
		"APIACCESS_CLIENT_SECRET="+exchangeSecret,
		"APIACCESS_SUBJECT_TOKEN="+tok.AccessToken,
		"APIACCESS_USER_ID="+aliceID,
		"APIACCESS_LOGIN="+aliceLogin,
		"NO_COLOR=1",
	)
	runNodeTest(t, cmd)
}
