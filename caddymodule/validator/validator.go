// Package validator is the gateway's Caddy-free core: it decides whether
// an access token is acceptable for a route (signature, issuer,
// audience, lifetime, scopes, claims, expression).
package validator

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/apiaccess/caddy-apiaccess/caddymodule/keyset"
	"github.com/apiaccess/caddy-apiaccess/internal/compactjws"
	"github.com/apiaccess/caddy-apiaccess/internal/jsonstrict"
	"github.com/apiaccess/caddy-apiaccess/internal/tokentime"
)

// Defaults.
const (
	DefaultMaxTokenSize = 8 << 10
	DefaultSkew         = tokentime.Skew // the issuer's too (token exchange)
	DefaultCacheSize    = 10000
)

// DefaultAlgorithms are the asymmetric algorithms accepted unless a
// route narrows them. HMAC and "none" can never be enabled.
var DefaultAlgorithms = []jwa.SignatureAlgorithm{jwa.RS256, jwa.ES256, jwa.EdDSA}

// Allowed lists every algorithm that may appear in an allow-list.
var Allowed = []jwa.SignatureAlgorithm{
	jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512,
	jwa.ES256, jwa.ES384, jwa.ES512, jwa.EdDSA,
}

// Issuer is one accepted token issuer.
type Issuer struct {
	// URL must equal the token's iss exactly.
	URL string
	// Audiences: the token's aud must contain at least one.
	Audiences []string
	// Algorithms allowed for this issuer's tokens.
	Algorithms []jwa.SignatureAlgorithm
	// Keys supplies the issuer's verification keys.
	Keys keyset.Source
}

// Config is one route's requirements.
type Config struct {
	Issuers      []*Issuer
	Skew         time.Duration
	MaxTokenSize int
	// Scopes must all be granted.
	Scopes []string
	// AnyScope: at least one must be granted (when not empty).
	AnyScope []string
	// Claims must all hold.
	Claims []ClaimCondition
	// Expression, when set, is a compiled CEL condition.
	Expression *Expression
	// CacheSize bounds the verified-token cache; 0 disables it.
	CacheSize int
	// Introspection, when set, replaces local verification: every token
	// is sent to the (single) issuer's introspection endpoint.
	Introspection *Introspector
	Now           func() time.Time
}

// Validator checks tokens for one route. Safe for concurrent use.
type Validator struct {
	cfg   Config
	cache *cache
	// negative keeps introspection refusals (introspection mode only),
	// apart from cache so a flood of bad tokens evicts no good ones.
	negative *cache
}

// New returns a validator; cfg must already be valid (see Check).
func New(cfg Config) *Validator {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxTokenSize <= 0 {
		cfg.MaxTokenSize = DefaultMaxTokenSize
	}
	v := &Validator{cfg: cfg, cache: newCache(cfg.CacheSize)}
	if in := cfg.Introspection; in != nil && in.NegativeTTL > 0 {
		v.negative = newCache(cfg.CacheSize)
	}
	return v
}

// Result is an accepted token.
type Result struct {
	Issuer  *Issuer
	Claims  map[string]any
	Subject string
	Scopes  []string
}

// Failure says why a token was refused. Reason is a stable
// machine-readable word for logs, metrics and handle_errors; it never
// contains token content.
type Failure struct {
	// Status is 401 (invalid token), 403 (insufficient scope) or 503
	// (keys unavailable).
	Status int
	// Code is the RFC 6750 section 3.1 error code ("" when no token).
	Code   string
	Reason string
	// Scope lists the scopes the route needs, for a 403's challenge.
	Scope string
	// Issuer is the token's issuer when it was one of ours, for logs.
	Issuer string
	// Verified: the token's signature verified (it was refused for the
	// route, or expired, or is of another audience), so Issuer and the
	// identifiers below are the issuer's word, not the sender's.
	Verified bool
	// Subject, ClientID, UserID and JTI of a verified token; empty
	// otherwise.
	Subject, ClientID, UserID, JTI string
}

func (f *Failure) Error() string { return f.Reason }

// Reasons.
const (
	ReasonNoToken           = "no_token"
	ReasonMalformed         = "malformed"
	ReasonTooLarge          = "token_too_large"
	ReasonAlgNotAllowed     = "alg_not_allowed"
	ReasonHeaderNotAllowed  = "header_not_allowed"
	ReasonNoKID             = "missing_kid"
	ReasonUnknownKID        = "unknown_kid"
	ReasonBadSignature      = "bad_signature"
	ReasonWrongIssuer       = "wrong_issuer"
	ReasonWrongAudience     = "wrong_audience"
	ReasonExpired           = "expired"
	ReasonNotYetValid       = "not_yet_valid"
	ReasonIssuedInFuture    = "issued_in_future"
	ReasonMissingClaim      = "missing_claim"
	ReasonInsufficientScope = "insufficient_scope"
	ReasonClaimMismatch     = "claim_mismatch"
	ReasonExpressionFalse   = "expression_false"
	ReasonKeysUnavailable   = "keys_unavailable"
	ReasonMultipleTokens    = "multiple_tokens"
	ReasonInactive          = "inactive"
	// ReasonNotAccessToken: a genuine token of the issuer, but an ID
	// token (or another kind of JWT), not an access token.
	ReasonNotAccessToken = "not_access_token"
)

func invalid(reason string) *Failure {
	return &Failure{Status: http.StatusUnauthorized, Code: "invalid_token", Reason: reason}
}

// verified is what the cache keeps: the outcome of the token checks
// that do not depend on the route.
type verified struct {
	issuer *Issuer
	claims map[string]any
	scopes []string
	sub    string
	exp    time.Time
	// refused, in the negative cache, is the issuer's refusal.
	refused *Failure
}

// Validate checks tok for this route. r is the request (for the CEL
// expression); it may be nil when no expression is configured.
func (v *Validator) Validate(ctx context.Context, tok string, r *http.Request) (*Result, *Failure) {
	return v.ValidateWith(ctx, tok, r, nil)
}

// ValidateWith is Validate with bind, when not nil, run on the claims of
// every verified token, cached or not, before the route's checks: the
// gateway's per-request DPoP proof check (RFC 9449 section 7), which no
// cache may skip. A failure of bind refuses the token.
func (v *Validator) ValidateWith(ctx context.Context, tok string, r *http.Request, bind func(claims map[string]any) *Failure) (*Result, *Failure) {
	now := v.cfg.Now()
	var key [32]byte
	var ver *verified
	if v.cache != nil {
		key = tokenKey(tok)
		ver = v.cache.get(key, now)
	}
	if ver == nil {
		var f *Failure
		if v.cfg.Introspection != nil {
			ver, f = v.introspectCached(ctx, tok, key, now)
		} else {
			ver, f = v.verify(ctx, tok, now)
		}
		if f != nil {
			return nil, f
		}
		if v.cache != nil && !ver.exp.Equal(now) {
			v.cache.put(key, ver)
		}
	}
	if bind != nil {
		if f := bind(ver.claims); f != nil {
			f.Issuer = ver.issuer.URL
			f.identify(ver.claims)
			f.Subject = ver.sub
			return nil, f
		}
	}
	if f := v.authorize(ver, r); f != nil {
		f.Issuer = ver.issuer.URL
		f.identify(ver.claims)
		f.Subject = ver.sub
		return nil, f
	}
	return &Result{Issuer: ver.issuer, Claims: ver.claims, Subject: ver.sub, Scopes: ver.scopes}, nil
}

// forbiddenHeaders name keys or key locations: a token never chooses
// the key it is checked with (RFC 8725 section 3.10).
var forbiddenHeaders = []string{"jku", "jwk", "x5u", "x5c"}

// verify runs every route-independent check.
func (v *Validator) verify(ctx context.Context, tok string, now time.Time) (*verified, *Failure) {
	if len(tok) > v.cfg.MaxTokenSize {
		return nil, invalid(ReasonTooLarge)
	}
	// Compact serialization only (RFC 7515 section 7.1).
	h64, p64, s64, ok := compactjws.Split(tok)
	if !ok {
		return nil, invalid(ReasonMalformed)
	}
	hb, err1 := base64.RawURLEncoding.Strict().DecodeString(h64)
	pb, err2 := base64.RawURLEncoding.Strict().DecodeString(p64)
	sig, err3 := base64.RawURLEncoding.Strict().DecodeString(s64)
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, invalid(ReasonMalformed)
	}
	hdr, err := jsonstrict.DecodeObject(hb)
	if err != nil {
		return nil, invalid(ReasonMalformed)
	}
	for _, h := range forbiddenHeaders {
		if _, ok := hdr[h]; ok {
			return nil, invalid(ReasonHeaderNotAllowed)
		}
	}
	// RFC 7515 section 4.1.11: extensions we do not understand must make
	// the token invalid; we understand none.
	if _, ok := hdr["crit"]; ok {
		return nil, invalid(ReasonHeaderNotAllowed)
	}
	if b64, ok := hdr["b64"]; ok && b64 != true {
		return nil, invalid(ReasonHeaderNotAllowed)
	}
	algS, _ := hdr["alg"].(string)
	kid, _ := hdr["kid"].(string)
	claims, err := jsonstrict.DecodeObject(pb)
	if err != nil {
		return nil, invalid(ReasonMalformed)
	}
	iss, _ := claims["iss"].(string)
	if iss == "" {
		return nil, invalid(ReasonMissingClaim)
	}
	var issuer *Issuer
	for _, is := range v.cfg.Issuers {
		if is.URL == iss {
			issuer = is
			break
		}
	}
	if issuer == nil {
		return nil, invalid(ReasonWrongIssuer)
	}
	alg := jwa.SignatureAlgorithm(algS)
	if !contains(issuer.Algorithms, alg) {
		return nil, v.fail(ReasonAlgNotAllowed, issuer)
	}
	if kid == "" {
		return nil, v.fail(ReasonNoKID, issuer)
	}
	k, err := issuer.Keys.Key(ctx, kid)
	switch {
	case errors.Is(err, keyset.ErrUnknownKID):
		return nil, v.fail(ReasonUnknownKID, issuer)
	case err != nil:
		return nil, &Failure{Status: http.StatusServiceUnavailable, Reason: ReasonKeysUnavailable, Issuer: issuer.URL}
	}
	// The algorithm must fit the key, so an RSA public key can never be
	// used as an HMAC secret and an EC key never with RS256.
	if !k.Allows(alg) {
		return nil, v.fail(ReasonAlgNotAllowed, issuer)
	}
	verifier, err := jws.NewVerifier(alg)
	if err != nil {
		return nil, v.fail(ReasonAlgNotAllowed, issuer)
	}
	if err := verifier.Verify([]byte(tok[:len(h64)+1+len(p64)]), sig, k.Raw); err != nil {
		return nil, v.fail(ReasonBadSignature, issuer)
	}
	typed, _ := issuer.Keys.(keyset.Typed)
	if !isAccessToken(hdr, claims, typed != nil && typed.TypesAccessTokens()) {
		return nil, v.failSigned(ReasonNotAccessToken, issuer, claims)
	}
	// Time claims (RFC 7519 section 4.1.4-4.1.6), with skew.
	rawExp, present := claims["exp"]
	if !present {
		return nil, v.failSigned(ReasonMissingClaim, issuer, claims)
	}
	exp, ok := jsonstrict.NumericDate(rawExp)
	if !ok {
		return nil, v.failSigned(ReasonMalformed, issuer, claims)
	}
	if !now.Before(exp.Add(v.skew())) {
		return nil, v.failSigned(ReasonExpired, issuer, claims)
	}
	if raw, present := claims["nbf"]; present {
		nbf, ok := jsonstrict.NumericDate(raw)
		if !ok {
			return nil, v.failSigned(ReasonMalformed, issuer, claims)
		}
		if now.Add(v.skew()).Before(nbf) {
			return nil, v.failSigned(ReasonNotYetValid, issuer, claims)
		}
	}
	if raw, present := claims["iat"]; present {
		iat, ok := jsonstrict.NumericDate(raw)
		if !ok {
			return nil, v.failSigned(ReasonMalformed, issuer, claims)
		}
		if now.Add(v.skew()).Before(iat) {
			return nil, v.failSigned(ReasonIssuedInFuture, issuer, claims)
		}
	}
	if !audienceMatches(claims["aud"], issuer.Audiences) {
		return nil, v.failSigned(ReasonWrongAudience, issuer, claims)
	}
	scopes, ok := tokenScopes(claims)
	if !ok {
		return nil, v.failSigned(ReasonMalformed, issuer, claims)
	}
	sub, _ := claims["sub"].(string)
	return &verified{issuer: issuer, claims: claims, scopes: scopes, sub: sub, exp: exp}, nil
}

func (v *Validator) fail(reason string, is *Issuer) *Failure {
	f := invalid(reason)
	f.Issuer = is.URL
	return f
}

// failSigned is a refusal of a token whose signature verified: who it
// names is known, for the log.
func (v *Validator) failSigned(reason string, is *Issuer, claims map[string]any) *Failure {
	f := v.fail(reason, is)
	f.identify(claims)
	return f
}

// identify copies who a verified token names into f.
func (f *Failure) identify(claims map[string]any) {
	f.Verified = true
	f.Subject, _ = claims["sub"].(string)
	if f.ClientID, _ = claims["cid"].(string); f.ClientID == "" {
		f.ClientID, _ = claims["client_id"].(string)
	}
	f.UserID, _ = claims["uid"].(string)
	f.JTI, _ = claims["jti"].(string)
}

func (v *Validator) skew() time.Duration { return v.cfg.Skew }

func contains[T comparable](l []T, x T) bool {
	for _, y := range l {
		if y == x {
			return true
		}
	}
	return false
}

// audienceMatches: aud is a string or an array of strings (RFC 7519
// section 4.1.3); one of them must be accepted.
func audienceMatches(aud any, accepted []string) bool {
	switch a := aud.(type) {
	case string:
		return contains(accepted, a)
	case []any:
		for _, x := range a {
			if s, ok := x.(string); ok && contains(accepted, s) {
				return true
			}
		}
	}
	return false
}

// tokenScopes reads Okta's `scp` (array of strings; a space-separated
// string is accepted too) or RFC 9068's `scope` (space-separated
// string). Both at once is ambiguous and refused; so is any other type.
func tokenScopes(claims map[string]any) ([]string, bool) {
	scp, hasScp := claims["scp"]
	scope, hasScope := claims["scope"]
	switch {
	case hasScp && hasScope:
		return nil, false
	case hasScp:
		if str, ok := scp.(string); ok {
			// Some issuers (Azure AD) write scp as a space-separated string.
			return strings.Fields(str), true
		}
		arr, ok := scp.([]any)
		if !ok {
			return nil, false
		}
		out := make([]string, 0, len(arr))
		for _, x := range arr {
			s, ok := x.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	case hasScope:
		s, ok := scope.(string)
		if !ok {
			return nil, false
		}
		return strings.Fields(s), true
	}
	return nil, true
}

// authorize runs the route's checks on a verified token.
func (v *Validator) authorize(ver *verified, r *http.Request) *Failure {
	for _, s := range v.cfg.Scopes {
		if !contains(ver.scopes, s) {
			return v.scopeFailure()
		}
	}
	if len(v.cfg.AnyScope) > 0 {
		ok := false
		for _, s := range v.cfg.AnyScope {
			ok = ok || contains(ver.scopes, s)
		}
		if !ok {
			return v.scopeFailure()
		}
	}
	for i := range v.cfg.Claims {
		if !v.cfg.Claims[i].holds(ver.claims) {
			return &Failure{Status: http.StatusForbidden, Code: "insufficient_scope", Reason: ReasonClaimMismatch}
		}
	}
	if v.cfg.Expression != nil {
		ok, err := v.cfg.Expression.eval(ver.claims, r)
		if err != nil || !ok {
			return &Failure{Status: http.StatusForbidden, Code: "insufficient_scope", Reason: ReasonExpressionFalse}
		}
	}
	return nil
}

func (v *Validator) scopeFailure() *Failure {
	need := append(append([]string{}, v.cfg.Scopes...), v.cfg.AnyScope...)
	return &Failure{Status: http.StatusForbidden, Code: "insufficient_scope", Reason: ReasonInsufficientScope, Scope: strings.Join(need, " ")}
}

// Check validates a configuration before use.
func Check(cfg Config) error {
	if len(cfg.Issuers) == 0 {
		return fmt.Errorf("at least one issuer is required")
	}
	if cfg.Introspection != nil && len(cfg.Issuers) != 1 {
		return fmt.Errorf("introspection needs exactly one issuer")
	}
	seen := map[string]bool{}
	for _, is := range cfg.Issuers {
		if is.URL == "" {
			return fmt.Errorf("issuer URL is required")
		}
		if seen[is.URL] {
			return fmt.Errorf("issuer %s listed twice", is.URL)
		}
		seen[is.URL] = true
		if len(is.Audiences) == 0 {
			return fmt.Errorf("issuer %s: an audience is required", is.URL)
		}
		if len(is.Algorithms) == 0 {
			return fmt.Errorf("issuer %s: no algorithms allowed", is.URL)
		}
		for _, a := range is.Algorithms {
			if !contains(Allowed, a) {
				return fmt.Errorf("issuer %s: algorithm %q is not allowed (asymmetric algorithms only: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA)", is.URL, a)
			}
		}
		if is.Keys == nil && cfg.Introspection == nil {
			return fmt.Errorf("issuer %s: no key source", is.URL)
		}
	}
	for _, s := range append(append([]string{}, cfg.Scopes...), cfg.AnyScope...) {
		if s == "" || strings.ContainsAny(s, " \"\\") {
			return fmt.Errorf("invalid scope %q", s)
		}
	}
	return nil
}
