package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// testSDKFragment: with responseMode "fragment" the authorization
// response comes in the callback URL's fragment, and
// handleLoginRedirect reads it there.
func testSDKFragment(t *testing.T, b *sdkTab) {
	tok := b.signIn(nil)
	if tok.IDClaims["sub"] != sdkUserID || tok.AccessClaims["uid"] != sdkUserID {
		b.Fail("claims %v %v", tok.IDClaims, tok.AccessClaims)
	}
	cb := b.net.find(http.MethodGet, b.env.app+"/fragment/callback")
	if len(cb) != 1 || strings.Contains(cb[0].URL, "?") || !strings.Contains(cb[0].URL, "#") ||
		!strings.Contains(cb[0].URL, "code=") || !strings.Contains(cb[0].URL, "state=") {
		b.Fail("the callback %s, want code and state in the fragment only", redactURL(cb[0].URL))
	}
	auth := b.net.find(http.MethodGet, b.endpoint("authorize"))
	if len(auth) != 1 || !strings.Contains(auth[0].URL, "response_mode=fragment") {
		b.Fail("authorize requests %d", len(auth))
	}
}
