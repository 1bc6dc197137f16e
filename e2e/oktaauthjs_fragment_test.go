package e2e

import (
	"net/http"
	"net/url"
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
	if len(cb) != 1 {
		b.Fail("%d callbacks", len(cb))
	}
	u, err := url.Parse(cb[0].URL)
	if err != nil {
		b.Fail("callback: %v", err)
	}
	frag, _ := url.ParseQuery(u.Fragment)
	if u.RawQuery != "" || frag.Get("code") == "" || frag.Get("state") == "" {
		b.Fail("the callback %s, want code and state in the fragment only", redactURL(cb[0].URL))
	}
	if q := b.authorizeQuery(0); q.Get("response_mode") != "fragment" {
		b.Fail("authorize request with response_mode %q", q.Get("response_mode"))
	}
}
