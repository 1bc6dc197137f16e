package validator

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/jsonstrict"
)

// Introspector asks the issuer whether a token is active (RFC 7662),
// for opaque tokens or routes that must see a revocation at once.
type Introspector struct {
	// Endpoint is the issuer's introspection endpoint.
	Endpoint string
	// ClientID and ClientSecret authenticate us (client_secret_basic).
	ClientID, ClientSecret string
	// CacheTTL bounds how long an answer is reused; 0 asks every time.
	CacheTTL time.Duration
	// NegativeTTL is how long a refusal that the issuer's answer decided
	// (inactive, or active but refused here) is reused, so a bad token
	// sent again costs no call; 0 never reuses one. Failures to get an
	// answer (transport errors, non-200 status, unreadable body) are
	// never kept. The negative entries are bounded by the route's cache
	// size, apart from the positive ones.
	NegativeTTL time.Duration
	Client      *http.Client
}

// DefaultNegativeTTL is the default NegativeTTL of the Caddy module:
// long enough to absorb a client retrying a dead token, short enough
// that an issuer's own mistake heals quickly.
const DefaultNegativeTTL = 10 * time.Second

// introspectCached asks the issuer unless a refusal of this token (key
// is its hash, set when the cache is on) is still in the negative
// cache, and keeps a new refusal there.
func (v *Validator) introspectCached(ctx context.Context, tok string, key [32]byte, now time.Time) (*verified, *Failure) {
	if v.negative == nil {
		return v.introspect(ctx, tok, now)
	}
	if e := v.negative.get(key, now); e != nil {
		f := *e.refused
		return nil, &f
	}
	ver, f := v.introspect(ctx, tok, now)
	// 401s come only from a well-formed 200 answer (or a token too large
	// to send); a 503 says the issuer could not answer and is retried.
	if f != nil && f.Status == http.StatusUnauthorized {
		kept := *f
		v.negative.put(key, &verified{refused: &kept, exp: now.Add(v.cfg.Introspection.NegativeTTL)})
	}
	return ver, f
}

// introspect replaces local verification for a route in introspection
// mode. The answer must be active, of the configured issuer (when it
// names one), for an accepted audience, and unexpired.
func (v *Validator) introspect(ctx context.Context, tok string, now time.Time) (*verified, *Failure) {
	in := v.cfg.Introspection
	issuer := v.cfg.Issuers[0]
	if len(tok) > v.cfg.MaxTokenSize {
		return nil, invalid(ReasonTooLarge)
	}
	form := url.Values{"token": {tok}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.Endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, &Failure{Status: http.StatusServiceUnavailable, Reason: ReasonKeysUnavailable, Issuer: issuer.URL}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(in.ClientID), url.QueryEscape(in.ClientSecret))
	c := in.Client
	if c == nil {
		c = http.DefaultClient
	}
	res, err := c.Do(req)
	if err != nil {
		return nil, &Failure{Status: http.StatusServiceUnavailable, Reason: ReasonKeysUnavailable, Issuer: issuer.URL}
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil || res.StatusCode != http.StatusOK {
		return nil, &Failure{Status: http.StatusServiceUnavailable, Reason: ReasonKeysUnavailable, Issuer: issuer.URL}
	}
	claims, err := jsonstrict.DecodeObject(body)
	if err != nil {
		return nil, &Failure{Status: http.StatusServiceUnavailable, Reason: ReasonKeysUnavailable, Issuer: issuer.URL}
	}
	if claims["active"] != true {
		return nil, v.fail(ReasonInactive, issuer)
	}
	// An issuer that introspects refresh or ID tokens too says which it
	// was (RFC 7662 section 2.2 token_type); ID-token claims give an ID
	// token away where it does not.
	if tt, _ := claims["token_type"].(string); strings.EqualFold(tt, "refresh_token") || strings.EqualFold(tt, "id_token") ||
		!isAccessToken(nil, claims, false) {
		return nil, v.fail(ReasonNotAccessToken, issuer)
	}
	if iss, ok := claims["iss"]; ok && iss != issuer.URL {
		return nil, v.fail(ReasonWrongIssuer, issuer)
	}
	aud := claims["aud"]
	if s, ok := aud.(string); ok && strings.Contains(s, " ") {
		// Some servers join several audiences with spaces.
		parts := []any{}
		for _, p := range strings.Fields(s) {
			parts = append(parts, p)
		}
		aud = parts
	}
	if !audienceMatches(aud, issuer.Audiences) {
		return nil, v.fail(ReasonWrongAudience, issuer)
	}
	exp, ok := jsonstrict.NumericDate(claims["exp"])
	if !ok {
		return nil, v.fail(ReasonMissingClaim, issuer)
	}
	if !now.Before(exp.Add(v.skew())) {
		return nil, v.fail(ReasonExpired, issuer)
	}
	delete(claims, "active")
	var scopes []string
	if s, ok := claims["scope"].(string); ok {
		scopes = strings.Fields(s)
	}
	sub, _ := claims["sub"].(string)
	until := now.Add(in.CacheTTL)
	if exp.Before(until) {
		until = exp
	}
	return &verified{issuer: issuer, claims: claims, scopes: scopes, sub: sub, exp: until}, nil
}
