package validator_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/apiaccess/caddy-apiaccess/caddymodule/keyset"
	"github.com/apiaccess/caddy-apiaccess/caddymodule/validator"
	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
)

const (
	issURL   = "https://as.example.com/oauth2/default"
	orgURL   = "https://as.example.com" // the org AS: never configured here
	otherURL = "https://other.example.net/oauth2/aus123"
	audience = "api://default"
)

// t0 is the fixed "now" of every test clock.
var t0 = time.Unix(1_700_000_000, 0)

// clock is the test kit's settable clock.
type clock = testkit.Clock

func newClock() *clock { return testkit.NewClock(t0) }

// testKeys are generated once per test binary (RSA generation is slow
// under -race).
type testKeys struct {
	rsa1     *rsa.PrivateKey // kid rsa1, no published alg: all RSA algs implied
	rsa2     *rsa.PrivateKey // kid rsa2, published alg RS256
	ec1      *ecdsa.PrivateKey
	ed1      ed25519.PrivateKey
	attacker *rsa.PrivateKey
	attackEC *ecdsa.PrivateKey
	attackEd ed25519.PrivateKey
	other    *rsa.PrivateKey // the other issuer's key, published under kid "rsa1" too

	set      jwk.Set // issURL's public keys
	otherSet jwk.Set // otherURL's public keys
}

var (
	keysOnce sync.Once
	keysVal  *testKeys
)

func mustRSA(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return k
}

func mustEC() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

func mustEd() ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

// publicJWK converts a raw public key into a JWK with kid (and alg when
// not empty).
func publicJWK(raw any, kid, alg string) jwk.Key {
	k, err := jwk.FromRaw(raw)
	if err != nil {
		panic(err)
	}
	if err := k.Set(jwk.KeyIDKey, kid); err != nil {
		panic(err)
	}
	if alg != "" {
		if err := k.Set(jwk.AlgorithmKey, jwa.SignatureAlgorithm(alg)); err != nil {
			panic(err)
		}
	}
	return k
}

func setOf(keys ...jwk.Key) jwk.Set {
	s := jwk.NewSet()
	for _, k := range keys {
		if err := s.AddKey(k); err != nil {
			panic(err)
		}
	}
	return s
}

func getKeys() *testKeys {
	keysOnce.Do(func() {
		k := &testKeys{
			rsa1: mustRSA(2048), rsa2: mustRSA(2048), attacker: mustRSA(2048), other: mustRSA(2048),
			ec1: mustEC(), attackEC: mustEC(), ed1: mustEd(), attackEd: mustEd(),
		}
		k.set = setOf(
			publicJWK(&k.rsa1.PublicKey, "rsa1", ""),
			publicJWK(&k.rsa2.PublicKey, "rsa2", "RS256"),
			publicJWK(&k.ec1.PublicKey, "ec1", ""),
			publicJWK(k.ed1.Public(), "ed1", ""),
		)
		k.otherSet = setOf(publicJWK(&k.other.PublicKey, "rsa1", ""))
		keysVal = k
	})
	return keysVal
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// signRaw signs the exact header and payload bytes given.
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

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// mint signs claims with a header {"alg":alg,"kid":kid} plus extra.
func mint(t testing.TB, alg jwa.SignatureAlgorithm, key any, kid string, claims map[string]any, extra ...map[string]any) string {
	t.Helper()
	h := map[string]any{"alg": string(alg), "typ": "at+jwt"}
	if kid != "" {
		h["kid"] = kid
	}
	for _, e := range extra {
		for k, v := range e {
			if v == nil {
				delete(h, k)
			} else {
				h[k] = v
			}
		}
	}
	return signRaw(t, alg, key, mustJSON(h), mustJSON(claims))
}

// stdClaims are valid claims for issURL at t0; mods change them (a nil
// value deletes the claim).
func stdClaims(mods ...map[string]any) map[string]any {
	c := map[string]any{
		"iss":       issURL,
		"aud":       audience,
		"sub":       "user1",
		"cid":       "client1",
		"exp":       t0.Add(time.Hour).Unix(),
		"iat":       t0.Add(-time.Minute).Unix(),
		"nbf":       t0.Add(-time.Minute).Unix(),
		"jti":       "id-1",
		"scp":       []string{"read", "write"},
		"groups":    []string{"eng", "billing"},
		"level":     5,
		"admin":     true,
		"dept":      "billing",
		"tenant_id": 42,
	}
	for _, m := range mods {
		for k, v := range m {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
	}
	return c
}

// good is a valid RS256 token from issURL.
func good(t testing.TB, mods ...map[string]any) string {
	return mint(t, jwa.RS256, getKeys().rsa1, "rsa1", stdClaims(mods...))
}

// countingSource counts the Key calls reaching a key source.
type countingSource struct {
	src keyset.Source
	n   atomic.Int64
}

func (c *countingSource) Key(ctx context.Context, kid string) (*keyset.Key, error) {
	c.n.Add(1)
	return c.src.Key(ctx, kid)
}

func inProcess(set jwk.Set) *keyset.InProcess {
	return keyset.NewInProcess(func() jwk.Set { return set }, false)
}

// baseConfig accepts issURL (RS256, ES256, EdDSA) and otherURL (RS256),
// audience api://default, a 30s skew, no cache, and the clock given.
func baseConfig(clk *clock) validator.Config {
	k := getKeys()
	return validator.Config{
		Issuers: []*validator.Issuer{
			{URL: issURL, Audiences: []string{audience}, Algorithms: []jwa.SignatureAlgorithm{jwa.RS256, jwa.ES256, jwa.EdDSA}, Keys: inProcess(k.set)},
			{URL: otherURL, Audiences: []string{audience}, Algorithms: []jwa.SignatureAlgorithm{jwa.RS256}, Keys: inProcess(k.otherSet)},
		},
		Skew: 30 * time.Second,
		Now:  clk.Now,
	}
}

// validate runs Validate, turning a panic into a test error.
func validate(t testing.TB, v *validator.Validator, tok string, r *http.Request) (res *validator.Result, f *validator.Failure) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Errorf("Validate panicked: %v", p)
			res, f = nil, &validator.Failure{Status: -1, Reason: "PANIC"}
		}
	}()
	res, f = v.Validate(context.Background(), tok, r)
	if (res == nil) == (f == nil) {
		t.Errorf("Validate returned result %v and failure %v: exactly one must be set", res, f)
	}
	return res, f
}

// wantInvalid asserts a 401 invalid_token failure with reason.
func wantInvalid(t testing.TB, f *validator.Failure, reason string) {
	t.Helper()
	if f == nil {
		t.Fatalf("token accepted; want 401 invalid_token %s", reason)
	}
	if f.Status != http.StatusUnauthorized || f.Code != "invalid_token" || f.Reason != reason {
		t.Fatalf("got %d %q %q; want 401 invalid_token %q", f.Status, f.Code, f.Reason, reason)
	}
	if f.Error() != f.Reason {
		t.Fatalf("Error() = %q, want the reason %q", f.Error(), f.Reason)
	}
}

// wantForbidden asserts a 403 insufficient_scope failure with reason.
func wantForbidden(t testing.TB, f *validator.Failure, reason string) {
	t.Helper()
	if f == nil {
		t.Fatalf("token accepted; want 403 insufficient_scope %s", reason)
	}
	if f.Status != http.StatusForbidden || f.Code != "insufficient_scope" || f.Reason != reason {
		t.Fatalf("got %d %q %q; want 403 insufficient_scope %q", f.Status, f.Code, f.Reason, reason)
	}
}

func wantOK(t testing.TB, res *validator.Result, f *validator.Failure) {
	t.Helper()
	if f != nil {
		t.Fatalf("token refused: %d %q %q", f.Status, f.Code, f.Reason)
	}
	if res == nil || res.Issuer == nil {
		t.Fatalf("no result")
	}
}
