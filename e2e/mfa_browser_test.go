package e2e

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"golang.org/x/crypto/bcrypt"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
	"github.com/apiaccess/caddy-apiaccess/internal/testkit/caddytester"
	"github.com/apiaccess/caddy-apiaccess/internal/testkit/headless"
)

// The people of the MFA browser tests (issue 13): an admin whom the
// admin tools' sign-on policy asks for a second factor, a contractor
// whom it denies, and a plain user.
const (
	mfaPassword   = "mfa-test-password"
	mfaAdmin      = "alice@example.com"
	mfaAdminID    = "00u-mfa-alice"
	mfaContractor = "carol@example.com"
	mfaUser       = "dave@example.com"
	// mfaBadCode is what the factor pages say of a refused code.
	mfaBadCode = "That code is not valid. Try again."
	// Okta's acr values (Okta's /authorize reference, acr_values).
	acr2FA  = "urn:okta:loa:2fa:any"
	acr1Pwd = "urn:okta:loa:1fa:pwd"
	// mfaAlert is a page's error message (one a script may show is
	// hidden until then).
	mfaAlert = "p.error[role=alert]:not([hidden])"
)

// mfaApp is the origin of the test apps' redirect URIs: the issuer's
// Caddy on another host name, so another origin than the issuer's.
var mfaApp = "http://127.0.0.1:" + issuerPort

// mfaCaddyfile: the issuer at {BASE} (http://localhost:P, a secure
// context and a host name, as a WebAuthn Relying Party needs) with the
// embedded store and a users file; clients console (admins: a second
// factor, enrolled at sign-in; contractors denied), portal (no policy:
// the password), vault (a phishing-resistant factor for everyone) and tv
// (the device flow, under console's policy); and the apps' callback on
// another origin, as an app's is: {APP}/cb (http://127.0.0.1:P).
const mfaCaddyfile = `{
	admin {ADMIN}
	auto_https off
	token_issuer {
		base_url {BASE}
		key_encryption_secret {SEAL}
		storage embedded {DB}
		directory file {USERS}
		authenticators totp webauthn
		client console {
			name "Admin console"
			secret console-secret
			grant_types authorization_code
			redirect_uris {APP}/cb
		}
		client portal {
			name "Portal"
			secret portal-secret
			grant_types authorization_code
			redirect_uris {APP}/cb
		}
		client vault {
			name "Key vault"
			secret vault-secret
			grant_types authorization_code
			redirect_uris {APP}/cb
		}
		client tv {
			name "TV app"
			auth_method none
			grant_types urn:ietf:params:oauth:grant-type:device_code
		}
		sign_on_policy admin-tools {
			priority 1
			clients console tv
			rule deny-contractors {
				priority 1
				groups contractors
				access deny
			}
			rule admins-mfa {
				priority 2
				groups admins
				factor any
				enrollment at_sign_in
			}
		}
		sign_on_policy vault-keys {
			priority 2
			clients vault
			rule passkeys {
				factor phishing_resistant
				enrollment at_sign_in
			}
		}
		authorization_server default {
			audience api://default
			policy everyone {
				clients *
				rule all {
					grant_types authorization_code urn:ietf:params:oauth:grant-type:device_code
					scopes *
				}
			}
		}
	}
}

{BASE} {
	token_issuer
}

{APP} {
	handle /cb {
		header Content-Type "text/html; charset=utf-8"
		respond ` + "`" + `<!doctype html><title>App</title><p id="callback">Back at the app.</p>` + "`" + ` 200
	}
}
`

// mfaEnv is the in-process Caddy of the MFA tests and what the
// subtests pass on: the admin's TOTP secret and recovery codes.
type mfaEnv struct {
	ctx      context.Context
	http     *http.Client
	secret   string   // alice's TOTP secret, read off the enrollment page
	enrolled string   // the code that confirmed the enrollment
	codes    []string // alice's recovery codes
}

func startMFAIssuer(t *testing.T, ctx context.Context) *mfaEnv {
	t.Helper()
	_, err := os.Stat(headless.Exe)
	testkit.Need(t, err == nil, "no Chromium at "+headless.Exe+" (apt-get install chromium)")
	hash, err := bcrypt.GenerateFromPassword([]byte(mfaPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	user := func(id, login string, groups ...string) map[string]any {
		return map[string]any{"id": id, "login": login, "password_hash": string(hash), "groups": groups}
	}
	dir := t.TempDir()
	users, _ := json.Marshal(map[string]any{"users": []map[string]any{
		user(mfaAdminID, mfaAdmin, "admins"),
		user("00u-mfa-carol", mfaContractor, "contractors"),
		user("00u-mfa-dave", mfaUser),
	}})
	usersPath := filepath.Join(dir, "users.json")
	if err := os.WriteFile(usersPath, users, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := strings.NewReplacer("{ADMIN}", caddytester.AdminAddr(), "{BASE}", base, "{APP}", mfaApp, "{SEAL}", sealSecret,
		"{DB}", filepath.Join(dir, "issuer.db"), "{USERS}", usersPath).Replace(mfaCaddyfile)
	caddytester.NewTester(t).InitServer(cfg, "caddyfile")
	hc := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(hc.CloseIdleConnections)
	return &mfaEnv{ctx: ctx, http: hc}
}

// TestMFABrowser runs multi-factor sign-in in headless Chromium against
// a real Caddy: TOTP enrollment at sign-in, sign-in with codes (wrong,
// replayed, the next time step, recovery codes), a passkey registered
// and used through Chromium's virtual authenticator, step-up of a
// password session, a deny rule and the device flow, each in a fresh
// browser profile whose log must show no CSP violation. The subtests
// run in order: later ones use the factors earlier ones enrolled.
func TestMFABrowser(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	e := startMFAIssuer(t, ctx)
	for _, s := range []struct {
		name string
		run  func(*testing.T, *mfaEnv)
	}{
		{"TOTPEnrollmentAtSignIn", testMFAEnrollTOTP},
		{"TOTPSignIn", testMFATOTPSignIn},
		{"WebAuthn", testMFAWebAuthn},
		{"StepUp", testMFAStepUp},
		{"DenyRule", testMFADeny},
		{"DeviceFlow", testMFADevice},
	} {
		if !t.Run(s.name, func(t *testing.T) { s.run(t, e) }) && e.secret == "" {
			t.Fatal("no factor enrolled: the later subtests need one")
		}
	}
}

// testMFAEnrollTOTP: alice's first sign-in to console: the password,
// then the enrollment page, whose key the test reads and answers with
// a code; the recovery codes page once; then the code at the redirect
// URI, whose ID token says pwd, otp, mfa and acr 2fa.
func testMFAEnrollTOTP(t *testing.T, e *mfaEnv) {
	b := e.browser(t)
	a := b.authorize("console", nil)
	b.signIn(mfaAdmin, "#totp_secret")
	if b.visible("#password") || !b.visible("#totp_qr") {
		b.fail("the enrollment page should show the QR code, and no password field")
	}
	secret := strings.ReplaceAll(b.text("#totp_secret"), " ", "")
	code := totpAt(t, secret, time.Now())
	b.next("enrollment code", chromedp.Steps(chromedp.SendKeys(chromedp.CSS("form#totp #code"), code), chromedp.Submit(chromedp.CSS("form#totp #code"))),
		"#recovery_codes")
	codes := b.recoveryCodes()
	if len(codes) != 10 || slices.Contains(codes, "") {
		b.fail("%d recovery codes shown, want 10", len(codes))
	}
	e.secret, e.enrolled, e.codes = secret, code, codes
	b.next("continue", chromedp.Click(chromedp.CSS("#recovery_codes ~ form button")), "#callback")
	tok := e.redeem(t, "console", b.callback(a), a)
	if got := amrOf(tok.id); !hasAll(got, "pwd", "otp", "mfa") || tok.id["acr"] != acr2FA {
		t.Errorf("ID token amr %v acr %v, want pwd otp mfa and %s", got, tok.id["acr"], acr2FA)
	}
	if got := amrOf(tok.access); !hasAll(got, "pwd", "otp", "mfa") {
		t.Errorf("access token amr %v", got)
	}
	// The session now meets the policy: the next authorization answers at once.
	a = b.authorize("console", nil, "#callback")
	b.callback(a)
	b.noCSPViolations()
}

// testMFATOTPSignIn: a later sign-in in a fresh browser: a wrong code
// and the enrollment's code (used) are refused with the page's error,
// the next time step's code signs in (the server accepts the adjacent
// step); that code, used, is refused in another sign-in, where a
// recovery code works, once.
func testMFATOTPSignIn(t *testing.T, e *mfaEnv) {
	b := e.browser(t)
	a := b.authorize("console", nil)
	b.signIn(mfaAdmin, "form#totp")
	if b.visible("#totp_secret") || !b.exists("form#recovery") {
		b.fail("the factor page should offer the code and a recovery code, and no enrollment")
	}
	b.totp("a wrong code", wrongCode(t, e.secret), mfaAlert)
	if msg := b.text(mfaAlert); msg != mfaBadCode {
		b.fail("a wrong code shows %q, want %q", msg, mfaBadCode)
	}
	b.totp("the enrollment's code, used", e.enrolled, mfaAlert)
	next := totpAt(t, e.secret, time.Now().Add(30*time.Second))
	b.totp("the next step's code", next, "#callback")
	tok := e.redeem(t, "console", b.callback(a), a)
	if got := amrOf(tok.id); !hasAll(got, "pwd", "otp", "mfa") {
		t.Errorf("ID token amr %v after a code", got)
	}

	b.clearCookies()
	a = b.authorize("console", nil)
	b.signIn(mfaAdmin, "form#totp")
	b.totp("that code again, in another sign-in", next, mfaAlert)
	b.recovery("a recovery code", strings.ToLower(e.codes[0]), "#callback")
	tok = e.redeem(t, "console", b.callback(a), a)
	if got := amrOf(tok.id); !hasAll(got, "pwd", "mfa") {
		t.Errorf("ID token amr %v after a recovery code", got)
	}

	b.clearCookies()
	b.authorize("console", nil)
	b.signIn(mfaAdmin, "form#totp")
	b.recovery("the used recovery code", e.codes[0], mfaAlert)
	if msg := b.text(mfaAlert); msg != mfaBadCode {
		b.fail("a used recovery code shows %q", msg)
	}
	b.noCSPViolations()

	// The check above can fail: an image from elsewhere on this factor
	// page (img-src data:) is refused, and the browser's report says so.
	eval1[bool](b, `(document.body.appendChild(Object.assign(document.createElement("img"), {src: "http://127.0.0.1:9/csp-canary.png"})), true)`)
	testkit.WaitFor(t, "the CSP report of the canary image", 10*time.Second, func() bool {
		return strings.Contains(b.log(), "csp-canary.png") && cspViolation(b.log())
	})
}

// testMFAWebAuthn: dave's first sign-in to vault (phishing-resistant
// rule) registers a passkey on Chromium's virtual authenticator through
// the enrollment page; the next sign-in (acr_values phrh: a
// device-bound key) uses it: amr hwk and mfa, and the authenticator's
// sign count went up.
func testMFAWebAuthn(t *testing.T, e *mfaEnv) {
	b := e.browser(t)
	auth, err := headless.VirtualAuthenticator(b.tab)
	if err != nil {
		t.Fatal(err)
	}
	signCount := func() float64 {
		t.Helper()
		creds, err := headless.AuthenticatorCredentials(b.tab, auth)
		if err != nil {
			b.fail("%v", err)
		}
		if len(creds) != 1 || creds[0].RpID != "localhost" {
			b.fail("the authenticator holds %d credentials (want 1, for RP localhost)", len(creds))
		}
		return creds[0].SignCount
	}

	a := b.authorize("vault", nil)
	b.signIn(mfaUser, `form#webauthn[data-webauthn="create"]`)
	if b.exists("#totp_secret") {
		b.fail("a phishing-resistant rule offered an authenticator app")
	}
	b.scriptReady()
	b.next("register a passkey", chromedp.Click(chromedp.CSS("form#webauthn button")), "#recovery_codes")
	registered := signCount()
	b.next("continue", chromedp.Click(chromedp.CSS("#recovery_codes ~ form button")), "#callback")
	tok := e.redeem(t, "vault", b.callback(a), a)
	if got := amrOf(tok.id); !hasAll(got, "pwd", "hwk", "mfa") || slices.Contains(got, "swk") {
		t.Errorf("ID token amr %v after the registration, want pwd hwk mfa", got)
	}

	b.clearCookies()
	a = b.authorize("vault", url.Values{"acr_values": {"phrh"}})
	// The factor page starts the ceremony by itself and posts it.
	b.signIn(mfaUser, "#callback")
	tok = e.redeem(t, "vault", b.callback(a), a)
	if got := amrOf(tok.id); !hasAll(got, "pwd", "hwk", "mfa") || slices.Contains(got, "otp") || tok.id["acr"] != "phrh" {
		t.Errorf("ID token amr %v acr %v after the passkey sign-in, want pwd hwk mfa, phrh", got, tok.id["acr"])
	}
	if after := signCount(); !(after > registered) {
		t.Errorf("the authenticator's sign count %v after the sign-in, %v after the registration: want it increased", after, registered)
	}
	b.noCSPViolations()
}

// testMFAStepUp: alice signs in to portal with her password, then
// console in the same browser: the factor page comes without the
// password page, and the session is stepped up, not replaced.
func testMFAStepUp(t *testing.T, e *mfaEnv) {
	b := e.browser(t)
	a := b.authorize("portal", nil)
	b.signIn(mfaAdmin, "#callback")
	first := e.redeem(t, "portal", b.callback(a), a)
	if got := amrOf(first.id); !slices.Equal(got, []string{"pwd"}) || first.id["acr"] != acr1Pwd {
		t.Errorf("portal's ID token amr %v acr %v, want [pwd] %s", got, first.id["acr"], acr1Pwd)
	}
	sid := b.sessionCookie()

	a = b.authorize("console", nil, "form#totp", "#password")
	if b.visible("#password") {
		b.fail("console asked for the password again instead of stepping the session up")
	}
	b.recovery("a recovery code", e.codes[1], "#callback")
	second := e.redeem(t, "console", b.callback(a), a)
	if got := amrOf(second.id); !hasAll(got, "pwd", "otp", "mfa") || second.id["acr"] != acr2FA {
		t.Errorf("stepped-up ID token amr %v acr %v", got, second.id["acr"])
	}
	if got := b.sessionCookie(); got != sid {
		t.Errorf("the step-up replaced the session cookie")
	}
	if first.id["auth_time"] != second.id["auth_time"] || first.id["sid"] != second.id["sid"] {
		t.Errorf("auth_time %v then %v, sid equal %v: want the same sign-in", first.id["auth_time"], second.id["auth_time"], first.id["sid"] == second.id["sid"])
	}
	b.noCSPViolations()
}

// testMFADeny: the contractor's right password ends at the redirect URI
// with access_denied, and no session.
func testMFADeny(t *testing.T, e *mfaEnv) {
	b := e.browser(t)
	a := b.authorize("console", nil)
	b.signIn(mfaContractor, "#callback")
	q := b.callbackQuery(a)
	if q.Get("error") != "access_denied" || q.Has("code") {
		b.fail("the contractor came back with error %q (code given: %v), want access_denied", q.Get("error"), q.Has("code"))
	}
	if b.sessionCookie() != "" {
		t.Errorf("a denied sign-in left a session cookie")
	}
	b.noCSPViolations()
}

// testMFADevice: the device flow's verification page signs alice in
// through the same factor step before she approves the device; the
// device's tokens carry mfa.
func testMFADevice(t *testing.T, e *mfaEnv) {
	res, err := e.http.PostForm(base+"/oauth2/default/v1/device/authorize", url.Values{"client_id": {"tv"}, "scope": {"openid"}})
	if err != nil {
		t.Fatal(err)
	}
	var da struct {
		DeviceCode string `json:"device_code"`
		Complete   string `json:"verification_uri_complete"`
		Interval   int    `json:"interval"`
	}
	err = json.NewDecoder(res.Body).Decode(&da)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 || da.DeviceCode == "" || !strings.HasPrefix(da.Complete, base+"/") {
		t.Fatalf("device authorization: %d %v, verification_uri_complete %q", res.StatusCode, err, redactURL(da.Complete))
	}
	b := e.browser(t)
	b.next("verification page", chromedp.Navigate(da.Complete), "#password")
	b.signIn(mfaAdmin, "form#totp")
	b.recovery("a recovery code", e.codes[2], "#code_matches")
	b.next("approve", chromedp.Steps(chromedp.Click(chromedp.CSS("#code_matches")), chromedp.Click(chromedp.CSS(`button[value="allow"]`))), "#device_result")
	if got := b.text("h1"); got != "Device connected" {
		b.fail("after the approval the page says %q", got)
	}
	b.noCSPViolations()

	// RFC 8628 section 3.4: poll at the interval the server gave.
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.DeviceCode}, "client_id": {"tv"}}
	var tok map[string]any
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, body := e.postToken(t, form, "", "")
		if status == 200 {
			tok = body
			break
		}
		if (body["error"] != "authorization_pending" && body["error"] != "slow_down") || time.Now().After(deadline) {
			t.Fatalf("device token: %d %v", status, body["error"])
		}
		select {
		case <-time.After(time.Duration(max(da.Interval, 1)) * time.Second):
		case <-e.ctx.Done():
			t.Fatal(e.ctx.Err())
		}
	}
	id, _ := tok["id_token"].(string)
	if got := amrOf(jwtClaims(t, id)); !hasAll(got, "pwd", "otp", "mfa") {
		t.Errorf("the device's ID token amr %v", got)
	}
}

// mfaTab is a tab of a fresh Chromium profile. Its failure reports
// leave out codes and secrets: the URL without query values, only the
// page's heading and error.
type mfaTab struct {
	t   *testing.T
	tab context.Context
	log func() string
}

func (e *mfaEnv) browser(t *testing.T) *mfaTab {
	t.Helper()
	tab, log := headless.Chromium(t, e.ctx)
	return &mfaTab{t: t, tab: tab, log: log}
}

func (b *mfaTab) fail(format string, args ...any) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.tab, 3*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`[document.querySelector("h1"), document.querySelector("p.error[role=alert]:not([hidden])")].filter(Boolean).map(e => e.textContent).join(": ")`))
	b.t.Fatalf("%s\nbrowser at %s showing %q\nbrowser log:\n%s", fmt.Sprintf(format, args...), redactURL(loc), page, redactLog(b.log()))
}

func (b *mfaTab) step(name string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.tab, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail("%s: %v", name, err)
	}
}

func eval1[T any](b *mfaTab, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.tab, 5*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.fail("%s: %v", expr, err)
	}
	return v
}

// next runs act, which loads another page, and waits for one of want
// to show on the new page (the old one is marked, so that what it shows
// is not taken for the answer). An error message or the app's callback
// ends the wait too: one that is not wanted fails the test at once. It
// returns the selector that showed. (chromedp waits for the first node
// the selectors match to show: the hidden message of a WebAuthn form is
// left out.)
func (b *mfaTab) next(name string, act chromedp.Action[chromedp.Void], want ...string) string {
	b.t.Helper()
	eval1[bool](b, `(document.documentElement.dataset.stale = "1", true)`)
	all := append(slices.Clone(want), mfaAlert, "#callback")
	sel := make([]string, len(all))
	for i, s := range all {
		sel[i] = "html:not([data-stale]) " + s
	}
	// A form the page's CSP blocks loads nothing: the report ends the wait.
	reported := strings.Count(b.log(), "Content Security Policy")
	ctx, cancel := context.WithTimeout(b.tab, 20*time.Second)
	defer cancel()
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if strings.Count(b.log(), "Content Security Policy") > reported {
					stop(errCSPReport)
					return
				}
			}
		}
	}()
	if err := chromedp.Do(ctx, act, chromedp.WaitVisible(chromedp.CSS(strings.Join(sel, ", ")))); err != nil {
		if errors.Is(context.Cause(ctx), errCSPReport) {
			err = errCSPReport
		}
		b.fail("%s: %v", name, err)
	}
	for _, s := range all {
		if b.visible(s) {
			if !slices.Contains(want, s) {
				b.fail("%s: the page shows %s, want %s", name, s, strings.Join(want, " or "))
			}
			return s
		}
	}
	b.fail("%s: nothing wanted shows", name)
	return ""
}

var errCSPReport = errors.New("the browser reported a Content Security Policy violation")

func (b *mfaTab) visible(sel string) bool {
	b.t.Helper()
	j, _ := json.Marshal(sel)
	return eval1[bool](b, fmt.Sprintf(`[...document.querySelectorAll(%s)].some(e => e.checkVisibility())`, j))
}

func (b *mfaTab) exists(sel string) bool {
	b.t.Helper()
	j, _ := json.Marshal(sel)
	return eval1[bool](b, fmt.Sprintf(`document.querySelector(%s) !== null`, j))
}

func (b *mfaTab) text(sel string) string {
	b.t.Helper()
	j, _ := json.Marshal(sel)
	return strings.TrimSpace(eval1[string](b, fmt.Sprintf(`(document.querySelector(%s) || {textContent: ""}).textContent`, j)))
}

// authRequest is what the test app keeps of an authorization request.
type authRequest struct {
	client, state, nonce, verifier string
}

// authorize opens the authorization of client on the default server
// and waits for want (default: the sign-in page).
func (b *mfaTab) authorize(client string, extra url.Values, want ...string) authRequest {
	b.t.Helper()
	a := authRequest{client: client, state: randomString(b.t), nonce: randomString(b.t), verifier: randomString(b.t)}
	sum := sha256.Sum256([]byte(a.verifier))
	q := url.Values{"client_id": {client}, "response_type": {"code"}, "scope": {"openid profile"}, "redirect_uri": {mfaApp + "/cb"},
		"state": {a.state}, "nonce": {a.nonce}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	for k, v := range extra {
		q[k] = v
	}
	if len(want) == 0 {
		want = []string{"#password"}
	}
	b.next("authorize "+client, chromedp.Navigate(base+"/oauth2/default/v1/authorize?"+q.Encode()), want...)
	return a
}

// signIn answers the sign-in page with login and the password.
func (b *mfaTab) signIn(login string, want ...string) string {
	b.t.Helper()
	return b.next("sign in as "+login, chromedp.Steps(
		chromedp.SendKeys(chromedp.CSS("#username"), login),
		chromedp.SendKeys(chromedp.CSS("#password"), mfaPassword),
		chromedp.Submit(chromedp.CSS("#password"))), want...)
}

// totp answers the factor page's code form.
func (b *mfaTab) totp(name, code string, want ...string) string {
	b.t.Helper()
	return b.next(name, chromedp.Steps(chromedp.SendKeys(chromedp.CSS("form#totp #code"), code), chromedp.Submit(chromedp.CSS("form#totp #code"))), want...)
}

// recovery opens the factor page's recovery code form and answers it.
func (b *mfaTab) recovery(name, code string, want ...string) string {
	b.t.Helper()
	b.step("open the recovery code form", chromedp.Click(chromedp.CSS("details summary")),
		chromedp.WaitVisible(chromedp.CSS("#recovery_code")))
	return b.next(name, chromedp.Steps(chromedp.SendKeys(chromedp.CSS("#recovery_code"), code), chromedp.Submit(chromedp.CSS("#recovery_code"))), want...)
}

func (b *mfaTab) recoveryCodes() []string {
	b.t.Helper()
	return eval1[[]string](b, `[...document.querySelectorAll("#recovery_codes li code")].map(c => c.textContent.trim())`)
}

// scriptReady waits until the page's scripts ran (webauthn.js, deferred,
// hooks its forms before the load event).
func (b *mfaTab) scriptReady() {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.tab, 20*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.readyState === "complete"`)); err != nil {
		b.fail("the page's scripts: %v", err)
	}
}

// callbackQuery is the query the app's callback got for a; the state
// must be a's.
func (b *mfaTab) callbackQuery(a authRequest) url.Values {
	b.t.Helper()
	loc := b.text("#callback")
	if loc == "" {
		b.fail("not at the app's callback")
	}
	u, err := url.Parse(eval1[string](b, "location.href"))
	if err != nil || u.Scheme+"://"+u.Host+u.Path != mfaApp+"/cb" {
		b.fail("at %s, want the redirect URI (%v)", redactURL(u.String()), err)
	}
	q := u.Query()
	if q.Get("state") != a.state {
		b.fail("the callback's state is not the request's")
	}
	return q
}

// callback is the authorization code the app's callback got for a.
func (b *mfaTab) callback(a authRequest) string {
	b.t.Helper()
	q := b.callbackQuery(a)
	if q.Get("code") == "" {
		b.fail("no code at the callback (error %q: %q)", q.Get("error"), q.Get("error_description"))
	}
	return q.Get("code")
}

func (b *mfaTab) clearCookies() {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.tab, 5*time.Second)
	defer cancel()
	if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		b.fail("clearing cookies: %v", err)
	}
}

// sessionCookie is the value of the issuer's session cookie, "" when
// there is none.
func (b *mfaTab) sessionCookie() string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.tab, 5*time.Second)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{base + "/"}})
	if err != nil {
		b.fail("reading cookies: %v", err)
	}
	for _, c := range res.Cookies {
		if c.Name == "apiaccess_sid" {
			return c.Value
		}
	}
	return ""
}

// noCSPViolations: the browser reported no Content-Security-Policy
// violation on the pages so far.
func (b *mfaTab) noCSPViolations() {
	b.t.Helper()
	if l := b.log(); cspViolation(l) {
		b.t.Errorf("the browser reported a CSP violation:\n%s", redactLog(l))
	}
}

func cspViolation(log string) bool {
	return strings.Contains(log, "Content Security Policy") || strings.Contains(log, "Refused to")
}

// secretInURL matches the query values of a log line that carry codes,
// tokens or state.
var secretInURL = regexp.MustCompile(`([?&#](?:code|state|nonce|user_code|device_code|id_token|access_token|session_token)=)[^&\s"#]+`)

func redactLog(s string) string { return secretInURL.ReplaceAllString(s, "${1}_") }

// tokens is a token response's ID and access token claims.
type tokens struct{ id, access map[string]any }

// redeem exchanges the code of a (client secret basic, PKCE) and checks
// the ID token belongs to the request.
func (e *mfaEnv) redeem(t *testing.T, client, code string, a authRequest) tokens {
	t.Helper()
	status, body := e.postToken(t, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {mfaApp + "/cb"},
		"code_verifier": {a.verifier}}, client, client+"-secret")
	if status != 200 {
		t.Fatalf("redeeming %s's code: %d %v %v", client, status, body["error"], body["error_description"])
	}
	id, _ := body["id_token"].(string)
	at, _ := body["access_token"].(string)
	tok := tokens{id: jwtClaims(t, id), access: jwtClaims(t, at)}
	if tok.id["nonce"] != a.nonce || tok.id["aud"] != client || tok.id["iss"] != base+"/oauth2/default" {
		t.Fatalf("ID token of another request: aud %v iss %v, nonce matches %v", tok.id["aud"], tok.id["iss"], tok.id["nonce"] == a.nonce)
	}
	return tok
}

func (e *mfaEnv) postToken(t *testing.T, form url.Values, client, secret string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(e.ctx, http.MethodPost, base+"/oauth2/default/v1/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if client != "" {
		req.SetBasicAuth(client, secret)
	}
	res, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

// jwtClaims decodes a JWT's payload (the issuer signed it just now; the
// gateway tests check signatures).
func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT (%d parts)", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	var m map[string]any
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err != nil {
		t.Fatalf("JWT payload: %v", err)
	}
	return m
}

// amrOf is a token's amr claim, sorted.
func amrOf(claims map[string]any) []string {
	var out []string
	list, _ := claims["amr"].([]any)
	for _, v := range list {
		s, _ := v.(string)
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func hasAll(list []string, want ...string) bool {
	for _, w := range want {
		if !slices.Contains(list, w) {
			return false
		}
	}
	return true
}

// totpAt is the RFC 6238 code of secret at time at (6 digits, 30 s,
// SHA-1, as the issuer's authenticator app factor).
func totpAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatalf("TOTP code: %v", err)
	}
	return c
}

// wrongCode is a 6-digit code that is not secret's in any time step the
// issuer accepts now.
func wrongCode(t *testing.T, secret string) string {
	t.Helper()
	now := time.Now()
	taken := []string{totpAt(t, secret, now.Add(-30*time.Second)), totpAt(t, secret, now), totpAt(t, secret, now.Add(30*time.Second)), totpAt(t, secret, now.Add(60*time.Second))}
	for n := 0; ; n++ {
		c := fmt.Sprintf("%06d", (n*137)%1000000)
		if !slices.Contains(taken, c) {
			return c
		}
	}
}

func randomString(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestMFAOktaAuthJS: okta-auth-js's signInWithRedirect, unchanged,
// through a sign-on policy that requires a second factor: the first
// sign-in enrolls an authenticator app (the enrollment and recovery
// codes pages come between the password and the app's callback), the
// second, in a new visitor's tab, answers the code page; each time
// handleLoginRedirect gets tokens whose ID token says mfa.
func TestMFAOktaAuthJS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 110*time.Second)
	defer cancel()
	env := startSDKEnvWith(t, ctx, `authenticators totp
		sign_on_policy sdk-mfa {
			clients `+sdkClientID+`
			rule mfa {
				users `+sdkUserID+`
				factor any
				enrollment at_sign_in
			}
		}`)
	signedIn := []string{`button[value=allow]`, `#state[data-state="signed-in"]`, `#state[data-state="failed"]`}
	finish := func(b *sdkTab, m *mfaTab) tokenSummary {
		t.Helper()
		if m.visible(`button[value=allow]`) {
			m.next("consent", chromedp.Click(chromedp.CSS(`button[value=allow]`)), signedIn[1:]...)
		}
		b.awaitState("signed-in")
		tok := b.tokens()
		if got := amrOf(tok.IDClaims); !hasAll(got, "pwd", "otp", "mfa") || tok.IDClaims["acr"] != acr2FA {
			t.Errorf("ID token amr %v acr %v, want pwd otp mfa and %s", got, tok.IDClaims["acr"], acr2FA)
		}
		if got := amrOf(tok.AccessClaims); !hasAll(got, "pwd", "otp", "mfa") {
			t.Errorf("access token amr %v", got)
		}
		m.noCSPViolations()
		return tok
	}
	// The pages that show a key or codes are driven through mfaTab,
	// whose failure reports leave them out.
	sdkPages := func(b *sdkTab) *mfaTab {
		return &mfaTab{t: b.T, tab: b.Tab, log: b.Log}
	}

	b := env.newTab(t, "custom")
	m := sdkPages(b)
	b.startSignIn(nil)
	m.next("sign in", chromedp.Steps(
		chromedp.SendKeys(chromedp.CSS("#username"), sdkUser),
		chromedp.SendKeys(chromedp.CSS("#password"), sdkPassword),
		chromedp.Submit(chromedp.CSS("#password"))), "#totp_secret")
	secret := strings.ReplaceAll(m.text("#totp_secret"), " ", "")
	m.next("enrollment code", chromedp.Steps(chromedp.SendKeys(chromedp.CSS("form#totp #code"), totpAt(t, secret, time.Now())),
		chromedp.Submit(chromedp.CSS("form#totp #code"))), "#recovery_codes")
	m.next("continue", chromedp.Click(chromedp.CSS("#recovery_codes ~ form button")), signedIn...)
	finish(b, m)

	b = env.newTab(t, "custom")
	m = sdkPages(b)
	b.startSignIn(nil)
	m.next("sign in again", chromedp.Steps(
		chromedp.SendKeys(chromedp.CSS("#username"), sdkUser),
		chromedp.SendKeys(chromedp.CSS("#password"), sdkPassword),
		chromedp.Submit(chromedp.CSS("#password"))), "form#totp")
	m.totp("the next step's code", totpAt(t, secret, time.Now().Add(30*time.Second)), signedIn...)
	finish(b, m)
	if got := b.net.find(http.MethodPost, b.endpoint("token")); len(got) != 1 || got[0].Status != 200 {
		b.Fail("the SDK's token requests %+v", got)
	}
}
