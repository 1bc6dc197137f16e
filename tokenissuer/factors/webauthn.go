package factors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
)

// AddWebAuthn stores a credential registered by the relying party
// (package webauthnrp) as an ACTIVE factor of uid: registration proved
// possession, there is no separate activation. name labels it for the
// user ("Passkey" if empty). A credential id uid already has is
// refused with ErrDuplicate.
func (m *Manager) AddWebAuthn(ctx context.Context, uid, name string, credID []byte, cred json.RawMessage) (Factor, error) {
	if len(credID) == 0 || !json.Valid(cred) {
		return Factor{}, errors.New("factors: a WebAuthn factor needs its credential id and credential (JSON)")
	}
	if name == "" {
		name = "Passkey"
	}
	now := m.now().UTC()
	f := Factor{ID: newID(), Kind: KindWebAuthn, Status: StatusActive, Name: name, Created: now, Activated: now,
		CredentialID: slices.Clone(credID), Credential: slices.Clone(cred)}
	err := m.update(ctx, uid, func(r *record) error {
		for _, o := range r.Factors {
			if o.Kind == KindWebAuthn && bytes.Equal(o.CredentialID, credID) {
				return ErrDuplicate
			}
		}
		r.Factors = append(r.Factors, f)
		return nil
	})
	if err != nil {
		return Factor{}, err
	}
	return f.public(), nil
}

// WebAuthn returns uid's ACTIVE WebAuthn factors with their credentials,
// for the relying party's ceremonies.
func (m *Manager) WebAuthn(ctx context.Context, uid string) ([]Factor, error) {
	r, err := m.load(ctx, uid)
	if err != nil {
		return nil, err
	}
	var out []Factor
	for _, f := range r.Factors {
		if f.Kind == KindWebAuthn && f.Status == StatusActive {
			f.Secret = nil
			out = append(out, f)
		}
	}
	return out, nil
}

// FindWebAuthn returns uid's ACTIVE WebAuthn factor with this credential
// id, with its credential; ErrNotFound if there is none.
func (m *Manager) FindWebAuthn(ctx context.Context, uid string, credID []byte) (Factor, error) {
	all, err := m.WebAuthn(ctx, uid)
	if err != nil {
		return Factor{}, err
	}
	for _, f := range all {
		if bytes.Equal(f.CredentialID, credID) {
			return f, nil
		}
	}
	return Factor{}, ErrNotFound
}

// UpdateWebAuthn stores a credential as the relying party left it after
// a sign-in (signature counter, backup flags) and sets LastUsed.
func (m *Manager) UpdateWebAuthn(ctx context.Context, uid, factorID string, cred json.RawMessage) error {
	return m.UpdateWebAuthnIf(ctx, uid, factorID, cred, nil)
}

// ErrStale: UpdateWebAuthnIf found a stored credential newer than the
// one given (a concurrent sign-in stored its counter first).
var ErrStale = errors.New("factors: the stored WebAuthn credential is newer")

// UpdateWebAuthnIf is UpdateWebAuthn when newer(stored) reports the
// given credential newer than the stored one, judged in the same atomic
// update (nil: always); else ErrStale and nothing changes. It keeps a
// WebAuthn sign count from going back when two sign-ins race.
func (m *Manager) UpdateWebAuthnIf(ctx context.Context, uid, factorID string, cred json.RawMessage, newer func(stored json.RawMessage) bool) error {
	if !json.Valid(cred) {
		return errors.New("factors: the WebAuthn credential is not JSON")
	}
	now := m.now().UTC()
	return m.update(ctx, uid, func(r *record) error {
		for i := range r.Factors {
			if f := &r.Factors[i]; f.ID == factorID && f.Kind == KindWebAuthn {
				if newer != nil && !newer(f.Credential) {
					return ErrStale
				}
				f.Credential, f.LastUsed = slices.Clone(cred), now
				return nil
			}
		}
		return ErrNotFound
	})
}
