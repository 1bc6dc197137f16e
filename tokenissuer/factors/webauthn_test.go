package factors

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestWebAuthn(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		a, err := e.m.AddWebAuthn(e.ctx, "u1", "", []byte{0, 1, 2}, []byte(`{"counter":0}`))
		if err != nil {
			t.Fatal(err)
		}
		if !factorID.MatchString(a.ID) || a.Kind != KindWebAuthn || a.Status != StatusActive || a.Name != "Passkey" ||
			!a.Activated.Equal(t0) || a.Credential != nil {
			t.Fatalf("AddWebAuthn = %+v", a)
		}
		e.clock.Advance(time.Minute)
		b, err := e.m.AddWebAuthn(e.ctx, "u1", "Laptop", []byte{9, 9}, []byte(`{"counter":5}`))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.m.AddWebAuthn(e.ctx, "u1", "Again", []byte{0, 1, 2}, []byte(`{}`)); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("AddWebAuthn of a registered credential id: %v, want ErrDuplicate", err)
		}
		for _, bad := range [][]byte{nil, []byte("not json")} {
			if _, err := e.m.AddWebAuthn(e.ctx, "u1", "x", []byte{7}, bad); err == nil {
				t.Fatalf("AddWebAuthn with credential %q accepted", bad)
			}
		}
		if _, err := e.m.AddWebAuthn(e.ctx, "u1", "x", nil, []byte(`{}`)); err == nil {
			t.Fatal("AddWebAuthn without a credential id accepted")
		}

		all, err := e.m.WebAuthn(e.ctx, "u1")
		if err != nil || len(all) != 2 || all[0].ID != a.ID || string(all[0].Credential) != `{"counter":0}` ||
			all[1].ID != b.ID || all[1].Name != "Laptop" || string(all[1].Credential) != `{"counter":5}` {
			t.Fatalf("WebAuthn = %+v, %v", all, err)
		}
		list, _ := e.m.List(e.ctx, "u1")
		if len(list) != 2 || list[0].Credential != nil || !slices.Equal(list[1].CredentialID, []byte{9, 9}) {
			t.Fatalf("List = %+v: want credential ids, no credentials", list)
		}

		f, err := e.m.FindWebAuthn(e.ctx, "u1", []byte{9, 9})
		if err != nil || f.ID != b.ID || string(f.Credential) != `{"counter":5}` {
			t.Fatalf("FindWebAuthn = %+v, %v", f, err)
		}
		for _, id := range [][]byte{{9}, {9, 9, 9}, nil} {
			if _, err := e.m.FindWebAuthn(e.ctx, "u1", id); !errors.Is(err, ErrNotFound) {
				t.Fatalf("FindWebAuthn(%v): %v, want ErrNotFound", id, err)
			}
		}
		if _, err := e.m.FindWebAuthn(e.ctx, "u2", []byte{9, 9}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("FindWebAuthn for another user: %v, want ErrNotFound", err)
		}

		e.clock.Advance(time.Minute)
		if err := e.m.UpdateWebAuthn(e.ctx, "u1", b.ID, []byte(`{"counter":6}`)); err != nil {
			t.Fatal(err)
		}
		f, _ = e.m.FindWebAuthn(e.ctx, "u1", []byte{9, 9})
		if string(f.Credential) != `{"counter":6}` || !f.LastUsed.Equal(e.clock.Now()) {
			t.Fatalf("after UpdateWebAuthn: %+v", f)
		}
		if f, _ := e.m.FindWebAuthn(e.ctx, "u1", []byte{0, 1, 2}); string(f.Credential) != `{"counter":0}` || !f.LastUsed.IsZero() {
			t.Fatalf("UpdateWebAuthn changed another credential: %+v", f)
		}
		if err := e.m.UpdateWebAuthn(e.ctx, "u1", "mfaNoSuchFactor00000", []byte(`{}`)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("UpdateWebAuthn of an unknown factor: %v, want ErrNotFound", err)
		}
		if err := e.m.UpdateWebAuthn(e.ctx, "u2", b.ID, []byte(`{}`)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("UpdateWebAuthn of another user's factor: %v, want ErrNotFound", err)
		}
		// A TOTP factor is not a WebAuthn one.
		totpID, _ := e.enrolled(t, "u1")
		if err := e.m.UpdateWebAuthn(e.ctx, "u1", totpID, []byte(`{}`)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("UpdateWebAuthn of a TOTP factor: %v, want ErrNotFound", err)
		}
		if all, _ := e.m.WebAuthn(e.ctx, "u1"); len(all) != 2 {
			t.Fatalf("WebAuthn lists %d factors, want the 2 WebAuthn ones", len(all))
		}
	})
}

// TestConcurrentFirstChanges: a user's first record is created by one
// of several concurrent changes (CreateRecord); the others apply to it,
// so none is lost.
func TestConcurrentFirstChanges(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		const n = 8
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			m := e.m
			if i%2 == 1 {
				m = e.m2
			}
			wg.Go(func() {
				<-start
				_, errs[i] = m.AddWebAuthn(e.ctx, "new-user", fmt.Sprint("key ", i), []byte{byte(i)}, []byte(`{}`))
			})
		}
		close(start)
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if all, _ := e.m.WebAuthn(e.ctx, "new-user"); len(all) != n {
			t.Fatalf("%d concurrent first AddWebAuthn left %d factors, want %d", n, len(all), n)
		}
	})
}
