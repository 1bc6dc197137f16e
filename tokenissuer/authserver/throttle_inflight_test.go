package authserver

import "testing"

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
