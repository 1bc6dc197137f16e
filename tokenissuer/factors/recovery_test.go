package factors

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var recoveryFormat = regexp.MustCompile(`^[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}$`)

func TestRecoveryCodes(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		use := func(code string, want error) {
			t.Helper()
			if err := e.m.UseRecoveryCode(e.ctx, "u1", code); !errors.Is(err, want) {
				t.Fatalf("UseRecoveryCode(%q): %v, want %v", code, err, want)
			}
		}
		left := func(want int) {
			t.Helper()
			if n, err := e.m.RecoveryCodesLeft(e.ctx, "u1"); err != nil || n != want {
				t.Fatalf("RecoveryCodesLeft = %d, %v; want %d", n, err, want)
			}
		}
		left(0)
		use("AAAA-AAAA-AAAA-AAAA", ErrNoFactor)

		codes, err := e.m.NewRecoveryCodes(e.ctx, "u1")
		if err != nil {
			t.Fatal(err)
		}
		if len(codes) != 10 {
			t.Fatalf("%d codes, want 10", len(codes))
		}
		seen := map[string]bool{}
		for _, c := range codes {
			if !recoveryFormat.MatchString(c) || seen[c] {
				t.Fatalf("codes %v: want 10 distinct XXXX-XXXX-XXXX-XXXX of base32", codes)
			}
			seen[c] = true
		}
		left(10)
		// Only hashes are stored: no code, with or without dashes.
		rec := e.raw(t, "u1")
		for _, c := range codes {
			if bytes.Contains(rec, []byte(c)) || bytes.Contains(rec, []byte(strings.ReplaceAll(c, "-", ""))) {
				t.Fatal("the stored record holds a recovery code in clear")
			}
		}

		// Each once; as shown, lower case, without dashes, with spaces.
		use(codes[0], nil)
		use(codes[0], ErrBadCode)
		use(strings.ToLower(codes[1]), nil)
		use(strings.ReplaceAll(codes[2], "-", ""), nil)
		use(" "+strings.ReplaceAll(codes[3], "-", " ")+" ", nil)
		use(strings.ToLower(strings.ReplaceAll(codes[3], "-", "")), ErrBadCode)
		left(6)
		// Wrong or malformed codes spend nothing.
		for _, c := range []string{"", "AAAA-AAAA-AAAA-AAAA", codes[4][:18], codes[4] + "A", strings.ReplaceAll(codes[4], "A", "1") + "0"} {
			use(c, ErrBadCode)
		}
		left(6)
		// Another user's codes are not this user's.
		if _, err := e.m.NewRecoveryCodes(e.ctx, "u2"); err != nil {
			t.Fatal(err)
		}
		if err := e.m.UseRecoveryCode(e.ctx, "u2", codes[4]); !errors.Is(err, ErrBadCode) {
			t.Fatalf("u1's code for u2: %v, want ErrBadCode", err)
		}

		// A new set replaces the old one entirely.
		again, err := e.m.NewRecoveryCodes(e.ctx, "u1")
		if err != nil {
			t.Fatal(err)
		}
		left(10)
		use(codes[4], ErrBadCode)
		use(again[9], nil)
		left(9)
		for _, c := range again[:9] {
			use(c, nil)
		}
		left(0)
		use(again[0], ErrNoFactor)
	})
}

// TestRecoveryCodeConcurrent: one code spent by two callers (two nodes
// on PostgreSQL) at once: exactly one succeeds.
func TestRecoveryCodeConcurrent(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		codes, err := e.m.NewRecoveryCodes(e.ctx, "u1")
		if err != nil {
			t.Fatal(err)
		}
		for j, c := range codes {
			// The loser finds the code spent; after the last one, none left.
			lost := ErrBadCode
			if j == len(codes)-1 {
				lost = ErrNoFactor
			}
			var errs [2]error
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i, m := range []*Manager{e.m, e.m2} {
				wg.Go(func() {
					<-start
					errs[i] = m.UseRecoveryCode(e.ctx, "u1", c)
				})
			}
			close(start)
			wg.Wait()
			if (errs[0] == nil) == (errs[1] == nil) || !(errors.Is(errs[0], lost) || errors.Is(errs[1], lost)) {
				t.Fatalf("one recovery code used concurrently: %v; want one success and one %v", errs, lost)
			}
		}
		if n, _ := e.m.RecoveryCodesLeft(e.ctx, "u1"); n != 0 {
			t.Fatalf("%d codes left, want 0", n)
		}
	})
}

func TestRemoveAndReset(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		totpID, secret := e.enrolled(t, "u1")
		wa, err := e.m.AddWebAuthn(e.ctx, "u1", "YubiKey", []byte("cred-1"), []byte(`{"k":1}`))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.m.NewRecoveryCodes(e.ctx, "u1"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.m.AddWebAuthn(e.ctx, "u2", "", []byte("cred-2"), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}

		if _, err := e.m.Remove(e.ctx, "u1", "mfaNoSuchFactor00000"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Remove of an unknown factor: %v, want ErrNotFound", err)
		}
		if _, err := e.m.Remove(e.ctx, "u2", totpID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Remove of another user's factor: %v, want ErrNotFound", err)
		}
		got, err := e.m.Remove(e.ctx, "u1", totpID)
		if err != nil || got.ID != totpID || got.Kind != KindTOTP || got.Secret != nil {
			t.Fatalf("Remove = %+v, %v", got, err)
		}
		if _, err := e.m.Remove(e.ctx, "u1", totpID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second Remove: %v, want ErrNotFound", err)
		}
		if _, err := e.m.VerifyTOTP(e.ctx, "u1", e.code(t, secret, 0)); !errors.Is(err, ErrNoFactor) {
			t.Fatalf("VerifyTOTP after Remove: %v, want ErrNoFactor", err)
		}
		if act, _ := e.m.Active(e.ctx, "u1"); len(act) != 1 || act[0].ID != wa.ID {
			t.Fatalf("after Remove Active = %+v, want the WebAuthn factor", act)
		}

		e.enrolled(t, "u1")
		removed, err := e.m.Reset(e.ctx, "u1")
		if err != nil || len(removed) != 2 || removed[0].ID != wa.ID || removed[1].Kind != KindTOTP {
			t.Fatalf("Reset = %+v, %v; want the WebAuthn and TOTP factors", removed, err)
		}
		for _, f := range removed {
			if f.Secret != nil || f.Credential != nil {
				t.Fatalf("Reset returned secret material: %+v", f)
			}
		}
		if list, err := e.m.List(e.ctx, "u1"); err != nil || len(list) != 0 {
			t.Fatalf("after Reset List = %+v, %v", list, err)
		}
		if n, _ := e.m.RecoveryCodesLeft(e.ctx, "u1"); n != 0 {
			t.Fatalf("after Reset %d recovery codes left", n)
		}
		// The record stays, as an empty set; other users are untouched.
		if rec := e.raw(t, "u1"); string(rec) != `{"factors":[]}` {
			t.Fatalf("record after Reset: %s", rec)
		}
		if list, _ := e.m.List(e.ctx, "u2"); len(list) != 1 {
			t.Fatalf("Reset of u1 touched u2: %+v", list)
		}
		if removed, err := e.m.Reset(e.ctx, "u1"); err != nil || len(removed) != 0 {
			t.Fatalf("second Reset = %+v, %v", removed, err)
		}
		// And enrolling again works.
		e.clock.Advance(time.Minute)
		e.enrolled(t, "u1")
	})
}
