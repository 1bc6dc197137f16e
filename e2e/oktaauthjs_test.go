package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestOktaAuthJS runs Okta's browser SDK, @okta/okta-auth-js 8.0.1 as
// npm ships it, in Chromium against the issuer: the app (another site,
// https://127.0.0.1:P) sets only issuer, clientId, redirectUri and
// scopes. Each flow is a subtest with a browser context of its own, one
// per authorization server it runs against (custom: /oauth2/default;
// org: the org server); run one with -run 'TestOktaAuthJS/SignIn/org'.
func TestOktaAuthJS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 110*time.Second)
	defer cancel()
	env := startSDKEnv(t, ctx)
	both := []string{"custom", "org"}
	for _, f := range []struct {
		name     string
		profiles []string
		run      func(*testing.T, *sdkTab)
	}{
		{"Discovery", both, testSDKDiscovery},
		{"SignIn", both, testSDKSignIn},
		{"API", []string{"custom"}, testSDKAPI},
		{"RenewWithRefreshToken", both, testSDKRenewRefresh},
		{"RenewWithoutPrompt", both, testSDKRenewSilent},
		{"RenewWithoutPromptNoSession", both, testSDKRenewSilentNoSession},
		{"RenewWithoutPromptConsentRequired", []string{"custom"}, testSDKConsentRequired},
		{"RedirectPromptNoneLoginRequired", []string{"custom", "fragment"}, testSDKRedirectLoginRequired},
		{"RevokeIntrospect", both, testSDKRevokeIntrospect},
		{"Session", []string{"custom"}, testSDKSession},
		{"SignOut", both, testSDKSignOut},
		{"ResponseModeFragment", []string{"fragment"}, testSDKFragment},
	} {
		t.Run(f.name, func(t *testing.T) {
			for _, p := range f.profiles {
				t.Run(p, func(t *testing.T) { f.run(t, env.newTab(t, p)) })
			}
		})
	}
}

// testSDKDiscovery: the SDK reads the server's metadata cross-origin,
// with its X-Okta-User-Agent-Extended header (so after a CORS
// preflight); an untrusted origin gets no CORS answer.
func testSDKDiscovery(t *testing.T, b *sdkTab) {
	b.open("ready")
	var params struct {
		Method    string `json:"codeChallengeMethod"`
		Challenge string `json:"codeChallenge"`
	}
	b.must(&params, "discover")
	if params.Method != "S256" || params.Challenge == "" {
		b.Fail("the SDK prepared PKCE method %q", params.Method)
	}
	wk := b.issuer() + "/.well-known/openid-configuration"
	if got := b.net.find(http.MethodOptions, wk); len(got) != 1 || got[0].Status/100 != 2 {
		b.Fail("the CORS preflight of the SDK's discovery: %+v", got)
	}
	if got := b.net.find(http.MethodGet, wk); len(got) != 1 || got[0].Status != 200 || got[0].Failed != "" {
		b.Fail("the SDK's discovery request: %+v", got)
	}
	var md struct {
		Issuer       string   `json:"issuer"`
		ResponseMode []string `json:"response_modes_supported"`
	}
	res, err := b.env.http.Get(wk)
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(res.Body).Decode(&md)
	res.Body.Close()
	if err != nil || md.Issuer != b.issuer() {
		t.Fatalf("metadata: %v, issuer %q", err, md.Issuer)
	}
	for _, m := range []string{"query", "fragment", "okta_post_message"} {
		if !slices.Contains(md.ResponseMode, m) {
			t.Errorf("response_modes_supported %v lacks %s", md.ResponseMode, m)
		}
	}

	for origin, want := range map[string]string{b.env.app: b.env.app, "https://evil.example": ""} {
		req, _ := http.NewRequest(http.MethodOptions, wk, nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "GET")
		req.Header.Set("Access-Control-Request-Headers", "x-okta-user-agent-extended")
		res, err := b.env.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if got := res.Header.Get("Access-Control-Allow-Origin"); got != want {
			t.Errorf("preflight from %s: Access-Control-Allow-Origin %q, want %q", origin, got, want)
		}
	}
}

// testSDKSignIn: signInWithRedirect, the sign-in page filled in by the
// browser, consent (custom server: the first sign-in of the suite asking
// for orders:read), handleLoginRedirect with PKCE, then getUser
// (userinfo with the access token).
func testSDKSignIn(t *testing.T, b *sdkTab) {
	tok := b.signIn(nil)
	if b.profile == "custom" && (!strings.Contains(b.consent, "SDK test app") || !strings.Contains(b.consent, "Read orders")) {
		b.Fail("consent page %q, want the app and orders:read's description", b.consent)
	}
	if tok.IDClaims["sub"] != sdkUserID || tok.IDClaims["iss"] != b.issuer() || tok.IDClaims["aud"] != sdkClientID ||
		tok.IDClaims["preferred_username"] != sdkUser {
		b.Fail("ID token claims %v", tok.IDClaims)
	}
	if tok.AccessClaims["iss"] != b.issuer() || tok.AccessClaims["cid"] != sdkClientID || tok.AccessClaims["uid"] != sdkUserID {
		b.Fail("access token claims %v", tok.AccessClaims)
	}
	if tok.HasRefreshToken {
		b.Fail("a refresh token without offline_access")
	}
	// PKCE: the authorize request carried an S256 challenge (and no
	// response_mode: query, the default for code) and the code exchange
	// succeeded.
	if q := b.authorizeQuery(0); q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" ||
		q.Get("response_type") != "code" || q.Has("response_mode") {
		b.Fail("authorize request: response_type %q, response_mode %q, code_challenge_method %q",
			q.Get("response_type"), q.Get("response_mode"), q.Get("code_challenge_method"))
	}
	if got := b.net.find(http.MethodPost, b.endpoint("token")); len(got) != 1 || got[0].Status != 200 {
		b.Fail("token requests %+v", got)
	}

	var user map[string]any
	b.must(&user, "getUser")
	if user["sub"] != sdkUserID || user["email"] != sdkUser || user["name"] != "Alice Example" {
		b.Fail("getUser %v", user)
	}
	// Reloading keeps the tokens (localStorage, the SDK's default).
	b.Step("reload", chromedp.Reload())
	b.awaitState("signed-in")
}

// apiAnswer is what app.callAPI returns.
type apiAnswer struct {
	Status    int    `json:"status"`
	Body      string `json:"body"`
	Challenge string `json:"challenge"`
}

// testSDKAPI: require_token accepts the SDK's access token and refuses
// a request without one.
func testSDKAPI(t *testing.T, b *sdkTab) {
	b.signIn(nil)
	with := eval[apiAnswer](b, "window.app.callAPI(true)")
	var who struct{ Sub, Cid string }
	if with.Status != 200 || json.Unmarshal([]byte(with.Body), &who) != nil || who.Sub != sdkUser || who.Cid != sdkClientID {
		b.Fail("API with the access token: %+v", with)
	}
	without := eval[apiAnswer](b, "window.app.callAPI(false)")
	if without.Status != 401 || !strings.HasPrefix(without.Challenge, "Bearer") {
		b.Fail("API without a token: %+v", without)
	}
}
