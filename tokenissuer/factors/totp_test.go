package factors

import (
	"bytes"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"image/png"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

var factorID = regexp.MustCompile(`^mfa[0-9A-Za-z]{17}$`)

func TestTOTPEnrollAndActivate(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		en, err := e.m.EnrollTOTP(e.ctx, "u1", "alice@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if !factorID.MatchString(en.FactorID) {
			t.Errorf("factor id %q, want mfa + 17 base62", en.FactorID)
		}
		raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(en.Secret)
		if err != nil || len(raw) != 20 {
			t.Fatalf("secret %q: %d bytes, %v; want 20 bytes of base32", en.Secret, len(raw), err)
		}
		u, err := url.Parse(en.URL)
		if err != nil || u.Scheme != "otpauth" || u.Host != "totp" || u.Path != "/Example Issuer:alice@example.com" {
			t.Fatalf("URL %q", en.URL)
		}
		q := u.Query()
		if q.Get("secret") != en.Secret || q.Get("issuer") != "Example Issuer" || q.Get("digits") != "6" ||
			q.Get("period") != "30" || q.Get("algorithm") != "SHA1" {
			t.Errorf("URL parameters %v", q)
		}
		if img, err := png.Decode(bytes.NewReader(en.QRPNG)); err != nil || img.Bounds().Dx() != 256 {
			t.Errorf("QR code is not a 256 px PNG: %v", err)
		}

		// Pending: listed, not active, not usable.
		list, err := e.m.List(e.ctx, "u1")
		if err != nil || len(list) != 1 || list[0].ID != en.FactorID || list[0].Status != StatusPending ||
			list[0].Kind != KindTOTP || !list[0].Created.Equal(t0) || list[0].Secret != nil {
			t.Fatalf("List = %+v, %v; want one pending TOTP without its secret", list, err)
		}
		if act, err := e.m.Active(e.ctx, "u1"); err != nil || len(act) != 0 {
			t.Fatalf("Active = %+v, %v; want none while pending", act, err)
		}
		if _, err := e.m.VerifyTOTP(e.ctx, "u1", e.code(t, en.Secret, 0)); !errors.Is(err, ErrNoFactor) {
			t.Fatalf("VerifyTOTP with a pending factor: %v, want ErrNoFactor", err)
		}

		// A wrong code, or one two steps off, does not activate.
		for _, c := range []string{"000000", e.code(t, en.Secret, 2), e.code(t, en.Secret, -2), "12345", "abcdef"} {
			if c == e.code(t, en.Secret, 0) || c == e.code(t, en.Secret, 1) || c == e.code(t, en.Secret, -1) {
				continue // a collision of codes: not a wrong code
			}
			if err := e.m.ActivateTOTP(e.ctx, "u1", en.FactorID, c); !errors.Is(err, ErrBadCode) {
				t.Fatalf("ActivateTOTP(%q): %v, want ErrBadCode", c, err)
			}
		}
		if err := e.m.ActivateTOTP(e.ctx, "u1", "mfaNoSuchFactor00000", e.code(t, en.Secret, 0)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("ActivateTOTP of an unknown factor: %v, want ErrNotFound", err)
		}
		if err := e.m.ActivateTOTP(e.ctx, "u2", en.FactorID, e.code(t, en.Secret, 0)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("ActivateTOTP of another user's factor: %v, want ErrNotFound", err)
		}

		// The right code activates, and counts as used.
		e.clock.Advance(5 * time.Second)
		activating := e.code(t, en.Secret, 0)
		if err := e.m.ActivateTOTP(e.ctx, "u1", en.FactorID, activating); err != nil {
			t.Fatalf("ActivateTOTP: %v", err)
		}
		act, err := e.m.Active(e.ctx, "u1")
		if err != nil || len(act) != 1 || act[0].ID != en.FactorID || act[0].Status != StatusActive ||
			!act[0].Activated.Equal(e.clock.Now()) || !act[0].LastUsed.Equal(e.clock.Now()) || act[0].Secret != nil {
			t.Fatalf("Active = %+v, %v", act, err)
		}
		if _, err := e.m.VerifyTOTP(e.ctx, "u1", activating); !errors.Is(err, ErrReplayed) {
			t.Fatalf("VerifyTOTP with the activating code: %v, want ErrReplayed", err)
		}
		if err := e.m.ActivateTOTP(e.ctx, "u1", en.FactorID, e.code(t, en.Secret, 1)); !errors.Is(err, ErrNotPending) {
			t.Fatalf("second ActivateTOTP: %v, want ErrNotPending", err)
		}
	})
}

// TestTOTPSteps: the current and adjacent steps are accepted, each step
// once, never one older than the last accepted, never two steps off.
func TestTOTPSteps(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		id, secret := e.enrolled(t, "u1")
		verify := func(code string, want error) {
			t.Helper()
			f, err := e.m.VerifyTOTP(e.ctx, "u1", code)
			if !errors.Is(err, want) {
				t.Fatalf("VerifyTOTP at %s: %v, want %v", e.clock.Now().UTC().Format(time.TimeOnly), err, want)
			}
			if err == nil && (f.ID != id || !f.LastUsed.Equal(e.clock.Now()) || f.Secret != nil) {
				t.Fatalf("VerifyTOTP returned %+v", f)
			}
		}
		bad := func(offset int) string {
			// A code two steps off, unless it happens to equal an
			// acceptable one (one chance in about 330000).
			c := e.code(t, secret, offset)
			for _, o := range []int{-1, 0, 1} {
				if c == e.code(t, secret, o) {
					t.Skip("codes of different steps collide")
				}
			}
			return c
		}
		cur := e.code(t, secret, 0)
		verify(cur, nil)
		verify(cur, ErrReplayed)
		verify(" "+cur[:3]+" "+cur[3:]+" ", ErrReplayed) // spaces are dropped
		verify(e.code(t, secret, -1), ErrReplayed)       // older than the last used
		verify(bad(2), ErrBadCode)
		verify(bad(-2), ErrBadCode)

		// The next step's code (a clock running fast) is accepted, and
		// then the current one is older than it.
		e.clock.Advance(30 * time.Second)
		next := e.code(t, secret, 1)
		verify(next, nil)
		verify(e.code(t, secret, 0), ErrReplayed)
		e.clock.Advance(30 * time.Second)
		verify(next, ErrReplayed) // now the current step's code: used

		// The previous step's code (a clock running slow, or a slow
		// typist) is accepted when that step was not used.
		e.clock.Advance(60 * time.Second)
		verify(e.code(t, secret, -1), nil)
		verify(e.code(t, secret, 0), nil)
		verify(e.code(t, secret, 0), ErrReplayed)

		// Malformed codes never match.
		for _, c := range []string{"", "12345", "1234567", "12a456", "１２３４５６", "123-456"} {
			verify(c, ErrBadCode)
		}
		// Unicode digits of the right code are not the code.
		e.clock.Advance(30 * time.Second)
		c := e.code(t, secret, 0)
		var wide strings.Builder
		for _, r := range c {
			wide.WriteRune(r - '0' + '０')
		}
		verify(wide.String(), ErrBadCode)
		verify(c, nil)

		if _, err := e.m.VerifyTOTP(e.ctx, "nobody", c); !errors.Is(err, ErrNoFactor) {
			t.Fatalf("VerifyTOTP for a user without factors: %v, want ErrNoFactor", err)
		}
	})
}

// TestTOTPReenroll: a new enrollment replaces an older pending one, and
// leaves an active one usable beside it.
func TestTOTPReenroll(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		old, err := e.m.EnrollTOTP(e.ctx, "u1", "")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(old.URL, "Example%20Issuer:u1?") {
			t.Errorf("an empty account is the user id: %s", old.URL)
		}
		again, err := e.m.EnrollTOTP(e.ctx, "u1", "alice")
		if err != nil {
			t.Fatal(err)
		}
		if again.Secret == old.Secret || again.FactorID == old.FactorID {
			t.Fatal("re-enrollment reused the secret or the id")
		}
		if list, _ := e.m.List(e.ctx, "u1"); len(list) != 1 || list[0].ID != again.FactorID {
			t.Fatalf("after re-enrolling List = %+v, want only the new pending factor", list)
		}
		if err := e.m.ActivateTOTP(e.ctx, "u1", old.FactorID, e.code(t, old.Secret, 0)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("activating the replaced enrollment: %v, want ErrNotFound", err)
		}
		if err := e.m.ActivateTOTP(e.ctx, "u1", again.FactorID, e.code(t, again.Secret, 0)); err != nil {
			t.Fatal(err)
		}
		third, err := e.m.EnrollTOTP(e.ctx, "u1", "alice")
		if err != nil {
			t.Fatal(err)
		}
		if list, _ := e.m.List(e.ctx, "u1"); len(list) != 2 || list[0].Status != StatusActive || list[1].ID != third.FactorID {
			t.Fatalf("enrolling beside an active factor: List = %+v", list)
		}
		// The active one still verifies; the pending one does not.
		e.clock.Advance(30 * time.Second)
		if _, err := e.m.VerifyTOTP(e.ctx, "u1", e.code(t, third.Secret, 0)); !errors.Is(err, ErrBadCode) &&
			e.code(t, third.Secret, 0) != e.code(t, again.Secret, 0) {
			t.Fatalf("a pending factor's code: %v, want ErrBadCode", err)
		}
		if f, err := e.m.VerifyTOTP(e.ctx, "u1", e.code(t, again.Secret, 0)); err != nil || f.ID != again.FactorID {
			t.Fatalf("the active factor: %+v, %v", f, err)
		}
	})
}

// TestTOTPSecretSealed: the store never holds the secret in clear, and
// a sealed secret moved to another user does not open.
func TestTOTPSecretSealed(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		_, secret := e.enrolled(t, "u1")
		raw, _ := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
		rec := e.raw(t, "u1")
		for _, clear := range [][]byte{raw, []byte(secret), []byte(strings.ToLower(secret)),
			[]byte(base64.StdEncoding.EncodeToString(raw)), []byte(base64.RawURLEncoding.EncodeToString(raw))} {
			if bytes.Contains(rec, clear) {
				t.Fatalf("the stored record holds the secret in clear (%q)", clear)
			}
		}
		var stored record
		if err := json.Unmarshal(rec, &stored); err != nil || len(stored.Factors) != 1 || len(stored.Factors[0].Secret) == 0 {
			t.Fatalf("stored record %s: %v", rec, err)
		}
		// The sealed secret is a JWE whose key id binds user and factor.
		if parts := strings.Split(string(stored.Factors[0].Secret), "."); len(parts) != 5 {
			t.Fatalf("sealed secret is not a compact JWE: %d parts", len(parts))
		}

		// Copied to another user, the factor is there but cannot verify.
		if err := e.st.PutRecord(e.ctx, store.NSFactors, "mallory", rec, recordUntil); err != nil {
			t.Fatal(err)
		}
		if _, err := e.m.VerifyTOTP(e.ctx, "mallory", e.code(t, secret, 0)); err == nil ||
			errors.Is(err, ErrBadCode) || errors.Is(err, ErrReplayed) {
			t.Fatalf("VerifyTOTP with a moved sealed secret: %v, want an unseal error", err)
		}
		// The owner's still works.
		if _, err := e.m.VerifyTOTP(e.ctx, "u1", e.code(t, secret, 0)); err != nil {
			t.Fatal(err)
		}
	})
}

// TestTOTPConcurrentVerify: two callers (two nodes on PostgreSQL) with
// the same code at the same time: exactly one is accepted, the other is
// a replay. Several rounds, one per step.
func TestTOTPConcurrentVerify(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		_, secret := e.enrolled(t, "u1")
		for round := range 10 {
			c := e.code(t, secret, 0)
			var errs [2]error
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i, m := range []*Manager{e.m, e.m2} {
				wg.Go(func() {
					<-start
					_, errs[i] = m.VerifyTOTP(e.ctx, "u1", c)
				})
			}
			close(start)
			wg.Wait()
			ok, replayed := 0, 0
			for _, err := range errs {
				switch {
				case err == nil:
					ok++
				case errors.Is(err, ErrReplayed):
					replayed++
				default:
					t.Fatalf("round %d: %v", round, err)
				}
			}
			if ok != 1 || replayed != 1 {
				t.Fatalf("round %d: one code verified concurrently: %v; want exactly one success", round, errs)
			}
			e.clock.Advance(30 * time.Second)
		}
	})
}

// TestTOTPPendingShownAgain: an enrollment answered with a wrong code
// is shown again with the same secret (the one the user scanned), and
// it can no longer be shown or activated once PendingLifetime passed.
func TestTOTPPendingShownAgain(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		en, err := e.m.EnrollTOTP(e.ctx, "u1", "alice@example.com")
		if err != nil {
			t.Fatal(err)
		}
		again, err := e.m.PendingTOTP(e.ctx, "u1", en.FactorID, "alice@example.com")
		if err != nil || again.Secret != en.Secret || again.URL != en.URL || len(again.QRPNG) == 0 {
			t.Fatalf("shown again: %v, same secret %v, same URL %v", err, again.Secret == en.Secret, again.URL == en.URL)
		}
		if _, err := e.m.PendingTOTP(e.ctx, "u2", en.FactorID, ""); err != ErrNotFound {
			t.Fatalf("another user's pending factor: %v", err)
		}
		e.clock.Advance(PendingLifetime + time.Minute)
		if _, err := e.m.PendingTOTP(e.ctx, "u1", en.FactorID, ""); err != ErrNotFound {
			t.Fatalf("an old pending factor shown: %v", err)
		}
		code := e.code(t, en.Secret, 0)
		if err := e.m.ActivateTOTP(e.ctx, "u1", en.FactorID, code); err != ErrNotFound {
			t.Fatalf("an old pending factor activated: %v", err)
		}
	})
}
