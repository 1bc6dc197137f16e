package testkit

import (
	"testing"
	"time"
)

// WaitFor polls cond every 50ms until it is true, and fails t when it
// is still false after timeout: for conditions a test can observe but
// not be told about (a server listening, a process gone).
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
