package authserver

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// get fetches path at node with cookies.
func (e *mfaEnv) get(node int, path string, cookies []*http.Cookie) result {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.urls[node]+path, nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return result{status: resp.StatusCode, location: resp.Header.Get("Location"), body: readBody(resp), cookies: resp.Cookies()}
}

// TestSettingsPage: the self-service page asks for a sign-in, then lets
// the user add an authenticator app (confirmed by a code); from then on
// it asks for the factor too (a step-up of the session), makes new
// recovery codes shown once, removes the factor; it refuses a form of
// another browser and asks again once the sign-in is older than 10
// minutes.
func TestSettingsPage(t *testing.T) {
	e := newMFAEnv(t, embeddedStore(t), 1)
	r := e.get(0, settingsPath, nil)
	if r.status != 200 || !strings.Contains(r.body, `name="password"`) || !strings.Contains(r.body, "Account settings") {
		t.Fatalf("settings without a session: %d %.300s", r.status, r.body)
	}
	p := next(t, pending{node: 0}, r)
	r = e.signIn(p, "dave@example.com", alicePass, "")
	if r.status != http.StatusSeeOther || !strings.HasSuffix(r.location, settingsPath) {
		t.Fatalf("sign-in for the settings: %d %q", r.status, r.location)
	}
	jar := mergeCookies(p.cookies, r.cookies)
	r = e.get(0, settingsPath, jar)
	if r.status != 200 || !strings.Contains(r.body, `id="no_factors"`) {
		t.Fatalf("settings page: %d %.300s", r.status, r.body)
	}
	page := next(t, pending{node: 0, cookies: jar}, r)

	// Another browser's form (its own txn cookie, this page's fields) is refused.
	other := e.get(0, settingsPath, nil)
	stranger := pending{node: 0, txn: page.txn, csrf: page.csrf, cookies: mergeCookies(nil, other.cookies)}
	if r := e.post(stranger, settingsPath, url.Values{"action": {"recovery_codes"}}, ""); r.status != http.StatusBadRequest || strings.Contains(r.body, "recovery_codes") {
		t.Fatalf("a form of another browser: %d", r.status)
	}

	r = e.post(page, settingsPath, url.Values{"action": {"add_totp"}}, "")
	secret := between(r.body, `<code id="totp_secret">`, "</code>")
	if r.status != 200 || secret == "" {
		t.Fatalf("add_totp: %d %.300s", r.status, r.body)
	}
	page = next(t, page, r)
	factor := formField(t, r.body, "factor")
	r = e.post(page, settingsPath, url.Values{"action": {"confirm_totp"}, "factor": {factor}, "code": {e.code(secret)}}, "")
	if r.status != 200 || !strings.Contains(r.body, "Authenticator app added.") || !strings.Contains(r.body, `data-factor="`+factor+`"`) {
		t.Fatalf("confirm_totp: %d %.400s", r.status, r.body)
	}

	// dave now has a factor; his session (a password only) is stepped up.
	e.clock.Advance(30 * time.Second)
	r = e.get(0, settingsPath, jar)
	if r.status != 200 || !strings.Contains(r.body, `id="totp"`) || strings.Contains(r.body, `id="factors"`) {
		t.Fatalf("settings after adding a factor: want the factor step: %d %.300s", r.status, r.body)
	}
	p = next(t, pending{node: 0, cookies: jar}, r)
	r = e.factor(p, "totp", e.code(secret))
	if r.status != http.StatusSeeOther || r.session() {
		t.Fatalf("step-up for the settings: %d %q (the session is kept: %v)", r.status, r.location, r.session())
	}
	jar = mergeCookies(p.cookies, r.cookies)
	r = e.get(0, settingsPath, jar)
	if r.status != 200 || !strings.Contains(r.body, `id="factors"`) {
		t.Fatalf("settings after the step-up: %d %.300s", r.status, r.body)
	}
	page = next(t, pending{node: 0, cookies: jar}, r)
	r = e.post(page, settingsPath, url.Values{"action": {"recovery_codes"}}, "")
	if codes := listItems(r.body); len(codes) != 10 || !strings.Contains(r.body, `id="recovery_left">10 left`) {
		t.Fatalf("new recovery codes: %d shown: %.300s", len(codes), r.body)
	}
	page = next(t, page, r)
	r = e.post(page, settingsPath, url.Values{"action": {"remove"}, "factor": {factor}}, "")
	if r.status != 200 || strings.Contains(r.body, `data-factor="`+factor+`"`) || !strings.Contains(r.body, "removed") {
		t.Fatalf("remove: %d %.300s", r.status, r.body)
	}
	page = next(t, page, r)
	if r := e.post(page, settingsPath, url.Values{"action": {"remove"}, "factor": {factor}}, ""); r.status != http.StatusBadRequest {
		t.Fatalf("removing it again: %d", r.status)
	}

	// Past 10 minutes the page asks for the sign-in again.
	e.clock.Advance(settingsFresh + time.Minute)
	if r := e.get(0, settingsPath, jar); r.status != 200 || !strings.Contains(r.body, `name="password"`) {
		t.Fatalf("a stale sign-in: %d %.300s", r.status, r.body)
	}
}
