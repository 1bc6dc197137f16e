package caddymodule

import (
	"bytes"
	"context"
	"crypto"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/caddymodule/keyset"
	"github.com/apiaccess/caddy-apiaccess/internal/ssf"
)

// feeds shares one receiver per (feed, client id) across routes and
// config reloads: a reload neither reconnects nor forgets revocations.
var feeds = caddy.NewUsagePool()

// Receiver defaults.
const (
	feedBackoffMin = 100 * time.Millisecond
	feedBackoffMax = 5 * time.Second
	// feedPollTimeout bounds one poll: the transmitter holds it up to
	// 10 s (RFC 8936 section 2.1 long polling), a slow one a bit more.
	feedPollTimeout = 45 * time.Second
	feedCallTimeout = 10 * time.Second
	feedMaxEvents   = 1000
	feedMaxBody     = 16 << 20
	// feedSkew is how far in the future a SET's iat may be.
	feedSkew = 5 * time.Minute
	// feedScopes are those of Okta's SSF Transmitter API.
	feedScopes = "ssf.read ssf.manage"
	// feedTakeoverAfter is how long stream creation must keep answering
	// 409 before the receiver deletes a stream it did not create.
	feedTakeoverAfter = 3 * time.Minute
)

// ownStreams holds the ids of the streams receivers of this process
// created and have not deleted, per feedKey: on a 409 a receiver
// deletes those (its predecessor's, whose shutdown failed) at once,
// and another process's only after feedTakeoverAfter.
var ownStreams = struct {
	sync.Mutex
	m map[string]map[string]bool
}{m: map[string]map[string]bool{}}

func (fr *feedReceiver) rememberStream(id string, own bool) {
	ownStreams.Lock()
	defer ownStreams.Unlock()
	k := feedKey(fr.feed, fr.clientID)
	switch {
	case own && ownStreams.m[k] == nil:
		ownStreams.m[k] = map[string]bool{id: true}
	case own:
		ownStreams.m[k][id] = true
	default:
		delete(ownStreams.m[k], id)
		if len(ownStreams.m[k]) == 0 {
			delete(ownStreams.m, k)
		}
	}
}

func (fr *feedReceiver) isOwnStream(id string) bool {
	ownStreams.Lock()
	defer ownStreams.Unlock()
	return ownStreams.m[feedKey(fr.feed, fr.clientID)][id]
}

func (fr *feedReceiver) hasOwnStreams() bool {
	ownStreams.Lock()
	defer ownStreams.Unlock()
	return len(ownStreams.m[feedKey(fr.feed, fr.clientID)]) > 0
}

// feedCreds is how the receiver authenticates at the token endpoint:
// client_secret_basic (RFC 6749 section 2.3.1) or private_key_jwt (RFC
// 7523 section 2.2).
type feedCreds struct {
	secret string
	key    jwk.Key
}

func (c *feedCreds) equal(o *feedCreds) bool {
	if c == nil || o == nil {
		return c == o
	}
	if (c.key == nil) != (o.key == nil) {
		return false
	}
	if c.key != nil {
		a, _ := c.key.Thumbprint(crypto.SHA256)
		b, _ := o.key.Thumbprint(crypto.SHA256)
		return bytes.Equal(a, b) && c.key.KeyID() == o.key.KeyID()
	}
	return subtle.ConstantTimeCompare([]byte(c.secret), []byte(o.secret)) == 1
}

// feedReceiver follows one transmitter's feed for one client id: it
// discovers the transmitter, obtains tokens, creates a poll stream and
// polls it, verifying every SET and applying it to revs.
type feedReceiver struct {
	feed, clientID string
	revs           *ssf.Revocations
	creds          atomic.Pointer[feedCreds]
	// synced is when the last poll answer was fully processed, unix
	// nanoseconds; 0: never.
	synced atomic.Int64

	client        *http.Client
	log           *zap.Logger
	backoffMax    time.Duration
	keyMinRefresh time.Duration
	takeoverAfter time.Duration
	cancel        context.CancelFunc
	done          chan struct{}

	// Loop state, owned by run.
	meta          *ssf.TransmitterConfig
	tokenEndpoint string
	token         string
	tokenExp      time.Time
	stream        *ssf.StreamConfig
	aud           string
	keys          *keyset.Remote
	keysURI       string
	keysCancel    context.CancelFunc
	verifier      *ssf.Verifier
	acks          []string
	setErrs       map[string]ssf.SetErr
	unknownKID    map[string]int64 // jti -> successful key fetches when first seen
	keyErrs       atomic.Int64     // failed key fetches
	immediate     bool
	failures      int
	conflictSince time.Time // first of the current run of 409s at stream creation
	lastErrLog    time.Time
	lastPrune     time.Time
}

// feedLogger is the receivers' logger: Caddy's default one, since a
// receiver outlives the config (and its loggers) that started it.
var feedLogger = func() *zap.Logger { return caddy.Log().Named("http.handlers.require_token.revocations") }

func feedKey(feed, clientID string) string { return feed + "\x00" + clientID }

// acquireFeed returns the receiver of cfg's feed and client id, starting
// it (in a goroutine, no network here) when new. A reload's newer
// credentials replace the running ones.
func acquireFeed(cfg *feedConfig) (*feedReceiver, error) {
	v, loaded, err := feeds.LoadOrNew(feedKey(cfg.feed, cfg.clientID), func() (caddy.Destructor, error) {
		return newFeedReceiver(cfg), nil
	})
	if err != nil {
		return nil, err
	}
	fr := v.(*feedReceiver)
	if loaded && !fr.creds.Load().equal(cfg.creds) {
		fr.creds.Store(cfg.creds)
		fr.log.Info("revocation feed credentials changed; used from the next token request", zap.String("feed", fr.feed), zap.String("client_id", fr.clientID))
	}
	return fr, nil
}

func releaseFeed(cfg *feedConfig) { _, _ = feeds.Delete(feedKey(cfg.feed, cfg.clientID)) }

func newFeedReceiver(cfg *feedConfig) *feedReceiver {
	revs := ssf.NewRevocations()
	revs.MaxTokens = cfg.tune.maxTokens
	ctx, cancel := context.WithCancel(context.Background())
	fr := &feedReceiver{
		feed: cfg.feed, clientID: cfg.clientID, revs: revs,
		client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // a bearer token follows no redirect
		}},
		log:           feedLogger(),
		backoffMax:    cfg.tune.backoffMax,
		keyMinRefresh: cfg.tune.keyMinRefresh,
		cancel:        cancel,
		done:          make(chan struct{}),
	}
	if fr.backoffMax <= 0 {
		fr.backoffMax = feedBackoffMax
	}
	if fr.takeoverAfter = cfg.tune.takeoverAfter; fr.takeoverAfter <= 0 {
		fr.takeoverAfter = feedTakeoverAfter
	}
	fr.creds.Store(cfg.creds)
	go fr.run(ctx)
	return fr
}

// Destruct stops the receiver and deletes its stream at the transmitter
// (best effort), when the last config using it is cleaned up.
func (fr *feedReceiver) Destruct() error {
	fr.cancel()
	<-fr.done
	return nil
}

// age is how old the feed's knowledge is; ok false: never synced.
func (fr *feedReceiver) age(now time.Time) (time.Duration, bool) {
	s := fr.synced.Load()
	if s == 0 {
		return 0, false
	}
	return now.Sub(time.Unix(0, s)), true
}

// run is the receiver loop (RFC 8936 section 2: poll, verify, apply,
// acknowledge), until ctx ends.
func (fr *feedReceiver) run(ctx context.Context) {
	defer close(fr.done)
	defer fr.shutdown()
	defer func() {
		if p := recover(); p != nil {
			fr.log.Error("revocation feed receiver panicked; revocations of this feed are no longer followed", zap.String("feed", fr.feed), zap.Any("panic", p))
		}
	}()
	fr.immediate = true
	for ctx.Err() == nil {
		err := fr.step(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			fr.failures = 0
			continue
		}
		fr.failures++
		// After a failure, answer at once: a long poll would keep the
		// feed stale for its whole hold after the transmitter is back.
		fr.immediate = true
		var wait time.Duration
		if !errors.Is(err, errRetryNow) || fr.failures > 1 {
			wait = fr.backoff()
		}
		fr.logErr(err)
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

// backoff is the wait after the n-th failure in a row: doubling from
// feedBackoffMin, capped at backoffMax, jittered to half to full.
func (fr *feedReceiver) backoff() time.Duration {
	d := feedBackoffMin << min(fr.failures-1, 16)
	d = min(d, fr.backoffMax)
	return d/2 + rand.N(d/2+1)
}

// logErr logs a failure, at most once every 10 s unless it is the first
// of a series.
func (fr *feedReceiver) logErr(err error) {
	now := time.Now()
	if fr.failures > 1 && now.Sub(fr.lastErrLog) < 10*time.Second {
		return
	}
	fr.lastErrLog = now
	fr.log.Warn("revocation feed", zap.String("feed", fr.feed), zap.String("client_id", fr.clientID), zap.Int("failures", fr.failures), zap.Error(err))
}

// errRetryNow: the state was reset (new token, new stream); try again
// without waiting, once.
var errRetryNow = errors.New("retrying")

// step makes one poll, after whatever setup it lacks.
func (fr *feedReceiver) step(ctx context.Context) error {
	if fr.meta == nil {
		if err := fr.discover(ctx); err != nil {
			return err
		}
	}
	if fr.token == "" || time.Now().After(fr.tokenExp) {
		if err := fr.getToken(ctx); err != nil {
			return err
		}
	}
	if fr.stream == nil {
		if err := fr.createStream(ctx); err != nil {
			return err
		}
	}
	return fr.poll(ctx)
}

// discover reads the transmitter's SSF metadata (SSF 7.2) and the
// token endpoint from its OpenID Connect discovery.
func (fr *feedReceiver) discover(ctx context.Context) error {
	u, err := ssf.ConfigurationURL(fr.feed)
	if err != nil {
		return err
	}
	var meta ssf.TransmitterConfig
	if err := fr.getJSON(ctx, u, &meta); err != nil {
		return fmt.Errorf("SSF metadata: %w", err)
	}
	// SSF 7.2.1: the metadata's issuer is the one it was fetched for.
	if meta.Issuer != fr.feed {
		return fmt.Errorf("SSF metadata at %s names issuer %q, not %q", u, meta.Issuer, fr.feed)
	}
	if err := fr.sameOrigin(meta.ConfigurationEndpoint); err != nil {
		return fmt.Errorf("SSF metadata: configuration_endpoint: %w", err)
	}
	if err := fr.usableURL(meta.JWKSURI); err != nil {
		return fmt.Errorf("SSF metadata: jwks_uri: %w", err)
	}
	if len(meta.DeliveryMethodsSupported) > 0 && !slices.Contains(meta.DeliveryMethodsSupported, ssf.DeliveryPoll) {
		return fmt.Errorf("the transmitter does not offer poll delivery (%s)", ssf.DeliveryPoll)
	}
	var oidc struct {
		Issuer        string `json:"issuer"`
		TokenEndpoint string `json:"token_endpoint"`
	}
	if err := fr.getJSON(ctx, fr.feed+"/.well-known/openid-configuration", &oidc); err != nil {
		return fmt.Errorf("OpenID metadata: %w", err)
	}
	if oidc.Issuer != fr.feed {
		return fmt.Errorf("OpenID metadata of %s names issuer %q", fr.feed, oidc.Issuer)
	}
	if err := fr.usableURL(oidc.TokenEndpoint); err != nil {
		return fmt.Errorf("OpenID metadata: token_endpoint: %w", err)
	}
	fr.meta, fr.tokenEndpoint = &meta, oidc.TokenEndpoint
	if fr.keys == nil || fr.keysURI != meta.JWKSURI {
		fr.startKeys(ctx, meta.JWKSURI)
	}
	return nil
}

// startKeys follows the transmitter's JWKS with the gateway's key
// fetcher (lazy, single flight, refetch on an unknown kid).
func (fr *feedReceiver) startKeys(ctx context.Context, uri string) {
	if fr.keysCancel != nil {
		fr.keysCancel()
	}
	kctx, cancel := context.WithCancel(ctx)
	r := &keyset.Remote{Issuer: fr.feed, JWKSURI: uri, MinRefresh: fr.keyMinRefresh, RefreshEvery: defaultKeyRefresh,
		Client: &http.Client{Timeout: feedCallTimeout, CheckRedirect: fr.client.CheckRedirect},
		OnError: func(err error) {
			fr.keyErrs.Add(1) // one per failed fetch
			fr.log.Warn("fetching the revocation feed's keys failed; keeping the keys already known", zap.String("feed", fr.feed), zap.Error(err))
		}}
	go func() {
		defer func() {
			if p := recover(); p != nil {
				fr.log.Error("feed key refresh panicked", zap.Any("panic", p))
			}
		}()
		r.Run(kctx)
	}()
	fr.keys, fr.keysURI, fr.keysCancel = r, uri, cancel
	fr.verifier = nil
}

// usableURL accepts an absolute https URL, or http when the feed is
// http (loopback).
func (fr *feedReceiver) usableURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", s)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && strings.HasPrefix(fr.feed, "http://") && isLoopback(u.Hostname())) {
		return fmt.Errorf("%q is not https", s)
	}
	return nil
}

// sameOrigin accepts a URL on the feed's origin: the stream API and the
// poll endpoint receive the receiver's bearer token.
func (fr *feedReceiver) sameOrigin(s string) error {
	u, err := url.Parse(s)
	f, _ := url.Parse(fr.feed)
	if err != nil || u.Scheme != f.Scheme || u.Host != f.Host {
		return fmt.Errorf("%q is not on the feed's origin %s://%s", s, f.Scheme, f.Host)
	}
	return nil
}

// getToken obtains an access token by client credentials (RFC 6749
// section 4.4).
func (fr *feedReceiver) getToken(ctx context.Context) error {
	creds := fr.creds.Load()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {feedScopes}}
	req, err := http.NewRequest(http.MethodPost, fr.tokenEndpoint, nil)
	if err != nil {
		return err
	}
	if creds.key != nil {
		a, err := clientAssertion(creds.key, fr.clientID, fr.tokenEndpoint)
		if err != nil {
			return err
		}
		form.Set("client_id", fr.clientID)
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		form.Set("client_assertion", a)
	} else {
		// RFC 6749 section 2.3.1: both form-urlencoded before Basic.
		req.SetBasicAuth(url.QueryEscape(fr.clientID), url.QueryEscape(creds.secret))
	}
	body := form.Encode()
	req.Body = io.NopCloser(strings.NewReader(body))
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var tok struct {
		AccessToken string      `json:"access_token"`
		TokenType   string      `json:"token_type"`
		ExpiresIn   json.Number `json:"expires_in"`
		Error       string      `json:"error"`
	}
	status, err := fr.do(ctx, req, feedCallTimeout, &tok)
	if err != nil {
		return fmt.Errorf("token request: %w", err)
	}
	if status != http.StatusOK || tok.AccessToken == "" {
		// The error code only (RFC 6749 section 5.2); descriptions may
		// echo input.
		return fmt.Errorf("token request: status %d %s", status, safeCode(tok.Error))
	}
	if !strings.EqualFold(tok.TokenType, "Bearer") {
		return fmt.Errorf("token request: token_type %q, want Bearer", safeCode(tok.TokenType))
	}
	life := time.Hour
	if n, err := tok.ExpiresIn.Int64(); err == nil && n > 0 {
		life = time.Duration(n) * time.Second
	}
	// Renew before it expires: a tenth of its life early, at most a minute.
	fr.token, fr.tokenExp = tok.AccessToken, time.Now().Add(life-min(life/10, time.Minute))
	return nil
}

// safeCode keeps an error code printable and short for the log.
func safeCode(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x21 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}

// createStream asks for a poll stream (SSF 8.1.1.1). A new stream
// receives every event the transmitter retains, so a receiver that lost
// its state relearns every revocation in force.
func (fr *feedReceiver) createStream(ctx context.Context) error {
	body, _ := json.Marshal(ssf.StreamConfig{
		Delivery:        &ssf.Delivery{Method: ssf.DeliveryPoll},
		EventsRequested: []string{ssf.EventSessionRevoked},
		Description:     "caddy-apiaccess require_token",
	})
	req, err := fr.bearerRequest(http.MethodPost, fr.meta.ConfigurationEndpoint, body)
	if err != nil {
		return err
	}
	var sc ssf.StreamConfig
	status, err := fr.do(ctx, req, feedCallTimeout, &sc)
	switch {
	case err != nil:
		return fmt.Errorf("creating a stream: %w", err)
	case status == http.StatusUnauthorized:
		fr.token = ""
		return fmt.Errorf("creating a stream: token refused: %w", errRetryNow)
	case status == http.StatusNotFound:
		fr.meta = nil // the stream API moved: discover again
		return fmt.Errorf("creating a stream: status 404")
	case status == http.StatusConflict:
		return fr.replaceStreams(ctx)
	case status != http.StatusCreated && status != http.StatusOK:
		return fmt.Errorf("creating a stream: status %d", status)
	}
	if sc.StreamID == "" || len(sc.Aud) == 0 || sc.Aud[0] == "" || sc.Delivery == nil || sc.Delivery.Method != ssf.DeliveryPoll {
		return fmt.Errorf("creating a stream: the answer lacks stream_id, aud or poll delivery")
	}
	if sc.Iss != "" && sc.Iss != fr.feed {
		return fmt.Errorf("creating a stream: iss %q is not the feed", sc.Iss)
	}
	if err := fr.sameOrigin(sc.Delivery.EndpointURL); err != nil {
		return fmt.Errorf("creating a stream: delivery endpoint_url: %w", err)
	}
	fr.rememberStream(sc.StreamID, true)
	fr.stream, fr.aud = &sc, sc.Aud[0]
	fr.conflictSince = time.Time{}
	fr.verifier = nil
	fr.acks, fr.setErrs, fr.immediate = nil, nil, true
	fr.log.Info("revocation feed stream created", zap.String("feed", fr.feed), zap.String("stream_id", sc.StreamID))
	return nil
}

// replaceStreams answers a transmitter that keeps one stream per
// client (409 on create, as Okta's does). The existing stream is one a
// receiver of this process created and failed to delete (deleted at
// once), one this gateway lost with its state (a crash and restart),
// or another live gateway's with the same client id. The last two look
// alike, so a stream this process did not create is deleted only after
// creation kept answering 409 for takeoverAfter (default 3 min), and
// only one: a crashed gateway's recovers then, with every retained
// event replayed, and gateways wrongly sharing a client id take over
// from each other at most that often rather than at every start.
func (fr *feedReceiver) replaceStreams(ctx context.Context) error {
	now := time.Now()
	if fr.conflictSince.IsZero() {
		fr.conflictSince = now
	}
	waited := now.Sub(fr.conflictSince)
	if waited < fr.takeoverAfter && !fr.hasOwnStreams() {
		return fmt.Errorf("creating a stream: the transmitter keeps one stream per client and has one (status 409); is another gateway using client_id %s? Replacing it in %s unless it goes", fr.clientID, (fr.takeoverAfter - waited).Round(time.Second))
	}
	list, err := fr.listStreams(ctx)
	if err != nil {
		return err
	}
	deleted := 0
	for _, sc := range list {
		if sc.StreamID == "" || !fr.isOwnStream(sc.StreamID) {
			continue
		}
		if err := fr.deleteStream(ctx, sc.StreamID); err != nil {
			return err
		}
		deleted++
		fr.log.Info("deleted a revocation feed stream an earlier receiver of this process left", zap.String("feed", fr.feed), zap.String("stream_id", sc.StreamID))
	}
	if deleted == 0 && waited >= fr.takeoverAfter {
		for _, sc := range list {
			if sc.StreamID == "" {
				continue
			}
			if err := fr.deleteStream(ctx, sc.StreamID); err != nil {
				return err
			}
			deleted++
			fr.log.Warn("replaced the client's existing revocation feed stream after stream creation answered 409 for a while (the transmitter keeps one per client); gateways should not share a client_id",
				zap.String("feed", fr.feed), zap.String("client_id", fr.clientID), zap.String("stream_id", sc.StreamID), zap.Duration("after", waited))
			break // the one the transmitter lists first: the least taken
		}
	}
	if deleted == 0 {
		return fmt.Errorf("creating a stream: the transmitter keeps one stream per client and has one (status 409) that this gateway did not create; is another gateway using client_id %s?", fr.clientID)
	}
	fr.conflictSince = time.Time{}
	return fmt.Errorf("creating a stream: replaced the existing one: %w", errRetryNow)
}

// listStreams lists the client's streams (SSF 8.1.1.2): a JSON array,
// or one object.
func (fr *feedReceiver) listStreams(ctx context.Context) ([]ssf.StreamConfig, error) {
	req, err := fr.bearerRequest(http.MethodGet, fr.meta.ConfigurationEndpoint, nil)
	if err != nil {
		return nil, err
	}
	var raw json.RawMessage
	status, err := fr.do(ctx, req, feedCallTimeout, &raw)
	if err != nil || status != http.StatusOK {
		return nil, fmt.Errorf("listing streams after a 409: status %d %v", status, err)
	}
	var list []ssf.StreamConfig
	if json.Unmarshal(raw, &list) != nil {
		var one ssf.StreamConfig
		if err := json.Unmarshal(raw, &one); err != nil {
			return nil, fmt.Errorf("listing streams after a 409: %w", err)
		}
		list = []ssf.StreamConfig{one}
	}
	return list, nil
}

// deleteStream deletes a stream (SSF 8.1.1.5); gone already is fine.
func (fr *feedReceiver) deleteStream(ctx context.Context, id string) error {
	req, err := fr.bearerRequest(http.MethodDelete, fr.meta.ConfigurationEndpoint+"?stream_id="+url.QueryEscape(id), nil)
	if err != nil {
		return err
	}
	if status, err := fr.do(ctx, req, feedCallTimeout, &struct{}{}); err != nil || status >= 300 && status != http.StatusNotFound {
		return fmt.Errorf("deleting stream %s after a 409: status %d %v", id, status, err)
	}
	fr.rememberStream(id, false)
	return nil
}

func (fr *feedReceiver) bearerRequest(method, u string, body []byte) (*http.Request, error) {
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+fr.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// poll makes one poll (RFC 8936 section 2.4): it acknowledges what the
// last one delivered, then verifies and applies what comes.
func (fr *feedReceiver) poll(ctx context.Context) error {
	maxEvents := feedMaxEvents
	preq := ssf.PollRequest{MaxEvents: &maxEvents, ReturnImmediately: fr.immediate, Ack: fr.acks, SetErrs: fr.setErrs}
	body, _ := json.Marshal(preq)
	req, err := fr.bearerRequest(http.MethodPost, fr.stream.Delivery.EndpointURL, body)
	if err != nil {
		return err
	}
	var resp ssf.PollResponse
	status, err := fr.do(ctx, req, feedPollTimeout, &resp)
	switch {
	case err != nil:
		return fmt.Errorf("poll: %w", err)
	case status == http.StatusUnauthorized:
		fr.token = ""
		return fmt.Errorf("poll: token refused: %w", errRetryNow)
	case status == http.StatusNotFound:
		// The transmitter lost the stream: a new one receives every
		// retained event. Our acknowledgements were for the old one.
		fr.log.Warn("revocation feed stream is gone; creating a new one", zap.String("feed", fr.feed), zap.String("stream_id", fr.stream.StreamID))
		fr.rememberStream(fr.stream.StreamID, false)
		fr.stream = nil
		fr.acks, fr.setErrs = nil, nil
		return fmt.Errorf("poll: stream gone: %w", errRetryNow)
	case status == http.StatusBadRequest:
		// Our acknowledgements may be what it refuses; unacknowledged
		// SETs come again and are acknowledged anew.
		fr.acks, fr.setErrs = nil, nil
		return fmt.Errorf("poll: status 400")
	case status != http.StatusOK:
		return fmt.Errorf("poll: status %d", status)
	case resp.Sets == nil:
		return fmt.Errorf("poll: the answer has no sets (RFC 8936 section 2.2)")
	}
	answered := time.Now()
	fr.acks, fr.setErrs = nil, nil
	done, err := fr.process(ctx, resp.Sets)
	if done {
		fr.synced.Store(answered.UnixNano())
	}
	fr.immediate = resp.MoreAvailable || !done
	if answered.Sub(fr.lastPrune) >= time.Minute {
		// Writes prune too, but a quiet feed must also give back what
		// expired.
		fr.lastPrune = answered
		fr.revs.Prune()
	}
	updateFeedMetrics(fr, done)
	return err
}

// process verifies and applies the SETs of one poll answer. done: every
// SET was applied, acknowledged or refused, so the feed is up to date
// as of the answer. A SET left unacknowledged (keys unreachable, the
// revocation set full) comes again with the next poll.
func (fr *feedReceiver) process(ctx context.Context, sets map[string]string) (bool, error) {
	if len(sets) == 0 {
		return true, nil
	}
	v := fr.setVerifier(ctx)
	var retry error
	for jti, set := range sets {
		ev, err := v.Verify(set)
		if err == nil && ev.ID != jti {
			err = fmt.Errorf("%w: jti is not the key it was delivered under", ssf.ErrMalformed)
		}
		if err != nil {
			switch {
			case errors.Is(err, keyset.ErrUnavailable):
				retry = fmt.Errorf("SET %s: the feed's keys are unreachable", safeCode(jti))
				continue
			case errors.Is(err, keyset.ErrUnknownKID) && fr.awaitKey(jti):
				retry = fmt.Errorf("SET %s: unknown kid; waiting for a key refetch", safeCode(jti))
				continue
			}
			fr.refuse(jti, err)
			continue
		}
		delete(fr.unknownKID, jti)
		if err := fr.revs.Apply(ev); err != nil {
			if errors.Is(err, ssf.ErrRevocationsFull) {
				retry = fmt.Errorf("the revocation set is full (%w): revocations are not being applied", err)
				continue
			}
			fr.refuse(jti, err)
			continue
		}
		if ev.Type == ssf.EventStreamUpdated {
			fr.log.Warn("revocation feed stream status changed", zap.String("feed", fr.feed), zap.String("status", safeCode(ev.Status)))
		}
		fr.acks = append(fr.acks, jti)
	}
	return retry == nil, retry
}

// awaitKey tells whether a SET whose kid is unknown should wait for a
// key refetch (the transmitter may have just rotated): until a fetch
// that started after the SET was first seen has succeeded.
func (fr *feedReceiver) awaitKey(jti string) bool {
	n := fr.keys.Fetches() - fr.keyErrs.Load()
	first, seen := fr.unknownKID[jti]
	if !seen {
		if fr.unknownKID == nil || len(fr.unknownKID) > 10000 {
			fr.unknownKID = map[string]int64{}
		}
		fr.unknownKID[jti] = n
		return true
	}
	if n > first {
		delete(fr.unknownKID, jti)
		return false
	}
	return true
}

// refuse reports a SET in setErrs (RFC 8936 section 2.4.4) and does not
// apply it.
func (fr *feedReceiver) refuse(jti string, err error) {
	if fr.setErrs == nil {
		fr.setErrs = map[string]ssf.SetErr{}
	}
	e := ssf.SetErrFor(err)
	fr.setErrs[jti] = e
	fr.log.Warn("revocation feed SET refused", zap.String("feed", fr.feed), zap.String("jti", safeCode(jti)), zap.String("err", e.Err), zap.Error(err))
}

// setVerifier checks SETs from the feed to this stream with the keys of
// the transmitter's jwks_uri.
func (fr *feedReceiver) setVerifier(ctx context.Context) *ssf.Verifier {
	if fr.verifier != nil {
		return fr.verifier
	}
	keys := fr.keys
	fr.verifier = &ssf.Verifier{Issuer: fr.feed, Audience: fr.aud, Skew: feedSkew,
		KeyFunc: func(kid string) (jwk.Key, error) {
			k, err := keys.Key(ctx, kid)
			if err != nil {
				return nil, err
			}
			jk, err := jwk.FromRaw(k.Raw)
			if err != nil {
				return nil, err
			}
			_ = jk.Set(jwk.KeyIDKey, k.KID)
			if len(k.Algs) == 1 {
				_ = jk.Set(jwk.AlgorithmKey, k.Algs[0])
			}
			return jk, nil
		}}
	return fr.verifier
}

// getJSON GETs u into v (200 only).
func (fr *feedReceiver) getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	status, err := fr.do(ctx, req, feedCallTimeout, v)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("%s: status %d", u, status)
	}
	return nil
}

// do sends req within timeout and decodes a JSON answer into v (when
// the body is JSON); it returns the status.
func (fr *feedReceiver) do(ctx context.Context, req *http.Request, timeout time.Duration, v any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req = req.WithContext(ctx)
	req.Header.Set("Accept", "application/json")
	res, err := fr.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, feedMaxBody+1))
	if err != nil {
		return 0, err
	}
	if len(b) > feedMaxBody {
		return 0, fmt.Errorf("%s: answer larger than %d bytes", req.URL.Redacted(), feedMaxBody)
	}
	ok := res.StatusCode >= 200 && res.StatusCode < 300
	switch {
	case len(bytes.TrimSpace(b)) == 0:
	case strings.HasPrefix(res.Header.Get("Content-Type"), "application/json"):
		if err := json.Unmarshal(b, v); err != nil && ok {
			return 0, fmt.Errorf("%s: %w", req.URL.Redacted(), err)
		}
	case ok:
		return 0, fmt.Errorf("%s: answer is not JSON", req.URL.Redacted())
	}
	return res.StatusCode, nil
}

// shutdown stops the key refresh and deletes the stream at the
// transmitter (SSF 8.1.1.5), best effort: the receiver's state is gone
// with it, so a later receiver starts a new stream anyway.
func (fr *feedReceiver) shutdown() {
	if fr.keysCancel != nil {
		fr.keysCancel()
	}
	sc := fr.stream
	deleteFeedMetrics(fr)
	if sc == nil || fr.token == "" || fr.meta == nil {
		return
	}
	req, err := fr.bearerRequest(http.MethodDelete, fr.meta.ConfigurationEndpoint+"?stream_id="+url.QueryEscape(sc.StreamID), nil)
	if err != nil {
		return
	}
	status, err := fr.do(context.Background(), req, 2*time.Second, &struct{}{})
	if err != nil || status >= 300 && status != http.StatusNotFound {
		// Remembered: the next receiver of this process for the feed
		// deletes it on a 409.
		fr.log.Debug("deleting the revocation feed stream failed", zap.String("feed", fr.feed), zap.Int("status", status), zap.Error(err))
		return
	}
	fr.rememberStream(sc.StreamID, false)
}

var _ caddy.Destructor = (*feedReceiver)(nil)
