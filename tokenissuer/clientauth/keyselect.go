package clientauth

import (
	"slices"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// verificationKeys are the keys of set that may verify an assertion
// signed with alg and naming kid:
//
//   - only keys meant for signatures: `use` absent or "sig", `key_ops`
//     absent or holding "verify" (RFC 7517 sections 4.2 and 4.3); an
//     encryption key is never a verification key;
//   - only keys that fit alg: its key type and curve (RFC 7518
//     section 3.1), and the key's own `alg` when it states one;
//   - a named kid selects only keys with that kid (RFC 7515 section
//     4.1.4); an unknown kid selects none, rather than every key;
//   - without a kid, the one fitting key, and none when several fit:
//     the signer must say which key it used (jwx's WithUseDefault
//     rule, applied after the filters above).
func verificationKeys(set jwk.Set, kid string, alg jwa.SignatureAlgorithm) []jwk.Key {
	var out []jwk.Key
	for i := range set.Len() {
		k, _ := set.Key(i)
		if kid != "" && k.KeyID() != kid {
			continue
		}
		if forSignatures(k) && fitsAlg(k, alg) {
			out = append(out, k)
		}
	}
	if kid == "" && len(out) > 1 {
		return nil
	}
	return out
}

// forSignatures reports whether k's `use` and `key_ops` allow
// verifying signatures.
func forSignatures(k jwk.Key) bool {
	if u := k.KeyUsage(); u != "" && u != string(jwk.ForSignature) {
		return false
	}
	if ops := k.KeyOps(); len(ops) > 0 && !slices.Contains(ops, jwk.KeyOpVerify) {
		return false
	}
	return true
}

// fitsAlg reports whether k can verify a signature made with alg.
func fitsAlg(k jwk.Key, alg jwa.SignatureAlgorithm) bool {
	if ka := k.Algorithm().String(); ka != "" && ka != alg.String() {
		return false
	}
	switch alg {
	case jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512:
		return k.KeyType() == jwa.RSA
	case jwa.ES256, jwa.ES384, jwa.ES512:
		ec, ok := k.(jwk.ECDSAPublicKey)
		return ok && ec.Crv() == ecCurve[alg]
	case jwa.EdDSA:
		okp, ok := k.(jwk.OKPPublicKey)
		return ok && okp.Crv() == jwa.Ed25519
	}
	return false
}

var ecCurve = map[jwa.SignatureAlgorithm]jwa.EllipticCurveAlgorithm{
	jwa.ES256: jwa.P256, jwa.ES384: jwa.P384, jwa.ES512: jwa.P521,
}

// hasSignatureKey reports whether set has a key meant for signatures.
func hasSignatureKey(set jwk.Set) bool {
	for i := range set.Len() {
		if k, _ := set.Key(i); forSignatures(k) {
			return true
		}
	}
	return false
}
