package caddymodule

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/caddymodule/validator"
	"github.com/apiaccess/caddy-apiaccess/internal/duration"
	"github.com/apiaccess/caddy-apiaccess/internal/jsonstrict"
	"github.com/apiaccess/caddy-apiaccess/internal/ssf"
)

// Reasons of the revocation check.
const (
	// ReasonRevoked: the token, its user, its client or its user at its
	// client was revoked (CAEP session-revoked); 401 invalid_token.
	ReasonRevoked = "revoked"
	// ReasonFeedStale: the route's revocation feed has not answered
	// within stale_after and on_stale is fail; 503.
	ReasonFeedStale = "revocation_feed_stale"
)

// on_stale values.
const (
	OnStaleWarn = "warn"
	OnStaleFail = "fail"
)

// DefaultStaleAfter is stale_after when unset: three long polls of the
// transmitter (which holds a poll up to 10 s).
const DefaultStaleAfter = 30 * time.Second

// RevocationsConfig makes the route follow a Shared Signals (OpenID SSF
// 1.0) transmitter's revocation feed by poll delivery (RFC 8936) and
// refuse the tokens it revokes. It applies to the route's issuers whose
// URL is the feed or under `{feed}/oauth2/` (the org and the custom
// authorization servers of an Okta-style issuer). One receiver per feed
// and client id serves every route and survives config reloads.
//
// Issuers served by a `token_issuer` app of the same Caddy need no feed:
// their revocations are read in process, always fresh.
type RevocationsConfig struct {
	// Feed is the transmitter's issuer, e.g. `https://id.example.com`
	// (its metadata is at `{feed}/.well-known/ssf-configuration`).
	// Required; https, or http to a loopback address.
	Feed string `json:"feed"`

	// ClientID the receiver authenticates with (OAuth 2.0 client
	// credentials at the feed's org authorization server, scopes
	// `ssf.read ssf.manage`). Required.
	ClientID string `json:"client_id"`

	// ClientSecret for `client_secret_basic`, normally `{env.NAME}`.
	// Set this or PrivateKey.
	ClientSecret string `json:"client_secret,omitempty"`

	// PrivateKey is the path of a PEM private key (RSA, P-256 or
	// Ed25519) for `private_key_jwt` (RFC 7523 section 2.2): the client
	// signs an assertion instead of sending a secret. Set this or
	// ClientSecret.
	PrivateKey string `json:"private_key,omitempty"`

	// PrivateKeyID is the `kid` of PrivateKey in the client's JWKS.
	// Optional.
	PrivateKeyID string `json:"private_key_id,omitempty"`

	// StaleAfter: the feed counts as stale when its last answer is older
	// than this (or it never answered). Default: 30s. Keep it above the
	// transmitter's long-poll hold (10 s).
	StaleAfter duration.Duration `json:"stale_after,omitempty"`

	// OnStale says what the route does while the feed is stale: `warn`
	// (default) serves and logs a warning at most once per stale_after;
	// `fail` answers 503 with reason `revocation_feed_stale`.
	OnStale string `json:"on_stale,omitempty"`

	// Tunables for tests (zero: the default).
	backoffMax    time.Duration
	keyMinRefresh time.Duration
	maxTokens     int
}

// revocationView is what a `token_issuer` app offers so a route reads
// its issuers' revocations in process: one set for all its issuers,
// valid for the app's lifetime and always up to date (so always
// fresh). ok false: the app keeps none.
type revocationView interface {
	RevocationView() (revs *ssf.Revocations, ok bool)
}

// revSource is where the revocations of one of the route's issuers come
// from.
type revSource struct {
	issuer *validator.Issuer
	revs   *ssf.Revocations
	feed   *feedReceiver // nil: in process, always fresh
}

// routeRevocations is a route's revocation check.
type routeRevocations struct {
	sources    []revSource
	staleAfter time.Duration
	failStale  bool
	lastWarn   atomic.Int64 // unix nanoseconds
	log        *zap.Logger
	now        func() time.Time
}

// checkFeedURL accepts https, or http to a loopback host.
func checkFeedURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("revocations feed %q: want an absolute URL without query, fragment or user", s)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	default:
		return fmt.Errorf("revocations feed %q: must be https (http only to a loopback address)", s)
	}
	return nil
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "::1" || strings.HasPrefix(host, "127.")
}

// covers tells whether the feed speaks for issuer iss: the feed itself
// (the org authorization server) or one under {feed}/oauth2/.
func covers(feed, iss string) bool {
	return iss == feed || strings.HasPrefix(iss, feed+"/oauth2/")
}

// provisionRevocations sets up the route's revocation check: the
// in-process view for issuers of this Caddy that offer one, the feed
// for those it covers. It makes no network call.
func (rt *RequireToken) provisionRevocations(ctx caddy.Context, issuers []*validator.Issuer) error {
	return rt.setupRevocations(localIssuer(ctx), ctx.GetMetricsRegistry(), issuers)
}

// setupRevocations is provisionRevocations with app, the `token_issuer`
// app of this Caddy (nil: none).
func (rt *RequireToken) setupRevocations(app any, reg *prometheus.Registry, issuers []*validator.Issuer) error {
	rr := &routeRevocations{log: rt.log, now: time.Now, staleAfter: DefaultStaleAfter}
	var view *ssf.Revocations
	local, _ := app.(inProcessIssuer)
	if v, ok := app.(revocationView); ok && local != nil {
		view, _ = v.RevocationView()
	}
	rc := rt.Revocations
	var cfg *feedConfig
	if rc != nil {
		var err error
		if cfg, err = rc.resolve(); err != nil {
			return err
		}
		rr.staleAfter, rr.failStale = cfg.staleAfter, cfg.failStale
	}
	fed := 0
	for _, is := range issuers {
		inProcess := false
		if view != nil {
			_, _, inProcess = local.PublicKeys(is.URL)
		}
		byFeed := cfg != nil && covers(cfg.feed, is.URL)
		switch {
		case inProcess && byFeed:
			return fmt.Errorf("revocations: issuer %s is served by this Caddy, whose revocations are read in process; the feed %s must name another issuer", is.URL, cfg.feed)
		case inProcess:
			rr.sources = append(rr.sources, revSource{issuer: is, revs: view})
		case byFeed:
			rr.sources = append(rr.sources, revSource{issuer: is})
			fed++
		}
	}
	if cfg != nil {
		if fed == 0 {
			return fmt.Errorf("revocations: the feed %s covers none of the route's issuers (it covers %s and %s/oauth2/...)", cfg.feed, cfg.feed, cfg.feed)
		}
		if err := registerFeedMetrics(reg); err != nil {
			return err
		}
		fr, err := acquireFeed(cfg)
		if err != nil {
			return err
		}
		rt.cleanup = append(rt.cleanup, func() { releaseFeed(cfg) })
		for i := range rr.sources {
			if rr.sources[i].revs == nil {
				rr.sources[i].revs, rr.sources[i].feed = fr.revs, fr
			}
		}
	}
	if len(rr.sources) > 0 {
		rt.revocations = rr
	}
	return nil
}

// check refuses a validated token its issuer revoked, or any token of a
// feed gone stale when the route fails closed. It takes no lock and
// allocates nothing for a token that passes.
func (rr *routeRevocations) check(res *validator.Result) *validator.Failure {
	var src *revSource
	for i := range rr.sources {
		if rr.sources[i].issuer == res.Issuer {
			src = &rr.sources[i]
			break
		}
	}
	if src == nil {
		return nil
	}
	c := res.Claims
	jti, _ := c["jti"].(string)
	sub, _ := c["sub"].(string)
	uid, _ := c["uid"].(string)
	cid := clientID(c)
	var iat time.Time
	if raw, ok := c["iat"]; ok {
		iat, _ = jsonstrict.NumericDate(raw) // the validator read it already
	}
	if src.revs.Revoked(jti, sub, uid, cid, iat) {
		return &validator.Failure{Status: http.StatusUnauthorized, Code: "invalid_token", Reason: ReasonRevoked,
			Issuer: res.Issuer.URL, Verified: true, Subject: res.Subject, ClientID: cid, UserID: uid, JTI: jti}
	}
	if src.feed == nil {
		return nil
	}
	now := rr.now()
	age, ok := src.feed.age(now)
	if ok && age <= rr.staleAfter {
		return nil
	}
	if rr.failStale {
		return &validator.Failure{Status: http.StatusServiceUnavailable, Reason: ReasonFeedStale, Issuer: res.Issuer.URL}
	}
	if last := rr.lastWarn.Load(); now.UnixNano()-last >= int64(rr.staleAfter) && rr.lastWarn.CompareAndSwap(last, now.UnixNano()) {
		fields := []zap.Field{zap.String("feed", src.feed.feed), zap.Duration("stale_after", rr.staleAfter)}
		if ok {
			fields = append(fields, zap.Duration("age", age))
		}
		rr.log.Warn("revocation feed is stale: serving tokens whose revocation may not be known yet (on_stale warn)", fields...)
	}
	return nil
}

// feedConfig is a RevocationsConfig with its placeholders resolved and
// defaults applied.
type feedConfig struct {
	feed, clientID string
	creds          *feedCreds
	staleAfter     time.Duration
	failStale      bool
	tune           RevocationsConfig
}

// resolve checks rc and resolves its placeholders.
func (rc *RevocationsConfig) resolve() (*feedConfig, error) {
	cfg := &feedConfig{feed: strings.TrimRight(strings.TrimSpace(rc.Feed), "/"), clientID: rc.ClientID, staleAfter: time.Duration(rc.StaleAfter), tune: *rc}
	if err := checkFeedURL(cfg.feed); err != nil {
		return nil, err
	}
	if cfg.clientID == "" {
		return nil, fmt.Errorf("revocations: client_id is required")
	}
	switch rc.OnStale {
	case "", OnStaleWarn:
	case OnStaleFail:
		cfg.failStale = true
	default:
		return nil, fmt.Errorf("revocations: on_stale %q: want warn or fail", rc.OnStale)
	}
	switch {
	case cfg.staleAfter == 0:
		cfg.staleAfter = DefaultStaleAfter
	case cfg.staleAfter < 0:
		return nil, fmt.Errorf("revocations: stale_after must be positive")
	}
	repl := caddy.NewReplacer()
	secret, err := repl.ReplaceOrErr(rc.ClientSecret, true, true)
	if err != nil {
		return nil, fmt.Errorf("revocations client_secret: %w", err)
	}
	keyPath, err := repl.ReplaceOrErr(rc.PrivateKey, true, true)
	if err != nil {
		return nil, fmt.Errorf("revocations private_key: %w", err)
	}
	switch {
	case secret != "" && keyPath != "":
		return nil, fmt.Errorf("revocations: client_secret or private_key, not both")
	case secret != "":
		cfg.creds = &feedCreds{secret: secret}
	case keyPath != "":
		key, err := loadAssertionKey(keyPath, rc.PrivateKeyID)
		if err != nil {
			return nil, fmt.Errorf("revocations private_key: %w", err)
		}
		cfg.creds = &feedCreds{key: key}
	default:
		return nil, fmt.Errorf("revocations: client_secret or private_key is required")
	}
	return cfg, nil
}
