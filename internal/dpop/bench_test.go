package dpop

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"
)

// BenchmarkVerify is one proof verification at a resource (with ath),
// without the replay cache (BenchmarkVerifyReplay adds it). Compare
// with BenchmarkRawVerify, the signature check alone. "uncached" parses
// the header every time, as for a client's first proof.
func BenchmarkVerify(b *testing.B) {
	for _, bc := range []struct {
		name, alg string
		cache     int
	}{{"ES256", "ES256", 0}, {"RS256", "RS256", 0}, {"ES256/uncached", "ES256", -1}, {"RS256/uncached", "RS256", -1}} {
		b.Run(bc.name, func(b *testing.B) {
			s := signers()[bc.alg]
			v, err := New(Options{Now: func() time.Time { return t0 }, KeyCacheSize: bc.cache})
			if err != nil {
				b.Fatal(err)
			}
			proof := s.proof(b, stdClaims(map[string]any{"ath": ATH("tok")}))
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := v.Verify(ctx, proof, reqMethod, reqURL, "tok"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyReplay is BenchmarkVerify with a MemoryReplay: every
// proof has its own jti (minted before the timer starts).
func BenchmarkVerifyReplay(b *testing.B) {
	s := signers()["ES256"]
	v, err := New(Options{Now: func() time.Time { return t0 }, Replay: NewMemoryReplay(b.N + 1).WithClock(func() time.Time { return t0 })})
	if err != nil {
		b.Fatal(err)
	}
	proofs := make([]string, b.N)
	for i := range proofs {
		proofs[i] = s.proof(b, stdClaims(map[string]any{"ath": ATH("tok")}))
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := v.Verify(ctx, proofs[i], reqMethod, reqURL, "tok"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawVerify is the baseline: hashing the signing input and
// checking the signature with crypto/ecdsa or crypto/rsa directly.
func BenchmarkRawVerify(b *testing.B) {
	for _, name := range []string{"ES256", "RS256"} {
		b.Run(name, func(b *testing.B) {
			s := signers()[name]
			proof := s.proof(b, stdClaims(map[string]any{"ath": ATH("tok")}))
			i := strings.LastIndexByte(proof, '.')
			input := []byte(proof[:i])
			sig, err := base64.RawURLEncoding.DecodeString(proof[i+1:])
			if err != nil {
				b.Fatal(err)
			}
			var check func() bool
			switch k := s.priv.(type) {
			case *ecdsa.PrivateKey:
				pub := &k.PublicKey
				check = func() bool {
					h := sha256.Sum256(input)
					r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
					return ecdsa.Verify(pub, h[:], r, s)
				}
			case *rsa.PrivateKey:
				pub := &k.PublicKey
				check = func() bool {
					h := sha256.Sum256(input)
					return rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sig) == nil
				}
			default:
				b.Fatalf("key %T", k)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if !check() {
					b.Fatal("signature refused")
				}
			}
		})
	}
}

// BenchmarkMemoryReplay is one Seen of a new key in a cache holding
// about 100000 live entries.
func BenchmarkMemoryReplay(b *testing.B) {
	now := t0
	m := NewMemoryReplay(200000).WithClock(func() time.Time { return now })
	ctx := context.Background()
	keys := make([]string, b.N+100000)
	for i := range keys {
		keys[i] = ReplayKey("jkt", reqURL, fmt.Sprint(i))
	}
	// Each key lives 100000 ticks of the clock, so the cache stays at
	// about 100000 entries while expired ones are dropped.
	for i := 0; i < 100000; i++ {
		now = t0.Add(time.Duration(i))
		if _, err := m.Seen(ctx, keys[i], now.Add(100000)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 100000; i < len(keys); i++ {
		now = t0.Add(time.Duration(i))
		if _, err := m.Seen(ctx, keys[i], now.Add(100000)); err != nil {
			b.Fatal(err)
		}
	}
}
