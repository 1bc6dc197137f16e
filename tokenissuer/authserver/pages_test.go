package authserver

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

const txnCookieName = "__Host-apiaccess_txn"

// TestDeviceResultPage: after the user decides on a device the page
// says what happened, with 200: "connected" and the client's name for
// an approval, "not connected" for a refusal; never the error page.
func TestDeviceResultPage(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	user := e.session("u1")
	for _, tc := range []struct{ decision, heading, not string }{
		{"allow", "<h1>Device connected</h1>", "not connected"},
		{"deny", "<h1>Device not connected</h1>", "is now connected"},
	} {
		da := e.deviceAuthorize()
		w := e.browse(http.MethodGet, strings.TrimPrefix(da.complete, "https://id.example.com"), nil, user)
		f := approvalForm(w.Body.String(), tc.decision)
		f.Set("code_matches", "yes")
		w = e.browse(http.MethodPost, devicePage, f, user, cookieOf(w, txnCookieName))
		page := w.Body.String()
		if w.Code != http.StatusOK || !strings.Contains(page, tc.heading) || !strings.Contains(page, "Living-room TV") ||
			strings.Contains(page, tc.not) || strings.Contains(page, "Something went wrong") || strings.Contains(page, `class="error"`) {
			t.Fatalf("%s: %d %.600s", tc.decision, w.Code, page)
		}
		if ct := w.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" || w.Header().Get("X-Frame-Options") != "DENY" {
			t.Fatalf("%s: headers %v", tc.decision, w.Header())
		}
		body := e.poll(da)
		if tc.decision == "allow" && body["access_token"] == nil || tc.decision == "deny" && body["error"] != "access_denied" {
			t.Fatalf("%s: the device's poll got %v", tc.decision, body)
		}
	}
}

// TestSignInPageNamesClientAndKeepsUsername: the sign-in page names
// the application asking (the client's name); after a failed attempt
// it shows the username again, HTML-escaped, and never the password;
// a username too long to be a login is not shown again.
func TestSignInPageNamesClientAndKeepsUsername(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	q := url.Values{"client_id": {"web"}, "response_type": {"code"}, "scope": {"openid"}, "state": {"s"}, "redirect_uri": {webCB}}
	w := e.browse(http.MethodGet, "/oauth2/default/v1/authorize?"+q.Encode(), nil)
	page, txn := w.Body.String(), cookieOf(w, txnCookieName)
	if w.Code != 200 || !strings.Contains(page, "to continue to <strong>Web App</strong>") || hidden(page, "username") != "" {
		t.Fatalf("sign-in page: %d %.600s", w.Code, page)
	}
	typed := ` <b>alice</b>@example.com"onfocus="x `
	const password = "wrong-password-do-not-echo"
	f := url.Values{"txn": {hidden(page, "txn")}, "csrf": {hidden(page, "csrf")}, "username": {typed}, "password": {password}}
	w = e.browse(http.MethodPost, "/oauth2/v1/signin", f, txn)
	page = w.Body.String()
	const escaped = `value="&lt;b&gt;alice&lt;/b&gt;@example.com&#34;onfocus=&#34;x"`
	if w.Code != http.StatusUnauthorized || !strings.Contains(page, genericSignInError) || !strings.Contains(page, escaped) ||
		strings.Contains(page, password) || strings.Contains(page, "<b>alice") || !strings.Contains(page, "Web App") {
		t.Fatalf("failed sign-in page: %d %.900s", w.Code, page)
	}
	// The page's own form still works, with the same pending request.
	f.Set("username", strings.Repeat("a", maxTypedLogin+1))
	w = e.browse(http.MethodPost, "/oauth2/v1/signin", f, txn)
	if page = w.Body.String(); w.Code != http.StatusUnauthorized || strings.Contains(page, strings.Repeat("a", maxTypedLogin)) || !strings.Contains(page, `name="username" value=""`) {
		t.Fatalf("overlong username: %d %.600s", w.Code, page)
	}
	f.Set("username", "alice@example.com")
	f.Set("password", alicePassword)
	// The device flow's sign-in page names the device's client.
	da := e.deviceAuthorize()
	if w := e.browse(http.MethodGet, strings.TrimPrefix(da.complete, "https://id.example.com"), nil); !strings.Contains(w.Body.String(), "to continue to <strong>Living-room TV</strong>") {
		t.Fatalf("device sign-in page: %d %.600s", w.Code, w.Body.String())
	}
	if w = e.browse(http.MethodPost, "/oauth2/v1/signin", f, txn); !strings.HasPrefix(w.Header().Get("Location"), webCB+"?") {
		t.Fatalf("sign-in after failures: %d %q %.300s", w.Code, w.Header().Get("Location"), w.Body.String())
	}
}

// TestConsentNotYou: the consent page names the signed-in user and
// offers "Not you?", a POST form with the page's txn and CSRF token.
// Without this browser's txn cookie or with a wrong token (what another
// site can send) the session survives. With them the session ends, the
// sign-in page comes for the same pending request (without the
// client's login_hint), and the user who signs in there is asked for
// consent in turn; the code is theirs.
func TestConsentNotYou(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	mallory := e.session("u2")
	q := url.Values{"client_id": {"web"}, "response_type": {"code"}, "scope": {"openid pay"}, "state": {"st"},
		"redirect_uri": {webCB}, "login_hint": {"mallory@example.com"}}
	w := e.browse(http.MethodGet, "/oauth2/default/v1/authorize?"+q.Encode(), nil, mallory)
	page, txn := w.Body.String(), cookieOf(w, txnCookieName)
	if w.Code != 200 || !strings.Contains(page, `Signed in as <strong id="signed_in_as">mallory@example.com</strong>`) ||
		!strings.Contains(page, `name="decision" value="switch"`) || !strings.Contains(page, `id="switch_user"`) {
		t.Fatalf("consent page: %d %.900s", w.Code, page)
	}
	switchForm := url.Values{"txn": {hidden(page, "txn")}, "csrf": {hidden(page, "csrf")}, "decision": {"switch"}}

	// Forgeries: no txn cookie (a cross-site POST carries no Lax
	// cookie), a wrong CSRF token, no token, a GET.
	wrong := url.Values{"txn": switchForm["txn"], "csrf": {"forged"}, "decision": {"switch"}}
	noToken := url.Values{"txn": switchForm["txn"], "decision": {"switch"}}
	for name, try := range map[string]func() int{
		"no txn cookie": func() int { return e.browse(http.MethodPost, "/oauth2/v1/consent", switchForm, mallory).Code },
		"wrong csrf":    func() int { return e.browse(http.MethodPost, "/oauth2/v1/consent", wrong, mallory, txn).Code },
		"no csrf":       func() int { return e.browse(http.MethodPost, "/oauth2/v1/consent", noToken, mallory, txn).Code },
		"GET": func() int {
			return e.browse(http.MethodGet, "/oauth2/v1/consent?"+switchForm.Encode(), nil, mallory, txn).Code
		},
	} {
		if code := try(); code < 400 || !e.sessionAlive(mallory) {
			t.Fatalf("%s: %d, session alive %v", name, code, e.sessionAlive(mallory))
		}
	}

	w = e.browse(http.MethodPost, "/oauth2/v1/consent", switchForm, mallory, txn)
	page = w.Body.String()
	gone := cookieOf(w, "__Host-apiaccess_sid")
	if w.Code != 200 || !strings.Contains(page, `id="password"`) || !strings.Contains(page, "Web App") || strings.Contains(page, "mallory") {
		t.Fatalf("after \"not you?\": %d %.900s", w.Code, page)
	}
	if e.sessionAlive(mallory) || gone == nil || gone.MaxAge >= 0 {
		t.Fatalf("session not ended: alive %v, cookie %v", e.sessionAlive(mallory), gone)
	}
	if ev := e.event(EventSignOut); ev["user_id"] != "u2" || ev["client_id"] != "web" {
		t.Fatalf("sign-out event: %v", ev)
	}
	// The consent page's txn is used up.
	if w := e.browse(http.MethodPost, "/oauth2/v1/consent", switchForm, mallory, txn); w.Code != http.StatusBadRequest {
		t.Fatalf("the old consent page posted again: %d", w.Code)
	}

	newTxn := cookieOf(w, txnCookieName)
	f := url.Values{"txn": {hidden(page, "txn")}, "csrf": {hidden(page, "csrf")}, "username": {"alice@example.com"}, "password": {alicePassword}}
	if newTxn == nil || newTxn.Value == txn.Value || f.Get("csrf") == switchForm.Get("csrf") {
		t.Fatalf("the sign-in page reuses the consent page's txn or CSRF token")
	}
	w = e.browse(http.MethodPost, "/oauth2/v1/signin", f, newTxn)
	page = w.Body.String()
	alice := cookieOf(w, "__Host-apiaccess_sid")
	if w.Code != 200 || alice == nil || !strings.Contains(page, "Make payments") || !strings.Contains(page, ">alice@example.com</strong>") {
		t.Fatalf("consent for the new user: %d %.900s", w.Code, page)
	}
	allow := url.Values{"txn": {hidden(page, "txn")}, "csrf": {hidden(page, "csrf")}, "decision": {"allow"}}
	w = e.browse(http.MethodPost, "/oauth2/v1/consent", allow, alice, cookieOf(w, txnCookieName))
	loc, err := url.Parse(w.Header().Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), webCB+"?") || loc.Query().Get("state") != "st" || loc.Query().Get("code") == "" {
		t.Fatalf("consent: %d %q", w.Code, w.Header().Get("Location"))
	}
	status, tok := e.redeem("web", loc.Query().Get("code"), webCB, "")
	if status != 200 {
		t.Fatalf("redeem: %d %v", status, tok)
	}
	if ev := e.event(EventTokenGrant); ev["user_id"] != "u1" {
		t.Fatalf("the code is not the new user's: %v", ev)
	}
}
