package authserver

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"
)

// TestRevocationRateLimitHeaders: past the budget the 429 carries
// Okta's X-Rate-Limit headers, the reset time being the end of the
// window, and Retry-After the seconds until then rounded up, so a
// client that waits that long is let through.
func TestRevocationRateLimitHeaders(t *testing.T) {
	old := revokeBudget
	revokeBudget = 1
	t.Cleanup(func() { revokeBudget = old })
	e := newFlowEnv(t, "https://id.example.com")
	revoke := func() *httptest.ResponseRecorder {
		_, body := e.post(tokenEP, "svc", url.Values{"grant_type": {"client_credentials"}})
		return e.send("/oauth2/default/v1/revoke", "svc", url.Values{"token": {body["access_token"].(string)}})
	}
	// Windows in the future: the store expires counters by the wall clock.
	for n, c := range []struct {
		left time.Duration
		want string
	}{{10500 * time.Millisecond, "11"}, {10 * time.Second, "10"}} {
		left, want := c.left, c.want
		end := time.Now().Truncate(revokeWindow).Add(time.Duration(n+1) * time.Hour)
		e.clock.Advance(end.Add(-left).Sub(e.clock.Now()))
		if w := revoke(); w.Code != 200 {
			t.Fatalf("within the budget: %d", w.Code)
		}
		w := revoke()
		h := w.Header()
		if w.Code != http.StatusTooManyRequests || h.Get("Retry-After") != want || h.Get("X-Rate-Limit-Limit") != "1" ||
			h.Get("X-Rate-Limit-Remaining") != "0" || h.Get("X-Rate-Limit-Reset") != strconv.FormatInt(end.Unix(), 10) {
			t.Fatalf("over budget %v before the window's end: %d %v", left, w.Code, h)
		}
		e.clock.Advance(left)
		if w := revoke(); w.Code != 200 {
			t.Fatalf("after Retry-After: %d", w.Code)
		}
	}
}
