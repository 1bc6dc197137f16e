package dpop

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"time"
)

// NonceSource provides server nonces (RFC 9449 sections 8 and 9):
// Current is the nonce to hand out (DPoP-Nonce), Valid whether a
// proof's nonce is still acceptable.
type NonceSource interface {
	Current() string
	Valid(nonce string) bool
}

// MinNonceSecret is the shortest secret NewNonces takes, in bytes.
const MinNonceSecret = 16

// Nonces is a stateless NonceSource: a nonce is the HMAC-SHA256 of a
// time window of length period, so every node holding the same secret
// issues and accepts the same nonces without sharing state. The nonces
// of the current and the previous window are valid: a nonce lives
// between one and two periods. A node whose clock runs behind another's
// may refuse the other's newest nonce for up to the clock difference;
// the client then retries with the nonce in its answer.
type Nonces struct {
	key    []byte
	period time.Duration
	now    func() time.Time
}

// NewNonces returns Nonces; now nil means time.Now. It panics when
// secret is shorter than MinNonceSecret or period is not positive:
// callers check their configuration first.
func NewNonces(secret []byte, period time.Duration, now func() time.Time) *Nonces {
	if len(secret) < MinNonceSecret {
		panic("dpop: nonce secret shorter than MinNonceSecret")
	}
	if period <= 0 {
		panic("dpop: nonce period must be positive")
	}
	if now == nil {
		now = time.Now
	}
	return &Nonces{key: append([]byte(nil), secret...), period: period, now: now}
}

// nonceLen is the length of a nonce: base64url of 32 bytes. Nonces are
// base64url, within the NQCHAR syntax of RFC 9449 section 8.1.
const nonceLen = 43

func (n *Nonces) window(t time.Time) int64 {
	ns, p := t.UnixNano(), int64(n.period)
	w := ns / p
	if ns < 0 && ns%p != 0 {
		w--
	}
	return w
}

func (n *Nonces) mac(w int64) []byte {
	h := hmac.New(sha256.New, n.key)
	h.Write([]byte("dpop-nonce\x00"))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(w))
	h.Write(b[:])
	out := make([]byte, nonceLen)
	base64.RawURLEncoding.Encode(out, h.Sum(nil))
	return out
}

// Current implements NonceSource.
func (n *Nonces) Current() string { return string(n.mac(n.window(n.now()))) }

// Valid implements NonceSource: nonce is the current or the previous
// window's.
func (n *Nonces) Valid(nonce string) bool {
	if len(nonce) != nonceLen {
		return false
	}
	w := n.window(n.now())
	cur := subtle.ConstantTimeCompare([]byte(nonce), n.mac(w))
	prev := subtle.ConstantTimeCompare([]byte(nonce), n.mac(w-1))
	return cur|prev == 1
}
