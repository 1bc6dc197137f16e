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

// Publication is how long a NEXT key of a newly configured signing
// algorithm is published before it signs: the keys endpoint lets
// caches keep its answer 5 minutes and require_token refreshes fetched
// keys every 15 minutes, so an hour lets every verifier that honours
// either see the key first. A scheduled rotation promotes a NEXT key
// published for a whole rotation interval (at least an hour) already.
const Publication = time.Hour

// What Ensure did.
const (
	// Created: the server had no keys; an ACTIVE and a NEXT were made.
	Created = "created"
	// Published: the configured algorithm differs from the NEXT key's
	// (or there was none), so a NEXT key of the configured algorithm is
	// now published; the ACTIVE key keeps signing until it has been
	// published for Publication.
	Published = "published"
	// Rotated: a NEXT key of the configured algorithm, published for
	// Publication, was promoted in place of an ACTIVE key of another.
	Rotated = "rotated"
)

// Ensure makes sure an ACTIVE key and a NEXT key of the configured
// algorithm exist, then loads the set. On first start it creates both.
// After a change of the configured algorithm it publishes a NEXT key of
// the new one and leaves the ACTIVE key signing, like a scheduled
// rotation; RotateIfDue (or a later Ensure) promotes it once it has
// been published for Publication. It reports what it did: "", Created,
// Published or Rotated.
func (m *Manager) Ensure(ctx context.Context) (string, error) {
	recs, err := m.store.Keys(ctx, m.as)
	if err != nil {
		return "", err
	}
	if m.plan(recs) == "" {
		return "", m.Load(ctx)
	}
	var did string
	changed, err := m.change(ctx, func(recs []store.KeyRecord, fresh [2]store.KeyRecord) ([]store.KeyRecord, error) {
		switch did = m.plan(recs); did {
		case Created, Rotated:
			return m.rotated(recs, fresh), nil
		case Published:
			return m.published(recs, fresh[1]), nil
		}
		return nil, errNoChange
	})
	if err != nil {
		return "", err
	}
	if !changed {
		did = ""
	}
	return did, m.Load(ctx)
}

// plan says what Ensure must do with recs: "" (nothing), Created,
// Published or Rotated.
func (m *Manager) plan(recs []store.KeyRecord) string {
	act, next := find(recs, store.KeyActive), find(recs, store.KeyNext)
	switch {
	case act == nil:
		return Created
	case next == nil || next.Alg != string(m.alg):
		return Published
	case act.Alg != string(m.alg) && m.publishedLongEnough(next):
		return Rotated
	}
	return ""
}

// publishedLongEnough reports whether NEXT key r has been published
// for Publication (it is published from its creation on).
func (m *Manager) publishedLongEnough(r *store.KeyRecord) bool {
	return !m.now().Before(r.Created.Add(Publication))
}

// Rotate retires the ACTIVE key (it stays published as EXPIRED for the
// retention period), promotes NEXT when it has the configured algorithm,
// and creates a new NEXT. It returns the new active kid. An operator's
// rotation (the admin API) is immediate whatever the NEXT key's age:
// remote gateways refetch an unknown kid within their min_refresh.
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
// interval, or when it is of another algorithm than the configured one
// and the NEXT key of the configured one has been published for
// Publication. A NEXT key of the configured algorithm published for
// less waits, whatever the schedule. The check runs again inside the
// store's atomic update so several processes sharing a store rotate
// once.
func (m *Manager) RotateIfDue(ctx context.Context, interval time.Duration) (bool, error) {
	due := func(recs []store.KeyRecord) bool {
		a, n := find(recs, store.KeyActive), find(recs, store.KeyNext)
		if a == nil {
			return false
		}
		scheduled := !m.now().Before(a.Activated.Add(interval))
		if n == nil || n.Alg != string(m.alg) {
			// Nothing of this algorithm to promote (another node's
			// config wrote this NEXT): the schedule alone decides.
			return scheduled
		}
		return (scheduled || a.Alg != string(m.alg)) && m.publishedLongEnough(n)
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
// them inside the store's transaction.
func (m *Manager) update(ctx context.Context, cond func([]store.KeyRecord) bool) (bool, error) {
	return m.change(ctx, func(recs []store.KeyRecord, fresh [2]store.KeyRecord) ([]store.KeyRecord, error) {
		if cond != nil && !cond(recs) {
			return nil, errNoChange
		}
		return m.rotated(recs, fresh), nil
	})
}

// change replaces the stored records with what step makes of them and
// two freshly generated ones, inside the store's transaction; step
// returns errNoChange to leave them. Keys are generated before it:
// generation is slow and must not run inside the transaction.
func (m *Manager) change(ctx context.Context, step func(recs []store.KeyRecord, fresh [2]store.KeyRecord) ([]store.KeyRecord, error)) (bool, error) {
	var fresh [2]store.KeyRecord
	for i := range fresh {
		r, err := m.newRecord()
		if err != nil {
			return false, err
		}
		fresh[i] = r
	}
	err := m.store.UpdateKeys(ctx, m.as, func(recs []store.KeyRecord) ([]store.KeyRecord, error) {
		out, err := step(recs, fresh)
		if err != nil {
			return nil, err
		}
		// Checked on the records being replaced, inside the transaction:
		// keys sealed with a secret that cannot open the stored ones
		// would leave a store no node can load.
		if err := opens(m.sealer, m.as, recs, m.now()); err != nil {
			return nil, err
		}
		return out, nil
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

// published computes the records with next, a fresh key of the
// configured algorithm, as the NEXT key in place of any other; the
// ACTIVE key keeps signing. A replaced NEXT never signed: it is dropped.
func (m *Manager) published(recs []store.KeyRecord, next store.KeyRecord) []store.KeyRecord {
	now := m.now()
	next.State = store.KeyNext
	out := make([]store.KeyRecord, 0, len(recs)+1)
	for _, r := range recs {
		switch {
		case r.State == store.KeyNext, retired(r, now):
			continue
		case r.State == store.KeyActive:
			// Active first, then next, then expired: the JWKS order.
			out = append([]store.KeyRecord{r, next}, out...)
			continue
		}
		out = append(out, r)
	}
	return out
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
