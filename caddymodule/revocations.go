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
// their revocations are read in process, from the issuer's view of the
// store's feed. That view is stale when the issuer has not caught up
// with the store (other nodes' revocations) within stale_after; a
// route whose issuers are all local sets stale_after and on_stale with
// a block that has neither feed nor credentials. With a feed, the
// block's stale_after and on_stale apply to the feed and to the
// in-process view alike.
type RevocationsConfig struct {
	// Feed is the transmitter's issuer, e.g. `https://id.example.com`
	// (its metadata is at `{feed}/.well-known/ssf-configuration`).
	// https, or http to a loopback address. Empty: the block only sets
	// stale_after and on_stale of the in-process view (the route must
	// have an issuer of this Caddy, and ClientID, ClientSecret and
	// PrivateKey must be empty too).
	Feed string `json:"feed,omitempty"`

	// ClientID the receiver authenticates with (OAuth 2.0 client
	// credentials at the feed's org authorization server, scopes
	// `ssf.read ssf.manage`). Required with Feed.
	ClientID string `json:"client_id,omitempty"`

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
	// than this (or it never answered); the in-process view, when the
	// issuer last caught up with the store's feed longer ago (or never
	// did). Default: 30s. Keep it above the transmitter's long-poll hold
	// (10 s) and the issuer's re-read interval (5 s).
	StaleAfter duration.Duration `json:"stale_after,omitempty"`

	// OnStale says what the route does while the feed (or in-process
	// view) is stale: `warn` (default) serves and logs a warning at most
	// once per stale_after; `fail` answers 503 with reason
	// `revocation_feed_stale`.
	OnStale string `json:"on_stale,omitempty"`

	// Tunables for tests (zero: the default).
	backoffMax    time.Duration
	keyMinRefresh time.Duration
	maxTokens     int
	takeoverAfter time.Duration
}

// revocationView is what a `token_issuer` app offers so a route reads
// its issuers' revocations in process: one set for all its issuers,
// valid for the app's lifetime. ok false: the app keeps none.
type revocationView interface {
	RevocationView() (revs *ssf.Revocations, ok bool)
}

// revocationViewAge is offered beside revocationView: how long ago the
// view last caught up with every node's revocations (the store's
// feed); ok false: never yet. It must be cheap (an atomic load and
// time arithmetic): the route calls it on every request. An app
// offering a view without it is taken as always fresh.
type revocationViewAge interface {
	RevocationViewAge() (age time.Duration, ok bool)
}

// revSource is where the revocations of one of the route's issuers come
// from.
type revSource struct {
	issuer *validator.Issuer
	revs   *ssf.Revocations
	feed   *feedReceiver     // nil: in process
	view   revocationViewAge // in process: the view's age; nil: always fresh
}

// inProcessName names the in-process view in logs.
const inProcessName = "in-process view of token_issuer"

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
	viewAge, _ := app.(revocationViewAge)
	rc := rt.Revocations
	var cfg *feedConfig
	if rc != nil {
		var err error
		if rr.staleAfter, rr.failStale, err = rc.staleness(); err != nil {
			return err
		}
		if cfg, err = rc.resolve(); err != nil {
			return err
		}
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
			rr.sources = append(rr.sources, revSource{issuer: is, revs: view, view: viewAge})
		case byFeed:
			rr.sources = append(rr.sources, revSource{issuer: is})
			fed++
		}
	}
	if rc != nil && cfg == nil && len(rr.sources) == 0 {
		return fmt.Errorf("revocations without feed sets stale_after and on_stale of the in-process view, but no issuer of the route is served by a token_issuer app of this Caddy: name a feed (with client_id and credentials)")
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
	var age time.Duration
	var ok bool
	switch {
	case src.feed != nil:
		age, ok = src.feed.age(rr.now())
	case src.view != nil:
		age, ok = src.view.RevocationViewAge() // an atomic load
	default:
		return nil
	}
	if ok && age <= rr.staleAfter {
		return nil
	}
	if rr.failStale {
		return &validator.Failure{Status: http.StatusServiceUnavailable, Reason: ReasonFeedStale, Issuer: res.Issuer.URL}
	}
	if now, last := rr.now().UnixNano(), rr.lastWarn.Load(); now-last >= int64(rr.staleAfter) && rr.lastWarn.CompareAndSwap(last, now) {
		feed := inProcessName
		if src.feed != nil {
			feed = src.feed.feed
		}
		fields := []zap.Field{zap.String("feed", feed), zap.Duration("stale_after", rr.staleAfter)}
		if ok {
			fields = append(fields, zap.Duration("age", age))
		}
		rr.log.Warn("revocation feed is stale: serving tokens whose revocation may not be known yet (on_stale warn)", fields...)
	}
	return nil
}

// feedConfig is a RevocationsConfig with a feed, its placeholders
// resolved.
type feedConfig struct {
	feed, clientID string
	creds          *feedCreds
	tune           RevocationsConfig
}

// staleness checks stale_after and on_stale and applies their defaults.
func (rc *RevocationsConfig) staleness() (staleAfter time.Duration, failStale bool, err error) {
	switch rc.OnStale {
	case "", OnStaleWarn:
	case OnStaleFail:
		failStale = true
	default:
		return 0, false, fmt.Errorf("revocations: on_stale %q: want warn or fail", rc.OnStale)
	}
	switch staleAfter = time.Duration(rc.StaleAfter); {
	case staleAfter == 0:
		staleAfter = DefaultStaleAfter
	case staleAfter < 0:
		return 0, false, fmt.Errorf("revocations: stale_after must be positive")
	}
	return staleAfter, failStale, nil
}

// resolve checks rc's feed settings and resolves its placeholders; nil
// without a feed (then no client_id or credentials either).
func (rc *RevocationsConfig) resolve() (*feedConfig, error) {
	if strings.TrimSpace(rc.Feed) == "" {
		if rc.ClientID != "" || rc.ClientSecret != "" || rc.PrivateKey != "" || rc.PrivateKeyID != "" {
			return nil, fmt.Errorf("revocations: client_id, client_secret and private_key are for a feed, and feed is not set")
		}
		return nil, nil
	}
	cfg := &feedConfig{feed: strings.TrimRight(strings.TrimSpace(rc.Feed), "/"), clientID: rc.ClientID, tune: *rc}
	if err := checkFeedURL(cfg.feed); err != nil {
		return nil, err
	}
	if cfg.clientID == "" {
		return nil, fmt.Errorf("revocations: client_id is required")
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
