package keys

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/embedded"
)

// clock is a settable time source for Manager.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var (
	secret1 = []byte("0123456789abcdef0123456789abcdef")
	secret2 = []byte("fedcba9876543210fedcba9876543210")
)

func sealer(t *testing.T, secret []byte) *Sealer {
	t.Helper()
	s, err := NewSealer(secret)
	if err != nil {
		t.Fatalf("NewSealer: %v", err)
	}
	return s
}

func openStore(t *testing.T) store.Store {
	t.Helper()
	db, err := embedded.Open(filepath.Join(t.TempDir(), "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

const retention = 2 * time.Hour

func ensure(t *testing.T, m *Manager) string {
	t.Helper()
	what, err := m.Ensure(context.Background())
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	return what
}

func rotate(t *testing.T, m *Manager) string {
	t.Helper()
	kid, err := m.Rotate(context.Background())
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	return kid
}

func byState(recs []store.KeyRecord, st store.KeyState) []store.KeyRecord {
	var out []store.KeyRecord
	for _, r := range recs {
		if r.State == st {
			out = append(out, r)
		}
	}
	return out
}

// one returns the single record in state st, failing otherwise.
func one(t *testing.T, recs []store.KeyRecord, st store.KeyState) store.KeyRecord {
	t.Helper()
	got := byState(recs, st)
	if len(got) != 1 {
		t.Fatalf("%d %s records, want exactly 1: %+v", len(got), st, recs)
	}
	return got[0]
}

// published returns the kids in the set's JWKS document, as a client
// fetching the keys endpoint sees them.
func published(t *testing.T, set *Set) []string {
	t.Helper()
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(set.JWKS, &doc); err != nil {
		t.Fatalf("JWKS is not JSON: %v\n%s", err, set.JWKS)
	}
	var out []string
	for _, k := range doc.Keys {
		kid, _ := k["kid"].(string)
		out = append(out, kid)
	}
	slices.Sort(out)
	return out
}

func sorted(s ...string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// --- Sealer ---

func TestSealerRoundTrip(t *testing.T) {
	s := sealer(t, secret1)
	pt := []byte(`{"kty":"EC","d":"secret-part"}`)
	sealed, err := s.Seal("kid-1", pt)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("secret-part")) {
		t.Fatal("sealed blob contains the plaintext")
	}
	got, err := s.Open("kid-1", sealed)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if !bytes.Equal(got, pt) {
		t.Fatalf("Open = %q, want %q", got, pt)
	}
	// The same secret in another process (another Sealer) opens it too.
	if got, err := sealer(t, secret1).Open("kid-1", sealed); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("Open with a second Sealer of the same secret = %q, %v", got, err)
	}
}

func TestSealerWrongSecret(t *testing.T) {
	sealed, err := sealer(t, secret1).Seal("kid-1", []byte("private"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sealer(t, secret2).Open("kid-1", sealed); !errors.Is(err, ErrUnseal) {
		t.Fatalf("Open with another secret: err = %v, want ErrUnseal", err)
	}
}

func TestSealerKidBound(t *testing.T) {
	s := sealer(t, secret1)
	sealed, err := s.Seal("kid-1", []byte("private"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open("kid-2", sealed); !errors.Is(err, ErrUnseal) {
		t.Fatalf("Open of a blob moved to another kid: err = %v, want ErrUnseal", err)
	}
}

func TestSealerTampered(t *testing.T) {
	s := sealer(t, secret1)
	sealed, err := s.Seal("kid-1", []byte("private key material"))
	if err != nil {
		t.Fatal(err)
	}
	// Compact JWE: header.key.iv.ciphertext.tag. Flip one character of
	// the ciphertext part.
	parts := bytes.Split(sealed, []byte("."))
	if len(parts) != 5 {
		t.Fatalf("sealed blob is not a compact JWE: %q", sealed)
	}
	ct := parts[3]
	if ct[0] == 'A' {
		ct[0] = 'B'
	} else {
		ct[0] = 'A'
	}
	if _, err := s.Open("kid-1", bytes.Join(parts, []byte("."))); !errors.Is(err, ErrUnseal) {
		t.Fatalf("Open of a tampered blob: err = %v, want ErrUnseal", err)
	}
	if _, err := s.Open("kid-1", []byte("garbage")); !errors.Is(err, ErrUnseal) {
		t.Fatalf("Open of garbage: err = %v, want ErrUnseal", err)
	}
}

func TestSealerShortSecret(t *testing.T) {
	for _, n := range []int{0, 1, MinSecretLen - 1} {
		if _, err := NewSealer(bytes.Repeat([]byte("x"), n)); err == nil {
			t.Errorf("NewSealer with a %d-byte secret succeeded, want an error", n)
		}
	}
	if _, err := NewSealer(bytes.Repeat([]byte("x"), MinSecretLen)); err != nil {
		t.Errorf("NewSealer with a %d-byte secret: %v", MinSecretLen, err)
	}
}

func TestParseAlg(t *testing.T) {
	for in, want := range map[string]jwa.SignatureAlgorithm{"": jwa.RS256, "RS256": jwa.RS256, "ES256": jwa.ES256, "EdDSA": jwa.EdDSA} {
		got, err := ParseAlg(in)
		if err != nil || got != want {
			t.Errorf("ParseAlg(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"HS256", "none", "rs256", "RS512", "PS256"} {
		if _, err := ParseAlg(in); err == nil {
			t.Errorf("ParseAlg(%q) succeeded, want an error", in)
		}
	}
}

// --- Manager ---

func TestEnsureCreatesThenNoop(t *testing.T) {
	st, clk := openStore(t), newClock()
	m := NewManager("default", jwa.ES256, st, sealer(t, secret1), retention, clk.Now)
	if m.Current() != nil {
		t.Fatal("Current before Ensure is not nil")
	}
	if what := ensure(t, m); what != "created" {
		t.Fatalf("first Ensure reported %q, want created", what)
	}
	set := m.Current()
	if set == nil || set.Active == nil {
		t.Fatal("no active key after Ensure")
	}
	recs, err := st.Keys(context.Background(), "default")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("first start stored %d keys, want ACTIVE and NEXT: %+v", len(recs), recs)
	}
	act, next := one(t, recs, store.KeyActive), one(t, recs, store.KeyNext)
	if act.KID == next.KID || act.KID == "" {
		t.Fatalf("ACTIVE %q and NEXT %q kids", act.KID, next.KID)
	}
	if act.Alg != "ES256" || next.Alg != "ES256" {
		t.Errorf("algs = %s/%s, want ES256", act.Alg, next.Alg)
	}
	if set.Active.KeyID() != act.KID || set.ActiveAlg != jwa.ES256 {
		t.Errorf("Current().Active = %s/%s, want %s/ES256", set.Active.KeyID(), set.ActiveAlg, act.KID)
	}
	if !act.Activated.Equal(clk.Now()) {
		t.Errorf("Activated = %v, want the clock's %v", act.Activated, clk.Now())
	}

	// Second start (another process, same store): nothing changes.
	clk.Advance(time.Minute)
	m2 := NewManager("default", jwa.ES256, st, sealer(t, secret1), retention, clk.Now)
	if what := ensure(t, m2); what != "" {
		t.Fatalf("second Ensure reported %q, want nothing", what)
	}
	recs2, _ := st.Keys(context.Background(), "default")
	if len(recs2) != 2 || one(t, recs2, store.KeyActive).KID != act.KID || one(t, recs2, store.KeyNext).KID != next.KID {
		t.Fatalf("second Ensure changed keys: %+v, was %+v", recs2, recs)
	}
	if m2.Current().Active.KeyID() != act.KID {
		t.Fatalf("second manager's active kid %s, want %s", m2.Current().Active.KeyID(), act.KID)
	}
	if got, want := published(t, m2.Current()), sorted(act.KID, next.KID); !slices.Equal(got, want) {
		t.Fatalf("JWKS kids = %v, want %v", got, want)
	}
}

func TestEnsureServersIndependent(t *testing.T) {
	st, clk := openStore(t), newClock()
	a := NewManager("a", jwa.ES256, st, sealer(t, secret1), retention, clk.Now)
	b := NewManager("b", jwa.ES256, st, sealer(t, secret1), retention, clk.Now)
	ensure(t, a)
	ensure(t, b)
	ka, kb := published(t, a.Current()), published(t, b.Current())
	for _, k := range ka {
		if slices.Contains(kb, k) {
			t.Fatalf("servers a and b share key %s", k)
		}
	}
	rotate(t, a)
	if got := published(t, b.Current()); !slices.Equal(got, kb) {
		t.Fatalf("rotating a changed b's keys: %v -> %v", kb, got)
	}
}

func TestConcurrentEnsureCreatesOnePair(t *testing.T) {
	st, clk := openStore(t), newClock()
	const n = 4
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			m := NewManager("default", jwa.ES256, st, sealer(t, secret1), retention, clk.Now)
			_, err := m.Ensure(context.Background())
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	recs, _ := st.Keys(context.Background(), "default")
	if len(recs) != 2 {
		t.Fatalf("%d managers starting together left %d keys, want one ACTIVE and one NEXT: %+v", n, len(recs), recs)
	}
	one(t, recs, store.KeyActive)
	one(t, recs, store.KeyNext)
}

var privateParams = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

func TestJWKSHasOnlyPublicKeys(t *testing.T) {
	for _, alg := range Supported {
		t.Run(string(alg), func(t *testing.T) {
			st, clk := openStore(t), newClock()
			m := NewManager("default", alg, st, sealer(t, secret1), retention, clk.Now)
			ensure(t, m)
			rotate(t, m) // also an EXPIRED key in the set
			set := m.Current()
			var doc struct {
				Keys []map[string]any `json:"keys"`
			}
			if err := json.Unmarshal(set.JWKS, &doc); err != nil {
				t.Fatal(err)
			}
			if len(doc.Keys) != 3 {
				t.Fatalf("JWKS has %d keys, want ACTIVE, NEXT and EXPIRED: %s", len(doc.Keys), set.JWKS)
			}
			for _, k := range doc.Keys {
				for _, p := range privateParams {
					if _, ok := k[p]; ok {
						t.Fatalf("JWKS key %v publishes private parameter %q", k["kid"], p)
					}
				}
				if k["kid"] == "" || k["kid"] == nil {
					t.Errorf("JWKS key without kid: %v", k)
				}
				if k["alg"] != string(alg) {
					t.Errorf("JWKS key %v alg = %v, want %s", k["kid"], k["alg"], alg)
				}
				if k["use"] != "sig" {
					t.Errorf("JWKS key %v use = %v, want sig", k["kid"], k["use"])
				}
			}
			// The parsed public set must not hold private keys either.
			for i := range set.Public.Len() {
				k, _ := set.Public.Key(i)
				switch k.(type) {
				case jwk.RSAPrivateKey, jwk.ECDSAPrivateKey, jwk.OKPPrivateKey:
					t.Fatalf("Public set holds a private key %s", k.KeyID())
				}
			}
			// Records handed to the admin API carry no key material.
			for _, r := range set.Records {
				if r.Sealed != nil {
					t.Errorf("Set.Records[%s].Sealed is not cleared", r.KID)
				}
			}
		})
	}
}

func TestStoreNeverHoldsPrivateKeyInClear(t *testing.T) {
	for _, alg := range Supported {
		t.Run(string(alg), func(t *testing.T) {
			st, clk := openStore(t), newClock()
			s := sealer(t, secret1)
			m := NewManager("default", alg, st, s, retention, clk.Now)
			ensure(t, m)
			recs, err := st.Keys(context.Background(), "default")
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				pt, err := s.Open(r.KID, r.Sealed)
				if err != nil {
					t.Fatalf("sealed key %s does not open: %v", r.KID, err)
				}
				var priv map[string]any
				if err := json.Unmarshal(pt, &priv); err != nil {
					t.Fatal(err)
				}
				d, _ := priv["d"].(string)
				if len(d) < 16 {
					t.Fatalf("sealed plaintext of %s has no private \"d\": %s", r.KID, pt)
				}
				if bytes.Contains(r.Sealed, []byte(d)) {
					t.Fatalf("stored record %s contains the private key parameter d in clear", r.KID)
				}
				if bytes.Contains(r.Sealed, []byte(`"d"`)) {
					t.Fatalf("stored record %s contains a JSON \"d\" member in clear", r.KID)
				}
			}
		})
	}
}

func TestRotate(t *testing.T) {
	st, clk := openStore(t), newClock()
	m := NewManager("default", jwa.ES256, st, sealer(t, secret1), retention, clk.Now)
	ensure(t, m)
	before := m.Current()
	oldActive := before.Active.KeyID()
	recs, _ := st.Keys(context.Background(), "default")
	oldNext := one(t, recs, store.KeyNext).KID

	// A token signed before the rotation.
	oldToken, err := jws.Sign([]byte(`{"sub":"x"}`), jws.WithKey(before.ActiveAlg, before.Active))
	if err != nil {
		t.Fatal(err)
	}

	clk.Advance(10 * time.Minute)
	rotatedAt := clk.Now()
	kid := rotate(t, m)
	if kid != oldNext {
		t.Fatalf("Rotate made %s active, want the previous NEXT %s (it was published ahead)", kid, oldNext)
	}
	set := m.Current()
	if set.Active.KeyID() != oldNext {
		t.Fatalf("Current().Active = %s, want %s", set.Active.KeyID(), oldNext)
	}
	recs, _ = st.Keys(context.Background(), "default")
	exp := one(t, recs, store.KeyExpired)
	if exp.KID != oldActive {
		t.Fatalf("EXPIRED key = %s, want the old active %s", exp.KID, oldActive)
	}
	if !exp.Expired.Equal(rotatedAt) || !exp.RetireAt.Equal(rotatedAt.Add(retention)) {
		t.Errorf("EXPIRED times: expired %v retire %v; want %v and %v", exp.Expired, exp.RetireAt, rotatedAt, rotatedAt.Add(retention))
	}
	act := one(t, recs, store.KeyActive)
	if !act.Activated.Equal(rotatedAt) {
		t.Errorf("new ACTIVE Activated = %v, want %v", act.Activated, rotatedAt)
	}
	newNext := one(t, recs, store.KeyNext).KID
	if newNext == oldActive || newNext == oldNext {
		t.Fatalf("NEXT after rotation is %s, want a fresh key", newNext)
	}
	if got, want := published(t, set), sorted(oldActive, oldNext, newNext); !slices.Equal(got, want) {
		t.Fatalf("JWKS after rotation = %v, want %v", got, want)
	}
	// Tokens signed by the retired key still verify against the set.
	if _, err := jws.Verify(oldToken, jws.WithKeySet(set.Public)); err != nil {
		t.Fatalf("token signed before rotation no longer verifies: %v", err)
	}

	// Just before the retention ends the old key is still published.
	clk.Advance(retention - time.Second)
	if err := m.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := published(t, m.Current()); !slices.Contains(got, oldActive) {
		t.Fatalf("EXPIRED key left the JWKS before its retention ended: %v", got)
	}
	// After it, Load alone (no rotation) drops it.
	clk.Advance(time.Second)
	if err := m.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := published(t, m.Current()), sorted(oldNext, newNext); !slices.Equal(got, want) {
		t.Fatalf("JWKS after retention = %v, want %v", got, want)
	}
	if _, err := jws.Verify(oldToken, jws.WithKeySet(m.Current().Public)); err == nil {
		t.Fatal("token of a retired key still verifies")
	}
	// And the next rotation removes it from the store.
	rotate(t, m)
	recs, _ = st.Keys(context.Background(), "default")
	for _, r := range recs {
		if r.KID == oldActive {
			t.Fatalf("retired key %s still stored after the next rotation", oldActive)
		}
	}
	if len(recs) != 3 {
		t.Fatalf("after second rotation %d records, want ACTIVE, NEXT, EXPIRED: %+v", len(recs), recs)
	}
}

func TestRotateIfDue(t *testing.T) {
	st, clk := openStore(t), newClock()
	m := NewManager("default", jwa.ES256, st, sealer(t, secret1), retention, clk.Now)
	ensure(t, m)
	first := m.Current().Active.KeyID()
	const interval = 24 * time.Hour

	clk.Advance(interval - time.Minute)
	rotated, err := m.RotateIfDue(context.Background(), interval)
	if err != nil {
		t.Fatal(err)
	}
	if rotated || m.Current().Active.KeyID() != first {
		t.Fatalf("RotateIfDue before the interval rotated (%v, active %s)", rotated, m.Current().Active.KeyID())
	}

	clk.Advance(time.Minute)
	rotated, err = m.RotateIfDue(context.Background(), interval)
	if err != nil {
		t.Fatal(err)
	}
	if !rotated || m.Current().Active.KeyID() == first {
		t.Fatalf("RotateIfDue at the interval did not rotate (%v, active %s)", rotated, m.Current().Active.KeyID())
	}
	second := m.Current().Active.KeyID()

	// A second process sharing the store, same moment: already done.
	m2 := NewManager("default", jwa.ES256, st, sealer(t, secret1), retention, clk.Now)
	rotated, err = m2.RotateIfDue(context.Background(), interval)
	if err != nil {
		t.Fatal(err)
	}
	if rotated || m2.Current().Active.KeyID() != second {
		t.Fatalf("second process rotated again (%v, active %s, want %s)", rotated, m2.Current().Active.KeyID(), second)
	}
}

func TestRotateIfDueConcurrentRotatesOnce(t *testing.T) {
	st, clk := openStore(t), newClock()
	ensure(t, NewManager("default", jwa.ES256, st, sealer(t, secret1), retention, clk.Now))
	clk.Advance(25 * time.Hour)
	const n = 4
	var wg sync.WaitGroup
	var mu sync.Mutex
	count := 0
	for range n {
		wg.Go(func() {
			m := NewManager("default", jwa.ES256, st, sealer(t, secret1), retention, clk.Now)
			rotated, err := m.RotateIfDue(context.Background(), 24*time.Hour)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if rotated {
				count++
			}
		})
	}
	wg.Wait()
	if count != 1 {
		t.Fatalf("%d processes due together rotated %d times, want 1", n, count)
	}
	recs, _ := st.Keys(context.Background(), "default")
	if len(byState(recs, store.KeyExpired)) != 1 {
		t.Fatalf("records after one rotation: %+v", recs)
	}
}

// TestAlgorithmChange: a changed signing_alg publishes a key of the new
// algorithm as NEXT and the old ACTIVE key keeps signing, so no
// verifier ever sees a token of a key it could not have fetched; once
// the NEXT key has been published for Publication, maintenance
// (RotateIfDue, whatever its schedule) promotes it, and the old key
// stays published as EXPIRED for the retention.
func TestAlgorithmChange(t *testing.T) {
	st, clk := openStore(t), newClock()
	rs := NewManager("default", jwa.RS256, st, sealer(t, secret1), retention, clk.Now)
	ensure(t, rs)
	oldActive := rs.Current().Active.KeyID()
	oldToken, err := jws.Sign([]byte(`{}`), jws.WithKey(jwa.RS256, rs.Current().Active))
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := st.Keys(context.Background(), "default")
	oldNext := one(t, recs, store.KeyNext).KID

	clk.Advance(time.Hour)
	changedAt := clk.Now()
	es := NewManager("default", jwa.ES256, st, sealer(t, secret1), retention, clk.Now)
	if what := ensure(t, es); what != Published {
		t.Fatalf("Ensure after an algorithm change reported %q, want %q", what, Published)
	}
	set := es.Current()
	if set.ActiveAlg != jwa.RS256 || set.Active.KeyID() != oldActive {
		t.Fatalf("after the change %s (%s) signs; want the old RS256 key %s until the new one is published", set.Active.KeyID(), set.ActiveAlg, oldActive)
	}
	recs, _ = st.Keys(context.Background(), "default")
	next := one(t, recs, store.KeyNext)
	if next.Alg != "ES256" || next.KID == oldNext || !next.Created.Equal(changedAt) {
		t.Fatalf("NEXT after the change: %s %s created %v; want a fresh ES256 key created %v", next.KID, next.Alg, next.Created, changedAt)
	}
	if len(recs) != 2 {
		t.Fatalf("records after the change: %+v; want the RS256 ACTIVE and the ES256 NEXT (the RS256 NEXT never signed)", recs)
	}
	if got, want := published(t, set), sorted(oldActive, next.KID); !slices.Equal(got, want) {
		t.Fatalf("JWKS after the change = %v, want %v", got, want)
	}
	// A restart in the meantime changes nothing.
	if what := ensure(t, NewManager("default", jwa.ES256, st, sealer(t, secret1), retention, clk.Now)); what != "" {
		t.Fatalf("Ensure while the new key is being published reported %q", what)
	}

	// Maintenance leaves it alone until the publication period is over,
	// although the rotation schedule (24h here) would allow it...
	const interval = 24 * time.Hour
	clk.Advance(Publication - time.Second)
	if rotated, err := es.RotateIfDue(context.Background(), interval); err != nil || rotated {
		t.Fatalf("RotateIfDue %v before the publication period: rotated %v, %v", Publication-time.Second, rotated, err)
	}
	if es.Current().ActiveAlg != jwa.RS256 {
		t.Fatalf("active alg %s before the publication period ended", es.Current().ActiveAlg)
	}
	// ...and promotes the published key when it is, before the schedule.
	clk.Advance(time.Second)
	rotated, err := es.RotateIfDue(context.Background(), interval)
	if err != nil || !rotated {
		t.Fatalf("RotateIfDue after the publication period: rotated %v, %v", rotated, err)
	}
	set = es.Current()
	if set.ActiveAlg != jwa.ES256 || set.Active.KeyID() != next.KID {
		t.Fatalf("active after the publication period: %s (%s), want the published ES256 key %s", set.Active.KeyID(), set.ActiveAlg, next.KID)
	}
	recs, _ = st.Keys(context.Background(), "default")
	if n := one(t, recs, store.KeyNext); n.Alg != "ES256" {
		t.Errorf("NEXT record alg %s, want ES256", n.Alg)
	}
	exp := one(t, recs, store.KeyExpired)
	if exp.KID != oldActive || exp.Alg != "RS256" {
		t.Fatalf("EXPIRED = %s/%s, want the old RS256 active %s", exp.KID, exp.Alg, oldActive)
	}
	if _, err := jws.Verify(oldToken, jws.WithKeySet(set.Public)); err != nil {
		t.Fatalf("RS256 token no longer verifies after switching to ES256: %v", err)
	}
	// A restart with the new algorithm keeps things as they are, and
	// the schedule now counts from the promotion.
	if what := ensure(t, NewManager("default", jwa.ES256, st, sealer(t, secret1), retention, clk.Now)); what != "" {
		t.Fatalf("Ensure after settling reported %q", what)
	}
	if rotated, err := es.RotateIfDue(context.Background(), interval); err != nil || rotated {
		t.Fatalf("RotateIfDue right after the promotion: rotated %v, %v", rotated, err)
	}
}

// TestAlgorithmChangeAtStartAfterPublication: a node that restarts with
// the new algorithm after the NEXT key has been published long enough
// promotes it at start.
func TestAlgorithmChangeAtStartAfterPublication(t *testing.T) {
	st, clk := openStore(t), newClock()
	ensure(t, NewManager("default", jwa.RS256, st, sealer(t, secret1), retention, clk.Now))
	if what := ensure(t, NewManager("default", jwa.ES256, st, sealer(t, secret1), retention, clk.Now)); what != Published {
		t.Fatalf("first start with ES256 reported %q", what)
	}
	recs, _ := st.Keys(context.Background(), "default")
	next := one(t, recs, store.KeyNext)
	clk.Advance(Publication)
	m := NewManager("default", jwa.ES256, st, sealer(t, secret1), retention, clk.Now)
	if what := ensure(t, m); what != Rotated {
		t.Fatalf("start after the publication period reported %q, want %q", what, Rotated)
	}
	if m.Current().Active.KeyID() != next.KID || m.Current().ActiveAlg != jwa.ES256 {
		t.Fatalf("active %s (%s), want the published ES256 key %s", m.Current().Active.KeyID(), m.Current().ActiveAlg, next.KID)
	}
}

// TestScheduledRotationWaitsForPublication: a rotation falling due
// while a NEXT key of a new algorithm is younger than Publication does
// not activate it early.
func TestScheduledRotationWaitsForPublication(t *testing.T) {
	st, clk := openStore(t), newClock()
	ensure(t, NewManager("default", jwa.RS256, st, sealer(t, secret1), retention, clk.Now))
	clk.Advance(48 * time.Hour)
	es := NewManager("default", jwa.ES256, st, sealer(t, secret1), retention, clk.Now)
	ensure(t, es)
	if rotated, err := es.RotateIfDue(context.Background(), 24*time.Hour); err != nil || rotated {
		t.Fatalf("scheduled rotation with a just-published NEXT: rotated %v, %v; want it to wait", rotated, err)
	}
	if es.Current().ActiveAlg != jwa.RS256 {
		t.Fatalf("active alg %s", es.Current().ActiveAlg)
	}
}

func TestLoadWithWrongSecretFails(t *testing.T) {
	st, clk := openStore(t), newClock()
	ensure(t, NewManager("default", jwa.ES256, st, sealer(t, secret1), retention, clk.Now))
	m := NewManager("default", jwa.ES256, st, sealer(t, secret2), retention, clk.Now)
	if _, err := m.Ensure(context.Background()); !errors.Is(err, ErrUnseal) {
		t.Fatalf("Ensure with another key encryption secret: err = %v, want ErrUnseal", err)
	}
	if m.Current() != nil {
		t.Fatal("a key set was published although the keys do not open")
	}
	// The store is left alone: the right secret still works.
	if what := ensure(t, NewManager("default", jwa.ES256, st, sealer(t, secret1), retention, clk.Now)); what != "" {
		t.Fatalf("Ensure with the right secret after a failed one reported %q", what)
	}
}

func TestLoadRejectsSwappedCiphertext(t *testing.T) {
	st, clk := openStore(t), newClock()
	m := NewManager("default", jwa.ES256, st, sealer(t, secret1), retention, clk.Now)
	ensure(t, m)
	// Someone with write access to the store swaps the sealed keys of
	// ACTIVE and NEXT.
	err := st.UpdateKeys(context.Background(), "default", func(recs []store.KeyRecord) ([]store.KeyRecord, error) {
		recs[0].Sealed, recs[1].Sealed = recs[1].Sealed, recs[0].Sealed
		return recs, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Load(context.Background()); !errors.Is(err, ErrUnseal) {
		t.Fatalf("Load of swapped ciphertexts: err = %v, want ErrUnseal", err)
	}
}

func TestEachAlgorithmSignsAndVerifies(t *testing.T) {
	for _, alg := range Supported {
		t.Run(string(alg), func(t *testing.T) {
			st, clk := openStore(t), newClock()
			m := NewManager("default", alg, st, sealer(t, secret1), retention, clk.Now)
			ensure(t, m)
			set := m.Current()
			if set.ActiveAlg != alg {
				t.Fatalf("ActiveAlg = %s, want %s", set.ActiveAlg, alg)
			}
			payload := []byte(`{"sub":"svc","scp":["read"]}`)

			// As the issuer signs: the raw crypto.Signer, kid in the header.
			if _, ok := set.ActiveRaw.(crypto.Signer); !ok {
				t.Fatalf("ActiveRaw is %T, not a crypto.Signer", set.ActiveRaw)
			}
			h := jws.NewHeaders()
			_ = h.Set(jws.KeyIDKey, set.Active.KeyID())
			tok, err := jws.Sign(payload, jws.WithKey(set.ActiveAlg, set.ActiveRaw, jws.WithProtectedHeaders(h)))
			if err != nil {
				t.Fatalf("Sign with ActiveRaw: %v", err)
			}
			got, err := jws.Verify(tok, jws.WithKeySet(set.Public))
			if err != nil {
				t.Fatalf("Verify against the public set: %v", err)
			}
			if !bytes.Equal(got, payload) {
				t.Fatalf("verified payload %q", got)
			}
			// The JWKS document as a relying party fetches it.
			pub, err := jwk.Parse(set.JWKS)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := jws.Verify(tok, jws.WithKeySet(pub)); err != nil {
				t.Fatalf("Verify against the parsed JWKS: %v", err)
			}
			// The jwk form of the active key signs too.
			tok2, err := jws.Sign(payload, jws.WithKey(alg, set.Active))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := jws.Verify(tok2, jws.WithKeySet(pub)); err != nil {
				t.Fatalf("Verify jwk-signed token: %v", err)
			}

			// A different key of the same algorithm does not verify.
			other := NewManager("other", alg, openStore(t), sealer(t, secret1), retention, clk.Now)
			ensure(t, other)
			h2 := jws.NewHeaders()
			_ = h2.Set(jws.KeyIDKey, set.Active.KeyID()) // claims our kid
			forged, err := jws.Sign(payload, jws.WithKey(alg, other.Current().ActiveRaw, jws.WithProtectedHeaders(h2)))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := jws.Verify(forged, jws.WithKeySet(set.Public)); err == nil {
				t.Fatal("a token signed by a foreign key verified")
			}
		})
	}
}
