package e2e

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/chromedp/chromedp"
)

// signIn starts signInWithRedirect (with params, such as scopes), fills
// in the issuer's sign-in page, consents when asked, and waits until
// handleLoginRedirect has stored the tokens and sent the browser back
// to the app.
func (b *sdkTab) signIn(params map[string]any) tokenSummary {
	b.T.Helper()
	if params == nil {
		params = map[string]any{}
	}
	b.startSignIn(params)
	b.Step("sign in",
		chromedp.SendKeys(chromedp.CSS("#username"), sdkUser),
		chromedp.SendKeys(chromedp.CSS("#password"), sdkPassword),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS(`button[value=allow], #state[data-state="signed-in"], #state[data-state="failed"], p.error[role=alert]`)),
	)
	if loc := b.Read(chromedp.Location()); strings.HasPrefix(loc, b.env.base) {
		// The custom server asks for orders:read (consent required)
		// until the user has consented once.
		b.Step("consent page", chromedp.WaitVisible(chromedp.CSS("button[value=allow]")))
		b.consent = b.Read(chromedp.Text(chromedp.CSS("main")))
		b.Step("consent", chromedp.Click(chromedp.CSS("button[value=allow]")))
	}
	b.awaitState("signed-in")
	if loc := b.Read(chromedp.Location()); loc != b.env.app+"/"+b.profile+"/" {
		b.Fail("after the sign-in the app is at %s, want its page (the originalUri)", redactURL(loc))
	}
	return b.tokens()
}

// startSignIn opens the app and calls signInWithRedirect; the browser
// shows the issuer's sign-in page.
func (b *sdkTab) startSignIn(params map[string]any) {
	b.T.Helper()
	b.open("ready", "signed-in")
	_ = b.call("signIn", params)
	b.Step("sign-in page", chromedp.WaitVisible(chromedp.CSS("#password")))
	if loc := b.Read(chromedp.Location()); !strings.HasPrefix(loc, b.endpoint("authorize")+"?") {
		b.Fail("sign-in page at %s, want the %s server's authorize endpoint", redactURL(loc), b.profile)
	}
}

// issuer is the issuer of the tab's profile.
func (b *sdkTab) issuer() string {
	if b.profile == "org" {
		return b.env.base
	}
	return b.env.custom
}

// endpoint is the URL of one of the profile's server's endpoints.
func (b *sdkTab) endpoint(name string) string {
	if b.profile == "org" {
		return b.env.base + "/oauth2/v1/" + name
	}
	return b.env.custom + "/v1/" + name
}

// authorizeQuery is the query of the tab's i-th request to the
// authorize endpoint.
func (b *sdkTab) authorizeQuery(i int) url.Values {
	b.T.Helper()
	got := b.net.find(http.MethodGet, b.endpoint("authorize"))
	if len(got) <= i {
		b.Fail("%d authorize requests, want more than %d", len(got), i)
	}
	u, err := url.Parse(got[i].URL)
	if err != nil {
		b.Fail("authorize request: %v", err)
	}
	return u.Query()
}
