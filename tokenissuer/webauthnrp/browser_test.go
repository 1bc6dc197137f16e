package webauthnrp

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit/headless"
)

var update = flag.Bool("update", false, "rewrite testdata/browser.json from the browser run")

// TestBrowser registers and signs in through Chromium's virtual
// authenticator with webauthn.js, on http://localhost (a secure
// context) under CSP script-src 'self', then checks the recorded
// ceremonies as TestRecorded does. Hold flock /tmp/apiaccess-caddytest.lock.
func TestBrowser(t *testing.T) {
	tab, logged := headless.Chromium(t, context.Background())
	d := headless.Driver{T: t, Tab: tab, Log: logged}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://localhost:" + portOf(ln.Addr())
	rp, err := New(base, "WebAuthn test")
	if err != nil {
		t.Fatal(err)
	}
	app := newTestApp(t, rp)
	srv := httptest.NewUnstartedServer(app.handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	app.addUser("00u-alice", "alice@example.com")
	app.addUser("00u-bob", "bob@example.com")

	auth, err := headless.VirtualAuthenticator(tab)
	if err != nil {
		t.Fatal(err)
	}
	onAuthenticator := func() map[string]float64 { // user handle -> sign count
		creds, err := headless.AuthenticatorCredentials(tab, auth)
		if err != nil {
			d.Fail("%v", err)
		}
		out := map[string]float64{}
		for _, c := range creds {
			if c.RpID != "localhost" || !c.IsResidentCredential {
				d.Fail("authenticator credential for %q, resident %v: want localhost, resident", c.RpID, c.IsResidentCredential)
			}
			out[string(c.UserHandle)] = c.SignCount
		}
		return out
	}
	alice, bob := app.user("00u-alice"), app.user("00u-bob")
	storedCount := func(u *appUser) uint32 {
		if len(u.creds) != 1 {
			d.Fail("%s has %d credentials, want 1", u.uid, len(u.creds))
		}
		in, err := CredentialInfo(u.creds[0])
		if err != nil {
			d.Fail("%v", err)
		}
		return in.SignCount
	}
	ceremony := func(name, path string) {
		t.Helper()
		d.Step(name, chromedp.Navigate(base+path), chromedp.WaitVisible(chromedp.CSS("#go")),
			chromedp.Click(chromedp.CSS("#go")), chromedp.WaitReady(chromedp.CSS("#ok, #error, #msg:not([hidden])")))
	}
	expectOK := func(name, uid string, uv bool) {
		t.Helper()
		if loc := d.Read(chromedp.Location()); loc != base+"/finish" {
			d.Fail("%s: still at %s (message %q)", name, loc, d.Read(chromedp.Text(chromedp.CSS("body"))))
		}
		if got := d.Read(chromedp.Text(chromedp.CSS("body"))); !strings.Contains(got, "done for "+uid) {
			d.Fail("%s: page says %q, want done for %s", name, got, uid)
		}
		ctx, cancel := context.WithTimeout(tab, 5*time.Second)
		defer cancel()
		got, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS("#ok"), "data-uv"))
		if err != nil || got.Value != strconv.FormatBool(uv) {
			d.Fail("%s: user verified %q (%v), want %v", name, got.Value, err, uv)
		}
	}

	ceremony("register alice", "/register?user=00u-alice")
	expectOK("register alice", "00u-alice", false)
	in, err := CredentialInfo(alice.creds[0])
	if err != nil {
		t.Fatal(err)
	}
	if in.Attachment != "platform" || strings.Join(in.Transports, ",") != "internal" || in.BackupEligible || in.Discoverable == nil || !*in.Discoverable || !in.UserVerified {
		t.Errorf("registered credential %+v: want platform, internal, not backup eligible, discoverable, user verified", in)
	}
	regCount := storedCount(alice)
	if got := onAuthenticator(); len(got) != 1 || got[string(UserHandle("00u-alice"))] != float64(regCount) {
		t.Errorf("authenticator holds %v, want alice's handle with count %d", got, regCount)
	}

	ceremony("register alice again", "/register?user=00u-alice")
	if msg := d.Read(chromedp.Text(chromedp.CSS("#msg"))); msg != "This authenticator is already registered." {
		d.Fail("second registration on one authenticator shows %q, want the excluded message", msg)
	}
	if len(alice.creds) != 1 || len(onAuthenticator()) != 1 {
		t.Errorf("after the excluded registration: alice has %d credentials, authenticator %d; want 1, 1", len(alice.creds), len(onAuthenticator()))
	}

	ceremony("sign in alice", "/login?user=00u-alice")
	expectOK("sign in alice", "00u-alice", true)
	c1 := storedCount(alice)
	ceremony("sign in alice again, options fetched", "/login?user=00u-alice&fetch=1")
	expectOK("sign in alice again", "00u-alice", true)
	c2 := storedCount(alice)
	if !(regCount < c1 && c1 < c2) {
		t.Errorf("sign counts registration %d, first %d, second %d: want increasing", regCount, c1, c2)
	}
	if got := onAuthenticator()[string(UserHandle("00u-alice"))]; got != float64(c2) {
		t.Errorf("authenticator's count %v, stored %d", got, c2)
	}

	ceremony("register bob", "/register?user=00u-bob")
	expectOK("register bob", "00u-bob", false)
	if got := onAuthenticator(); len(got) != 2 {
		t.Errorf("authenticator holds %d credentials, want 2", len(got))
	}

	// A user without a credential on this authenticator: the browser
	// finds none and answers NotAllowedError, shown, not thrown.
	carol := &appUser{uid: "00u-carol", login: "carol@example.com", creds: [][]byte{foreignCredential(t, alice.creds[0])}}
	app.mu.Lock()
	app.users[carol.uid] = carol
	app.mu.Unlock()
	ceremony("sign in carol", "/login?user=00u-carol")
	if msg := d.Read(chromedp.Text(chromedp.CSS("#msg"))); msg != "The request was cancelled or timed out. Try again." {
		d.Fail("no matching credential shows %q, want the cancelled message", msg)
	}

	ceremony("passkey sign-in", "/passkey")
	who := d.Read(chromedp.Text(chromedp.CSS("body")))
	var signedIn *appUser
	switch {
	case strings.Contains(who, "done for 00u-alice"):
		signedIn = alice
	case strings.Contains(who, "done for 00u-bob"):
		signedIn = bob
	default:
		d.Fail("passkey sign-in shows %q", who)
	}
	if got := onAuthenticator()[string(UserHandle(signedIn.uid))]; got != float64(storedCount(signedIn)) || got == 0 {
		t.Errorf("after the passkey sign-in %s's authenticator count %v, stored %d", signedIn.uid, got, storedCount(signedIn))
	}

	// User verification failing on an authenticator that does it: the
	// browser answers NotAllowedError, shown as a cancel.
	if err := headless.SetUserVerified(tab, auth, false); err != nil {
		t.Fatal(err)
	}
	ceremony("sign in bob, user verification failing", "/login?user=00u-bob")
	if msg := d.Read(chromedp.Text(chromedp.CSS("#msg"))); msg != "The request was cancelled or timed out. Try again." {
		d.Fail("failed user verification shows %q, want the cancelled message", msg)
	}

	// A security key without user verification: with "preferred" it
	// registers and signs in, without the UV flag.
	if err := headless.RemoveVirtualAuthenticator(tab, auth); err != nil {
		t.Fatal(err)
	}
	key, err := headless.SecurityKey(tab)
	if err != nil {
		t.Fatal(err)
	}
	app.addUser("00u-dave", "dave@example.com")
	dave := app.user("00u-dave")
	ceremony("register dave's security key", "/register?user=00u-dave")
	expectOK("register dave's security key", "00u-dave", false)
	ceremony("sign in dave", "/login?user=00u-dave")
	expectOK("sign in dave", "00u-dave", false)
	if in, err := CredentialInfo(dave.creds[0]); err != nil || in.UserVerified || strings.Join(in.Transports, ",") != "usb" {
		t.Errorf("dave's credential %+v (%v): want not user verified, usb", in, err)
	}
	if creds, err := headless.AuthenticatorCredentials(tab, key); err != nil || len(creds) != 1 || creds[0].IsResidentCredential || creds[0].SignCount != float64(storedCount(dave)) {
		t.Errorf("security key holds %+v (%v): want one non-resident credential, count %d", creds, err, storedCount(dave))
	}

	if log := logged(); strings.Contains(log, "Content Security Policy") || strings.Contains(log, "Refused to") {
		t.Errorf("browser reported a CSP violation:\n%s", log)
	}

	app.mu.Lock()
	rec := app.recorded
	app.mu.Unlock()
	rec.BaseURL = base
	checkRecorded(t, rec)
	if *update {
		b, err := json.MarshalIndent(rec, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", "browser.json"), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func portOf(a net.Addr) string {
	_, port, _ := net.SplitHostPort(a.String())
	return port
}

// foreignCredential is cred with another id: a credential no
// authenticator here holds.
func foreignCredential(t *testing.T, cred []byte) []byte {
	var m map[string]any
	if err := json.Unmarshal(cred, &m); err != nil {
		t.Fatal(err)
	}
	m["id"] = bytes.Repeat([]byte{7}, 32)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var _ http.Handler = (*http.ServeMux)(nil)
