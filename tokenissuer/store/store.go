// Package store defines the issuer's persistent state: signing keys and
// expiring marks (revoked token ids, used assertion ids). Implementations
// live in sub-packages; storetest holds the suite every one must pass.
package store

import (
	"context"
	"errors"
	"time"
)

// KeyState is the lifecycle state of a signing key (DESIGN.md "Keys").
type KeyState string

const (
	// KeyActive signs new tokens. Exactly one per authorization server.
	KeyActive KeyState = "ACTIVE"
	// KeyNext is published ahead of use so caches know it before it signs.
	KeyNext KeyState = "NEXT"
	// KeyExpired no longer signs but stays published until RetireAt.
	KeyExpired KeyState = "EXPIRED"
)

// KeyRecord is one signing key as persisted. The private key is opaque
// ciphertext: stores never see key material in the clear.
type KeyRecord struct {
	KID       string    `json:"kid"`
	Alg       string    `json:"alg"`
	State     KeyState  `json:"state"`
	Created   time.Time `json:"created"`
	Activated time.Time `json:"activated,omitzero"`
	Expired   time.Time `json:"expired,omitzero"`
	// RetireAt is when an EXPIRED key leaves the published set: after
	// every token it signed has expired.
	RetireAt time.Time `json:"retire_at,omitzero"`
	// Sealed is the private JWK, encrypted (JWE) with the issuer's key
	// encryption key.
	Sealed []byte `json:"sealed"`
}

// Store is the issuer's state. Implementations must be safe for
// concurrent use by several goroutines and, for shared stores, by
// several processes.
type Store interface {
	// Keys returns the key records of one authorization server.
	Keys(ctx context.Context, as string) ([]KeyRecord, error)

	// UpdateKeys atomically replaces the key records of an authorization
	// server with what fn returns given the current ones. When fn returns
	// an error nothing changes and that error is returned. fn may run more
	// than once and must not have side effects.
	UpdateKeys(ctx context.Context, as string, fn func([]KeyRecord) ([]KeyRecord, error)) error

	// Mark records key in namespace until the given time and reports
	// whether it was new. A mark that already exists and has not expired
	// is left unchanged and yields false: this is the atomic "use once"
	// primitive (RFC 7523 jti replay) and the revocation list.
	Mark(ctx context.Context, namespace, key string, until time.Time) (bool, error)

	// Marked reports whether an unexpired mark exists.
	Marked(ctx context.Context, namespace, key string) (bool, error)

	// Purge deletes marks, and refresh tokens, that expired before now.
	Purge(ctx context.Context, now time.Time) error

	// PutRefresh stores a new refresh token record.
	PutRefresh(ctx context.Context, rt RefreshToken) error

	// GetRefresh reads the refresh token with this hash, in any state
	// and whatever its deadlines (the caller judges them); a missing one
	// yields ErrNotFound. A read only: no write transaction.
	GetRefresh(ctx context.Context, hash string) (RefreshToken, error)

	// UpdateRefresh atomically reads the refresh token with this hash,
	// lets fn change it, and stores the result; fn's error aborts and is
	// returned. A missing token yields ErrNotFound without calling fn.
	// It returns the record as fn left it.
	UpdateRefresh(ctx context.Context, hash string, fn func(*RefreshToken) error) (RefreshToken, error)

	// PutRecord stores an opaque value under namespace and key until the
	// given time, replacing any previous one.
	PutRecord(ctx context.Context, namespace, key string, value []byte, until time.Time) error

	// CreateRecord stores value under namespace and key until the given
	// time only if no unexpired record is there, and reports whether it
	// did; a live record is left as it is. Atomic across goroutines and,
	// for shared stores, nodes: of concurrent creators exactly one gets
	// true. The first write of a record later changed by UpdateRecord.
	CreateRecord(ctx context.Context, namespace, key string, value []byte, until time.Time) (created bool, err error)

	// GetRecord reads an unexpired record; a missing or expired one
	// yields ErrNotFound. A read only: no write transaction.
	GetRecord(ctx context.Context, namespace, key string) ([]byte, error)

	// UpdateRecord atomically reads an unexpired record, lets fn return
	// its new value (nil deletes it) and stores it with the same expiry.
	// fn's error aborts and is returned. A missing or expired record
	// yields ErrNotFound without calling fn. It returns the value fn saw.
	UpdateRecord(ctx context.Context, namespace, key string, fn func(old []byte) ([]byte, error)) ([]byte, error)

	// Incr atomically adds delta to the counter under namespace and key
	// and returns its new value: the primitive of attempt limits, where
	// concurrent callers (goroutines or nodes) must each see a distinct
	// count. A missing or expired counter starts from zero and lasts
	// until the given time; an existing one keeps its expiry (a fixed
	// window from the first count). The counter is a record: GetRecord
	// reads it as the decimal count, UpdateRecord returning nil deletes
	// it, Purge drops it once expired. A record in the namespace that is
	// not a counter is an error.
	Incr(ctx context.Context, namespace, key string, delta int64, until time.Time) (int64, error)

	// ListRecords returns the unexpired records of namespace whose keys
	// begin with prefix and sort after after (bytewise; "" lists from
	// the first), in bytewise key order, at most limit of them (limit
	// must be positive). Keys are whole keys, prefix included, so the
	// last one returned is the after of the next page. A read only.
	ListRecords(ctx context.Context, namespace, prefix, after string, limit int) ([]Record, error)
}

// Record is one record as ListRecords returns it.
type Record struct {
	Key   string
	Value []byte
}

// RefreshToken is a stored refresh token. The token itself is never
// stored: Hash is the base64url SHA-256 of it. Tokens issued from one
// another form a family; reuse of a rotated token revokes the family.
type RefreshToken struct {
	Hash     string   `json:"hash"`
	Family   string   `json:"family"`
	Server   string   `json:"as"`
	ClientID string   `json:"cid"`
	UserID   string   `json:"uid"`
	Scopes   []string `json:"scp"`
	Policy   string   `json:"policy,omitempty"`
	Rule     string   `json:"rule,omitempty"`
	// Grant started the family (e.g. password); a refresh is judged by
	// the rules for it.
	Grant    string    `json:"grant,omitempty"`
	AuthTime time.Time `json:"auth_time"`
	// Amr is how the user signed in (RFC 8176 values); the family's
	// tokens keep it.
	Amr []string `json:"amr,omitempty"`
	// JKT binds a public client's refresh token to a DPoP key (RFC 9449
	// section 5): a refresh must prove that key.
	JKT    string    `json:"jkt,omitempty"`
	Issued time.Time `json:"iat"`
	// FamilyExpires bounds the family from its first token.
	FamilyExpires time.Time `json:"family_exp"`
	// IdleExpires moves forward each time the token is used.
	IdleExpires time.Time `json:"idle_exp"`
	// Rotated is when the token was exchanged for a successor (zero
	// while it is the family's current token).
	Rotated time.Time `json:"rotated,omitzero"`
}

// ErrNotFound means no record with that key.
var ErrNotFound = errors.New("store: not found")

// ErrClosed is returned by a store used after it was closed.
var ErrClosed = errors.New("store: closed")

// ErrUnavailable wraps errors of a shared store that cannot be reached
// now (database down, connection lost, pool exhausted). The issuer
// answers 503 `temporarily_unavailable` (RFC 6749 section 4.1.2.1) and
// issues nothing; the request may be retried.
var ErrUnavailable = errors.New("store: temporarily unavailable")

// Mark namespaces used by the issuer.
const (
	// NSRevoked holds revoked access-token ids (jti) until their exp.
	NSRevoked = "revoked"
	// NSAssertion holds client-assertion ids (client + jti) until their exp.
	NSAssertion = "assertion"
	// NSFamily holds revoked refresh-token families until they expire
	// and every access token issued from them has expired.
	NSFamily = "refresh-family"
	// NSAccessFamily records the refresh-token family of an access token
	// (jti -> family id) until the token's exp, so revoking the family
	// makes the token inactive (Okta guide "Revoke tokens").
	NSAccessFamily = "access-family"
	// Record namespaces of the browser flows.
	NSSession     = "session"
	NSCode        = "code"
	NSTransaction = "authz-txn"
	NSConsent     = "consent"
	// NSAttempts holds the throttle counters (Incr): sign-in attempts,
	// device-code lookups, revocation budgets.
	NSAttempts = "attempts"
	NSDevice   = "device"
	NSUserCode = "user-code"
	// NSSessionEnded marks SSO sessions that were ended (sign-out,
	// "Not you?", the Sessions API's DELETE), so that a session refresh
	// racing the end cannot bring the session back.
	NSSessionEnded = "session-ended"
	// NSSubjectRevoked holds cut-offs: every token (or SSO session) of a
	// user, a client or a user at a client issued before the time the
	// record holds is revoked (authserver/subject_revoke.go).
	NSSubjectRevoked = "subject-revoked"
	// NSDPoPProof holds the DPoP proofs used (key and jti) until they
	// could no longer be accepted: each is used once, cluster-wide.
	NSDPoPProof = "dpop-proof"
	// NSFactors holds each user's MFA factors and recovery codes (user id
	// -> JSON, package factors), with a far expiry and never deleted: a
	// reset writes an empty set.
	NSFactors = "factors"
	// NSSSFStream holds the SSF transmitter's poll streams (RFC 8936):
	// stream id -> its aud, jti tag, cursor and acknowledgements above
	// it (package ssftx), plus the index of stream ids under the empty
	// key. The events themselves are the FeedLog.
	NSSSFStream = "ssf-stream"
	// NSFamilyTokens lists the unexpired access tokens issued from a
	// refresh-token family (family -> JSON), so that revoking the family
	// publishes each of them on the revocation feed.
	NSFamilyTokens = "family-tokens"
	// NSFamilyPublished marks the revoked families whose access tokens
	// are on the revocation feed (set after the publish succeeded).
	NSFamilyPublished = "family-published"
	// NSSSFStreamConfig holds each SSF stream's configuration (stream id
	// -> JSON) and NSSSFClientStreams each client's stream ids.
	NSSSFStreamConfig  = "ssf-stream-config"
	NSSSFClientStreams = "ssf-client-streams"
	// NSPAR holds pushed authorization requests (RFC 9126): the hash
	// of the request_uri -> the pushed parameters, until it expires or
	// /v1/authorize consumes it (once).
	NSPAR = "par"
	// NSTokenIndex lists the refresh-token families for Okta's token
	// APIs (authserver/tokens_api.go): one record per family, keyed
	// client id, NUL, user id, NUL, token id, so that a client's and a
	// user-at-a-client's families are prefix lists, expiring with the
	// family.
	NSTokenIndex = "token-index"
	// NSExchangeChain records, for each access token a token exchange
	// issued (jti), the tokens it was exchanged from (the subject token,
	// its own subject, and so on), until the token's exp, so that their
	// cut-offs revoke it too (authserver/token_exchange.go).
	NSExchangeChain = "exchange-chain"
)

// Opener is implemented by storage guest modules
// (`token_issuer.storage.*`). Provision must not open anything (it also
// runs for `caddy validate`); OpenStore is called when the app starts.
type Opener interface {
	OpenStore(ctx context.Context) (Store, error)
}
