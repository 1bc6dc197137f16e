package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/chromedp/chromedp"
)

// testSDKConsentRequired: a prompt=none request for a scope the user
// has not consented to (orders:write, consent required; consent is
// remembered per user and client, and no test grants this one) reaches
// the SDK from the hidden iframe as OAuthError consent_required.
func testSDKConsentRequired(t *testing.T, b *sdkTab) {
	b.signIn(nil)
	r := b.call("getWithoutPrompt", map[string]any{"scopes": []string{"openid", "orders:write"}})
	if r.OK || r.Error.Name != "OAuthError" || r.Error.ErrorCode != "consent_required" {
		b.Fail("token.getWithoutPrompt without consent: ok %v, %s", r.OK, r.Error)
	}
}

// testSDKRedirectLoginRequired: signInWithRedirect with prompt=none and
// no issuer session comes back to the callback with the error (in the
// query, or in the fragment for the fragment profile), and
// handleLoginRedirect throws it as OAuthError login_required.
func testSDKRedirectLoginRequired(t *testing.T, b *sdkTab) {
	b.open("ready")
	_ = b.call("signIn", map[string]any{"prompt": "none"})
	b.awaitState("failed")
	var e sdkError
	if err := json.Unmarshal([]byte(b.Read(chromedp.Text(chromedp.CSS("#error")))), &e); err != nil {
		b.Fail("the app's error: %v", err)
	}
	if e.Name != "OAuthError" || e.ErrorCode != "login_required" {
		b.Fail("handleLoginRedirect after prompt=none without a session: %s", &e)
	}
	cb := b.net.find(http.MethodGet, b.env.app+"/"+b.profile+"/callback")
	if len(cb) != 1 {
		b.Fail("%d callbacks", len(cb))
	}
	u, err := url.Parse(cb[0].URL)
	if err != nil {
		b.Fail("callback: %v", err)
	}
	frag, _ := url.ParseQuery(u.Fragment)
	where, other := u.Query(), frag
	if b.profile == "fragment" {
		where, other = frag, u.Query()
	}
	if where.Get("error") != "login_required" || where.Get("state") == "" || len(other) != 0 {
		b.Fail("the callback %s, want the error in the %s only", redactURL(cb[0].URL), map[bool]string{true: "fragment", false: "query"}[b.profile == "fragment"])
	}
}
