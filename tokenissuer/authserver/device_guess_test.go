package authserver

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
)

// TestDeviceValidCodeGivesItsAttemptBack: the per-address limit on user
// code lookups counts wrong codes only in effect: a valid code takes
// its count back, so the people behind one address (a household, an
// office NAT) who enter their own codes never use up the limit.
func TestDeviceValidCodeGivesItsAttemptBack(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	for n := range maxAddrFailures - 1 {
		if w := e.browse(http.MethodGet, fmt.Sprintf("%s?user_code=BCDF-%04d", devicePage, n), nil); w.Code != http.StatusBadRequest {
			t.Fatalf("wrong guess %d: %d", n+1, w.Code)
		}
	}
	for range 3 {
		da := e.deviceAuthorize()
		if w := e.browse(http.MethodGet, devicePage+"?"+url.Values{"user_code": {da.userCode}}.Encode(), nil); w.Code != http.StatusOK {
			t.Fatalf("valid code: %d", w.Code)
		}
	}
	if w := e.browse(http.MethodGet, devicePage+"?user_code=BCDF-9999", nil); w.Code != http.StatusBadRequest {
		t.Fatalf("the last wrong guess within the limit: %d, want it looked up (400)", w.Code)
	}
	if w := e.browse(http.MethodGet, devicePage+"?user_code=BCDF-9998", nil); w.Code != http.StatusTooManyRequests {
		t.Fatalf("a guess beyond the limit: %d, want 429", w.Code)
	}
}
