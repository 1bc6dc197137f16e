package caddymodule

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// loadAssertionKey reads the PEM private key of private_key_jwt: RSA (at
// least 2048 bits), P-256 or Ed25519.
func loadAssertionKey(path, kid string) (jwk.Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key, err := jwk.ParseKey(b, jwk.WithPEM(true))
	if err != nil {
		return nil, fmt.Errorf("%s: not a PEM private key", path)
	}
	switch key.(type) {
	case jwk.RSAPrivateKey, jwk.ECDSAPrivateKey, jwk.OKPPrivateKey:
	default:
		return nil, fmt.Errorf("%s: not an RSA, EC or Ed25519 private key", path)
	}
	if _, err := assertionAlg(key); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if kid != "" {
		if err := key.Set(jwk.KeyIDKey, kid); err != nil {
			return nil, err
		}
	}
	return key, nil
}

// assertionAlg is the signature algorithm of key.
func assertionAlg(key jwk.Key) (jwa.SignatureAlgorithm, error) {
	switch k := key.(type) {
	case jwk.RSAPrivateKey:
		if len(k.N())*8 < 2048 {
			return "", fmt.Errorf("RSA key shorter than 2048 bits")
		}
		return jwa.RS256, nil
	case jwk.ECDSAPrivateKey:
		if k.Crv() == jwa.P256 {
			return jwa.ES256, nil
		}
	case jwk.OKPPrivateKey:
		if k.Crv() == jwa.Ed25519 {
			return jwa.EdDSA, nil
		}
	}
	return "", fmt.Errorf("unsupported key (want RSA, P-256 or Ed25519)")
}

// clientAssertion is a private_key_jwt assertion for the token endpoint
// aud (RFC 7523 section 3: iss and sub the client id, a jti, a short
// exp).
func clientAssertion(key jwk.Key, clientID, aud string) (string, error) {
	alg, err := assertionAlg(key)
	if err != nil {
		return "", err
	}
	var id [16]byte
	_, _ = rand.Read(id[:])
	now := time.Now()
	tok, err := jwt.NewBuilder().Issuer(clientID).Subject(clientID).Audience([]string{aud}).
		JwtID(hex.EncodeToString(id[:])).IssuedAt(now).Expiration(now.Add(time.Minute)).Build()
	if err != nil {
		return "", err
	}
	b, err := jwt.Sign(tok, jwt.WithKey(alg, key))
	if err != nil {
		return "", fmt.Errorf("signing the client assertion: %w", err)
	}
	return string(b), nil
}
