package tokenissuer_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
	"github.com/apiaccess/caddy-apiaccess/internal/testkit/headless"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit/browser"
)

// Clients of the real-client tests (ids of their own).
const (
	chromeSPA  = "browser-spa"
	interopSPA = "interop-spa"
	interopWeb = "interop-web"
	interopSec = "interop-web-secret-0123456789"
	// interopService is openid-client's client_credentials client.
	interopService    = "interop-service"
	interopServiceSec = "interop-service-secret-0123456789"
	interopTV         = "interop-tv"
	aliceLogin        = "alice@example.com"
	alicePass         = "alice-password"
	aliceID           = "00u-alice"
	malLogin          = "mallory@example.com"
	malPass           = "mallory-password"
	consentOnly       = "payments:write"
	deviceGrant       = "urn:ietf:params:oauth:grant-type:device_code"
)

// startRealClientEnv starts an issuer with alice in its directory, the
// given clients and one policy letting every client sign users in.
func startRealClientEnv(t *testing.T, clients []map[string]any) {
	t.Helper()
	hash, err := directory.HashBcrypt(alicePass)
	if err != nil {
		t.Fatal(err)
	}
	malHash, err := directory.HashBcrypt(malPass)
	if err != nil {
		t.Fatal(err)
	}
	startIssuer(t, issuerSetup{
		users: []map[string]any{{"id": aliceID, "login": aliceLogin, "password_hash": hash, "groups": []string{"staff"},
			"profile": map[string]any{"email": aliceLogin, "email_verified": true, "name": "Alice Smith", "given_name": "Alice"}},
			{"id": "00u-mallory", "login": malLogin, "password_hash": malHash, "profile": map[string]any{"email": malLogin}}},
		clients: clients,
		server: map[string]any{
			"scopes": []map[string]any{{"name": "orders:read", "default": true},
				{"name": consentOnly, "consent": "required", "description": "Make payments for you"}},
			"policies": []map[string]any{{"name": "People", "clients": []string{"*"}, "rules": []map[string]any{{
				"name": "Sign-in", "grant_types": []string{"authorization_code", deviceGrant}, "scopes": []string{"*"},
				"access_token_lifetime": "10m", "refresh_token_lifetime": "1d", "refresh_token_idle": "1h",
			}}}},
		},
	})
}

// relyingParty is a small web application signing its users in with the
// issuer: x/oauth2 (code flow, S256 PKCE, nonce) and go-oidc (ID token).
type relyingParty struct {
	*httptest.Server
	provider *oidc.Provider
	conf     oauth2.Config

	mu      sync.Mutex
	pending map[string][2]string // state -> verifier, nonce
	idToken string               // the last verified ID token
}

func newRelyingParty(t *testing.T) *relyingParty {
	rp := &relyingParty{pending: map[string][2]string{}}
	rp.Server = httptest.NewServer(http.HandlerFunc(rp.serve))
	t.Cleanup(rp.Close)
	return rp
}

func (rp *relyingParty) redirectURI() string { return rp.URL + "/callback" }

// connect discovers the issuer (once it runs).
func (rp *relyingParty) connect(t *testing.T, clientID string) {
	t.Helper()
	p, err := oidc.NewProvider(context.Background(), base+"/oauth2/default")
	if err != nil {
		t.Fatal(err)
	}
	rp.provider = p
	rp.conf = oauth2.Config{ClientID: clientID, Endpoint: p.Endpoint(), RedirectURL: rp.redirectURI(),
		Scopes: []string{oidc.ScopeOpenID, "profile", "email", consentOnly}}
	rp.conf.Endpoint.AuthStyle = oauth2.AuthStyleInParams
}

func (rp *relyingParty) serve(w http.ResponseWriter, r *http.Request) {
	page := func(status int, id, text string) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		fmt.Fprintf(w, "<!doctype html><title>RP</title><p id=%q>%s</p>", id, html.EscapeString(text))
	}
	switch r.URL.Path {
	case "/login":
		state, nonce, verifier := rand.Text(), rand.Text(), oauth2.GenerateVerifier()
		rp.mu.Lock()
		rp.pending[state] = [2]string{verifier, nonce}
		rp.mu.Unlock()
		http.Redirect(w, r, rp.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)), http.StatusFound)
	case "/callback":
		q := r.URL.Query()
		rp.mu.Lock()
		p, ok := rp.pending[q.Get("state")]
		delete(rp.pending, q.Get("state"))
		rp.mu.Unlock()
		switch {
		case !ok:
			page(http.StatusBadRequest, "error", "unknown state")
			return
		case q.Get("error") != "":
			page(http.StatusBadRequest, "error", q.Get("error")+": "+q.Get("error_description"))
			return
		case q.Get("iss") != base+"/oauth2/default":
			page(http.StatusBadRequest, "error", "wrong iss "+q.Get("iss"))
			return
		}
		tok, err := rp.conf.Exchange(r.Context(), q.Get("code"), oauth2.VerifierOption(p[0]))
		if err != nil {
			page(http.StatusBadGateway, "error", "exchange: "+err.Error())
			return
		}
		raw, _ := tok.Extra("id_token").(string)
		idt, err := rp.provider.Verifier(&oidc.Config{ClientID: rp.conf.ClientID}).Verify(r.Context(), raw)
		if err == nil && idt.Nonce != p[1] {
			err = fmt.Errorf("nonce %q", idt.Nonce)
		}
		if err == nil {
			err = idt.VerifyAccessToken(tok.AccessToken)
		}
		var claims struct {
			Email string `json:"email"`
		}
		if err == nil {
			err = idt.Claims(&claims)
		}
		if err != nil {
			page(http.StatusBadGateway, "error", "ID token: "+err.Error())
			return
		}
		rp.mu.Lock()
		rp.idToken = raw
		rp.mu.Unlock()
		page(http.StatusOK, "hello", "Hello "+claims.Email)
	case "/idtoken":
		rp.mu.Lock()
		defer rp.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, rp.idToken)
	case "/bye":
		page(http.StatusOK, "bye", "Signed out, state "+r.URL.Query().Get("state"))
	default:
		http.NotFound(w, r)
	}
}

// TestBrowserCodeFlowChromium: a real browser signs a user in to a real
// relying party: sign-in page, consent page, callback with an ID token
// the relying party verifies; then RP-initiated logout back to the
// relying party, after which signing in asks for the password again
// (and not for consent). A real browser enforces what an HTTP client
// ignores: CSP (form-action), SameSite cookies, redirects after POST.
func TestBrowserCodeFlowChromium(t *testing.T) {
	// Each step has its own 20s bound (headless.Driver); the whole flow
	// (a dozen page loads and sign-ins) gets room for a loaded CI
	// machine under -race, where 60s ran out mid-flow.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tab, browserLog := headless.Chromium(t, ctx)

	rp := newRelyingParty(t)
	startRealClientEnv(t, []map[string]any{{
		"client_id": chromeSPA, "name": "Orders SPA", "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code"}, "redirect_uris": []string{rp.redirectURI()},
		"post_logout_redirect_uris": []string{rp.URL + "/bye"},
	}})
	rp.connect(t, chromeSPA)

	d := headless.Driver{T: t, Tab: tab, Log: browserLog}
	fail, step, read := d.Fail, d.Step, d.Read

	// The relying party sends the browser to the sign-in page.
	step("sign-in page", chromedp.Navigate(rp.URL+"/login"), chromedp.WaitVisible(chromedp.CSS("#password")))
	if loc := read(chromedp.Location()); !strings.HasPrefix(loc, base+"/oauth2/default/v1/authorize?") {
		fail("sign-in page at %s", loc)
	}
	sctx, cancelShot := context.WithTimeout(tab, 10*time.Second)
	shot, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	cancelShot()
	if err != nil {
		fail("screenshot: %v", err)
	}
	if err := os.WriteFile(filepath.Join(os.TempDir(), "signin.png"), shot, 0o644); err != nil {
		t.Log(err)
	}

	if text := read(chromedp.Text(chromedp.CSS("#client_name"))); text != "to continue to Orders SPA" {
		fail("sign-in page names the client as %q", text)
	}

	// A wrong password: the page says so and keeps the username, so
	// only the password is typed again.
	step("wrong password",
		chromedp.SendKeys(chromedp.CSS("#username"), malLogin),
		chromedp.SendKeys(chromedp.CSS("#password"), "not-"+malPass),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS("p.error")),
	)
	if v := read(chromedp.Value(chromedp.CSS("#username"))); v != malLogin {
		fail("after a failed sign-in the username field holds %q", v)
	}
	if v := read(chromedp.Value(chromedp.CSS("#password"))); v != "" {
		fail("after a failed sign-in the password field holds %q", v)
	}
	step("sign in as mallory",
		chromedp.SendKeys(chromedp.CSS("#password"), malPass),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS("button[value=allow]")),
	)
	if who := read(chromedp.Text(chromedp.CSS("#signed_in_as"))); who != malLogin {
		fail("consent page says signed in as %q", who)
	}
	// "Not you?": the session ends, the sign-in page comes back for the
	// same request, and alice signs in and is asked in turn.
	step("not you", chromedp.Click(chromedp.CSS("button[value=switch]")), chromedp.WaitVisible(chromedp.CSS("#password")))
	if v := read(chromedp.Value(chromedp.CSS("#username"))); v != "" {
		fail("after \"not you?\" the username field holds %q", v)
	}
	step("sign in",
		chromedp.SendKeys(chromedp.CSS("#username"), aliceLogin),
		chromedp.SendKeys(chromedp.CSS("#password"), alicePass),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS("button[value=allow]")),
	)
	if text := read(chromedp.Text(chromedp.CSS("main"))); !strings.Contains(text, "Orders SPA") || !strings.Contains(text, "Make payments for you") {
		fail("consent page shows %q", text)
	}
	if who := read(chromedp.Text(chromedp.CSS("#signed_in_as"))); who != aliceLogin {
		fail("consent page after \"not you?\" says signed in as %q", who)
	}
	step("consent", chromedp.Click(chromedp.CSS("button[value=allow]")), chromedp.WaitReady(chromedp.CSS("#hello, #error")))
	loc, text := read(chromedp.Location()), read(chromedp.Text(chromedp.CSS("body")))
	if text != "Hello "+aliceLogin || !strings.HasPrefix(loc, rp.redirectURI()+"?") {
		fail("relying party at %s shows %q", loc, text)
	}

	// RP-initiated logout with the ID token the relying party kept.
	idToken := rp.lastIDToken(t)

	// Logout CSRF: a page of another site sends the signed-in victim to
	// /logout with the attacker's own ID token. The session survives:
	// the victim is asked, and signing in to the relying party again
	// needs no password.
	evil := evilLogoutPage(t, rp.signInWithHTTP(t, malLogin, malPass), rp.URL+"/bye")
	step("cross-site logout with the attacker's ID token", chromedp.Navigate(evil.URL), chromedp.Click(chromedp.CSS("#go")),
		chromedp.WaitReady(chromedp.CSS("main h1, #bye")))
	if text := read(chromedp.Text(chromedp.CSS("main"))); !strings.Contains(text, "Sign out of") || !strings.Contains(text, aliceLogin) {
		fail("cross-site logout shows %q, want the confirmation", text)
	}
	step("session survives", chromedp.Navigate(rp.URL+"/login"), chromedp.WaitReady(chromedp.CSS("#hello, #error, #password")))
	if text := read(chromedp.Text(chromedp.CSS("body"))); text != "Hello "+aliceLogin {
		fail("after the cross-site logout the relying party shows %q: the session ended", text)
	}

	// The victim's own ID token (okta-auth-js signOut()) signs out
	// without a page.
	logout := base + "/oauth2/default/v1/logout?" + url.Values{"id_token_hint": {idToken},
		"post_logout_redirect_uri": {rp.URL + "/bye"}, "state": {"see-you"}}.Encode()
	step("logout", chromedp.Navigate(logout), chromedp.WaitReady(chromedp.CSS("#bye")))
	if loc, text := read(chromedp.Location()), read(chromedp.Text(chromedp.CSS("#bye"))); loc != rp.URL+"/bye?state=see-you" || !strings.HasSuffix(text, "see-you") {
		fail("after logout at %s showing %q", loc, text)
	}

	// The session ended: signing in again shows the sign-in page.
	step("sign-in page after logout", chromedp.Navigate(rp.URL+"/login"), chromedp.WaitVisible(chromedp.CSS("#password")))
	if loc := read(chromedp.Location()); !strings.HasPrefix(loc, base+"/oauth2/default/v1/authorize?") {
		fail("sign-in page after logout at %s", loc)
	}
	// Consent is remembered: signing in goes straight back to the
	// relying party.
	step("sign in again",
		chromedp.SendKeys(chromedp.CSS("#username"), aliceLogin),
		chromedp.SendKeys(chromedp.CSS("#password"), alicePass),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitReady(chromedp.CSS("#hello, #error")),
	)
	if text := read(chromedp.Text(chromedp.CSS("body"))); text != "Hello "+aliceLogin {
		fail("relying party shows %q", text)
	}

	// Confirming on the page signs out, and the browser goes to the
	// post-logout URI registered for the hint's client.
	step("confirm a foreign logout", chromedp.Navigate(evil.URL), chromedp.Click(chromedp.CSS("#go")),
		chromedp.WaitVisible(chromedp.CSS("button[value=yes]")), chromedp.Click(chromedp.CSS("button[value=yes]")),
		chromedp.WaitReady(chromedp.CSS("#bye")))
	step("sign-in page after the confirmed logout", chromedp.Navigate(rp.URL+"/login"), chromedp.WaitVisible(chromedp.CSS("#password")))
}

// lastIDToken is the ID token the relying party verified last.
func (rp *relyingParty) lastIDToken(t *testing.T) string {
	t.Helper()
	res, err := http.Get(rp.URL + "/idtoken")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if len(b) == 0 {
		t.Fatal("the relying party kept no ID token")
	}
	return string(b)
}

// signInWithHTTP signs a user in to the relying party with a plain HTTP
// client (another browser) and returns the ID token it got.
func (rp *relyingParty) signInWithHTTP(t *testing.T, login, pass string) string {
	t.Helper()
	b := browser.New(t, base)
	res, _ := b.Get(rp.URL + "/login")
	res, page := b.Get(res.Header.Get("Location"))
	res, page = b.SignIn(page, login, pass)
	if res.StatusCode == http.StatusOK { // consent
		f := browser.Fields(page)
		f.Set("decision", "allow")
		res, _ = b.Post(base+"/oauth2/v1/consent", f)
	}
	if res, text := b.Get(res.Header.Get("Location")); res.StatusCode != http.StatusOK {
		t.Fatalf("%s signing in to the relying party: %d %s", login, res.StatusCode, text)
	}
	return rp.lastIDToken(t)
}

// evilLogoutPage is a page of another site linking to the issuer's
// logout with the attacker's ID token.
func evilLogoutPage(t *testing.T, hint, postLogout string) *httptest.Server {
	logout := base + "/oauth2/default/v1/logout?" + url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {postLogout}}.Encode()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>Win a prize</title><a id="go" href="%s">Claim</a>`, html.EscapeString(logout))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestOpenIDClientInterop: Node's openid-client (a certified OpenID
// relying party library) runs tokenissuer/interop/interop.test.mjs
// against the issuer: discovery, code flow with PKCE through the
// sign-in and consent forms, userinfo, refresh, introspection,
// revocation, logout and the device flow. Needs node and `npm ci --prefix
// tokenissuer/interop`.
func TestOpenIDClientInterop(t *testing.T) {
	node, err := exec.LookPath("node")
	testkit.Need(t, err == nil, "no node on PATH")
	_, err = os.Stat(filepath.Join("interop", "node_modules", "openid-client"))
	testkit.Need(t, err == nil, "no tokenissuer/interop/node_modules (npm ci --prefix tokenissuer/interop)")

	// The redirect URIs are never fetched: the test reads the redirects.
	const (
		redirect   = "http://127.0.0.1:9/interop/callback"
		postLogout = "http://127.0.0.1:9/interop/bye"
	)
	startRealClientEnv(t, []map[string]any{
		{"client_id": interopSPA, "name": "Interop SPA", "token_endpoint_auth_method": "none",
			"grant_types":   []string{"authorization_code", "refresh_token"},
			"redirect_uris": []string{redirect}, "post_logout_redirect_uris": []string{postLogout}},
		{"client_id": interopWeb, "name": "Interop web app", "client_secret": interopSec, "token_endpoint_auth_method": "client_secret_basic",
			"grant_types": []string{"authorization_code", "refresh_token"}, "redirect_uris": []string{redirect}},
		{"client_id": interopTV, "name": "Interop TV", "token_endpoint_auth_method": "none",
			"grant_types": []string{deviceGrant, "refresh_token"}},
	})
	// A service (client_credentials, DPoP) with its own policy, first.
	reloadIssuer(t, func(ti map[string]any) {
		ti["clients"] = append(ti["clients"].([]any), map[string]any{"client_id": interopService, "client_secret": interopServiceSec})
		srv := ti["authorization_servers"].(map[string]any)["default"].(map[string]any)
		srv["policies"] = append([]any{map[string]any{"name": "Services", "clients": []string{interopService}, "rules": []map[string]any{{
			"name": "Machines", "grant_types": []string{"client_credentials"}, "scopes": []string{"orders:read"}}}}}, srv["policies"].([]any)...)
	})

	// Generous: under -race the issuer's bcrypt is slow.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "tokenissuer/interop/interop.test.mjs")
	cmd.Dir = ".." // the repository root
	cmd.Env = append(os.Environ(),
		"APIACCESS_ISSUER="+base+"/oauth2/default",
		"APIACCESS_REDIRECT_URI="+redirect,
		"APIACCESS_POST_LOGOUT_URI="+postLogout,
		"APIACCESS_SPA_ID="+interopSPA,
		"APIACCESS_WEB_ID="+interopWeb,
		"APIACCESS_WEB_SECRET="+interopSec,
		"APIACCESS_SERVICE_ID="+interopService,
		"APIACCESS_SERVICE_SECRET="+interopServiceSec,
		"APIACCESS_DEVICE_ID="+interopTV,
		"APIACCESS_USERNAME="+aliceLogin,
		"APIACCESS_PASSWORD="+alicePass,
		"APIACCESS_USER_ID="+aliceID,
		"APIACCESS_CONSENT_SCOPE="+consentOnly,
		"NO_COLOR=1",
	)
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	err = testkit.Start(t, cmd).Wait() // killed with the test binary, unlike CommandContext alone
	out := output.String()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
	t.Logf("node --test:\n%s", out)
	if strings.Contains(out, "# skipped ") && !strings.Contains(out, "# skipped 0") {
		t.Fatalf("interop tests skipped:\n%s", out)
	}
}

// TestBrowserDeviceApprovalChromium (RFC 8628 sections 3.3.1, 5.4): the
// approval page shows the user code and the client. A code the user
// types on the entry page is approved with one click; a
// verification_uri_complete link, which an attacker can send to a
// signed-in victim, cannot be approved until the user confirms that
// the code matches their device.
func TestBrowserDeviceApprovalChromium(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // steps are bounded one by one
	defer cancel()
	tab, browserLog := headless.Chromium(t, ctx)
	startRealClientEnv(t, []map[string]any{{"client_id": interopTV, "name": "Kitchen TV", "token_endpoint_auth_method": "none",
		"grant_types": []string{deviceGrant}}})
	d := headless.Driver{T: t, Tab: tab, Log: browserLog}
	fail, step, read := d.Fail, d.Step, d.Read
	authorize := func() map[string]any {
		_, body := post(t, "/oauth2/default/v1/device/authorize", url.Values{"client_id": {interopTV}, "scope": {"openid"}}, nil)
		if body["user_code"] == nil {
			t.Fatalf("device authorization: %v", body)
		}
		return body
	}
	poll := func(da map[string]any) map[string]any {
		_, body := post(t, "/oauth2/default/v1/token", url.Values{"grant_type": {deviceGrant}, "device_code": {da["device_code"].(string)}, "client_id": {interopTV}}, nil)
		return body
	}

	// Typed: entry page, sign-in, approval showing code and client.
	typed := authorize()
	code := typed["user_code"].(string)
	step("entry page", chromedp.Navigate(typed["verification_uri"].(string)), chromedp.WaitVisible(chromedp.CSS("#user_code")),
		chromedp.SendKeys(chromedp.CSS("#user_code"), strings.ToLower(code)), chromedp.Submit(chromedp.CSS("#user_code")),
		chromedp.WaitVisible(chromedp.CSS("#password")))
	step("sign in", chromedp.SendKeys(chromedp.CSS("#username"), aliceLogin), chromedp.SendKeys(chromedp.CSS("#password"), alicePass),
		chromedp.Submit(chromedp.CSS("#password")), chromedp.WaitVisible(chromedp.CSS("button[value=allow]")))
	if text := read(chromedp.Text(chromedp.CSS("main"))); !strings.Contains(text, code) || !strings.Contains(text, "Kitchen TV") {
		fail("approval page of a typed code shows %q", text)
	}
	step("allow typed", chromedp.Click(chromedp.CSS("button[value=allow]")), chromedp.WaitVisible(chromedp.CSS("#device_result")))
	if h, text := read(chromedp.Text(chromedp.CSS("h1"))), read(chromedp.Text(chromedp.CSS("#device_result"))); h != "Device connected" || !strings.Contains(text, "Kitchen TV is now connected") {
		fail("after allowing a typed code: %q %q", h, text)
	}

	// A link: the signed-in user lands on the approval page at once.
	link := authorize()
	code = link["user_code"].(string)
	step("link", chromedp.Navigate(link["verification_uri_complete"].(string)), chromedp.WaitVisible(chromedp.CSS("#code_matches")))
	if text := read(chromedp.Text(chromedp.CSS("main"))); !strings.Contains(text, code) || !strings.Contains(text, "Kitchen TV") {
		fail("approval page of a link shows %q", text)
	}
	// Allow without the confirmation does not submit the form: the
	// browser holds it back (the server refuses it too: unit tests).
	step("allow unconfirmed", chromedp.Click(chromedp.CSS("button[value=allow]")))
	if invalid, err := chromedp.Run(tab, chromedp.Evaluate[bool](`document.getElementById("code_matches").matches(":invalid")`)); err != nil || !invalid {
		fail("the unconfirmed form was not held back: %v %v", invalid, err)
	}
	if b := poll(link); b["error"] != "authorization_pending" {
		fail("a link's device was approved without the confirmation: %v", b)
	}
	if loc := read(chromedp.Location()); loc != link["verification_uri_complete"].(string) {
		fail("unconfirmed approval left the page for %s", loc)
	}
	step("allow confirmed", chromedp.Click(chromedp.CSS("#code_matches")), chromedp.Click(chromedp.CSS("button[value=allow]")),
		chromedp.WaitVisible(chromedp.CSS("#device_result")))
	if h := read(chromedp.Text(chromedp.CSS("h1"))); h != "Device connected" {
		fail("after the confirmed approval: %q", h)
	}

	// Deny: the page says the device was not connected.
	denied := authorize()
	step("deny", chromedp.Navigate(denied["verification_uri_complete"].(string)), chromedp.WaitVisible(chromedp.CSS("button[value=deny]")),
		chromedp.Click(chromedp.CSS("button[value=deny]")), chromedp.WaitVisible(chromedp.CSS("#device_result")))
	if h := read(chromedp.Text(chromedp.CSS("h1"))); h != "Device not connected" {
		fail("after denying: %q", h)
	}
	if b := poll(denied); b["error"] != "access_denied" {
		fail("a denied device's poll: %v", b)
	}
}
