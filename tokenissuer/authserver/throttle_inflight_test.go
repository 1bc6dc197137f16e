package authserver

import (
	"context"
	"testing"
	"time"
)

// TestInFlightPerLogin: at most maxInFlightPerLogin checks of one login
// run at once, other logins are not affected, a release frees exactly
// one place however often it is called, and a login with nothing in
// flight leaves no entry behind (the map stays bounded by the requests
// in progress).
func TestInFlightPerLogin(t *testing.T) {
	var f inFlight
	var held []func()
	for n := range maxInFlightPerLogin {
		release, ok := f.acquire("alice")
		if !ok {
			t.Fatalf("check %d of alice refused", n+1)
		}
		held = append(held, release)
	}
	if _, ok := f.acquire("alice"); ok {
		t.Fatalf("check %d of alice admitted", maxInFlightPerLogin+1)
	}
	bob, ok := f.acquire("bob")
	if !ok {
		t.Fatal("bob refused while alice is busy")
	}
	held[0]()
	held[0]() // a second call must not free a second place
	again, ok := f.acquire("alice")
	if !ok {
		t.Fatal("alice refused after a release")
	}
	if _, ok := f.acquire("alice"); ok {
		t.Fatal("a repeated release freed two places")
	}
	for _, release := range append(held[1:], again, bob) {
		release()
	}
	if len(f.n) != 0 {
		t.Fatalf("entries left after every release: %v", f.n)
	}
}

// TestSlowDown: the first failures answer at once, later ones wait a
// step more each, never more than maxDelay; a zero step (tests) never
// waits.
func TestSlowDown(t *testing.T) {
	for _, c := range []struct {
		n    int64
		step time.Duration
		want time.Duration
	}{
		{1, slowStep, 0}, {slowAfter, slowStep, 0}, {slowAfter + 1, slowStep, slowStep}, {slowAfter + 2, slowStep, 2 * slowStep},
		{slowAfter + 8, slowStep, maxDelay}, {slowAfter + 9, slowStep, maxDelay}, {1000, slowStep, maxDelay}, {slowAfter + 5, 0, 0},
	} {
		if got := slowDown(c.n, c.step); got != c.want {
			t.Errorf("slowDown(%d, %v) = %v, want %v", c.n, c.step, got, c.want)
		}
	}
}

// TestFailedAttemptWaits: a failure past slowAfter holds its answer for
// the slow-down (at least that long; a loaded machine only adds), and
// a client that hangs up is let go at once.
func TestFailedAttemptWaits(t *testing.T) {
	iss := &Issuer{slowStep: 100 * time.Millisecond}
	a := &attempt{i: iss, user: slowAfter + 1, release: func() {}}
	start := time.Now()
	a.failed(context.Background(), decision{})
	if d := time.Since(start); d < iss.slowStep {
		t.Fatalf("failure %d answered after %v, want at least %v", slowAfter+1, d, iss.slowStep)
	}
	// The longest slow-down, maxDelay; a client gone returns well before.
	iss.slowStep = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start = time.Now()
	a.failed(ctx, decision{})
	if d := time.Since(start); d >= maxDelay {
		t.Fatalf("a failed attempt kept waiting %v after its client went away", d)
	}
}
