// Package keys manages each authorization server's signing keys: their
// generation, ACTIVE/NEXT/EXPIRED lifecycle, rotation, sealing at rest
// and the published JWKS.
package keys

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwe"
)

// Sealer encrypts private keys before they reach a store: JWE with
// "dir" + A256GCM, the key id in the protected header so a ciphertext
// cannot be swapped onto another record (RFC 7516 section 5.1 step 14:
// the protected header is the AAD).
type Sealer struct {
	kek []byte
}

// MinSecretLen is the shortest accepted key-encryption secret.
const MinSecretLen = 32

// NewSealer derives the key-encryption key from secret with HKDF-SHA256.
func NewSealer(secret []byte) (*Sealer, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("key encryption secret must be at least %d bytes", MinSecretLen)
	}
	kek, err := hkdf.Key(sha256.New, secret, nil, "caddy-apiaccess signing-key seal v1", 32)
	if err != nil {
		return nil, err
	}
	return &Sealer{kek: kek}, nil
}

// Derive is a key for another purpose (label), the same on every node
// that shares the key-encryption secret: HMAC-SHA256 of the label under
// the secret's key (DPoP nonces, for one).
func (s *Sealer) Derive(label string) []byte {
	m := hmac.New(sha256.New, s.kek)
	m.Write([]byte("apiaccess derive\x00" + label))
	return m.Sum(nil)
}

// Seal encrypts plaintext for the record with key id kid.
func (s *Sealer) Seal(kid string, plaintext []byte) ([]byte, error) {
	h := jwe.NewHeaders()
	if err := h.Set(jwe.KeyIDKey, kid); err != nil {
		return nil, err
	}
	return jwe.Encrypt(plaintext,
		jwe.WithKey(jwa.DIRECT, s.kek),
		jwe.WithContentEncryption(jwa.A256GCM),
		jwe.WithProtectedHeaders(h))
}

// ErrUnseal means a sealed key could not be opened: wrong secret, or a
// record that was tampered with.
var ErrUnseal = errors.New("cannot decrypt signing key: wrong key encryption secret or corrupted store")

// Open decrypts a sealed key and checks it belongs to kid.
func (s *Sealer) Open(kid string, sealed []byte) ([]byte, error) {
	msg := jwe.NewMessage()
	pt, err := jwe.Decrypt(sealed, jwe.WithKey(jwa.DIRECT, s.kek), jwe.WithMessage(msg))
	if err != nil {
		return nil, ErrUnseal
	}
	if msg.ProtectedHeaders().KeyID() != kid {
		return nil, ErrUnseal
	}
	return pt, nil
}
