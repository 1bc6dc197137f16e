package keys

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// snapshot is the stored key records of as, byte for byte.
func snapshot(t *testing.T, st store.Store, as string) []byte {
	t.Helper()
	recs, err := st.Keys(context.Background(), as)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signs checks m's loaded active key signs a token its JWKS verifies.
func signs(t *testing.T, m *Manager) {
	t.Helper()
	set := m.Current()
	tok, err := jws.Sign([]byte(`{"sub":"svc"}`), jws.WithKey(set.ActiveAlg, set.Active))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jws.Verify(tok, jws.WithKeySet(set.Public)); err != nil {
		t.Fatalf("token signed by the active key does not verify: %v", err)
	}
}

// reseal replaces the sealed key of the record in state st with the
// same key sealed under secret, as a node with another secret would
// have written it.
func reseal(t *testing.T, stor store.Store, st store.KeyState, secret []byte) {
	t.Helper()
	right, other := sealer(t, secret1), sealer(t, secret)
	err := stor.UpdateKeys(context.Background(), "default", func(recs []store.KeyRecord) ([]store.KeyRecord, error) {
		for i := range recs {
			if recs[i].State != st {
				continue
			}
			pt, err := right.Open(recs[i].KID, recs[i].Sealed)
			if err != nil {
				return nil, err
			}
			if recs[i].Sealed, err = other.Seal(recs[i].KID, pt); err != nil {
				return nil, err
			}
		}
		return recs, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestWrongSecretAndAlgChangeWritesNothing replays the finding: a node
// started with a wrong key_encryption_secret and a changed signing_alg
// used to rotate (new keys sealed with the wrong secret, the old active
// demoted) and only then fail; afterwards the right secret could not
// open the new ACTIVE key and the issuer never started again. Now it is
// refused before anything is written.
func TestWrongSecretAndAlgChangeWritesNothing(t *testing.T) {
	st, clk := openStore(t), newClock()
	ensure(t, NewManager("default", jwa.ES256, st, sealer(t, secret1), retention, clk.Now))
	before := snapshot(t, st, "default")

	clk.Advance(time.Hour)
	wrong := NewManager("default", jwa.RS256, st, sealer(t, secret2), retention, clk.Now)
	_, err := wrong.Ensure(context.Background())
	if !errors.Is(err, ErrUnseal) {
		t.Fatalf("Ensure with a wrong secret and another algorithm: err = %v, want ErrUnseal", err)
	}
	if !strings.Contains(err.Error(), `"default"`) {
		t.Errorf("error %q does not name the authorization server", err)
	}
	if wrong.Current() != nil {
		t.Fatal("a key set was published although the stored keys do not open")
	}
	if got := snapshot(t, st, "default"); !bytes.Equal(got, before) {
		t.Fatalf("the refused start changed the store:\nbefore %s\nafter  %s", before, got)
	}

	// The right secret still starts, with the old and the new algorithm.
	old := NewManager("default", jwa.ES256, st, sealer(t, secret1), retention, clk.Now)
	if what := ensure(t, old); what != "" {
		t.Fatalf("restart with the right secret reported %q, want no change", what)
	}
	signs(t, old)
	moved := NewManager("default", jwa.RS256, st, sealer(t, secret1), retention, clk.Now)
	if what := ensure(t, moved); what != Published {
		t.Fatalf("the right secret with the new algorithm reported %q, want %q", what, Published)
	}
	clk.Advance(Publication)
	if rotated, err := moved.RotateIfDue(context.Background(), 24*time.Hour); err != nil || !rotated {
		t.Fatalf("promoting the published RS256 key: rotated %v, %v", rotated, err)
	}
	if moved.Current().ActiveAlg != jwa.RS256 {
		t.Fatalf("active alg %s after the change, want RS256", moved.Current().ActiveAlg)
	}
	signs(t, moved)
}

// TestRotationWithWrongSecretWritesNothing: the admin rotate and the
// scheduled rotation of a manager whose secret does not open the
// stored keys fail without writing keys nobody could open.
func TestRotationWithWrongSecretWritesNothing(t *testing.T) {
	for name, op := range map[string]func(*Manager) error{
		"admin rotate": func(m *Manager) error { _, err := m.Rotate(context.Background()); return err },
		"scheduled":    func(m *Manager) error { _, err := m.RotateIfDue(context.Background(), time.Hour); return err },
	} {
		t.Run(name, func(t *testing.T) {
			st, clk := openStore(t), newClock()
			right := NewManager("default", jwa.ES256, st, sealer(t, secret1), retention, clk.Now)
			ensure(t, right)
			before := snapshot(t, st, "default")
			clk.Advance(2 * time.Hour) // due for the scheduled rotation
			if err := op(NewManager("default", jwa.ES256, st, sealer(t, secret2), retention, clk.Now)); !errors.Is(err, ErrUnseal) {
				t.Fatalf("err = %v, want ErrUnseal", err)
			}
			if got := snapshot(t, st, "default"); !bytes.Equal(got, before) {
				t.Fatalf("the refused rotation changed the store:\nbefore %s\nafter  %s", before, got)
			}
			if err := op(right); err != nil {
				t.Fatalf("the same rotation with the right secret: %v", err)
			}
			recs, _ := st.Keys(context.Background(), "default")
			if len(byState(recs, store.KeyExpired)) != 1 {
				t.Fatalf("records after the rotation: %+v", recs)
			}
			signs(t, right)
		})
	}
}

// TestPartlyOpeningStoreIsNotWritten: a store where some published keys
// open with the secret and others do not (one was written by a node
// with another secret) is not rotated by either node, so nothing more
// is mixed into it.
func TestPartlyOpeningStoreIsNotWritten(t *testing.T) {
	st, clk := openStore(t), newClock()
	ensure(t, NewManager("default", jwa.ES256, st, sealer(t, secret1), retention, clk.Now))
	reseal(t, st, store.KeyNext, secret2)
	before := snapshot(t, st, "default")
	for _, secret := range [][]byte{secret1, secret2} {
		for _, alg := range []jwa.SignatureAlgorithm{jwa.ES256, jwa.RS256} {
			m := NewManager("default", alg, st, sealer(t, secret), retention, clk.Now)
			if _, err := m.Rotate(context.Background()); !errors.Is(err, ErrUnseal) {
				t.Errorf("Rotate (%s): err = %v, want ErrUnseal", alg, err)
			}
			if _, err := m.Ensure(context.Background()); !errors.Is(err, ErrUnseal) {
				t.Errorf("Ensure (%s): err = %v, want ErrUnseal", alg, err)
			}
		}
	}
	if got := snapshot(t, st, "default"); !bytes.Equal(got, before) {
		t.Fatalf("a partly opening store was written:\nbefore %s\nafter  %s", before, got)
	}
}

// TestRetiredKeyDoesNotBlockRotation: a retired key is never read
// again (Load skips it, a rotation drops it), so one the secret cannot
// open does not stop the rotation that removes it.
func TestRetiredKeyDoesNotBlockRotation(t *testing.T) {
	st, clk := openStore(t), newClock()
	m := NewManager("default", jwa.ES256, st, sealer(t, secret1), retention, clk.Now)
	ensure(t, m)
	first := rotate(t, m)
	reseal(t, st, store.KeyExpired, secret2)
	if err := m.Load(context.Background()); !errors.Is(err, ErrUnseal) {
		t.Fatalf("Load with an unopenable published EXPIRED key: err = %v, want ErrUnseal", err)
	}
	if _, err := m.Rotate(context.Background()); !errors.Is(err, ErrUnseal) {
		t.Fatalf("Rotate with an unopenable published EXPIRED key: err = %v, want ErrUnseal", err)
	}
	clk.Advance(retention)
	rotate(t, m)
	recs, _ := st.Keys(context.Background(), "default")
	if exp := one(t, recs, store.KeyExpired); exp.KID != first {
		t.Fatalf("EXPIRED after the second rotation is %s, want the key that was active, %s", exp.KID, first)
	}
	signs(t, m)
}

// TestCheckSecret: before a node writes anything it proves its secret
// opens the published keys of every authorization server it serves; a
// server with no keys yet proves nothing and is not created.
func TestCheckSecret(t *testing.T) {
	st, clk := openStore(t), newClock()
	ensure(t, NewManager("default", jwa.ES256, st, sealer(t, secret1), retention, clk.Now))
	ctx := context.Background()
	if err := CheckSecret(ctx, st, sealer(t, secret1), clk.Now(), "fresh", "default"); err != nil {
		t.Fatalf("the secret that sealed the keys: %v", err)
	}
	err := CheckSecret(ctx, st, sealer(t, secret2), clk.Now(), "fresh", "default", "other")
	if !errors.Is(err, ErrUnseal) || !strings.Contains(err.Error(), `"default"`) {
		t.Fatalf("another secret: err = %v, want ErrUnseal naming \"default\"", err)
	}
	if recs, _ := st.Keys(ctx, "fresh"); len(recs) != 0 {
		t.Fatalf("CheckSecret wrote keys for a server without any: %+v", recs)
	}
	// One server opens, the next does not: refused.
	ensure(t, NewManager("b", jwa.ES256, st, sealer(t, secret2), retention, clk.Now))
	for _, s := range [][]byte{secret1, secret2} {
		if err := CheckSecret(ctx, st, sealer(t, s), clk.Now(), "default", "b"); !errors.Is(err, ErrUnseal) {
			t.Fatalf("servers sealed with two secrets: err = %v, want ErrUnseal", err)
		}
	}
}
