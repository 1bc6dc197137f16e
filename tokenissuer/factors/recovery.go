package factors

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"strings"
	"time"
)

// Recovery codes: RecoveryCodeCount codes of 80 random bits each, shown
// once as 16 base32 characters (RFC 4648 section 6) in groups of four,
// "ABCD-EFGH-IJKL-MNOP". Only salted SHA-256 hashes are stored; each
// code signs in once.
const (
	// RecoveryCodeCount is how many codes NewRecoveryCodes makes.
	RecoveryCodeCount = 10
	recoveryCodeBytes = 10 // 80 bits: 16 base32 characters
	recoveryCodeLen   = 16
)

// recoveryCodes is a user's set: the hashes of the codes not used yet.
type recoveryCodes struct {
	Salt     []byte    `json:"salt"`
	Hashes   [][]byte  `json:"hashes"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used,omitzero"`
}

var recoveryEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

func (rc *recoveryCodes) hash(code string) []byte {
	h := sha256.New()
	h.Write(rc.Salt)
	h.Write([]byte(code))
	return h.Sum(nil)
}

// NewRecoveryCodes makes a new set of RecoveryCodeCount codes for uid,
// replacing any earlier set, and returns them formatted for humans. They
// are not stored: show them once.
func (m *Manager) NewRecoveryCodes(ctx context.Context, uid string) ([]string, error) {
	rc := &recoveryCodes{Salt: make([]byte, 16), Created: m.now().UTC()}
	_, _ = rand.Read(rc.Salt)
	codes := make([]string, RecoveryCodeCount)
	seen := make(map[string]bool, RecoveryCodeCount)
	for i := range codes {
		var c string
		for c == "" || seen[c] {
			b := make([]byte, recoveryCodeBytes)
			_, _ = rand.Read(b)
			c = recoveryEncoding.EncodeToString(b)
		}
		seen[c] = true
		rc.Hashes = append(rc.Hashes, rc.hash(c))
		codes[i] = c[0:4] + "-" + c[4:8] + "-" + c[8:12] + "-" + c[12:16]
	}
	err := m.update(ctx, uid, func(r *record) error {
		r.Recovery = rc
		return nil
	})
	if err != nil {
		return nil, err
	}
	return codes, nil
}

// normalizeRecovery accepts a code as shown, or without its dashes or
// with spaces, in any case; "" when it cannot be a code.
func normalizeRecovery(code string) string {
	code = strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(strings.TrimSpace(code)))
	if len(code) != recoveryCodeLen {
		return ""
	}
	for i := 0; i < len(code); i++ {
		if c := code[i]; (c < 'A' || c > 'Z') && (c < '2' || c > '7') {
			return ""
		}
	}
	return code
}

// UseRecoveryCode signs uid in with one of their recovery codes and
// spends it, in the same atomic update. The code's hash is compared with
// every stored one in constant time. Errors: ErrNoFactor (no code
// left), ErrBadCode (malformed, wrong or already used).
func (m *Manager) UseRecoveryCode(ctx context.Context, uid, code string) error {
	now := m.now().UTC()
	code = normalizeRecovery(code)
	return m.update(ctx, uid, func(r *record) error {
		rc := r.Recovery
		if rc == nil || len(rc.Hashes) == 0 {
			return ErrNoFactor
		}
		if code == "" {
			return ErrBadCode
		}
		sum := rc.hash(code)
		match := -1
		for i, h := range rc.Hashes {
			match = subtle.ConstantTimeSelect(subtle.ConstantTimeCompare(h, sum), i, match)
		}
		if match < 0 {
			return ErrBadCode
		}
		r.Recovery = &recoveryCodes{Salt: rc.Salt, Created: rc.Created, LastUsed: now,
			Hashes: append(rc.Hashes[:match:match], rc.Hashes[match+1:]...)}
		return nil
	})
}

// RecoveryCodesLeft is how many of uid's recovery codes are unused.
func (m *Manager) RecoveryCodesLeft(ctx context.Context, uid string) (int, error) {
	r, err := m.load(ctx, uid)
	if err != nil || r.Recovery == nil {
		return 0, err
	}
	return len(r.Recovery.Hashes), nil
}
