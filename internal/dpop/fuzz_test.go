package dpop

import (
	"context"
	"crypto/ed25519"
	"slices"
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
	for _, p := range fixedProofs {
		f.Add(p)
	}
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
		if err == nil && proof != valid && !slices.Contains(fixedProofs, proof) {
			t.Fatalf("accepted a variant: %q", proof)
		}
	})
}

// fixedProofs are ES256 and RS256 proofs minted once (for reqMethod,
// reqURL, t0, ath of "tok"), so that the fuzzer explores the EC and RSA
// paths with the same seeds in every worker.
var fixedProofs = []string{
	"eyJhbGciOiJFUzI1NiIsImp3ayI6eyJjcnYiOiJQLTI1NiIsImt0eSI6IkVDIiwieCI6IjVoSFQzSWdnTGFQdU9ZUmtBSWMzdk5VdnMydERkUVRXaUN3T0c0YkZucmsiLCJ5IjoiMS1SYkRQSmRQZFNWdHliT0JFMlNQdVIwT3VKbWNGVEZVaGpJeTJBNkhSVSJ9LCJ0eXAiOiJkcG9wK2p3dCJ9.eyJhdGgiOiJHblowNjA3bmpmZmhyRU9hazhQNmpqeVVWNFRVM3NuOWpqQVJjNHN2SFdJIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vYXBpLmV4YW1wbGUuY29tL29hdXRoMi9kZWZhdWx0L3YxL3Rva2VuIiwiaWF0IjoxNzcyMzY2NDAwLCJqdGkiOiJmaXhlZCJ9.jsX1266Sas4g1zXdvtKeImslIi14rsdBlmJ1eLaeHsddpDJaO-4PD730T7SRXRAjmii7ivMAOGgoiAR7_BrXcQ",
	"eyJhbGciOiJSUzI1NiIsImp3ayI6eyJlIjoiQVFBQiIsImt0eSI6IlJTQSIsIm4iOiJweUJINXN1WVVGVVRGdGI0RmtQdVRWYWdwSW5LZldOWC1sdGtKMWxQT2Fpa2FqUFpKQURBeTFPVFAzYkp1MkxTdlU5M3dSQzQ4RXZ3dnAwM2Z1Z3FpcHJfQTBTYTBXR3VEWTB3SDRrS0hpa3lvZXpsbnp0MUNaWjRIM1hEYngtanBqNUZNbG1YVVU1UWxMdHBHb09iTFFYNmkzZl9aamxnMXZzY2ZMN1JPVlZ1Nl9xV3VpU0NvMjg2NG9fMEVmZExiMHlGMjRvcHFGWHltOEFqX2tia1dUdDh1VW9JWjdsZS1WOTNkQmlsZ3U3RWhrb2ZRWFBZaUJhYUV4QnNFc3Vkd2wwNW15U3VWczRhTWE0cjFvZGxQZ3REd244SkFFYnFGNElUaGdlOXQzRWpKTFRXRXdCcDFYVnMwa3BHUm1wWlhnRWdESU1jR25Nd19QeTRhRHpuX3cifSwidHlwIjoiZHBvcCtqd3QifQ.eyJhdGgiOiJHblowNjA3bmpmZmhyRU9hazhQNmpqeVVWNFRVM3NuOWpqQVJjNHN2SFdJIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vYXBpLmV4YW1wbGUuY29tL29hdXRoMi9kZWZhdWx0L3YxL3Rva2VuIiwiaWF0IjoxNzcyMzY2NDAwLCJqdGkiOiJmaXhlZCJ9.Qe9q6Plf7T9xQF2TDP7upv_hsRk8M0clDwUaReVmqlVvwKWykTnG4GLVNuUu9TA3lGc6RRVR-0dczJIpFZ-DQDBw32y3CH9A7paDqIEyBux7uKolHd2aXwYOGlgLyLO5LJ-QLOEa8a0s2PNv9nfn9Ji7dor0gkWzrCmOUwgh6DwTYNNNnGPgSq2MgPL2WR1BJe3tunfaOOEb5_Gn1G5s7BsqIJ_4HK9UQB1xa7xttaSudqhmRQXZ4vV548597D_aB-zNTK44QjvfcgunN8wdMiBfmzckOX2KI3OGJ-lyOFMHbNDx1DxtdnwwlRu5A5CCU4X8K2-V8UZfCTBlV9uwkg",
}

// TestFixedProofsValid: the fuzz seeds are valid, so the fuzzer starts
// from the accepting path.
func TestFixedProofsValid(t *testing.T) {
	v := verifier(t, testkit.NewClock(t0), Options{})
	for _, p := range fixedProofs {
		if _, err := v.Verify(context.Background(), p, reqMethod, reqURL, "tok"); err != nil {
			t.Fatal(err)
		}
	}
}
