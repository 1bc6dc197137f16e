package oauth

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestWriteErrorRetryAfter: an error carrying RetryAfter is answered
// with it in whole seconds, rounded up (429 throttling, 503 busy); a
// 503 without one gets the default; the template is not changed.
func TestWriteErrorRetryAfter(t *testing.T) {
	throttled := &Error{Code: "temporarily_unavailable", Status: http.StatusTooManyRequests}
	for _, tc := range []struct {
		e    *Error
		want string
	}{
		{throttled.WithRetryAfter(90 * time.Second), "90"},
		{throttled.WithRetryAfter(1500 * time.Millisecond), "2"},
		{ErrTemporarilyUnavailable.WithRetryAfter(7 * time.Second), "7"},
		{ErrTemporarilyUnavailable, RetryAfter},
		{throttled, ""},
		{ErrInvalidClient, ""},
	} {
		w := httptest.NewRecorder()
		WriteError(w, tc.e)
		if got := w.Header().Get("Retry-After"); got != tc.want || w.Code != tc.e.Status {
			t.Errorf("%d %s with RetryAfter %s: Retry-After %q status %d, want %q", tc.e.Status, tc.e.Code, tc.e.RetryAfter, got, w.Code, tc.want)
		}
	}
	if throttled.RetryAfter != 0 || ErrTemporarilyUnavailable.RetryAfter != 0 {
		t.Fatal("WithRetryAfter changed the template")
	}
}
