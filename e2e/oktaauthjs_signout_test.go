package e2e

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// testSDKSignOut: signOut() with the defaults revokes the refresh token
// and the access token, then ends the issuer session by RP-initiated
// logout, which comes back to the app's origin; afterwards the SDK
// sees no session and signing in asks for the password again.
func testSDKSignOut(t *testing.T, b *sdkTab) {
	tok := b.signIn(map[string]any{"scopes": b.offlineScopes()})
	if !tok.HasRefreshToken {
		b.Fail("no refresh token")
	}
	_ = b.call("signOut")
	b.Step("back at the app", chromedp.WaitVisible(chromedp.CSS(`#state[data-state="no-profile"], #state[data-state="failed"]`)))
	if loc := b.Read(chromedp.Location()); loc != b.env.app+"/" {
		b.Fail("after signOut() the browser is at %s, want the app's origin", redactURL(loc))
	}
	revokes := b.net.find(http.MethodPost, b.endpoint("revoke"))
	if len(revokes) != 2 || slices.ContainsFunc(revokes, func(e netEntry) bool { return e.Status != 200 }) {
		b.Fail("signOut()'s revocations: %+v", revokes)
	}
	logout := b.net.find(http.MethodGet, b.endpoint("logout"))
	if len(logout) != 1 || !strings.Contains(logout[0].URL, "id_token_hint=") {
		b.Fail("signOut()'s logout request: %d", len(logout))
	}
	if in := b.env.introspectFromGo(t, b.endpoint("introspect"), tok.AccessToken); in.Active {
		t.Errorf("the access token is active after signOut()")
	}

	b.open("ready")
	if b.sessionExists() {
		b.Fail("session.exists() after signOut()")
	}
	if tok := b.tokens(); tok.AccessToken != "" {
		b.Fail("signOut() left the tokens")
	}
	b.startSignIn(nil)
}
