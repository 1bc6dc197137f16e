package dpop

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
)

// t0 is the tests' "now".
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	reqMethod = "POST"
	reqURL    = "https://api.example.com/oauth2/default/v1/token"
)

// signer is a proof key and its algorithm.
type signer struct {
	alg  jwa.SignatureAlgorithm
	priv any
	pub  jwk.Key
}

var (
	keysOnce sync.Once
	keys     map[string]*signer
)

// signers are generated once per test binary: RSA keys are slow.
func signers() map[string]*signer {
	keysOnce.Do(func() {
		rsa1, err := rsa.GenerateKey(rand.Reader, 2048)
		must(err)
		rsa2, err := rsa.GenerateKey(rand.Reader, 2048)
		must(err)
		ec1, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(err)
		ec2, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(err)
		ec384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		must(err)
		_, ed, err := ed25519.GenerateKey(rand.Reader)
		must(err)
		mk := func(alg jwa.SignatureAlgorithm, priv any) *signer {
			pub, err := jwk.PublicRawKeyOf(priv)
			must(err)
			k, err := jwk.FromRaw(pub)
			must(err)
			return &signer{alg: alg, priv: priv, pub: k}
		}
		keys = map[string]*signer{
			"ES256":  mk(jwa.ES256, ec1),
			"ES256b": mk(jwa.ES256, ec2),
			"ES384":  mk(jwa.ES384, ec384),
			"RS256":  mk(jwa.RS256, rsa1),
			"RS256b": mk(jwa.RS256, rsa2),
			"PS256":  mk(jwa.PS256, rsa1),
			"EdDSA":  mk(jwa.EdDSA, ed),
		}
	})
	return keys
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	must(err)
	return b
}

// jwkMap is k as a JSON object, for a jwk header.
func jwkMap(k any) map[string]any {
	var m map[string]any
	must(json.Unmarshal(mustJSON(k), &m))
	return m
}

// signRaw signs the exact header and payload bytes given, with jwx.
func signRaw(t testing.TB, alg jwa.SignatureAlgorithm, key any, hdr, payload []byte) string {
	t.Helper()
	in := b64(hdr) + "." + b64(payload)
	s, err := jws.NewSigner(alg)
	if err != nil {
		t.Fatalf("signer %s: %v", alg, err)
	}
	sig, err := s.Sign([]byte(in), key)
	if err != nil {
		t.Fatalf("sign %s: %v", alg, err)
	}
	return in + "." + b64(sig)
}

// newJTI is a fresh jti.
func newJTI() string {
	var b [16]byte
	_, err := rand.Read(b[:])
	must(err)
	return b64(b[:])
}

// stdClaims are valid claims for reqMethod and reqURL at t0; mods change
// them (a nil value deletes the claim).
func stdClaims(mods ...map[string]any) map[string]any {
	c := map[string]any{"jti": newJTI(), "htm": reqMethod, "htu": reqURL, "iat": t0.Unix()}
	return apply(c, mods)
}

func apply(m map[string]any, mods []map[string]any) map[string]any {
	for _, mod := range mods {
		for k, v := range mod {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
	}
	return m
}

// header is the proof header of s; mods change it.
func (s *signer) header(mods ...map[string]any) map[string]any {
	h := map[string]any{"typ": Typ, "alg": s.alg.String(), "jwk": jwkMap(s.pub)}
	return apply(h, mods)
}

// proof is a proof of s with claims and header mods.
func (s *signer) proof(t testing.TB, claims map[string]any, hdr ...map[string]any) string {
	t.Helper()
	return signRaw(t, s.alg, s.priv, mustJSON(s.header(hdr...)), mustJSON(claims))
}

// verifier is a Verifier at clk with o's other options.
func verifier(t testing.TB, clk *testkit.Clock, o Options) *Verifier {
	t.Helper()
	if o.Now == nil {
		o.Now = clk.Now
	}
	v, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// wantError asserts err is an *Error with code and reason.
func wantError(t testing.TB, err error, code, reason string) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v, want %s/%s", err, code, reason)
	}
	if e.Code != code || e.Reason != reason {
		t.Fatalf("error = %s/%s, want %s/%s", e.Code, e.Reason, code, reason)
	}
	return e
}
