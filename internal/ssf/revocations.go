package ssf

import (
	"errors"
	"hash/maphash"
	"sync/atomic"
	"time"
)

// Revocations defaults.
const (
	DefaultMaxTokens   = 4 << 20
	DefaultMaxSubjects = 1 << 20
	// DefaultLeeway is how long past a token's exp (or a cut-off's reach)
	// an entry stays: at least the gateway's clock skew allowance.
	DefaultLeeway = 5 * time.Minute
)

// ErrRevocationsFull is returned when a revocation cannot be kept
// because MaxTokens or MaxSubjects entries are all still in force; the
// receiver should alert (and may fail closed).
var ErrRevocationsFull = errors.New("ssf: revocation set full")

// Revocations is a receiver's set of revocations in force: revoked jtis
// until their token's exp, and per user (sub or uid), per client and per
// user at one client a cut-off: their tokens issued at or before it are
// revoked. Keep one per
// transmitter and consult it for tokens of that transmitter's issuers.
// Safe for concurrent use; Revoked takes no lock and allocates nothing.
//
// Keys are kept as 64-bit hashes (hash/maphash, seeded per process), not
// as strings, which is what bounds the memory; a collision could only
// refuse a good token, with odds of about n/2^64 per check.
type Revocations struct {
	// MaxTokens and MaxSubjects bound the entries (each of sub, uid,
	// client id, sub at a client and uid at a client), Leeway is kept past expiry, MaxLifetime is the longest
	// token lifetime (longer exp are cut to it). Zero means the default;
	// set them before first use.
	MaxTokens   int
	MaxSubjects int
	Leeway      time.Duration
	MaxLifetime time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time

	seed     maphash.Seed
	pairSeed maphash.Seed // for the client half of a pair
	tokens   hashTable    // jti -> forget at, unix seconds
	bySub    hashTable    // sub -> cut-off, unix seconds
	byUID    hashTable
	byCID    hashTable
	subAtCID hashTable    // (sub, cid) -> cut-off
	uidAtCID hashTable    // (uid, cid) -> cut-off
	pruned   atomic.Int64 // last prune on write, unix seconds
}

// NewRevocations is an empty set.
func NewRevocations() *Revocations {
	return &Revocations{seed: maphash.MakeSeed(), pairSeed: maphash.MakeSeed()}
}

func (r *Revocations) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Revocations) hash(s string) uint64 {
	if h := maphash.String(r.seed, s); h != 0 {
		return h
	}
	return 1
}

// pairHash is the key of (user, cid): two independently seeded hashes
// combined, so no choice of strings makes two pairs meet (no separator
// to forge) beyond the 2^-64 odds of any key.
func (r *Revocations) pairHash(user, cid string) uint64 {
	if h := maphash.String(r.seed, user) ^ maphash.String(r.pairSeed, cid); h != 0 {
		return h
	}
	return 1
}

// Apply records a session-revoked event; other events are no-ops.
func (r *Revocations) Apply(ev Event) error {
	if ev.eventType() != EventSessionRevoked {
		return nil
	}
	s := ev.Subject
	switch s.Kind {
	case SubjectToken:
		return r.RevokeToken(s.JTI, s.Expiry)
	case SubjectUser:
		if s.ClientID != "" {
			return r.RevokeUserAt(s.Sub, s.UID, s.ClientID, ev.Time)
		}
		return r.RevokeUser(s.Sub, s.UID, ev.Time)
	case SubjectClient:
		return r.RevokeClient(s.ClientID, ev.Time)
	}
	return ErrSubject
}

// RevokeToken revokes the token jti until exp (zero: unknown, so for
// MaxLifetime).
func (r *Revocations) RevokeToken(jti string, exp time.Time) error {
	if jti == "" {
		return ErrSubject
	}
	now := r.now().Unix()
	longest := now + int64(orDefault(r.MaxLifetime, MaxTokenLifetime)/time.Second)
	until := longest
	if !exp.IsZero() {
		until = min(exp.Unix(), longest)
	}
	until += int64(orDefault(r.Leeway, DefaultLeeway) / time.Second)
	if until <= now {
		return nil // expired: the validator refuses it anyway
	}
	r.pruneOnWrite(now)
	return r.tokens.putMax(r.hash(jti), until, orDefault(r.MaxTokens, DefaultMaxTokens))
}

// RevokeUser revokes the tokens of the user (by sub, by uid, or both)
// issued at or before cutoff.
func (r *Revocations) RevokeUser(sub, uid string, cutoff time.Time) error {
	if sub == "" && uid == "" {
		return ErrSubject
	}
	if sub != "" {
		if err := r.cutoff(&r.bySub, sub, cutoff); err != nil {
			return err
		}
	}
	if uid != "" {
		return r.cutoff(&r.byUID, uid, cutoff)
	}
	return nil
}

// RevokeUserAt revokes the tokens of the user (by sub, by uid, or both)
// at client cid issued at or before cutoff; the user's tokens at other
// clients stay good.
func (r *Revocations) RevokeUserAt(sub, uid, cid string, cutoff time.Time) error {
	if (sub == "" && uid == "") || cid == "" {
		return ErrSubject
	}
	if sub != "" {
		if err := r.cutoffHash(&r.subAtCID, r.pairHash(sub, cid), cutoff); err != nil {
			return err
		}
	}
	if uid != "" {
		return r.cutoffHash(&r.uidAtCID, r.pairHash(uid, cid), cutoff)
	}
	return nil
}

// RevokeClient revokes the client's tokens issued at or before cutoff.
func (r *Revocations) RevokeClient(cid string, cutoff time.Time) error {
	if cid == "" {
		return ErrSubject
	}
	return r.cutoff(&r.byCID, cid, cutoff)
}

// cutoff records key's cut-off, the latest one winning.
func (r *Revocations) cutoff(m *hashTable, key string, t time.Time) error {
	return r.cutoffHash(m, r.hash(key), t)
}

func (r *Revocations) cutoffHash(m *hashTable, h uint64, t time.Time) error {
	if t.IsZero() {
		return ErrEvent
	}
	now := r.now().Unix()
	c := t.Unix()
	if c+r.reach() <= now {
		return nil // every token it covers has expired
	}
	r.pruneOnWrite(now)
	return m.putMax(h, c, orDefault(r.MaxSubjects, DefaultMaxSubjects))
}

// reach is how long after a cut-off a token it covers can still be
// accepted, in seconds.
func (r *Revocations) reach() int64 {
	return int64((orDefault(r.MaxLifetime, MaxTokenLifetime) + orDefault(r.Leeway, DefaultLeeway)) / time.Second)
}

// Revoked tells whether the token with these claims (jti, sub, uid, cid,
// iat; empty for those it lacks) is revoked. A token without iat is
// revoked by any cut-off of its subject.
func (r *Revocations) Revoked(jti, sub, uid, cid string, iat time.Time) bool {
	if jti != "" && r.tokens.count.Load() > 0 {
		if _, ok := r.tokens.get(r.hash(jti)); ok {
			return true
		}
	}
	at := iat.Unix()
	if iat.IsZero() {
		at = minInt64
	}
	if r.revokedBy(&r.bySub, sub, at) || r.revokedBy(&r.byUID, uid, at) || r.revokedBy(&r.byCID, cid, at) {
		return true
	}
	return cid != "" && (r.revokedAt(&r.subAtCID, sub, cid, at) || r.revokedAt(&r.uidAtCID, uid, cid, at))
}

const minInt64 = -1 << 63

func (r *Revocations) revokedBy(m *hashTable, key string, iat int64) bool {
	if key == "" || m.count.Load() == 0 {
		return false
	}
	c, ok := m.get(r.hash(key))
	return ok && iat <= c
}

func (r *Revocations) revokedAt(m *hashTable, user, cid string, iat int64) bool {
	if user == "" || m.count.Load() == 0 {
		return false
	}
	c, ok := m.get(r.pairHash(user, cid))
	return ok && iat <= c
}

// Len is the number of revoked jtis and of subject cut-offs (sub, uid,
// client id, and sub or uid at a client each count one).
func (r *Revocations) Len() (tokens, subjects int) {
	return int(r.tokens.count.Load()), int(r.bySub.count.Load() + r.byUID.count.Load() + r.byCID.count.Load() +
		r.subAtCID.count.Load() + r.uidAtCID.count.Load())
}

// Prune forgets what is no longer in force, and gives the memory back.
// Writes prune once a minute; call Prune when revocations stop coming.
func (r *Revocations) Prune() {
	now := r.now().Unix()
	r.pruned.Store(now)
	r.tokens.prune(now)
	floor := now - r.reach()
	r.bySub.prune(floor)
	r.byUID.prune(floor)
	r.byCID.prune(floor)
	r.subAtCID.prune(floor)
	r.uidAtCID.prune(floor)
}

// pruneOnWrite prunes when the last prune is a minute old.
func (r *Revocations) pruneOnWrite(now int64) {
	if last := r.pruned.Load(); now-last >= 60 && r.pruned.CompareAndSwap(last, now) {
		r.Prune()
	}
}
