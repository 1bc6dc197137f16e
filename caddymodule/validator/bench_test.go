//go:build unix

package validator_test

// Gateway validator benchmarks (see BENCHMARKS.md, "Gateway"):
//
//	go test -run '^$' -bench . -benchtime 1s -count 6 ./caddymodule/validator/
//
// BenchmarkRawVerify measures the bare standard-library signature check
// of a token's signing input (hash included), BenchmarkValidate the full
// validator on the same token, with and without the verified-token
// cache. The targets compare them per core: uncached at most 1.5x the
// raw verify, cached at most 0.05x. Benchmarks are sequential on
// purpose so the ratios are per core. Besides ns/op (wall time) each
// reports cpu-ns/op, the process's user+system CPU time per operation
// (getrusage, hence unix only): it includes the garbage collector's
// work on other cores and moves less than wall time when other jobs
// share the machine.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"syscall"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/apiaccess/caddy-apiaccess/caddymodule/keyset"
	"github.com/apiaccess/caddy-apiaccess/caddymodule/validator"
)

const (
	benchIssuer   = "https://id.example.com/oauth2/default"
	benchAudience = "api://default"
	benchScope    = "orders:read"
)

// benchToken is one signed token and what a raw verifier needs.
type benchToken struct {
	alg    jwa.SignatureAlgorithm
	tok    string // compact JWS
	input  []byte // signing input: header64 "." payload64
	sig    []byte // decoded signature
	pub    any
	verify func(pub any, input, sig []byte) bool
}

// benchFixture holds one token per algorithm, all signed by keys of one
// published set, and the in-process key source serving that set.
type benchFixture struct {
	tokens []*benchToken
	keys   keyset.Source
}

var fixture *benchFixture

func getFixture(b *testing.B) *benchFixture {
	b.Helper()
	if fixture != nil {
		return fixture
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}

	set := jwk.NewSet()
	addKey := func(pub any, kid string, alg jwa.SignatureAlgorithm) {
		k, err := jwk.FromRaw(pub)
		if err != nil {
			b.Fatal(err)
		}
		for name, v := range map[string]any{jwk.KeyIDKey: kid, jwk.AlgorithmKey: alg, jwk.KeyUsageKey: "sig"} {
			if err := k.Set(name, v); err != nil {
				b.Fatal(err)
			}
		}
		if err := set.AddKey(k); err != nil {
			b.Fatal(err)
		}
	}
	addKey(&rsaKey.PublicKey, "rsa-kid-2f9c1b", jwa.RS256)
	addKey(&ecKey.PublicKey, "ec-kid-7d41a0", jwa.ES256)
	addKey(edPub, "ed-kid-c38e55", jwa.EdDSA)

	f := &benchFixture{keys: keyset.NewInProcess(func() jwk.Set { return set }, false)}
	f.tokens = []*benchToken{
		makeToken(b, jwa.RS256, "rsa-kid-2f9c1b", &rsaKey.PublicKey, func(in []byte) []byte {
			h := sha256.Sum256(in)
			sig, err := rsa.SignPKCS1v15(rand.Reader, rsaKey, crypto.SHA256, h[:])
			if err != nil {
				b.Fatal(err)
			}
			return sig
		}, rawRS256),
		makeToken(b, jwa.ES256, "ec-kid-7d41a0", &ecKey.PublicKey, func(in []byte) []byte {
			h := sha256.Sum256(in)
			r, s, err := ecdsa.Sign(rand.Reader, ecKey, h[:])
			if err != nil {
				b.Fatal(err)
			}
			// JWS ES256: fixed-width big-endian r || s (RFC 7518 3.4).
			sig := make([]byte, 64)
			r.FillBytes(sig[:32])
			s.FillBytes(sig[32:])
			return sig
		}, rawES256),
		makeToken(b, jwa.EdDSA, "ed-kid-c38e55", edPub, func(in []byte) []byte {
			return ed25519.Sign(edPriv, in)
		}, rawEdDSA),
	}
	fixture = f
	return f
}

// makeToken builds an Okta-shaped access token (~300-byte payload).
func makeToken(b *testing.B, alg jwa.SignatureAlgorithm, kid string, pub any, sign func([]byte) []byte, verify func(any, []byte, []byte) bool) *benchToken {
	b.Helper()
	now := time.Now().Unix()
	hdr, _ := json.Marshal(map[string]any{"kid": kid, "alg": alg.String()})
	// Field order as Okta emits it; json.Marshal of a struct keeps it.
	payload, err := json.Marshal(struct {
		Ver int      `json:"ver"`
		JTI string   `json:"jti"`
		Iss string   `json:"iss"`
		Aud string   `json:"aud"`
		Iat int64    `json:"iat"`
		Exp int64    `json:"exp"`
		Cid string   `json:"cid"`
		Uid string   `json:"uid"`
		Scp []string `json:"scp"`
		Sub string   `json:"sub"`
	}{
		Ver: 1,
		JTI: "AT.qXp3dYk8r2ZwF1mL0cN7vB4sH6tJ9aE5gU_yO-iRkQc",
		Iss: benchIssuer,
		Aud: benchAudience,
		Iat: now,
		Exp: now + 3600,
		Cid: "0oa8f5j3ecqd7h2Kx5d7",
		Uid: "00u1a2b3c4d5e6f7g8h9",
		Scp: []string{"openid", benchScope, "orders:write"},
		Sub: "service-account@example.com",
	})
	if err != nil {
		b.Fatal(err)
	}
	enc := base64.RawURLEncoding
	input := []byte(enc.EncodeToString(hdr) + "." + enc.EncodeToString(payload))
	sig := sign(input)
	t := &benchToken{alg: alg, tok: string(input) + "." + enc.EncodeToString(sig), input: input, sig: sig, pub: pub, verify: verify}
	if !verify(pub, input, sig) {
		b.Fatalf("%s: raw verify rejects the fixture token", alg)
	}
	return t
}

func rawRS256(pub any, input, sig []byte) bool {
	h := sha256.Sum256(input)
	return rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), crypto.SHA256, h[:], sig) == nil
}

func rawES256(pub any, input, sig []byte) bool {
	if len(sig) != 64 {
		return false
	}
	h := sha256.Sum256(input)
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:])
	return ecdsa.Verify(pub.(*ecdsa.PublicKey), h[:], r, s)
}

func rawEdDSA(pub any, input, sig []byte) bool {
	return ed25519.Verify(pub.(ed25519.PublicKey), input, sig)
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loop runs op b.N times (b.Loop) and reports cpu-ns/op.
func loop(b *testing.B, op func()) {
	b.ReportAllocs()
	start := cpuTime(b)
	n := 0
	for b.Loop() {
		op()
		n++
	}
	b.ReportMetric(float64(cpuTime(b)-start)/float64(n), "cpu-ns/op")
}

var sinkBool bool

// BenchmarkRawVerify is the floor: the standard library's verify of the
// same signing input and signature, hash included, nothing else.
func BenchmarkRawVerify(b *testing.B) {
	f := getFixture(b)
	for _, t := range f.tokens {
		b.Run(t.alg.String(), func(b *testing.B) {
			loop(b, func() { sinkBool = t.verify(t.pub, t.input, t.sig) })
			if !sinkBool {
				b.Fatal("verify failed")
			}
		})
	}
}

func newBenchValidator(f *benchFixture, cacheSize int) *validator.Validator {
	cfg := validator.Config{
		Issuers: []*validator.Issuer{{
			URL:        benchIssuer,
			Audiences:  []string{benchAudience},
			Algorithms: []jwa.SignatureAlgorithm{jwa.RS256, jwa.ES256, jwa.EdDSA},
			Keys:       f.keys,
		}},
		Skew:      validator.DefaultSkew,
		Scopes:    []string{benchScope},
		CacheSize: cacheSize,
	}
	if err := validator.Check(cfg); err != nil {
		panic(err)
	}
	return validator.New(cfg)
}

var sinkResult *validator.Result

// BenchmarkValidate is the full check of a route (signature, issuer,
// audience, lifetime, one required scope) on the same tokens: uncached
// (every call verifies) and cached (the same token again and again).
func BenchmarkValidate(b *testing.B) {
	f := getFixture(b)
	ctx := context.Background()
	for _, t := range f.tokens {
		for _, c := range []struct {
			name string
			size int
		}{{"uncached", 0}, {"cached", validator.DefaultCacheSize}} {
			b.Run(t.alg.String()+"/"+c.name, func(b *testing.B) {
				v := newBenchValidator(f, c.size)
				// Warm up: fills the cache and the key index, and checks
				// the token is accepted at all.
				if _, fail := v.Validate(ctx, t.tok, nil); fail != nil {
					b.Fatalf("token refused: %s", fail.Reason)
				}
				loop(b, func() {
					res, fail := v.Validate(ctx, t.tok, nil)
					if fail != nil {
						b.Fatalf("token refused: %s", fail.Reason)
					}
					sinkResult = res
				})
			})
		}
	}
}
