package dpop

import (
	"context"
	"crypto/ed25519"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
)

// FuzzVerify: Verify never panics, and of the variants of a valid proof
// only the proof itself is accepted (strict base64url leaves one
// spelling per byte string).
//
//	go test -run '^$' -fuzz FuzzVerify -fuzztime 60s ./internal/dpop/
func FuzzVerify(f *testing.F) {
	clk := testkit.NewClock(t0)
	// Ed25519 signatures are deterministic, so every fuzz worker process
	// mints the same proof.
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	pub, err := jwk.FromRaw(priv.Public())
	if err != nil {
		f.Fatal(err)
	}
	s := &signer{alg: jwa.EdDSA, priv: priv, pub: pub}
	valid := s.proof(f, stdClaims(map[string]any{"jti": "fixed", "ath": ATH("tok")}))
	f.Add(valid)
	f.Add("e30.e30.e30")
	f.Fuzz(func(t *testing.T, proof string) {
		v, err := New(Options{Now: clk.Now, Algorithms: Allowed})
		if err != nil {
			t.Fatal(err)
		}
		p, err := v.Verify(context.Background(), proof, reqMethod, reqURL, "tok")
		if err == nil && p == nil {
			t.Fatal("no proof and no error")
		}
		if err == nil && proof != valid {
			t.Fatalf("accepted a variant: %q", proof)
		}
	})
}
