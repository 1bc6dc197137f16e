package directory

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

func testBcrypt(t testing.TB, pw string, cost int) string {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func testArgon(pw string, memKiB, time uint32) string {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	key := argon2.IDKey([]byte(pw), salt, time, memKiB, 1, 32)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=1$%s$%s", memKiB, time, enc.EncodeToString(salt), enc.EncodeToString(key))
}

// checked records the hashes CheckPassword verifies.
func checked(t *testing.T) func() []string {
	var mu sync.Mutex
	var got []string
	verify = func(hash, pw string) bool {
		mu.Lock()
		got = append(got, hash)
		mu.Unlock()
		return VerifyPassword(hash, pw)
	}
	t.Cleanup(func() { verify = VerifyPassword })
	return func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(got) }
}

// mixedUsers: 6 bcrypt cost-4 users, 3 argon2id users (1 MiB, t=1),
// and one without a password: the mix of finding 3 (users of different
// costs), at test speed.
func mixedUsers(t *testing.T) []*User {
	var users []*User
	for n := range 6 {
		users = append(users, &User{ID: fmt.Sprint("b", n), Login: fmt.Sprintf("b%d@example.com", n), PasswordHash: testBcrypt(t, "pw", 4)})
	}
	for n := range 3 {
		users = append(users, &User{ID: fmt.Sprint("a", n), Login: fmt.Sprintf("a%d@example.com", n), PasswordHash: testArgon("pw", 1024, 1)})
	}
	return append(users, &User{ID: "nopw", Login: "nopw@example.com"})
}

// Finding 3: an unknown login was checked against a bcrypt cost-12
// dummy whatever the directory held, so it cost 210-250 ms where users
// cost 20-260 ms by their own hash. Now an unknown login is checked
// against a hash of the shape of one of the users', picked by the login:
// the shapes unknown logins get are distributed as the users' are, one
// login always gets the same, and the check does the full work (the
// dummy parses as its shape) without ever matching.
func TestUnknownLoginsCostWhatUsersCost(t *testing.T) {
	users := mixedUsers(t)
	f, err := NewFile(users)
	if err != nil {
		t.Fatal(err)
	}
	userShapes := map[string]int{}
	for _, u := range users {
		if s, ok := shape(u.PasswordHash); ok {
			userShapes[s]++
		}
	}
	const n = 3000
	got := map[string]int{}
	for j := range n {
		login := fmt.Sprintf("nobody%d@example.com", j)
		d := f.DummyHash(login)
		s, ok := shape(d)
		if !ok || userShapes[s] == 0 {
			t.Fatalf("dummy for %s has shape %q, no user's (%v)", login, s, userShapes)
		}
		got[s]++
		if f.DummyHash(" NOBODY"+login[len("nobody"):]) != d && j == 0 {
			t.Fatal("the dummy depends on the login's case or spaces")
		}
	}
	for s, c := range userShapes {
		want := float64(c) / 9
		if frac := float64(got[s]) / n; frac < want-0.05 || frac > want+0.05 {
			t.Errorf("shape %s: %.3f of unknown logins, %.3f of users", s, frac, want)
		}
	}
	// The dummies do the work of their shape and match nothing.
	for s := range userShapes {
		var d string
		for j := 0; d == ""; j++ {
			if c := f.DummyHash(fmt.Sprint("probe", j)); func() string { x, _ := shape(c); return x }() == s {
				d = c
			}
		}
		if s[:2] == "$2" {
			if err := bcrypt.CompareHashAndPassword([]byte(d), []byte("pw")); !errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
				t.Errorf("bcrypt dummy %s: %v, want a full check that mismatches", d, err)
			}
		} else if _, err := parseArgon2id(d); err != nil || VerifyPassword(d, "pw") {
			t.Errorf("argon2id dummy %s: %v", d, err)
		}
	}

	// CheckPassword checks exactly that dummy for an unknown login and
	// for a user without a password, and the user's own hash otherwise.
	log := checked(t)
	ctx := context.Background()
	for _, login := range []string{"nobody@example.com", "nopw@example.com"} {
		if _, err := CheckPassword(ctx, f, nil, login, "pw"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("%s: %v", login, err)
		}
	}
	if _, err := CheckPassword(ctx, f, nil, "a1@example.com", "wrong"); !errors.Is(err, ErrBadCredentials) {
		t.Fatal(err)
	}
	want := []string{f.DummyHash("nobody@example.com"), f.DummyHash("nopw@example.com"), users[7].PasswordHash}
	if got := log(); !slices.Equal(got, want) {
		t.Fatalf("checked %q, want %q", got, want)
	}

	// Every node loading the same directory picks the same shape for a
	// login (the key comes from the hashes, not from the process).
	g, _ := NewFile(users)
	for j := range 50 {
		l := fmt.Sprint("other", j)
		a, _ := shape(f.DummyHash(l))
		b, _ := shape(g.DummyHash(l))
		if a != b {
			t.Fatalf("%s: shape %s on one node, %s on another", l, a, b)
		}
	}
}

func TestDummyWithoutDummyHasher(t *testing.T) {
	f, _ := NewFile(mixedUsers(t))
	log := checked(t)
	_, _ = CheckPassword(context.Background(), struct{ Directory }{f}, nil, "nobody@example.com", "pw")
	s, _ := shape(log()[0])
	if s != fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$16$32", argonMemory, argonTime, argonThreads) {
		t.Fatalf("a directory without DummyHash is checked against %s, want the default argon2id parameters", s)
	}
	// A directory with no password at all: the default too.
	e, _ := NewFile([]*User{{ID: "x", Login: "x"}})
	if e.DummyHash("y") != "" || dummyFor(e, "y") != defaultDummy {
		t.Fatal("no user has a password: want the default dummy")
	}
}

// TestDummyTiming measures what finding 3 measured: the time of a wrong
// password for users of each shape against unknown logins. Timing on a
// shared 2-core machine is too noisy to assert; it runs on request
// (APIACCESS_TIMING=1) and logs the medians.
func TestDummyTiming(t *testing.T) {
	if os.Getenv("APIACCESS_TIMING") == "" {
		t.Skip("set APIACCESS_TIMING=1 to measure")
	}
	users := []*User{
		{ID: "b10", Login: "b10", PasswordHash: testBcrypt(t, "pw", 10)},
		{ID: "b12", Login: "b12", PasswordHash: testBcrypt(t, "pw", 12)},
		{ID: "a64", Login: "a64", PasswordHash: testArgon("pw", 64<<10, 3)},
	}
	f, _ := NewFile(users)
	median := func(login string) time.Duration {
		var ds []time.Duration
		for range 9 {
			start := time.Now()
			_, _ = CheckPassword(context.Background(), f, nil, login, "wrong")
			ds = append(ds, time.Since(start))
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)/2]
	}
	for _, u := range users {
		t.Logf("known %s: %v", u.Login, median(u.Login))
	}
	for j := range 6 {
		l := fmt.Sprintf("unknown%d", j)
		s, _ := shape(f.DummyHash(l))
		t.Logf("unknown %s (%s): %v", l, s, median(l))
	}
}
