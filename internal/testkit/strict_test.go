package testkit

import (
	"fmt"
	"testing"
)

// recorder is a testing.TB that records Skip and Fatalf instead of
// ending the goroutine; any other method panics (nil embedded TB).
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()                      {}
func (r *recorder) Skip(args ...any)             { r.skipped = fmt.Sprint(args...) }
func (r *recorder) Fatalf(f string, args ...any) { r.failed = fmt.Sprintf(f, args...) }
func (r *recorder) Fatal(args ...any)            { r.failed = fmt.Sprint(args...) }
func (r *recorder) Skipf(f string, args ...any)  { r.skipped = fmt.Sprintf(f, args...) }
func (r *recorder) Errorf(f string, args ...any) { r.failed = fmt.Sprintf(f, args...) }
func (r *recorder) Logf(string, ...any)          {}
func (r *recorder) Cleanup(func())               {}
func (r *recorder) Setenv(string, string)        {}
func (r *recorder) Name() string                 { return "recorder" }
func (r *recorder) Failed() bool                 { return r.failed != "" }
func (r *recorder) Skipped() bool                { return r.skipped != "" }
func (r *recorder) TempDir() string              { return "" }
func (r *recorder) SkipNow()                     { r.skipped = "SkipNow" }
func (r *recorder) FailNow()                     { r.failed = "FailNow" }
func (r *recorder) Fail()                        { r.failed = "Fail" }
func (r *recorder) Error(args ...any)            { r.failed = fmt.Sprint(args...) }
func (r *recorder) Log(...any)                   {}

func TestNeedSkipsWithTheReason(t *testing.T) {
	t.Setenv(StrictEnv, "")
	r := &recorder{}
	Need(r, false, "no node on PATH")
	if r.skipped != "no node on PATH" || r.failed != "" {
		t.Fatalf("skipped %q, failed %q", r.skipped, r.failed)
	}
}

func TestNeedFailsUnderStrict(t *testing.T) {
	t.Setenv(StrictEnv, "1")
	r := &recorder{}
	Needf(r, false, "no Chromium at %s", "/usr/bin/chromium")
	if r.failed != "no Chromium at /usr/bin/chromium (APIACCESS_STRICT=1)" || r.skipped != "" {
		t.Fatalf("skipped %q, failed %q", r.skipped, r.failed)
	}
}

func TestNeedPassesWhenPresent(t *testing.T) {
	for _, v := range []string{"", "1"} {
		t.Setenv(StrictEnv, v)
		r := &recorder{}
		Need(r, true, "unused")
		Needf(r, true, "unused %d", 1)
		if r.failed != "" || r.skipped != "" {
			t.Fatalf("%s=%q: skipped %q, failed %q", StrictEnv, v, r.skipped, r.failed)
		}
	}
}

// Only "1" is strict: CI sets exactly that.
func TestStrictOnlyForOne(t *testing.T) {
	for v, want := range map[string]bool{"": false, "0": false, "true": false, "1": true} {
		t.Setenv(StrictEnv, v)
		if Strict() != want {
			t.Errorf("%s=%q: Strict() = %v", StrictEnv, v, !want)
		}
	}
}
