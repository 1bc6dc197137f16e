package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Supported signing algorithms (DESIGN.md: RS256 default, ES256, EdDSA).
var Supported = []jwa.SignatureAlgorithm{jwa.RS256, jwa.ES256, jwa.EdDSA}

// ParseAlg returns the algorithm named s, or an error naming the choices.
func ParseAlg(s string) (jwa.SignatureAlgorithm, error) {
	if s == "" {
		return jwa.RS256, nil
	}
	for _, a := range Supported {
		if string(a) == s {
			return a, nil
		}
	}
	return "", fmt.Errorf("unsupported signing algorithm %q (use RS256, ES256 or EdDSA)", s)
}

// generate makes a private JWK for alg with kid = its RFC 7638 thumbprint.
func generate(alg jwa.SignatureAlgorithm) (jwk.Key, error) {
	var raw crypto.PrivateKey
	var err error
	switch alg {
	case jwa.RS256:
		raw, err = rsa.GenerateKey(rand.Reader, 2048)
	case jwa.ES256:
		raw, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jwa.EdDSA:
		_, raw, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("unsupported signing algorithm %q", alg)
	}
	if err != nil {
		return nil, err
	}
	k, err := jwk.FromRaw(raw)
	if err != nil {
		return nil, err
	}
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	for name, v := range map[string]any{
		jwk.KeyIDKey:     base64.RawURLEncoding.EncodeToString(tp),
		jwk.AlgorithmKey: alg,
		jwk.KeyUsageKey:  jwk.ForSignature,
	} {
		if err := k.Set(name, v); err != nil {
			return nil, err
		}
	}
	return k, nil
}
