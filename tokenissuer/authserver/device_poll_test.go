package authserver

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestDevicePollInterval: polling after the interval, even exactly at
// it, is authorization_pending; polling sooner is slow_down and each one adds
// 5 seconds to the interval the client must keep from then on (RFC 8628
// section 3.5).
func TestDevicePollInterval(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	da := e.deviceAuthorize()
	poll := func(after time.Duration) any {
		t.Helper()
		e.clock.Advance(after)
		_, body := e.post(tokenEP, "tv", url.Values{"grant_type": {GrantDeviceCode}, "device_code": {da.deviceCode}})
		return body["error"]
	}
	steps := []struct {
		after time.Duration
		want  string
	}{
		{0, "authorization_pending"}, // the first poll has no previous one
		{pollInterval, "authorization_pending"},
		{pollInterval - time.Second, "slow_down"},
		{pollInterval, "slow_down"},                 // the interval was 10 s; now 15 s
		{3*pollInterval - time.Second, "slow_down"}, // now 20 s
		{4 * pollInterval, "authorization_pending"},
	}
	for n, s := range steps {
		if got := poll(s.after); got != s.want {
			t.Fatalf("poll %d, %v after the last: %v, want %s", n+1, s.after, got, s.want)
		}
	}
}

// TestUserCodeShape: user codes are two groups of four letters from an
// alphabet without vowels or look-alikes, as RFC 8628 section 6.1
// suggests, so a user can type one from a TV screen.
func TestUserCodeShape(t *testing.T) {
	for range 50 {
		c := newUserCode()
		if len(c) != 9 || c[4] != '-' || strings.Trim(c[:4]+c[5:], userCodeAlphabet) != "" {
			t.Fatalf("user code %q", c)
		}
	}
}

// TestDeviceApprovalShowsScopes: the approval page lists what the
// device asks for, with each scope's description, so the user knows
// what they allow.
func TestDeviceApprovalShowsScopes(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	status, body := e.post("/oauth2/default/v1/device/authorize", "tv", url.Values{"scope": {"read pay"}})
	if status != 200 {
		t.Fatalf("device authorization: %d %v", status, body)
	}
	complete, _ := body["verification_uri_complete"].(string)
	w := e.browse(http.MethodGet, strings.TrimPrefix(complete, "https://id.example.com"), nil, e.session("u1"))
	if page := w.Body.String(); w.Code != 200 || !strings.Contains(page, "Make payments") || !strings.Contains(page, "read") {
		t.Fatalf("approval page: %d %.600s", w.Code, page)
	}
}
