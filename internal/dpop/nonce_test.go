package dpop

import (
	"regexp"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func TestNoncesAcrossPeriods(t *testing.T) {
	clk := testkit.NewClock(t0) // t0 starts a window of 10s
	n := NewNonces(secret, 10*time.Second, clk.Now)
	first := n.Current()
	// NQCHAR (RFC 9449 section 8.1); base64url in fact.
	if !regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`).MatchString(first) {
		t.Fatalf("nonce %q", first)
	}
	clk.Advance(10*time.Second - time.Nanosecond)
	if n.Current() != first || !n.Valid(first) {
		t.Fatal("nonce changed within its window")
	}
	clk.Advance(time.Nanosecond) // the next window
	second := n.Current()
	if second == first {
		t.Fatal("nonce did not change with the window")
	}
	if !n.Valid(first) || !n.Valid(second) {
		t.Fatal("current and previous window's nonces must be valid")
	}
	clk.Advance(10*time.Second - time.Nanosecond)
	if !n.Valid(first) {
		t.Fatal("previous window's nonce refused before the window's end")
	}
	clk.Advance(time.Nanosecond)
	if n.Valid(first) {
		t.Fatal("nonce two windows old accepted")
	}
	if !n.Valid(second) || !n.Valid(n.Current()) {
		t.Fatal("current and previous window's nonces must be valid")
	}
	// A nonce of the next window (a node whose clock is ahead) is not
	// valid yet.
	ahead := NewNonces(secret, 10*time.Second, func() time.Time { return clk.Now().Add(10 * time.Second) })
	if n.Valid(ahead.Current()) {
		t.Fatal("next window's nonce accepted")
	}
}

// TestNoncesShared: two nodes with one secret agree; another secret's
// nonces are refused.
func TestNoncesShared(t *testing.T) {
	clk := testkit.NewClock(t0.Add(3 * time.Second))
	a := NewNonces(secret, time.Minute, clk.Now)
	b := NewNonces(append([]byte(nil), secret...), time.Minute, clk.Now)
	other := NewNonces([]byte("fedcba9876543210fedcba9876543210"), time.Minute, clk.Now)
	if a.Current() != b.Current() || !b.Valid(a.Current()) {
		t.Fatal("nodes with one secret disagree")
	}
	if a.Valid(other.Current()) || a.Current() == other.Current() {
		t.Fatal("another secret's nonce accepted")
	}
	for _, bad := range []string{"", "x", a.Current()[:42], a.Current() + "A"} {
		if a.Valid(bad) {
			t.Fatalf("Valid(%q)", bad)
		}
	}
	// The secret is copied.
	s := append([]byte(nil), secret...)
	c := NewNonces(s, time.Minute, clk.Now)
	s[0] ^= 1
	if c.Current() != a.Current() {
		t.Fatal("secret not copied")
	}
}

func TestNoncesBeforeEpoch(t *testing.T) {
	clk := testkit.NewClock(time.Unix(-5, 0))
	n := NewNonces(secret, 10*time.Second, clk.Now)
	if n.window(clk.Now()) != -1 {
		t.Fatalf("window %d", n.window(clk.Now()))
	}
	cur := n.Current()
	clk.Set(time.Unix(0, 0))
	if n.Current() == cur || !n.Valid(cur) {
		t.Fatal("windows across the epoch")
	}
}

func TestNewNoncesPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"short secret": func() { NewNonces(secret[:MinNonceSecret-1], time.Minute, nil) },
		"zero period":  func() { NewNonces(secret, 0, nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
	if NewNonces(secret, time.Minute, nil).now == nil {
		t.Fatal("no default clock")
	}
}
