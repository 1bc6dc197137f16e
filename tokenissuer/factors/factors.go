// Package factors keeps each user's second factors: TOTP authenticator
// apps (RFC 6238), WebAuthn credentials and one-time recovery codes. It
// is the sign-in flow's pure core: no HTTP, no Caddy, no logging.
//
// A user's factors are one store record (store.NSFactors, keyed by user
// id) and every change is an atomic read-modify-write of it
// (store.Store.UpdateRecord, CreateRecord for the first), so two nodes
// of a cluster can never both accept one TOTP time step or one recovery
// code. Statuses follow Okta's Factors API (PENDING_ACTIVATION, ACTIVE).
package factors

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/keys"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// Kind is a factor's type. Recovery codes are not a Factor: they are a
// set of their own (NewRecoveryCodes).
type Kind string

const (
	// KindTOTP is an authenticator app's time-based one-time password
	// (RFC 6238; Okta's factorType "token:software:totp").
	KindTOTP Kind = "totp"
	// KindWebAuthn is a WebAuthn credential: a passkey or security key
	// (Okta's factorType "webauthn"), phishing-resistant.
	KindWebAuthn Kind = "webauthn"
)

// Factor statuses, Okta's names (Factors API, "Factor status").
const (
	// StatusPending is an enrolled factor whose first code has not been
	// given yet: it cannot be used to sign in.
	StatusPending = "PENDING_ACTIVATION"
	// StatusActive is a factor that can be used to sign in.
	StatusActive = "ACTIVE"
)

// Factor is one enrolled factor as stored.
type Factor struct {
	ID        string    `json:"id"` // random, opaque: "mfa" + 17 base62 characters
	Kind      Kind      `json:"kind"`
	Status    string    `json:"status"` // StatusPending or StatusActive
	Name      string    `json:"name"`   // label shown to the user
	Created   time.Time `json:"created"`
	Activated time.Time `json:"activated,omitzero"`
	LastUsed  time.Time `json:"last_used,omitzero"`
	// TOTP: the shared secret sealed with keys.Sealer (never stored in
	// clear), and the last accepted time step (RFC 6238 section 4.2 T):
	// only later steps are accepted, so each code is used once.
	Secret   []byte `json:"secret,omitempty"`
	LastStep int64  `json:"last_step,omitempty"`
	// WebAuthn: the credential id and the credential as JSON (opaque
	// here; package webauthnrp owns its shape).
	CredentialID []byte          `json:"credential_id,omitempty"`
	Credential   json.RawMessage `json:"credential,omitempty"`
}

// public is f as List and the other readers hand it out: without the
// sealed secret or the credential.
func (f Factor) public() Factor {
	f.Secret = nil
	f.Credential = nil
	return f
}

var (
	// ErrBadCode means a code that is malformed or matches no step or
	// recovery code.
	ErrBadCode = errors.New("factors: invalid code")
	// ErrReplayed means a TOTP code of a time step already used (or
	// older than the last used one): each step is accepted once.
	ErrReplayed = errors.New("factors: code already used")
	// ErrNotFound means no factor with that id (or credential id) for
	// the user.
	ErrNotFound = errors.New("factors: no such factor")
	// ErrNoFactor means the user has nothing to verify against: no
	// ACTIVE TOTP factor, or no recovery code left.
	ErrNoFactor = errors.New("factors: no such factor enrolled")
	// ErrNotPending means ActivateTOTP of a factor that is already
	// ACTIVE.
	ErrNotPending = errors.New("factors: factor is not pending activation")
	// ErrDuplicate means AddWebAuthn of a credential id the user has
	// already registered (WebAuthn, section 7.1 "Registering a New
	// Credential": a credential id is registered once).
	ErrDuplicate = errors.New("factors: credential already registered")
)

// recordUntil is the expiry of every user's record: far enough to be
// never, within what every store represents (bbolt keeps Unix
// nanoseconds: up to 2262). Records are never deleted; Reset empties.
var recordUntil = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)

// record is one user's store record.
type record struct {
	Factors  []Factor       `json:"factors"`
	Recovery *recoveryCodes `json:"recovery,omitempty"`
}

// Manager reads and changes users' factors in a store.
type Manager struct {
	st     store.Store
	sealer *keys.Sealer
	issuer string
	now    func() time.Time
}

// New returns a Manager on st. sealer seals TOTP secrets (required for
// TOTP); issuerName is the issuer shown by authenticator apps (the
// otpauth URI's issuer); now is the clock (nil: time.Now).
func New(st store.Store, sealer *keys.Sealer, issuerName string, now func() time.Time) *Manager {
	if now == nil {
		now = time.Now
	}
	return &Manager{st: st, sealer: sealer, issuer: issuerName, now: now}
}

// load reads uid's record; a user with none has an empty one.
func (m *Manager) load(ctx context.Context, uid string) (record, error) {
	var r record
	if uid == "" {
		return r, errNoUser
	}
	v, err := m.st.GetRecord(ctx, store.NSFactors, uid)
	if errors.Is(err, store.ErrNotFound) {
		return r, nil
	}
	if err != nil {
		return r, err
	}
	return r, decode(v, &r)
}

var errNoUser = errors.New("factors: empty user id")

func decode(v []byte, r *record) error {
	if len(v) == 0 {
		return nil
	}
	if err := json.Unmarshal(v, r); err != nil {
		return fmt.Errorf("factors: decoding a user's factors: %w", err)
	}
	return nil
}

// update applies fn to uid's record atomically: UpdateRecord, or
// CreateRecord when the user has none yet (and fn succeeds on an empty
// one). fn may run more than once and must set its results afresh
// each time; its error aborts and is returned, nothing written.
func (m *Manager) update(ctx context.Context, uid string, fn func(*record) error) error {
	if uid == "" {
		return errNoUser
	}
	apply := func(old []byte) ([]byte, error) {
		var r record
		if err := decode(old, &r); err != nil {
			return nil, err
		}
		if err := fn(&r); err != nil {
			return nil, err
		}
		if r.Factors == nil {
			r.Factors = []Factor{}
		}
		return json.Marshal(&r)
	}
	// Each round either updates, or creates, or sees a record another
	// caller created since; a few rounds suffice unless the store is
	// broken.
	for range 4 {
		_, err := m.st.UpdateRecord(ctx, store.NSFactors, uid, apply)
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		v, err := apply(nil)
		if err != nil {
			return err
		}
		created, err := m.st.CreateRecord(ctx, store.NSFactors, uid, v, recordUntil)
		if err != nil || created {
			return err
		}
	}
	return errors.New("factors: the user's record neither updates nor can be created")
}

// List returns all of uid's factors, in enrollment order, without their
// secrets or credentials.
func (m *Manager) List(ctx context.Context, uid string) ([]Factor, error) {
	r, err := m.load(ctx, uid)
	if err != nil {
		return nil, err
	}
	out := make([]Factor, 0, len(r.Factors))
	for _, f := range r.Factors {
		out = append(out, f.public())
	}
	return out, nil
}

// Active returns uid's ACTIVE factors, without their secrets or
// credentials.
func (m *Manager) Active(ctx context.Context, uid string) ([]Factor, error) {
	r, err := m.load(ctx, uid)
	if err != nil {
		return nil, err
	}
	var out []Factor
	for _, f := range r.Factors {
		if f.Status == StatusActive {
			out = append(out, f.public())
		}
	}
	return out, nil
}

// Remove deletes one of uid's factors and returns it (without secret).
func (m *Manager) Remove(ctx context.Context, uid, factorID string) (Factor, error) {
	var removed Factor
	err := m.update(ctx, uid, func(r *record) error {
		for i, f := range r.Factors {
			if f.ID == factorID {
				removed = f.public()
				r.Factors = append(r.Factors[:i:i], r.Factors[i+1:]...)
				return nil
			}
		}
		return ErrNotFound
	})
	if err != nil {
		return Factor{}, err
	}
	return removed, nil
}

// Reset removes all of uid's factors and recovery codes (Okta's "Reset
// all factors") and returns the factors removed, without secrets. The
// record stays, empty.
func (m *Manager) Reset(ctx context.Context, uid string) ([]Factor, error) {
	var removed []Factor
	err := m.update(ctx, uid, func(r *record) error {
		removed = nil
		for _, f := range r.Factors {
			removed = append(removed, f.public())
		}
		*r = record{}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return removed, nil
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// newID is a factor id shaped like Okta's: "mfa" and 17 random base62
// characters (about 101 bits).
func newID() string {
	b := make([]byte, 0, 20)
	b = append(b, "mfa"...)
	var buf [32]byte
	for len(b) < 20 {
		_, _ = rand.Read(buf[:])
		for _, c := range buf {
			// 248 = 4*62: rejecting above keeps every character equally likely.
			if c < 248 && len(b) < 20 {
				b = append(b, base62[c%62])
			}
		}
	}
	return string(b)
}
