// Package keyset supplies the verification keys of token issuers to the
// gateway: fetched from an issuer's published JWKS (discovered through
// its metadata), or read in process from an issuer in the same Caddy.
package keyset

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Key is a verification key ready for use: its raw public key and the
// algorithms it may verify.
type Key struct {
	KID string
	// Raw is *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey.
	Raw any
	// Algs are the signature algorithms this key may verify: the key's
	// own `alg` when published, otherwise those its type implies. Never
	// an HMAC algorithm.
	Algs []jwa.SignatureAlgorithm
}

// Allows reports whether the key may verify alg.
func (k *Key) Allows(alg jwa.SignatureAlgorithm) bool {
	for _, a := range k.Algs {
		if a == alg {
			return true
		}
	}
	return false
}

// Source provides the keys of one issuer.
type Source interface {
	// Key returns the key with id kid. A kid the source does not know
	// yields ErrUnknownKID (after at most one rate-limited refresh);
	// keys that cannot be obtained at all yield ErrUnavailable.
	Key(ctx context.Context, kid string) (*Key, error)
}

// Typed is implemented by a Source that knows whether its issuer sets
// `typ` "at+jwt" on every access token (RFC 9068 section 2.1). For
// such an issuer the validator requires that `typ` (RFC 9068 section
// 4); for any other it falls back on the claims only ID tokens carry.
type Typed interface {
	TypesAccessTokens() bool
}

var (
	// ErrUnknownKID means the issuer does not publish a key with that id.
	ErrUnknownKID = errors.New("unknown key id")
	// ErrUnavailable means no keys could be obtained from the issuer.
	ErrUnavailable = errors.New("issuer keys unavailable")
)

// Index converts a JWK set into usable keys by id. Keys without a kid,
// symmetric keys, private keys, keys not for signatures and keys of
// unsupported types are skipped: a token can only ever be checked
// against a public signature key the issuer published.
func Index(set jwk.Set) map[string]*Key {
	out := make(map[string]*Key, set.Len())
	for i := range set.Len() {
		jk, _ := set.Key(i)
		if jk.KeyID() == "" || (jk.KeyUsage() != "" && jk.KeyUsage() != string(jwk.ForSignature)) {
			continue
		}
		k, err := convert(jk)
		if err != nil {
			continue
		}
		out[k.KID] = k
	}
	return out
}

func convert(jk jwk.Key) (*Key, error) {
	var raw any
	switch jk.(type) {
	case jwk.RSAPublicKey, jwk.ECDSAPublicKey, jwk.OKPPublicKey:
	default:
		return nil, fmt.Errorf("not a public signature key")
	}
	if err := jk.Raw(&raw); err != nil {
		return nil, err
	}
	var implied []jwa.SignatureAlgorithm
	switch pk := raw.(type) {
	case *rsa.PublicKey:
		if pk.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key shorter than 2048 bits")
		}
		implied = []jwa.SignatureAlgorithm{jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512}
	case *ecdsa.PublicKey:
		switch pk.Curve {
		case elliptic.P256():
			implied = []jwa.SignatureAlgorithm{jwa.ES256}
		case elliptic.P384():
			implied = []jwa.SignatureAlgorithm{jwa.ES384}
		case elliptic.P521():
			implied = []jwa.SignatureAlgorithm{jwa.ES512}
		default:
			return nil, fmt.Errorf("unsupported curve")
		}
	case ed25519.PublicKey:
		// ed25519.Verify panics on a key of another length.
		if len(pk) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("Ed25519 key of %d bytes", len(pk))
		}
		implied = []jwa.SignatureAlgorithm{jwa.EdDSA}
	default:
		return nil, fmt.Errorf("unsupported key type %T", raw)
	}
	k := &Key{KID: jk.KeyID(), Raw: raw, Algs: implied}
	if a := jk.Algorithm().String(); a != "" {
		// A published alg narrows the choice, and must fit the key type.
		alg := jwa.SignatureAlgorithm(a)
		ok := false
		for _, x := range implied {
			ok = ok || x == alg
		}
		if !ok {
			return nil, fmt.Errorf("alg %s does not fit the key type", a)
		}
		k.Algs = []jwa.SignatureAlgorithm{alg}
	}
	return k, nil
}
