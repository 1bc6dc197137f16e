package ssf

import (
	"errors"
	"hash/maphash"
	"sync"
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

const shardCount = 64

// Revocations is a receiver's set of revocations in force: revoked jtis
// until their token's exp, and per user (sub or uid) and per client a
// cut-off: their tokens issued at or before it are revoked. Keep one per
// transmitter and consult it for tokens of that transmitter's issuers.
// Safe for concurrent use; Revoked takes read locks only and allocates
// nothing.
//
// A jti is kept as a 64-bit hash (hash/maphash, seeded per process), not
// as a string, which is what bounds the memory; a collision could only
// refuse a good token, with odds of about n/2^64 per check.
type Revocations struct {
	// MaxTokens and MaxSubjects bound the entries, Leeway is kept past
	// expiry, MaxLifetime is the longest token lifetime (longer exp are
	// cut to it). Zero means the default; set them before first use.
	MaxTokens   int
	MaxSubjects int
	Leeway      time.Duration
	MaxLifetime time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time

	seed     maphash.Seed
	tokens   atomic.Int64
	subjects atomic.Int64
	shards   [shardCount]revShard

	smu     sync.RWMutex
	bySub   map[string]int64 // cut-off, unix seconds
	byUID   map[string]int64
	byCID   map[string]int64
	sPruned int64
}

type revShard struct {
	mu     sync.RWMutex
	m      map[uint64]int64 // jti hash -> forget at, unix seconds
	peak   int              // len(m) since the map was made
	pruned int64            // last prune, unix seconds
	_      [64]byte         // one cache line per shard's lock
}

// NewRevocations is an empty set.
func NewRevocations() *Revocations {
	r := &Revocations{seed: maphash.MakeSeed(), bySub: map[string]int64{}, byUID: map[string]int64{}, byCID: map[string]int64{}}
	for i := range r.shards {
		r.shards[i].m = map[uint64]int64{}
	}
	return r
}

func (r *Revocations) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
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
	h := maphash.String(r.seed, jti)
	sh := &r.shards[h%shardCount]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if now-sh.pruned >= 60 {
		r.pruneShard(sh, now)
	}
	if old, ok := sh.m[h]; ok {
		sh.m[h] = max(old, until)
		return nil
	}
	if r.tokens.Load() >= int64(orDefault(r.MaxTokens, DefaultMaxTokens)) {
		return ErrRevocationsFull
	}
	sh.m[h] = until
	sh.peak = max(sh.peak, len(sh.m))
	r.tokens.Add(1)
	return nil
}

// RevokeUser revokes the tokens of the user (by sub, by uid, or both)
// issued at or before cutoff.
func (r *Revocations) RevokeUser(sub, uid string, cutoff time.Time) error {
	if sub == "" && uid == "" {
		return ErrSubject
	}
	r.smu.Lock()
	defer r.smu.Unlock()
	if sub != "" {
		if err := r.cutoff(r.bySub, sub, cutoff); err != nil {
			return err
		}
	}
	if uid != "" {
		return r.cutoff(r.byUID, uid, cutoff)
	}
	return nil
}

// RevokeClient revokes the client's tokens issued at or before cutoff.
func (r *Revocations) RevokeClient(cid string, cutoff time.Time) error {
	if cid == "" {
		return ErrSubject
	}
	r.smu.Lock()
	defer r.smu.Unlock()
	return r.cutoff(r.byCID, cid, cutoff)
}

// cutoff records key's cut-off, the latest one winning; smu held.
func (r *Revocations) cutoff(m map[string]int64, key string, t time.Time) error {
	if t.IsZero() {
		return ErrEvent
	}
	now := r.now().Unix()
	if now-r.sPruned >= 60 {
		r.pruneSubjects(now)
	}
	c := t.Unix()
	if c+r.reach() <= now {
		return nil // every token it covers has expired
	}
	if old, ok := m[key]; ok {
		m[key] = max(old, c)
		return nil
	}
	if r.subjects.Load() >= int64(orDefault(r.MaxSubjects, DefaultMaxSubjects)) {
		return ErrRevocationsFull
	}
	m[key] = c
	r.subjects.Add(1)
	return nil
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
	if jti != "" && r.tokens.Load() > 0 {
		h := maphash.String(r.seed, jti)
		sh := &r.shards[h%shardCount]
		sh.mu.RLock()
		_, ok := sh.m[h]
		sh.mu.RUnlock()
		if ok {
			return true
		}
	}
	if r.subjects.Load() == 0 {
		return false
	}
	at := iat.Unix()
	if iat.IsZero() {
		at = minInt64
	}
	r.smu.RLock()
	defer r.smu.RUnlock()
	return revokedBy(r.bySub, sub, at) || revokedBy(r.byUID, uid, at) || revokedBy(r.byCID, cid, at)
}

const minInt64 = -1 << 63

func revokedBy(m map[string]int64, key string, iat int64) bool {
	if key == "" {
		return false
	}
	c, ok := m[key]
	return ok && iat <= c
}

// Len is the number of revoked jtis and of subjects with a cut-off.
func (r *Revocations) Len() (tokens, subjects int) {
	return int(r.tokens.Load()), int(r.subjects.Load())
}

// Prune forgets what is no longer in force. Adding prunes as it goes;
// call Prune to release memory when revocations stop coming.
func (r *Revocations) Prune() {
	now := r.now().Unix()
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		r.pruneShard(sh, now)
		sh.mu.Unlock()
	}
	r.smu.Lock()
	r.pruneSubjects(now)
	r.smu.Unlock()
}

// pruneShard: sh.mu held.
func (r *Revocations) pruneShard(sh *revShard, now int64) {
	for h, until := range sh.m {
		if until <= now {
			delete(sh.m, h)
			r.tokens.Add(-1)
		}
	}
	sh.pruned = now
	// A Go map keeps its peak size: copy it once it is mostly empty.
	if sh.peak > 1024 && len(sh.m) < sh.peak/4 {
		m := make(map[uint64]int64, len(sh.m))
		for h, until := range sh.m {
			m[h] = until
		}
		sh.m, sh.peak = m, len(m)
	}
}

// pruneSubjects: smu held.
func (r *Revocations) pruneSubjects(now int64) {
	reach := r.reach()
	for _, m := range []map[string]int64{r.bySub, r.byUID, r.byCID} {
		for k, c := range m {
			if c+reach <= now {
				delete(m, k)
				r.subjects.Add(-1)
			}
		}
	}
	r.sPruned = now
}
