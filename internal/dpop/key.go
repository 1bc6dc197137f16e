package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// MinRSABits is the smallest RSA modulus a proof key may have
// (RFC 7518 section 3.3 asks for 2048 bits or more).
const MinRSABits = 2048

// MaxRSABits is the largest.
const MaxRSABits = 8192

// privateMembers are the JWK members of private or symmetric keys
// (RFC 7518 sections 6.2.2, 6.3.2, 6.4.1; RFC 8037 section 2): the jwk
// header must hold a public key only (RFC 9449 section 4.3, check 7).
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// proofKey checks the jwk header of a proof signed with alg and returns
// the key and its raw public key for the verifier.
func proofKey(m map[string]any, alg jwa.SignatureAlgorithm) (jwk.Key, any, *Error) {
	for _, name := range privateMembers {
		if _, ok := m[name]; ok {
			return nil, nil, invalid(ReasonPrivateKey)
		}
	}
	switch kty, _ := m["kty"].(string); kty {
	case "RSA", "EC", "OKP":
	default: // "oct" (symmetric) or unknown
		return nil, nil, invalid(ReasonBadKey)
	}
	if use, ok := m["use"]; ok && use != "sig" {
		return nil, nil, invalid(ReasonBadKey)
	}
	if a, ok := m["alg"]; ok && a != alg.String() {
		return nil, nil, invalid(ReasonKeyAlgMismatch)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, nil, invalid(ReasonBadKey)
	}
	k, err := jwk.ParseKey(b)
	if err != nil {
		return nil, nil, invalid(ReasonBadKey)
	}
	switch k.(type) {
	case jwk.RSAPublicKey, jwk.ECDSAPublicKey, jwk.OKPPublicKey:
	default:
		return nil, nil, invalid(ReasonPrivateKey)
	}
	var raw any
	if err := k.Raw(&raw); err != nil {
		return nil, nil, invalid(ReasonBadKey)
	}
	if e := fits(raw, alg); e != nil {
		return nil, nil, e
	}
	return k, raw, nil
}

// fits: the algorithm must fit the key (RFC 8725 section 3.1), so an EC
// key never verifies RS256 nor a P-384 key ES256.
func fits(raw any, alg jwa.SignatureAlgorithm) *Error {
	switch alg {
	case jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512:
		k, ok := raw.(*rsa.PublicKey)
		if !ok {
			return invalid(ReasonKeyAlgMismatch)
		}
		if k.N.BitLen() < MinRSABits {
			return invalid(ReasonWeakKey)
		}
		if k.N.BitLen() > MaxRSABits {
			return invalid(ReasonBadKey) // costly to verify with, for nothing
		}
		return nil
	case jwa.ES256, jwa.ES384, jwa.ES512:
		k, ok := raw.(*ecdsa.PublicKey)
		if !ok || k.Curve != curves[alg] {
			return invalid(ReasonKeyAlgMismatch)
		}
		return nil
	case jwa.EdDSA:
		k, ok := raw.(ed25519.PublicKey)
		if !ok {
			return invalid(ReasonKeyAlgMismatch)
		}
		if len(k) != ed25519.PublicKeySize {
			return invalid(ReasonBadKey) // ed25519.Verify would panic
		}
		return nil
	}
	return invalid(ReasonAlgNotAllowed)
}

var curves = map[jwa.SignatureAlgorithm]elliptic.Curve{
	jwa.ES256: elliptic.P256(), jwa.ES384: elliptic.P384(), jwa.ES512: elliptic.P521(),
}

// Thumbprint is the RFC 7638 SHA-256 thumbprint of k, base64url without
// padding: the value of cnf.jkt (RFC 9449 section 6.1). For a private
// key it is the thumbprint of its public key.
func Thumbprint(k jwk.Key) (string, error) {
	b, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
