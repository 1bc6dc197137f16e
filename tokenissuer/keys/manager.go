package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// Set is an immutable snapshot of one authorization server's keys.
type Set struct {
	// Active signs new tokens.
	Active jwk.Key
	// ActiveRaw is Active as a crypto.Signer, converted once rather than
	// on every signature.
	ActiveRaw any
	// Signer signs with ActiveRaw (jwx's JWS signer for ActiveAlg);
	// SignKey is what it is given: ActiveRaw, wrapped for ECDSA so the
	// same key value (and Go's per-key precomputation) is reused.
	Signer  jws.Signer
	SignKey any
	// Header is the base64url protected header of access tokens signed
	// by Active: {"alg","kid","typ"}, encoded once (RFC 7515 section 7.1).
	Header string
	// IDHeader is the same for ID tokens, with typ "JWT".
	IDHeader string
	// ActiveAlg is Active's algorithm.
	ActiveAlg jwa.SignatureAlgorithm
	// Public holds every published key (ACTIVE, NEXT, unretired EXPIRED)
	// without private parts; tokens are verified against it.
	Public jwk.Set
	// JWKS is Public rendered once for the keys endpoint.
	JWKS []byte
	// Records are the store records behind this set (no key material in
	// the clear), for the admin API.
	Records []store.KeyRecord
}

// Manager owns one authorization server's keys. Its methods are safe
// for concurrent use; Current is lock-free for the signing hot path.
type Manager struct {
	as        string
	alg       jwa.SignatureAlgorithm
	store     store.Store
	sealer    *Sealer
	retention time.Duration
	now       func() time.Time

	cur atomic.Pointer[Set]
}

// NewManager returns a manager for authorization server as. retention is
// how long a key stays published after it stops signing; it must cover
// the longest access-token lifetime plus clock skew.
func NewManager(as string, alg jwa.SignatureAlgorithm, st store.Store, s *Sealer, retention time.Duration, now func() time.Time) *Manager {
	if now == nil {
		now = time.Now
	}
	return &Manager{as: as, alg: alg, store: st, sealer: s, retention: retention, now: now}
}

// Current returns the loaded key set, or nil before Load.
func (m *Manager) Current() *Set { return m.cur.Load() }

// Ensure makes sure an ACTIVE and a NEXT key of the configured algorithm
// exist, creating them on first start (or rotating when the configured
// algorithm changed), then loads the set. It reports what it did: "",
// "created" or "rotated".
func (m *Manager) Ensure(ctx context.Context) (string, error) {
	ok := func(recs []store.KeyRecord) bool {
		act, next := find(recs, store.KeyActive), find(recs, store.KeyNext)
		return act != nil && act.Alg == string(m.alg) && next != nil && next.Alg == string(m.alg)
	}
	recs, err := m.store.Keys(ctx, m.as)
	if err != nil {
		return "", err
	}
	if ok(recs) {
		return "", m.Load(ctx)
	}
	what := "rotated"
	if find(recs, store.KeyActive) == nil {
		what = "created"
	}
	changed, err := m.update(ctx, func(recs []store.KeyRecord) bool { return !ok(recs) })
	if err != nil {
		return "", err
	}
	if !changed {
		what = ""
	}
	return what, m.Load(ctx)
}

// Rotate retires the ACTIVE key (it stays published as EXPIRED for the
// retention period), promotes NEXT when it has the configured algorithm,
// and creates a new NEXT. It returns the new active kid.
func (m *Manager) Rotate(ctx context.Context) (string, error) {
	if _, err := m.update(ctx, nil); err != nil {
		return "", err
	}
	if err := m.Load(ctx); err != nil {
		return "", err
	}
	return m.Current().Active.KeyID(), nil
}

// RotateIfDue rotates when the ACTIVE key has signed for at least
// interval. The check runs again inside the store's atomic update so
// several processes sharing a store rotate once.
func (m *Manager) RotateIfDue(ctx context.Context, interval time.Duration) (bool, error) {
	due := func(recs []store.KeyRecord) bool {
		a := find(recs, store.KeyActive)
		return a != nil && !m.now().Before(a.Activated.Add(interval))
	}
	recs, err := m.store.Keys(ctx, m.as)
	if err != nil {
		return false, err
	}
	if !due(recs) {
		return false, m.Load(ctx)
	}
	changed, err := m.update(ctx, due)
	if err != nil {
		return false, err
	}
	return changed, m.Load(ctx)
}

// update rotates the stored records when cond (nil: always) holds for
// them inside the store's transaction. Keys are generated before it:
// generation is slow and must not run inside the transaction.
func (m *Manager) update(ctx context.Context, cond func([]store.KeyRecord) bool) (bool, error) {
	var fresh [2]store.KeyRecord
	for i := range fresh {
		r, err := m.newRecord()
		if err != nil {
			return false, err
		}
		fresh[i] = r
	}
	err := m.store.UpdateKeys(ctx, m.as, func(recs []store.KeyRecord) ([]store.KeyRecord, error) {
		if cond != nil && !cond(recs) {
			return nil, errNoChange
		}
		// Checked on the records being replaced, inside the transaction:
		// keys sealed with a secret that cannot open the stored ones
		// would leave a store no node can load.
		if err := opens(m.sealer, m.as, recs, m.now()); err != nil {
			return nil, err
		}
		return m.rotated(recs, fresh), nil
	})
	if errors.Is(err, errNoChange) {
		return false, nil
	}
	return err == nil, err
}

var errNoChange = errors.New("no change")

// CheckSecret proves s opens every published key of each listed
// authorization server, so a node started with the wrong secret is
// refused before it writes keys for any of them. A server without keys
// proves nothing and is left alone.
func CheckSecret(ctx context.Context, st store.Store, s *Sealer, now time.Time, as ...string) error {
	for _, id := range as {
		recs, err := st.Keys(ctx, id)
		if err != nil {
			return err
		}
		if err := opens(s, id, recs, now); err != nil {
			return err
		}
	}
	return nil
}

// opens checks s opens every record Load would publish. Retired keys
// are skipped: they are never read again and a rotation drops them.
func opens(s *Sealer, as string, recs []store.KeyRecord, now time.Time) error {
	for _, r := range recs {
		if retired(r, now) {
			continue
		}
		if _, err := s.Open(r.KID, r.Sealed); err != nil {
			return fmt.Errorf("authorization server %q key %s: %w", as, r.KID, err)
		}
	}
	return nil
}

// retired reports whether r is an EXPIRED key past its RetireAt.
func retired(r store.KeyRecord, now time.Time) bool {
	return r.State == store.KeyExpired && !r.RetireAt.After(now)
}

// rotated computes the records after one rotation. fresh[0] becomes the
// active key when NEXT is missing or of another algorithm; fresh[1] the
// new NEXT. Retired keys past their RetireAt are dropped.
func (m *Manager) rotated(recs []store.KeyRecord, fresh [2]store.KeyRecord) []store.KeyRecord {
	now := m.now()
	out := make([]store.KeyRecord, 0, len(recs)+2)
	var promote *store.KeyRecord
	for _, r := range recs {
		switch r.State {
		case store.KeyActive:
			r.State, r.Expired, r.RetireAt = store.KeyExpired, now, now.Add(m.retention)
		case store.KeyNext:
			if r.Alg == string(m.alg) {
				promote = &r
				continue
			}
			// A NEXT of an old algorithm never signed: drop it.
			continue
		case store.KeyExpired:
			if retired(r, now) {
				continue
			}
		}
		out = append(out, r)
	}
	act := fresh[0]
	if promote != nil {
		act = *promote
	}
	act.State, act.Activated = store.KeyActive, now
	next := fresh[1]
	next.State = store.KeyNext
	// Active first, then next, then expired: the JWKS order.
	return append([]store.KeyRecord{act, next}, out...)
}

func (m *Manager) newRecord() (store.KeyRecord, error) {
	k, err := generate(m.alg)
	if err != nil {
		return store.KeyRecord{}, err
	}
	b, err := json.Marshal(k)
	if err != nil {
		return store.KeyRecord{}, err
	}
	sealed, err := m.sealer.Seal(k.KeyID(), b)
	if err != nil {
		return store.KeyRecord{}, err
	}
	return store.KeyRecord{KID: k.KeyID(), Alg: string(m.alg), Created: m.now(), Sealed: sealed}, nil
}

// Load reads the records from the store and publishes a new snapshot.
// It also drops retired keys from what is published, so a key leaves
// the JWKS on time even when no rotation happens.
func (m *Manager) Load(ctx context.Context) error {
	recs, err := m.store.Keys(ctx, m.as)
	if err != nil {
		return err
	}
	now := m.now()
	set := &Set{Public: jwk.NewSet()}
	for _, r := range recs {
		if retired(r, now) {
			continue
		}
		pt, err := m.sealer.Open(r.KID, r.Sealed)
		if err != nil {
			return fmt.Errorf("authorization server %q key %s: %w", m.as, r.KID, err)
		}
		priv, err := jwk.ParseKey(pt)
		if err != nil {
			return fmt.Errorf("authorization server %q key %s: %w", m.as, r.KID, err)
		}
		pub, err := priv.PublicKey()
		if err != nil {
			return err
		}
		if err := set.Public.AddKey(pub); err != nil {
			return err
		}
		if r.State == store.KeyActive {
			set.Active, set.ActiveAlg = priv, jwa.SignatureAlgorithm(r.Alg)
			if err := priv.Raw(&set.ActiveRaw); err != nil {
				return err
			}
			if err := set.prepareSigning(r.KID); err != nil {
				return err
			}
		}
		r.Sealed = nil
		set.Records = append(set.Records, r)
	}
	if set.Active == nil {
		return fmt.Errorf("authorization server %q has no active signing key", m.as)
	}
	if set.JWKS, err = json.Marshal(set.Public); err != nil {
		return err
	}
	m.cur.Store(set)
	return nil
}

// TokenType is the JWT `typ` of access tokens (RFC 9068 section 2.1).
const TokenType = "at+jwt"

// signerOnly hides the concrete key type so jwx signs through the
// crypto.Signer interface with this very key, instead of copying an
// *ecdsa.PrivateKey on every call (which defeats Go's per-key cache).
type signerOnly struct{ crypto.Signer }

func (set *Set) prepareSigning(kid string) error {
	var err error
	if set.Signer, err = jws.NewSigner(set.ActiveAlg); err != nil {
		return err
	}
	set.SignKey = set.ActiveRaw
	switch k := set.ActiveRaw.(type) {
	case *rsa.PrivateKey:
		k.Precompute()
	case *ecdsa.PrivateKey:
		set.SignKey = signerOnly{k}
	}
	header := func(typ string) (string, error) {
		h, err := json.Marshal(struct {
			Alg string `json:"alg"`
			Kid string `json:"kid"`
			Typ string `json:"typ"`
		}{string(set.ActiveAlg), kid, typ})
		return base64.RawURLEncoding.EncodeToString(h), err
	}
	if set.Header, err = header(TokenType); err != nil {
		return err
	}
	set.IDHeader, err = header("JWT")
	return err
}

func find(recs []store.KeyRecord, st store.KeyState) *store.KeyRecord {
	for i := range recs {
		if recs[i].State == st {
			return &recs[i]
		}
	}
	return nil
}
