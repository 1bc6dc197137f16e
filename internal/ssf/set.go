package ssf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// TypSET is the SET media type for the JOSE typ header (RFC 8417
// section 2.3, SSF 4.1.1).
const TypSET = "secevent+jwt"

// DefaultAlgorithms are the SET signature algorithms a Verifier accepts
// unless told otherwise: asymmetric only, as for access tokens.
var DefaultAlgorithms = []jwa.SignatureAlgorithm{jwa.RS256, jwa.ES256, jwa.EdDSA}

// asymmetric lists every algorithm Sign uses and a Verifier may allow.
var asymmetric = []jwa.SignatureAlgorithm{
	jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512,
	jwa.ES256, jwa.ES384, jwa.ES512, jwa.EdDSA,
}

// Sign makes ev a SET from iss to aud, signed with key (a private key;
// its alg, or the usual one for its type, and its kid go in the header).
func Sign(ev Event, key jwk.Key, iss, aud string) (string, error) {
	if aud == "" {
		return "", fmt.Errorf("%w: aud is required", ErrEvent)
	}
	c, err := ev.claims(iss, []string{aud})
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	alg, err := keyAlgorithm(key)
	if err != nil {
		return "", err
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.TypeKey, TypSET); err != nil {
		return "", err
	}
	if kid := key.KeyID(); kid != "" {
		if err := hdr.Set(jws.KeyIDKey, kid); err != nil {
			return "", err
		}
	}
	out, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("ssf: sign: %w", err)
	}
	return string(out), nil
}

// keyAlgorithm is the algorithm key signs with.
func keyAlgorithm(key jwk.Key) (jwa.SignatureAlgorithm, error) {
	if a := key.Algorithm().String(); a != "" {
		alg := jwa.SignatureAlgorithm(a)
		if !slices.Contains(asymmetric, alg) || !fits(key, alg) {
			return "", fmt.Errorf("ssf: key alg %q cannot sign SETs", a)
		}
		return alg, nil
	}
	switch key.KeyType() {
	case jwa.RSA:
		return jwa.RS256, nil
	case jwa.EC:
		if crv, ok := key.Get("crv"); ok {
			switch crv {
			case jwa.P256:
				return jwa.ES256, nil
			case jwa.P384:
				return jwa.ES384, nil
			case jwa.P521:
				return jwa.ES512, nil
			}
		}
	case jwa.OKP:
		if crv, ok := key.Get("crv"); ok && crv == jwa.Ed25519 {
			return jwa.EdDSA, nil
		}
	}
	return "", fmt.Errorf("ssf: a %s key cannot sign SETs", key.KeyType())
}

// fits tells whether alg is an algorithm of key's type and curve, so an
// RSA key is never taken for an HMAC secret nor a P-256 key for ES384.
func fits(key jwk.Key, alg jwa.SignatureAlgorithm) bool {
	crv, _ := key.Get("crv")
	switch key.KeyType() {
	case jwa.RSA:
		return strings.HasPrefix(alg.String(), "RS") || strings.HasPrefix(alg.String(), "PS")
	case jwa.EC:
		return (alg == jwa.ES256 && crv == jwa.P256) || (alg == jwa.ES384 && crv == jwa.P384) || (alg == jwa.ES512 && crv == jwa.P521)
	case jwa.OKP:
		return alg == jwa.EdDSA && crv == jwa.Ed25519
	}
	return false
}

// Verification failures; errors wrap one of them.
var (
	ErrMalformed      = errors.New("ssf: malformed SET")
	ErrNotSET         = errors.New("ssf: not a SET (typ)")
	ErrAlgorithm      = errors.New("ssf: algorithm not allowed")
	ErrKey            = errors.New("ssf: no key for the SET")
	ErrSignature      = errors.New("ssf: bad signature")
	ErrIssuer         = errors.New("ssf: wrong issuer")
	ErrAudience       = errors.New("ssf: wrong audience")
	ErrIssuedInFuture = errors.New("ssf: SET issued in the future")
)

// Verifier checks SETs from one transmitter to one receiver.
type Verifier struct {
	// Issuer must equal the SET's iss and the transmitter's issuer
	// (SSF 4.1.6).
	Issuer string
	// Audience must be one of the SET's aud values (the stream's aud).
	Audience string
	// Keys are the transmitter's keys (its jwks_uri); a jwk.NewCachedSet
	// follows rotation.
	Keys jwk.Set
	// KeyFunc, when set, is used instead of Keys: the public key with
	// this kid (never empty), for a receiver that fetches keys its own
	// way. Its errors are wrapped in ErrKey and stay visible to
	// errors.Is, so a receiver can tell "keys unreachable" (retry) from
	// "no such key" (refuse).
	KeyFunc func(kid string) (jwk.Key, error)
	// Algorithms is the allow-list; nil means DefaultAlgorithms.
	// Symmetric algorithms and "none" are never accepted.
	Algorithms []jwa.SignatureAlgorithm
	// Skew is how far in the future iat may be; Now the clock (nil:
	// time.Now).
	Skew time.Duration
	Now  func() time.Time
}

// Verify checks set (compact JWS) and returns its event. The errors wrap
// the Err values above, ErrEvent or ErrSubject, so a receiver can answer
// with RFC 8935 error codes (SetErrFor).
func (v *Verifier) Verify(set string) (Event, error) {
	msg, err := jws.Parse([]byte(set))
	if err != nil || len(msg.Signatures()) != 1 || strings.Count(set, ".") != 2 {
		return Event{}, ErrMalformed
	}
	hdr := msg.Signatures()[0].ProtectedHeaders()
	// RFC 7515 4.1.9: "application/" may be left out, compared without
	// case. RFC 7515 4.1.11: we understand no crit extension.
	if !strings.EqualFold(strings.TrimPrefix(strings.ToLower(hdr.Type()), "application/"), TypSET) {
		return Event{}, ErrNotSET
	}
	// Keys come from the transmitter's jwks_uri only, never the header.
	for _, h := range []string{"crit", "jwk", "jku", "x5u", "x5c"} {
		if _, ok := hdr.Get(h); ok {
			return Event{}, fmt.Errorf("%w: header %s not allowed", ErrMalformed, h)
		}
	}
	if b64, ok := hdr.Get("b64"); ok && b64 != true {
		return Event{}, fmt.Errorf("%w: header not allowed", ErrMalformed)
	}
	alg := hdr.Algorithm()
	allowed := v.Algorithms
	if allowed == nil {
		allowed = DefaultAlgorithms
	}
	if !slices.Contains(allowed, alg) || !slices.Contains(asymmetric, alg) {
		return Event{}, ErrAlgorithm
	}
	key, err := v.key(hdr.KeyID(), alg)
	if err != nil {
		return Event{}, err
	}
	payload, err := jws.Verify([]byte(set), jws.WithKey(alg, key))
	if err != nil {
		return Event{}, ErrSignature
	}
	var c setClaims
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&c); err != nil {
		return Event{}, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	if c.Iss != v.Issuer || v.Issuer == "" {
		return Event{}, ErrIssuer
	}
	if v.Audience == "" || !slices.Contains(c.Aud, v.Audience) {
		return Event{}, ErrAudience
	}
	ev, err := c.event()
	if err != nil {
		return Event{}, err
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	if ev.IssuedAt.After(now().Add(v.Skew)) {
		return Event{}, ErrIssuedInFuture
	}
	return ev, nil
}

// key finds the verification key: by KeyFunc, by kid, or the only key
// of the set.
func (v *Verifier) key(kid string, alg jwa.SignatureAlgorithm) (jwk.Key, error) {
	var key jwk.Key
	switch {
	case v.KeyFunc != nil:
		if kid == "" {
			return nil, fmt.Errorf("%w: no kid", ErrKey)
		}
		k, err := v.KeyFunc(kid)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrKey, err)
		}
		if k == nil {
			return nil, ErrKey
		}
		key = k
	case v.Keys == nil:
		return nil, ErrKey
	case kid != "":
		k, ok := v.Keys.LookupKeyID(kid)
		if !ok {
			return nil, fmt.Errorf("%w: unknown kid", ErrKey)
		}
		key = k
	case v.Keys.Len() == 1:
		key, _ = v.Keys.Key(0)
	default:
		return nil, fmt.Errorf("%w: no kid", ErrKey)
	}
	if a := key.Algorithm().String(); (a != "" && a != alg.String()) || !fits(key, alg) {
		return nil, ErrAlgorithm
	}
	pub, err := jwk.PublicKeyOf(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	return pub, nil
}
