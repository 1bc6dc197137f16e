package authserver

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

const devicePage = "/oauth2/v1/device"

type deviceAuth struct{ deviceCode, userCode, complete string }

// deviceAuthorize starts a device authorization for the TV client.
func (e *flowEnv) deviceAuthorize() deviceAuth {
	e.t.Helper()
	status, body := e.post("/oauth2/default/v1/device/authorize", "tv", url.Values{"scope": {"openid read"}})
	if status != 200 {
		e.t.Fatalf("device authorization: %d %v", status, body)
	}
	return deviceAuth{body["device_code"].(string), body["user_code"].(string), body["verification_uri_complete"].(string)}
}

// poll is the TV's token request, a poll interval after the last one.
func (e *flowEnv) poll(da deviceAuth) map[string]any {
	e.t.Helper()
	e.clock.Advance(pollInterval + time.Second)
	_, body := e.post(tokenEP, "tv", url.Values{"grant_type": {GrantDeviceCode}, "device_code": {da.deviceCode}})
	return body
}

// approvalForm is what the approval page's form posts.
func approvalForm(page, decision string) url.Values {
	return url.Values{"txn": {hidden(page, "txn")}, "csrf": {hidden(page, "csrf")}, "decision": {decision}}
}

// TestDeviceLinkNeedsCodeConfirmation replays the device phishing: a
// signed-in victim opens the attacker's verification_uri_complete. The
// approval page shows the user code and the client's name, and
// approving needs the confirmation that the code matches the device
// (RFC 8628 sections 3.3.1 and 5.4); without it nothing is approved,
// also when the form is posted to the consent endpoint instead.
func TestDeviceLinkNeedsCodeConfirmation(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	da := e.deviceAuthorize()
	if !strings.HasPrefix(da.complete, "https://id.example.com"+devicePage+"?user_code=") {
		t.Fatalf("verification_uri_complete %q", da.complete)
	}
	victim := e.session("u1")
	w := e.browse(http.MethodGet, strings.TrimPrefix(da.complete, "https://id.example.com"), nil, victim)
	page := w.Body.String()
	if w.Code != 200 || !strings.Contains(page, da.userCode) || !strings.Contains(page, "Living-room TV") || !strings.Contains(page, `name="code_matches"`) {
		t.Fatalf("approval page from a link: %d %.600s", w.Code, page)
	}
	txn := cookieOf(w, "__Host-apiaccess_txn")
	for _, target := range []string{devicePage, "/oauth2/v1/consent"} {
		w = e.browse(http.MethodPost, target, approvalForm(page, "allow"), victim, txn)
		if b := e.poll(da); b["error"] != "authorization_pending" {
			t.Fatalf("allowed via %s without confirming the code: %v", target, b)
		}
		if target == devicePage {
			if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), da.userCode) || !strings.Contains(w.Body.String(), "matches") {
				t.Fatalf("unconfirmed approval: want the page again with a hint, got %d %.300s", w.Code, w.Body.String())
			}
			page, txn = w.Body.String(), cookieOf(w, "__Host-apiaccess_txn")
		}
	}
	// The post to the consent endpoint used that page up (pending
	// requests are single use): the victim opens the link again.
	w = e.browse(http.MethodGet, strings.TrimPrefix(da.complete, "https://id.example.com"), nil, victim)
	page, txn = w.Body.String(), cookieOf(w, "__Host-apiaccess_txn")
	f := approvalForm(page, "allow")
	f.Set("code_matches", "yes")
	if w = e.browse(http.MethodPost, devicePage, f, victim, txn); w.Code != 200 || !strings.Contains(w.Body.String(), "connected") {
		t.Fatalf("confirmed approval: %d %.300s", w.Code, w.Body.String())
	}
	if w = e.browse(http.MethodPost, devicePage, f, victim, txn); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "expired") {
		t.Fatalf("the same approval posted again: %d %.300s", w.Code, w.Body.String())
	}
	if b := e.poll(da); b["access_token"] == nil {
		t.Fatalf("approved device: %v", b)
	}
}

// TestDeviceTypedCode: a code the user typed on the entry page (its
// form carries a token bound to this browser by a cookie) is approved
// with one confirmation: the user compared it already by typing it. The
// same form posted from another site, without the cookie, counts as a
// link and needs the confirmation.
func TestDeviceTypedCode(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	victim := e.session("u1")
	entry := e.browse(http.MethodGet, devicePage, nil)
	entryCookie := cookieOf(entry, "__Host-apiaccess_dev")
	token := hidden(entry.Body.String(), "entry")
	if entry.Code != 200 || entryCookie == nil || token == "" || !strings.Contains(entry.Body.String(), `method="post"`) {
		t.Fatalf("entry page: %d %v %.300s", entry.Code, entryCookie, entry.Body.String())
	}
	da := e.deviceAuthorize()
	typed := strings.ToLower(strings.ReplaceAll(da.userCode, "-", " "))
	w := e.browse(http.MethodPost, devicePage, url.Values{"user_code": {typed}, "entry": {token}}, victim, entryCookie)
	page := w.Body.String()
	if w.Code != 200 || !strings.Contains(page, da.userCode) || !strings.Contains(page, "Living-room TV") || strings.Contains(page, `name="code_matches"`) {
		t.Fatalf("approval page of a typed code: %d %.600s", w.Code, page)
	}
	if w = e.browse(http.MethodPost, devicePage, approvalForm(page, "allow"), victim, cookieOf(w, "__Host-apiaccess_txn")); !strings.Contains(w.Body.String(), "connected") {
		t.Fatalf("typed code approval: %d %.300s", w.Code, w.Body.String())
	}
	if b := e.poll(da); b["access_token"] == nil {
		t.Fatalf("approved device: %v", b)
	}

	// Cross-site: the entry form auto-submitted without the cookie.
	da = e.deviceAuthorize()
	w = e.browse(http.MethodPost, devicePage, url.Values{"user_code": {da.userCode}, "entry": {token}}, victim)
	if !strings.Contains(w.Body.String(), `name="code_matches"`) {
		t.Fatalf("a cross-site code entry was taken as typed: %d %.300s", w.Code, w.Body.String())
	}
	// Deny needs no confirmation.
	if w = e.browse(http.MethodPost, devicePage, approvalForm(w.Body.String(), "deny"), victim, cookieOf(w, "__Host-apiaccess_txn")); w.Code != 200 {
		t.Fatalf("deny: %d", w.Code)
	}
	if b := e.poll(da); b["error"] != "access_denied" {
		t.Fatalf("denied device: %v", b)
	}
}

// TestDeviceApprovalNeedsSessionAndCSRF: the approval form is bound to
// this browser's pending request and signed-in user.
func TestDeviceApprovalNeedsSessionAndCSRF(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	da := e.deviceAuthorize()
	victim := e.session("u1")
	w := e.browse(http.MethodGet, strings.TrimPrefix(da.complete, "https://id.example.com"), nil, victim)
	page, txn := w.Body.String(), cookieOf(w, "__Host-apiaccess_txn")
	good := approvalForm(page, "allow")
	good.Set("code_matches", "yes")
	for name, c := range map[string]struct {
		form    url.Values
		cookies []*http.Cookie
	}{
		"no csrf":       {url.Values{"txn": good["txn"], "decision": {"allow"}, "code_matches": {"yes"}}, []*http.Cookie{victim, txn}},
		"wrong csrf":    {url.Values{"txn": good["txn"], "csrf": {"x"}, "decision": {"allow"}, "code_matches": {"yes"}}, []*http.Cookie{victim, txn}},
		"no txn cookie": {good, []*http.Cookie{victim}},
		"other user":    {good, []*http.Cookie{e.session("u2"), txn}},
	} {
		w := e.browse(http.MethodPost, devicePage, c.form, c.cookies...)
		if w.Code != http.StatusBadRequest || strings.Contains(w.Body.String(), "connected") {
			t.Errorf("%s: %d", name, w.Code)
		}
	}
	if b := e.poll(da); b["error"] != "authorization_pending" {
		t.Fatalf("approved without a valid form: %v", b)
	}
}

// Guessing user codes in parallel: the per-address limit is counted
// before each lookup, so 120 guesses released together from one address
// get exactly maxAddrFailures lookups; the rest are refused (429). The
// limit used to be read before any guess was counted: all 120 were
// looked up. A valid code from the same address does not use it up.
func TestDeviceCodeGuessesInParallel(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	const guesses = 120
	statuses := make(chan int, guesses)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for n := range guesses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			w := e.browse(http.MethodGet, fmt.Sprintf("%s?user_code=BCDF-%04d", devicePage, n), nil)
			statuses <- w.Code
		}()
	}
	close(start)
	wg.Wait()
	close(statuses)
	looked, refused := 0, 0
	for s := range statuses {
		switch s {
		case http.StatusBadRequest:
			looked++
		case http.StatusTooManyRequests:
			refused++
		default:
			t.Fatalf("guess answered %d", s)
		}
	}
	if looked != maxAddrFailures || looked+refused != guesses {
		t.Fatalf("%d guesses looked up, %d refused; want exactly %d looked up", looked, refused, maxAddrFailures)
	}
}
