package testkit

import (
	"fmt"
	"os"
	"testing"
)

// StrictEnv is the variable CI sets to 1 so that a test lacking an
// outside tool (PostgreSQL, Node, Chromium) fails instead of skipping:
// there a skip would hide a test that never ran.
const StrictEnv = "APIACCESS_STRICT"

// Strict reports whether APIACCESS_STRICT=1.
func Strict() bool { return os.Getenv(StrictEnv) == "1" }

// Need skips t with reason (one line) when ok is false, or fails it
// when APIACCESS_STRICT=1.
func Need(t testing.TB, ok bool, reason string) {
	t.Helper()
	if ok {
		return
	}
	if Strict() {
		t.Fatalf("%s (%s=1)", reason, StrictEnv)
		return
	}
	t.Skip(reason)
}

// Needf is Need with a formatted reason.
func Needf(t testing.TB, ok bool, format string, args ...any) {
	t.Helper()
	if !ok {
		Need(t, false, fmt.Sprintf(format, args...))
	}
}
