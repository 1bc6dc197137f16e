package dpop

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"slices"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/apiaccess/caddy-apiaccess/internal/compactjws"
	"github.com/apiaccess/caddy-apiaccess/internal/jsonstrict"
)

// Defaults.
const (
	DefaultMaxAge    = 5 * time.Minute
	DefaultMaxFuture = 30 * time.Second
	DefaultMaxSize   = 4096
	// MaxJTI bounds the jti claim, in bytes.
	MaxJTI = 256
	// Typ is the proof's typ header (RFC 9449 section 4.2).
	Typ = "dpop+jwt"
)

// DefaultAlgorithms are allowed unless Options narrows them.
var DefaultAlgorithms = []jwa.SignatureAlgorithm{jwa.ES256, jwa.RS256, jwa.PS256, jwa.EdDSA}

// Allowed lists every algorithm Options.Algorithms may hold: asymmetric
// ones only. "none" and HMAC can never be enabled (RFC 9449 section 4.2).
var Allowed = []jwa.SignatureAlgorithm{
	jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512,
	jwa.ES256, jwa.ES384, jwa.ES512, jwa.EdDSA,
}

// Proof is a verified DPoP proof.
type Proof struct {
	// JKT is the RFC 7638 SHA-256 thumbprint of Key, base64url.
	JKT string
	JTI string
	IAT time.Time
	HTM string
	// HTU is the proof's htu normalised (see HTU); it equals the request's.
	HTU   string
	Nonce string
	ATH   string
	// Key is the proof's public key (its jwk header). It may be shared
	// with other proofs of the same key: read it, never modify it.
	Key jwk.Key
}

// Options configure a Verifier; zero values take the defaults.
type Options struct {
	// Algorithms allowed; default DefaultAlgorithms. Any algorithm not in
	// Allowed (none, HS256...) makes New fail.
	Algorithms []jwa.SignatureAlgorithm
	// MaxAge: a proof whose iat is older is stale (default 5m).
	// MaxFuture: a proof whose iat is further ahead is refused (default
	// 30s), allowing for the client's clock running ahead.
	MaxAge, MaxFuture time.Duration
	// MaxSize bounds the proof, in bytes (default 4096).
	MaxSize int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Replay remembers jtis (RFC 9449 section 11.1). nil: no replay
	// check; callers must pass one.
	Replay ReplayCache
	// Nonces, when set, makes a server nonce required (RFC 9449 section 8).
	Nonces NonceSource
	// KeyCacheSize bounds the proof headers (typ, alg, jwk) kept parsed,
	// so a client's repeated key costs one parse (default
	// DefaultKeyCacheSize; negative: none).
	KeyCacheSize int
}

// Verifier checks proofs. Safe for concurrent use.
type Verifier struct {
	algs              []jwa.SignatureAlgorithm
	maxAge, maxFuture time.Duration
	maxSize           int
	now               func() time.Time
	replay            ReplayCache
	nonces            NonceSource
	headers           *headerCache
}

// New checks o and returns a Verifier.
func New(o Options) (*Verifier, error) {
	v := &Verifier{
		algs: o.Algorithms, maxAge: o.MaxAge, maxFuture: o.MaxFuture, maxSize: o.MaxSize,
		now: o.Now, replay: o.Replay, nonces: o.Nonces,
	}
	if len(v.algs) == 0 {
		v.algs = DefaultAlgorithms
	}
	v.algs = append([]jwa.SignatureAlgorithm(nil), v.algs...)
	for _, a := range v.algs {
		if !slices.Contains(Allowed, a) {
			return nil, fmt.Errorf("dpop: algorithm %q is not allowed (asymmetric algorithms only: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA)", a)
		}
	}
	if v.maxAge < 0 || v.maxFuture < 0 || v.maxSize < 0 {
		return nil, fmt.Errorf("dpop: negative max age, max future or max size")
	}
	if v.maxAge == 0 {
		v.maxAge = DefaultMaxAge
	}
	if v.maxFuture == 0 {
		v.maxFuture = DefaultMaxFuture
	}
	if v.maxSize == 0 {
		v.maxSize = DefaultMaxSize
	}
	if v.now == nil {
		v.now = time.Now
	}
	switch {
	case o.KeyCacheSize == 0:
		v.headers = newHeaderCache(DefaultKeyCacheSize)
	case o.KeyCacheSize > 0:
		v.headers = newHeaderCache(o.KeyCacheSize)
	}
	return v, nil
}

// Algorithms are the allowed algorithms, for discovery's
// dpop_signing_alg_values_supported and the algs of a DPoP challenge
// (RFC 9449 sections 5.1 and 7.1).
func (v *Verifier) Algorithms() []string {
	out := make([]string, len(v.algs))
	for i, a := range v.algs {
		out[i] = a.String()
	}
	return out
}

// Nonce is the nonce to send in DPoP-Nonce, or "" when none is required.
func (v *Verifier) Nonce() string {
	if v.nonces == nil {
		return ""
	}
	return v.nonces.Current()
}

// forbiddenHeaders name other keys or key locations: the jwk header is
// the key (RFC 9449 section 4.2), never a URL or a certificate. kid is
// ignored, never used for a lookup.
var forbiddenHeaders = []string{"jku", "x5u", "x5c"}

// Verify checks proof for a request with method to url, the URL as the
// client used it (scheme and host included; query and fragment are
// ignored), and, when accessToken is not "", its ath (RFC 9449 section
// 4.3). A refused proof is an *Error; any other error is the server's.
func (v *Verifier) Verify(ctx context.Context, proof, method, url, accessToken string) (*Proof, error) {
	reqHTU, ok := parseHTU(url)
	if !ok {
		return nil, fmt.Errorf("dpop: request URL is not an absolute http or https URL")
	}
	now := v.now()
	if len(proof) > v.maxSize {
		return nil, invalid(ReasonTooLarge)
	}
	// Compact serialization only (RFC 7515 section 7.1).
	h64, p64, s64, ok := compactjws.Split(proof)
	if !ok {
		return nil, invalid(ReasonMalformed)
	}
	pb, err1 := base64.RawURLEncoding.Strict().DecodeString(p64)
	sig, err2 := base64.RawURLEncoding.Strict().DecodeString(s64)
	if err1 != nil || err2 != nil {
		return nil, invalid(ReasonMalformed)
	}
	h := v.headers.get(h64)
	cached := h != nil
	if !cached {
		var e *Error
		if h, e = v.header(h64); e != nil {
			return nil, e
		}
	}
	verifier, err := jws.NewVerifier(h.alg)
	if err != nil {
		return nil, invalid(ReasonAlgNotAllowed)
	}
	if err := verifier.Verify([]byte(proof[:len(h64)+1+len(p64)]), sig, h.raw); err != nil {
		return nil, invalid(ReasonBadSignature)
	}
	if !cached {
		v.headers.put(h64, h)
	}

	// The claims, now signed by the key (RFC 9449 section 4.2).
	claims, err := jsonstrict.DecodeObject(pb)
	if err != nil {
		return nil, invalid(ReasonMalformed)
	}
	var p Proof
	var e *Error
	if p.JTI, e = stringClaim(claims, "jti", true); e != nil {
		return nil, e
	}
	if len(p.JTI) > MaxJTI {
		return nil, invalid(ReasonBadJTI)
	}
	if p.HTM, e = stringClaim(claims, "htm", true); e != nil {
		return nil, e
	}
	if p.HTM != method {
		return nil, invalid(ReasonHTMMismatch)
	}
	htu, e := stringClaim(claims, "htu", true)
	if e != nil {
		return nil, e
	}
	if p.HTU, ok = parseHTU(htu); !ok || p.HTU != reqHTU {
		return nil, invalid(ReasonHTUMismatch)
	}
	rawIAT, present := claims["iat"]
	if !present {
		return nil, invalid(ReasonMissingClaim)
	}
	if p.IAT, ok = jsonstrict.NumericDate(rawIAT); !ok {
		return nil, invalid(ReasonMalformed)
	}
	if p.IAT.Before(now.Add(-v.maxAge)) {
		return nil, invalid(ReasonIATStale)
	}
	if p.IAT.After(now.Add(v.maxFuture)) {
		return nil, invalid(ReasonIATFuture)
	}
	if p.ATH, e = stringClaim(claims, "ath", false); e != nil {
		return nil, e
	}
	if accessToken != "" {
		if p.ATH == "" {
			return nil, invalid(ReasonATHMissing)
		}
		if subtle.ConstantTimeCompare([]byte(p.ATH), []byte(ATH(accessToken))) != 1 {
			return nil, invalid(ReasonATHMismatch)
		}
	}
	if p.Nonce, e = stringClaim(claims, "nonce", false); e != nil {
		return nil, e
	}
	if v.nonces != nil {
		// Checked after everything else, so that a client that retries
		// with the nonce is not refused for another reason then.
		if p.Nonce == "" {
			return nil, &Error{Code: CodeUseNonce, Reason: ReasonNonceMissing, Nonce: v.nonces.Current()}
		}
		if !v.nonces.Valid(p.Nonce) {
			return nil, &Error{Code: CodeUseNonce, Reason: ReasonNonceStale, Nonce: v.nonces.Current()}
		}
	}
	p.JKT, p.Key = h.jkt, h.key
	if v.replay != nil {
		// Last: only a proof that passed every check takes a place, and
		// it keeps it as long as its iat could still be accepted.
		replayed, err := v.replay.Seen(ctx, ReplayKey(p.JKT, p.HTU, p.JTI), p.IAT.Add(v.maxAge+v.maxFuture))
		if err != nil {
			return nil, fmt.Errorf("dpop: replay check: %w", err)
		}
		if replayed {
			return nil, invalid(ReasonReplayed)
		}
	}
	return &p, nil
}

// header checks a proof's header (RFC 9449 section 4.3, checks 4 to 7
// but the signature).
func (v *Verifier) header(h64 string) (*header, *Error) {
	hb, err := base64.RawURLEncoding.Strict().DecodeString(h64)
	if err != nil {
		return nil, invalid(ReasonMalformed)
	}
	hdr, err := jsonstrict.DecodeObject(hb)
	if err != nil {
		return nil, invalid(ReasonMalformed)
	}
	if typ, _ := hdr["typ"].(string); typ != Typ {
		return nil, invalid(ReasonBadTyp)
	}
	algS, _ := hdr["alg"].(string)
	alg := jwa.SignatureAlgorithm(algS)
	if !slices.Contains(v.algs, alg) {
		return nil, invalid(ReasonAlgNotAllowed)
	}
	for _, h := range forbiddenHeaders {
		if _, ok := hdr[h]; ok {
			return nil, invalid(ReasonHeaderNotAllowed)
		}
	}
	// RFC 7515 section 4.1.11: we understand no extension.
	if _, ok := hdr["crit"]; ok {
		return nil, invalid(ReasonHeaderNotAllowed)
	}
	if b64, ok := hdr["b64"]; ok && b64 != true {
		return nil, invalid(ReasonHeaderNotAllowed)
	}
	rawJWK, present := hdr["jwk"]
	if !present {
		return nil, invalid(ReasonNoJWK)
	}
	jwkObj, ok := rawJWK.(map[string]any)
	if !ok {
		return nil, invalid(ReasonBadKey)
	}
	key, raw, e := proofKey(jwkObj, alg)
	if e != nil {
		return nil, e
	}
	jkt, err := Thumbprint(key)
	if err != nil {
		return nil, invalid(ReasonBadKey)
	}
	return &header{alg: alg, key: key, raw: raw, jkt: jkt}, nil
}

// ReplayKey is the replay cache key of a proof: its jti in the context
// of its key and target URI (RFC 9449 section 11.1), so two clients'
// jtis never collide. It is a fixed-length hash (43 characters): jkt
// has a fixed length and htu holds no NUL byte, so the input is
// unambiguous.
func ReplayKey(jkt, htu, jti string) string {
	h := sha256.New()
	h.Write([]byte(jkt))
	h.Write([]byte{0})
	h.Write([]byte(htu))
	h.Write([]byte{0})
	h.Write([]byte(jti))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// stringClaim reads a string claim: another type is malformed; a
// required one must be present and not empty.
func stringClaim(claims map[string]any, name string, required bool) (string, *Error) {
	raw, present := claims[name]
	if !present {
		if required {
			return "", invalid(ReasonMissingClaim)
		}
		return "", nil
	}
	s, ok := raw.(string)
	if !ok {
		return "", invalid(ReasonMalformed)
	}
	if s == "" && required {
		return "", invalid(ReasonMissingClaim)
	}
	return s, nil
}
