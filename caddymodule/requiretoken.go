// Package caddymodule is the gateway half of caddy-apiaccess: the
// `http.handlers.require_token` handler, which lets a request through to
// the next handler (typically `reverse_proxy`) only with a valid access
// token from a configured issuer, carrying the scopes and claims the
// route needs. The Caddy-free checks live in validator/ and keyset/.
package caddymodule

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/caddymodule/validator"
	"github.com/apiaccess/caddy-apiaccess/internal/duration"
)

func init() {
	caddy.RegisterModule(RequireToken{})
}

// RequireToken validates an access token on every request and passes
// the request on only when the token is acceptable for the route.
//
// Only access tokens pass: a token typed other than `at+jwt` or `JWT`,
// an untyped or `JWT`-typed one carrying `nonce`, `at_hash` or `c_hash`
// (ID-token claims), and, for an issuer of the same Caddy (which types
// every access token `at+jwt`), any token not typed `at+jwt` are
// refused as `not_access_token` (RFC 9068 sections 2.1 and 4).
//
// Answers (RFC 6750 section 3): no or invalid token: 401 with
// `WWW-Authenticate: Bearer realm="...", error="invalid_token"` (no
// error without a token); missing scope or failed claim condition: 403
// with `error="insufficient_scope"` and the route's `scope`; issuer keys
// unreachable and never fetched: 503. Only the challenge header is
// set; `handle_errors` decides the body. DPoP (RFC 9449, see `dpop`)
// adds a `DPoP` challenge with `algs` and the errors
// `invalid_dpop_proof` and `use_dpop_nonce` (with `DPoP-Nonce`).
//
// Placeholders:
//
// | Placeholder | Value |
// |---|---|
// | `{http.auth.user.id}` | the token's `sub` |
// | `{http.auth.token.issuer}` | the token's `iss` |
// | `{http.auth.token.client_id}` | the token's `cid` (or `client_id`) |
// | `{http.auth.token.scopes}` | granted scopes, space-separated |
// | `{http.auth.token.claims.NAME}` | claim NAME (strings as-is, other values as JSON) |
// | `{http.auth.token.error}` | on rejection: the reason (e.g. `expired`, `insufficient_scope`, `revoked`) |
//
// With `revocations` (or an issuer of the same Caddy), a revoked token
// is refused with 401 `invalid_token`, reason `revoked`; a feed stale
// with `on_stale fail` answers 503, reason `revocation_feed_stale`.
type RequireToken struct {
	// Issuers whose tokens are accepted. Required. A token's `iss` must
	// equal one of their URLs exactly.
	Issuers []*IssuerConfig `json:"issuers,omitempty"`

	// Audience is accepted for issuers that set none of their own; the
	// token's `aud` must contain one of the values.
	Audience []string `json:"audience,omitempty"`

	// Scopes the token must all carry (`scp` array or `scope` string,
	// compared as exact set members).
	Scopes []string `json:"scopes,omitempty"`

	// AnyScope: the token must carry at least one of these.
	AnyScope []string `json:"any_scope,omitempty"`

	// Claims are conditions on top-level claims; all must hold.
	Claims []*ClaimConfig `json:"claims,omitempty"`

	// Expression is a CEL condition over `claims` and `request`
	// (`method`, `host`, `path`, `headers` with lower-case names), e.g.
	// `"finance" in claims.groups`. It must be true.
	Expression string `json:"expression,omitempty"`

	// TokenCookie, when set, also accepts the token from this cookie.
	TokenCookie string `json:"token_cookie,omitempty"`

	// TokenQuery, when set, also accepts the token from this query
	// parameter (RFC 6750 section 2.3 discourages it; URLs get logged).
	TokenQuery string `json:"token_query,omitempty"`

	// ClockSkew tolerated on `exp`, `nbf` and `iat`. Default: 30s.
	ClockSkew duration.Duration `json:"clock_skew,omitempty"`

	// Algorithms allowed for issuers that set none of their own.
	// Default: RS256, ES256, EdDSA. Only asymmetric algorithms exist.
	Algorithms []string `json:"algorithms,omitempty"`

	// MaxTokenSize in bytes; longer tokens are rejected unparsed.
	// Default: 8192.
	MaxTokenSize int `json:"max_token_size,omitempty"`

	// ForwardClaims copy claims into request headers for the upstream.
	// Any client-sent header of the same name, in any spelling (case,
	// `-`, `_` or `.`), is removed first, and so is any client request
	// trailer of such a name (reverse_proxy forwards trailers); other
	// trailers pass.
	ForwardClaims []*ForwardClaim `json:"forward_claims,omitempty"`

	// CacheSize bounds the cache of verified tokens (keyed by a hash of
	// the token; an entry never outlives the token's exp). Default:
	// 10000; -1 disables the cache.
	CacheSize int `json:"cache_size,omitempty"`

	// Realm in the challenge. Default: the route's host.
	Realm string `json:"realm,omitempty"`

	// Introspection, when set, validates tokens by asking the issuer
	// (RFC 7662) instead of checking them locally: for opaque tokens,
	// or routes that must see a revocation at once. Needs exactly one
	// issuer.
	Introspection *IntrospectionConfig `json:"introspection,omitempty"`

	// LogDecisions says which decisions this route records in the System
	// Log of the `token_issuer` app in the same Caddy (queried at its
	// `GET /api/v1/logs`, event type `apiaccess.gateway.request`):
	// `rejections`, `all` or `none`. With `all`, acceptances of one token
	// from one address within a second are one event with a count.
	// Writes are batched and never make a request wait. Default: `rejections` when this Caddy has a
	// `token_issuer` app, else none; `rejections` or `all` without one is
	// a config error. Decisions are always in Caddy's log too
	// (rejections at INFO, acceptances at DEBUG).
	LogDecisions string `json:"log_decisions,omitempty"`

	// RouteName names the route in the System Log (the event's target of
	// type `apiaccess.Route`), e.g. `billing-api`. Default: the request's
	// host.
	RouteName string `json:"route_name,omitempty"`

	// DPoP says whether the route takes DPoP-bound tokens (RFC 9449):
	// `allowed` (default): bearer tokens pass as before, and a token
	// with `cnf.jkt` must come as `Authorization: DPoP <token>` with one
	// `DPoP` header holding a valid proof for this request, this token
	// (`ath`) and the key of `cnf.jkt`; `required`: only such tokens
	// pass; `off`: the DPoP scheme is not taken, and a DPoP-bound token
	// is still refused as a bearer token (its issuer bound it to a key;
	// this gateway knows what `cnf` means). The proof is checked on every
	// request; the verified-token cache keeps only the token's checks.
	DPoP string `json:"dpop,omitempty"`

	// DPoPOrigin is the origin clients use, e.g. `https://api.example.com`,
	// for a Caddy that cannot know it (behind a proxy that changes the
	// scheme, host or port). The proof's `htu` must be this origin and
	// the request's path. Default: the scheme of the connection, or the
	// `X-Forwarded-Proto` of a proxy in the server's `trusted_proxies`,
	// and the request's Host.
	DPoPOrigin string `json:"dpop_origin,omitempty"`

	// DPoPAlgorithms allowed for proofs, sent in the challenge's `algs`.
	// Default: ES256, RS256, PS256, EdDSA. Asymmetric algorithms only.
	DPoPAlgorithms []string `json:"dpop_algorithms,omitempty"`

	// DPoPNonceSecret, when set (normally `{env.NAME}`, at least 16
	// bytes), makes proofs carry a server nonce (RFC 9449 section 9):
	// a proof without one, or with a stale one, gets 401
	// `use_dpop_nonce` and a fresh nonce in `DPoP-Nonce`. Nonces are
	// derived from the secret and the time, so gateways sharing the
	// secret accept each other's.
	DPoPNonceSecret string `json:"dpop_nonce_secret,omitempty"`

	// DPoPNoncePeriod is how often the nonce changes; a nonce is
	// accepted for one to two periods. Default: 5m.
	DPoPNoncePeriod duration.Duration `json:"dpop_nonce_period,omitempty"`

	// DPoPReplayCacheSize bounds the proof identifiers (`jti`)
	// remembered to refuse replays, each for the proof's lifetime (5m
	//30s). Routes with the same size share one cache per process. Full,
	// it refuses new proofs with 503 rather than forget one. Each Caddy
	// keeps its own: in a cluster, a proof replayed at another gateway
	// within its lifetime is not detected. Default: 100000.
	DPoPReplayCacheSize int `json:"dpop_replay_cache_size,omitempty"`

	// Revocations makes the route follow an OpenID SSF transmitter's
	// revocation feed (RFC 8936 poll delivery) and refuse the tokens it
	// revokes (reason `revoked`). Issuers of a `token_issuer` app in the
	// same Caddy need no feed: their revocations are read in process,
	// with the staleness defaults (30s, warn) unless a block without
	// feed sets them.
	Revocations *RevocationsConfig `json:"revocations,omitempty"`

	v           *validator.Validator
	revocations *routeRevocations
	dpop        *dpopGate
	decisions   *decisionLog
	log         *zap.Logger
	metrics     *metrics
	cleanup     []func()
}

// IssuerConfig is one accepted issuer.
type IssuerConfig struct {
	// URL is the issuer identifier, e.g.
	// `https://id.example.com/oauth2/default`. Required.
	URL string `json:"url"`

	// Audience: the token's `aud` must contain one of these. Default:
	// the handler's `audience`. One of the two is required.
	Audience []string `json:"audience,omitempty"`

	// Algorithms allowed for this issuer. Default: the handler's.
	Algorithms []string `json:"algorithms,omitempty"`

	// JWKSURI overrides discovery of the key set (`jwks_uri` in the
	// issuer's metadata).
	JWKSURI string `json:"jwks_uri,omitempty"`

	// KeyRefresh is the background refresh period of fetched keys.
	// Default: 15m.
	KeyRefresh duration.Duration `json:"key_refresh,omitempty"`

	// MinRefresh is the least time between two fetches caused by an
	// unknown `kid` or a failure, and so the longest a key the issuer
	// starts using without publishing it first (an emergency rotation)
	// is refused; a flood of unknown kids costs one fetch per
	// MinRefresh. Default: 15s.
	MinRefresh duration.Duration `json:"min_refresh,omitempty"`
}

// ClaimConfig is one claim condition.
type ClaimConfig struct {
	// Name of a top-level claim.
	Name string `json:"name"`
	// Value the claim must equal; for an array claim, one element must.
	// Numbers compare by value, booleans as `true`/`false`.
	Value string `json:"value,omitempty"`
	// Regexp the whole claim value must match (it is anchored); for an
	// array claim, one element must. Use Value or Regexp.
	Regexp string `json:"regexp,omitempty"`
}

// ForwardClaim copies a claim into a request header.
type ForwardClaim struct {
	// Claim name (top level).
	Claim string `json:"claim"`
	// Header to set. Strings are sent as-is; arrays, numbers, booleans
	// and objects as compact JSON (`["a","b"]`), so values containing
	// commas stay unambiguous. An absent claim leaves the header absent.
	Header string `json:"header"`
}

// IntrospectionConfig configures RFC 7662 validation.
type IntrospectionConfig struct {
	// Endpoint of the issuer's introspection; default
	// `{issuer}/v1/introspect` (Okta's path).
	Endpoint string `json:"endpoint,omitempty"`
	// ClientID we authenticate with (client_secret_basic). Required.
	ClientID string `json:"client_id"`
	// ClientSecret, normally `{env.NAME}`. Required.
	ClientSecret string `json:"client_secret"`
	// Cache reuses an answer this long (never past the token's exp).
	// Default: 0, every request asks.
	Cache duration.Duration `json:"cache,omitempty"`
	// NegativeCache reuses a refusal decided by the issuer's answer
	// (inactive, wrong issuer or audience, expired, not an access
	// token) this long, so a bad token sent again costs no issuer call.
	// Transport errors and non-200 answers (5xx included) are never
	// kept. Entries are keyed by a SHA-256 of the token and bounded by
	// `cache_size`, apart from the accepted tokens. Default: 10s; a
	// negative value disables it (as does `cache_size` -1).
	NegativeCache duration.Duration `json:"negative_cache,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (RequireToken) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.require_token",
		New: func() caddy.Module { return new(RequireToken) },
	}
}

// Provision builds the validator. It makes no network call: keys are
// fetched on first use.
func (rt *RequireToken) Provision(ctx caddy.Context) error {
	rt.log = ctx.Logger()
	var err error
	if rt.metrics, err = newMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	defAlgs := rt.Algorithms
	if len(defAlgs) == 0 {
		for _, a := range validator.DefaultAlgorithms {
			defAlgs = append(defAlgs, a.String())
		}
	}
	cfg := validator.Config{
		Skew:         time.Duration(rt.ClockSkew),
		MaxTokenSize: rt.MaxTokenSize,
		Scopes:       rt.Scopes,
		AnyScope:     rt.AnyScope,
		CacheSize:    rt.CacheSize,
	}
	if rt.ClockSkew == 0 {
		cfg.Skew = validator.DefaultSkew
	}
	if rt.ClockSkew < 0 {
		return fmt.Errorf("clock_skew must not be negative")
	}
	switch {
	case rt.CacheSize == 0:
		cfg.CacheSize = validator.DefaultCacheSize
	case rt.CacheSize < 0:
		cfg.CacheSize = 0
	}
	if rt.MaxTokenSize < 0 {
		return fmt.Errorf("max_token_size must not be negative")
	}
	repl := caddy.NewReplacer()
	keys := newKeySources(ctx, rt.log)
	rt.cleanup = append(rt.cleanup, keys.release)
	for _, ic := range rt.Issuers {
		is := &validator.Issuer{URL: strings.TrimSpace(ic.URL), Audiences: ic.Audience}
		if is.URL == "" {
			return fmt.Errorf("issuer: url is required")
		}
		if len(is.Audiences) == 0 {
			is.Audiences = rt.Audience
		}
		algs := ic.Algorithms
		if len(algs) == 0 {
			algs = defAlgs
		}
		for _, a := range algs {
			is.Algorithms = append(is.Algorithms, jwa.SignatureAlgorithm(a))
		}
		if rt.Introspection == nil {
			if is.Keys, err = keys.source(ic); err != nil {
				return err
			}
		}
		if in, ok := localIssuer(ctx).(issuedAudiences); ok {
			warnUnissuedAudience(in, is, rt.log)
		}
		cfg.Issuers = append(cfg.Issuers, is)
	}
	for _, c := range rt.Claims {
		if c.Name == "" {
			return fmt.Errorf("claim: name is required")
		}
		if c.Regexp != "" {
			if c.Value != "" {
				return fmt.Errorf("claim %s: use value or regexp, not both", c.Name)
			}
			cc, err := validator.NewClaimRegexp(c.Name, c.Regexp)
			if err != nil {
				return err
			}
			cfg.Claims = append(cfg.Claims, cc)
			continue
		}
		cfg.Claims = append(cfg.Claims, validator.ClaimCondition{Name: c.Name, Value: c.Value})
	}
	if rt.Expression != "" {
		if cfg.Expression, err = validator.CompileExpression(rt.Expression); err != nil {
			return err
		}
	}
	if in := rt.Introspection; in != nil {
		if len(rt.Issuers) != 1 {
			return fmt.Errorf("introspection needs exactly one issuer")
		}
		secret, err := repl.ReplaceOrErr(in.ClientSecret, true, true)
		if err != nil {
			return fmt.Errorf("introspection client_secret: %w", err)
		}
		if in.ClientID == "" || secret == "" {
			return fmt.Errorf("introspection: client_id and client_secret are required")
		}
		ep := in.Endpoint
		if ep == "" {
			ep = strings.TrimRight(cfg.Issuers[0].URL, "/") + "/v1/introspect"
		}
		neg := time.Duration(in.NegativeCache)
		switch {
		case neg == 0:
			neg = validator.DefaultNegativeTTL
		case neg < 0:
			neg = 0
		}
		cfg.Introspection = &validator.Introspector{Endpoint: ep, ClientID: in.ClientID, ClientSecret: secret,
			CacheTTL: time.Duration(in.Cache), NegativeTTL: neg, Client: &http.Client{Timeout: 10 * time.Second}}
	}
	fwd := map[string]bool{}
	for _, f := range rt.ForwardClaims {
		if f.Claim == "" || f.Header == "" {
			return fmt.Errorf("forward_claim: claim and header are required")
		}
		if !validHeaderName(f.Header) {
			return fmt.Errorf("forward_claim %s: invalid header name %q", f.Claim, f.Header)
		}
		n := normalize(f.Header)
		if reservedHeaders[n] {
			return fmt.Errorf("forward_claim %s: header %s carries the token or the request framing and cannot be set from a claim", f.Claim, f.Header)
		}
		if fwd[n] {
			return fmt.Errorf("forward_claim %s: header %s is already set by another forward_claim", f.Claim, f.Header)
		}
		fwd[n] = true
	}
	if err := validator.Check(cfg); err != nil {
		return err
	}
	if !validRouteName(rt.RouteName) {
		return fmt.Errorf("route_name: at most 128 bytes of printable UTF-8")
	}
	if rt.decisions, err = newDecisionLog(ctx, rt.LogDecisions, rt.RouteName); err != nil {
		return err
	}
	if err := rt.provisionDPoP(); err != nil {
		return err
	}
	if err := rt.provisionRevocations(ctx, cfg.Issuers); err != nil {
		return err
	}
	rt.v = validator.New(cfg)
	return nil
}

// Validate warns about risky settings.
func (rt *RequireToken) Validate() error {
	if rt.TokenQuery != "" {
		rt.log.Warn("tokens accepted in the query string end up in access logs and browser history (RFC 6750 section 2.3)", zap.String("token_query", rt.TokenQuery))
	}
	if rc := rt.Revocations; rc != nil && rc.StaleAfter > 0 && time.Duration(rc.StaleAfter) < 10*time.Second {
		rt.log.Warn("revocations stale_after is below the transmitter's long-poll hold (10 s) or twice the issuer's re-read interval (5 s): the feed will look stale between answers", zap.Duration("stale_after", time.Duration(rc.StaleAfter)))
	}
	for _, ic := range rt.Issuers {
		if strings.HasPrefix(ic.URL, "http://") && !strings.HasPrefix(ic.URL, "http://localhost") && !strings.HasPrefix(ic.URL, "http://127.") {
			rt.log.Warn("issuer uses plain HTTP: its keys can be swapped in transit", zap.String("issuer", ic.URL))
		}
	}
	return nil
}

// Cleanup releases shared key caches.
func (rt *RequireToken) Cleanup() error {
	for _, f := range rt.cleanup {
		f()
	}
	return nil
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (rt *RequireToken) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	// Identity headers from the client never reach the upstream, as
	// headers or as trailers.
	stripForwarded(r.Header, rt.ForwardClaims)
	stripForwardedTrailers(r, rt.ForwardClaims)
	tok, scheme, f := rt.extract(r)
	var res *validator.Result
	if f == nil {
		res, f = rt.validate(r, tok, scheme)
	}
	if f == nil && rt.revocations != nil {
		f = rt.revocations.check(res)
	}
	if f == nil {
		f = forwardClaims(r.Header, rt.ForwardClaims, res.Claims)
	}
	if f != nil {
		return rt.reject(w, r, repl, f, scheme)
	}
	rt.metrics.accept()
	if repl != nil {
		publish(repl, res)
	}
	rt.decisions.accepted(r, repl, res)
	if c := rt.log.Check(zap.DebugLevel, "token accepted"); c != nil {
		c.Write(zap.String("issuer", res.Issuer.URL), zap.String("subject", res.Subject), zap.String("client_id", clientID(res.Claims)),
			zap.String("host", r.Host), zap.String("path", r.URL.Path), zap.String("client_ip", clientIP(r)), zap.String("route", rt.RouteName))
	}
	return next.ServeHTTP(w, r)
}

// reject answers per RFC 6750 section 3 and records the decision.
func (rt *RequireToken) reject(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer, f *validator.Failure, scheme tokenScheme) error {
	rt.metrics.observe("rejected", f.Reason)
	if repl != nil {
		repl.Set("http.auth.token.error", f.Reason)
	}
	fields := []zap.Field{zap.String("reason", f.Reason), zap.Int("status", f.Status), zap.String("host", r.Host), zap.String("path", r.URL.Path), zap.String("remote_ip", remoteIP(r)), zap.String("client_ip", clientIP(r))}
	if f.Issuer != "" {
		fields = append(fields, zap.String("issuer", f.Issuer))
	}
	if f.Subject != "" || f.ClientID != "" {
		fields = append(fields, zap.String("subject", f.Subject), zap.String("client_id", f.ClientID))
	}
	if rt.RouteName != "" {
		fields = append(fields, zap.String("route", rt.RouteName))
	}
	if c := rt.log.Check(zap.InfoLevel, "token rejected"); c != nil {
		c.Write(fields...)
	}
	rt.decisions.rejected(r, repl, f)
	realm := rt.Realm
	if realm == "" {
		realm = r.Host
	}
	rt.setChallenges(w.Header(), f, realm, scheme)
	return caddyhttp.Error(f.Status, f)
}

func remoteIP(r *http.Request) string {
	host := r.RemoteAddr
	if i := strings.LastIndexByte(host, ':'); i > 0 {
		host = host[:i]
	}
	return strings.Trim(host, "[]")
}

func clientID(claims map[string]any) string {
	if c, ok := claims["cid"].(string); ok {
		return c
	}
	c, _ := claims["client_id"].(string)
	return c
}

var (
	_ caddy.Provisioner           = (*RequireToken)(nil)
	_ caddy.Validator             = (*RequireToken)(nil)
	_ caddy.CleanerUpper          = (*RequireToken)(nil)
	_ caddyhttp.MiddlewareHandler = (*RequireToken)(nil)
)
