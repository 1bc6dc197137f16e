package authserver

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// idToken returns an ID token the server issued to client for user uid.
func (e *flowEnv) idToken(uid, client, redirect string) string {
	e.t.Helper()
	status, body := e.redeem(client, e.codeFor(uid, client, redirect, "", "openid"), redirect, "")
	if status != 200 || body["id_token"] == nil {
		e.t.Fatalf("ID token: %d %v", status, body)
	}
	return body["id_token"].(string)
}

func logoutURL(hint, target, state string) string {
	q := url.Values{"id_token_hint": {hint}}
	if target != "" {
		q.Set("post_logout_redirect_uri", target)
	}
	if state != "" {
		q.Set("state", state)
	}
	return "/oauth2/default/v1/logout?" + q.Encode()
}

// TestLogoutForeignHintAsksFirst replays the logout CSRF: a cross-site
// GET to /logout with the attacker's own ID token, even expired, must
// not end the victim's session (OpenID Connect RP-Initiated Logout 1.0
// section 2: without a hint of the session's user the OP asks the
// user). The victim sees a confirmation page; its form needs the
// session's CSRF token; confirmed, the session ends and the redirect
// goes only to a URI registered for the hint's client.
func TestLogoutForeignHintAsksFirst(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	attackerHint := e.idToken("u2", "web", webCB)
	e.clock.Advance(2 * IDTokenLifetime) // expired hints are accepted
	victim := e.session("u1")

	for _, method := range []string{http.MethodGet, http.MethodPost} {
		var w = e.browse(method, logoutURL(attackerHint, webBye, "st"), nil, victim)
		if method == http.MethodPost {
			w = e.browse(method, "/oauth2/default/v1/logout", url.Values{"id_token_hint": {attackerHint}, "post_logout_redirect_uri": {webBye}}, victim)
		}
		if !e.sessionAlive(victim) {
			t.Fatalf("%s with the attacker's ID token ended the victim's session", method)
		}
		page := w.Body.String()
		if w.Code != 200 || w.Header().Get("Location") != "" || !strings.Contains(page, "Sign out of") || hidden(page, "csrf") == "" {
			t.Fatalf("%s: want a confirmation page, got %d %q %.200s", method, w.Code, w.Header().Get("Location"), page)
		}
		if c := cookieOf(w, "__Host-apiaccess_sid"); c != nil {
			t.Fatalf("%s: the confirmation page cleared the session cookie", method)
		}
	}
	page := e.browse(http.MethodGet, logoutURL(attackerHint, webBye, "st"), nil, victim).Body.String()
	form := url.Values{"id_token_hint": {hidden(page, "id_token_hint")}, "post_logout_redirect_uri": {hidden(page, "post_logout_redirect_uri")},
		"state": {hidden(page, "state")}, "confirm": {"yes"}}
	for _, csrf := range []string{"", "wrong", strings.Repeat("A", len(hidden(page, "csrf")))} {
		form.Set("csrf", csrf)
		if csrf == "" {
			form.Del("csrf")
		}
		w := e.browse(http.MethodPost, "/oauth2/default/v1/logout", form, victim)
		if !e.sessionAlive(victim) || w.Header().Get("Location") != "" {
			t.Fatalf("confirmation with csrf %q ended the session: %d", csrf, w.Code)
		}
	}
	// Another session's token does not confirm this one.
	other := e.session("u1")
	otherPage := e.browse(http.MethodGet, logoutURL(attackerHint, "", ""), nil, other).Body.String()
	form.Set("csrf", hidden(otherPage, "csrf"))
	if e.browse(http.MethodPost, "/oauth2/default/v1/logout", form, victim); !e.sessionAlive(victim) {
		t.Fatal("another session's CSRF token confirmed the logout")
	}
	form.Set("csrf", hidden(page, "csrf"))
	w := e.browse(http.MethodPost, "/oauth2/default/v1/logout", form, victim)
	if e.sessionAlive(victim) {
		t.Fatalf("the confirmed logout did not end the session: %d", w.Code)
	}
	if loc := w.Header().Get("Location"); loc != webBye+"?state=st" {
		t.Fatalf("after the confirmed logout: %d %q", w.Code, loc)
	}
	if c := cookieOf(w, "__Host-apiaccess_sid"); c == nil || c.MaxAge >= 0 {
		t.Fatalf("session cookie not cleared: %v", c)
	}
}

// TestLogoutOwnHintSignsOut: okta-auth-js's signOut() sends the
// session's own ID token (maybe expired): the session ends without a
// page, and the browser goes to the registered post-logout URI.
func TestLogoutOwnHintSignsOut(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	hint := e.idToken("u1", "web", webCB)
	e.clock.Advance(2 * IDTokenLifetime)
	sess := e.session("u1")
	w := e.browse(http.MethodGet, logoutURL(hint, webBye, "bye"), nil, sess)
	if e.sessionAlive(sess) || w.Header().Get("Location") != webBye+"?state=bye" {
		t.Fatalf("own hint: %d %q alive=%v", w.Code, w.Header().Get("Location"), e.sessionAlive(sess))
	}
	// Without post_logout_redirect_uri: a signed-out page.
	sess = e.session("u1")
	w = e.browse(http.MethodGet, logoutURL(hint, "", ""), nil, sess)
	if e.sessionAlive(sess) || w.Code != 200 || !strings.Contains(w.Body.String(), "signed out") {
		t.Fatalf("own hint, no redirect: %d %.200s", w.Code, w.Body.String())
	}
}

// TestLogoutRefusals: a hint this server did not sign, or a
// post-logout URI not registered for the hint's client, is refused
// before anything changes, and never redirected to.
func TestLogoutRefusals(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	hint := e.idToken("u1", "web", webCB)
	otherHint := e.idToken("u1", "other", otherCB)
	parts := strings.Split(hint, ".")
	forged := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	sess := e.session("u1")
	for name, target := range map[string]string{
		"forged hint":         logoutURL(forged, webBye, ""),
		"no hint":             "/oauth2/default/v1/logout",
		"unregistered target": logoutURL(hint, "https://evil.example/", ""),
		"other client's URI":  logoutURL(otherHint, webBye, ""),
	} {
		w := e.browse(http.MethodGet, target, nil, sess)
		if w.Code != 400 || w.Header().Get("Location") != "" || !e.sessionAlive(sess) {
			t.Errorf("%s: %d %q alive=%v", name, w.Code, w.Header().Get("Location"), e.sessionAlive(sess))
		}
	}
	// Without a session there is nothing to end: the registered
	// redirect still happens.
	w := e.browse(http.MethodGet, logoutURL(hint, webBye, "s"), nil)
	if w.Header().Get("Location") != webBye+"?state=s" {
		t.Fatalf("no session: %d %q", w.Code, w.Header().Get("Location"))
	}
}
