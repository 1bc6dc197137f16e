package ssftx

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/internal/ssf"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// StoreQueue defaults.
const (
	DefaultMaxBatch   = ssf.DefaultMaxBatch
	DefaultLongPoll   = 10 * time.Second
	DefaultHeadPoll   = 200 * time.Millisecond
	DefaultMaxStreams = ssf.DefaultMaxStreams
	DefaultMaxAcked   = 4096
)

// StoreQueue is an ssf.Queue over a store.FeedLog (the events) and
// store.Store records (each stream's state: aud, jti tag, cursor,
// acknowledged seqs above it). Safe for concurrent use, and by several
// nodes sharing one store.
type StoreQueue struct {
	st   store.Store
	log  store.FeedLog
	sign ssf.Signer

	// MaxBatch caps one poll's SETs (default 1000). LongPoll is how long
	// a poll without returnImmediately waits for an event (default 10s).
	// HeadPoll is how often a waiting poll re-reads the feed's head to
	// see other nodes' appends (default 200ms). MaxStreams bounds the
	// streams (default 1024). MaxAcked bounds each stream's
	// acknowledged set above its cursor, and so how far past its oldest
	// unacknowledged event it is delivered (default 4096). Zero means
	// the default. Set them before first use.
	MaxBatch   int
	LongPoll   time.Duration
	HeadPoll   time.Duration
	MaxStreams int
	MaxAcked   int
	// Now is the clock of expiry and of Publish's default iat (nil:
	// time.Now).
	Now func() time.Time
	// OnSetErr, if set, hears every setErrs entry a receiver reports
	// (RFC 8936 section 2.4.4), for the log.
	OnSetErr func(streamID, jti string, e ssf.SetErr)
	// Logger logs feed entries that cannot be decoded, once each, at
	// error level with their seq (never their data). Nil: no log.
	Logger *zap.Logger
	// OnBadEntry, if set, hears each undecodable feed entry once (for a
	// metric). Such entries are skipped: Events and Poll move past them.
	OnBadEntry func(seq uint64, err error)
	// SETCache bounds the signed SETs kept per (stream, event), so a
	// poll of events still unacknowledged signs nothing again (default
	// 10000; negative: none). A cached SET is reused for SETCacheTTL at
	// most (default 5 min), so a rotated signing key takes over soon.
	SETCache    int
	SETCacheTTL time.Duration

	n     notifier
	bad   badEntries
	sets  setCache
	polls pollRegistry
}

// NewStoreQueue is a StoreQueue over st's stream records and log's
// events, signing with sign.
func NewStoreQueue(st store.Store, log store.FeedLog, sign ssf.Signer) *StoreQueue {
	return &StoreQueue{st: st, log: log, sign: sign}
}

func (q *StoreQueue) now() time.Time {
	if q.Now != nil {
		return q.Now()
	}
	return time.Now()
}

func orDefault[T int | time.Duration](v, d T) T {
	if v <= 0 {
		return d
	}
	return v
}

func (q *StoreQueue) maxBatch() int   { return orDefault(q.MaxBatch, DefaultMaxBatch) }
func (q *StoreQueue) maxAcked() int   { return orDefault(q.MaxAcked, DefaultMaxAcked) }
func (q *StoreQueue) maxStreams() int { return orDefault(q.MaxStreams, DefaultMaxStreams) }

// Publish implements ssf.Queue: ev is appended to the feed for every
// stream, until ev.RelevantUntil plus ssf.DefaultLeeway: gateways
// accept a token until its exp plus their clock skew, and nodes'
// clocks differ, so a receiver syncing just after exp still learns it.
func (q *StoreQueue) Publish(ctx context.Context, ev ssf.Event) error {
	return q.publish(ctx, ev, "")
}

// PublishTo implements ssf.Queue: ev is for one stream only.
func (q *StoreQueue) PublishTo(ctx context.Context, streamID string, ev ssf.Event) error {
	if _, err := q.stream(ctx, streamID); err != nil {
		return err
	}
	return q.publish(ctx, ev, streamID)
}

func (q *StoreQueue) publish(ctx context.Context, ev ssf.Event, only string) error {
	now := q.now()
	if ev.IssuedAt.IsZero() {
		ev.IssuedAt = now
	}
	if ev.Txn == "" {
		ev.Txn = randomHex(16)
	}
	// Refuse an event no SET can carry now, not at every poll.
	if err := probe(ev); err != nil {
		return err
	}
	until := entryUntil(ev)
	if !until.After(now) {
		return nil // matters to no one
	}
	data, err := encodeEntry(ev, only)
	if err != nil {
		return err
	}
	seq, err := q.log.AppendFeed(ctx, []store.FeedEntry{{Data: data, Until: until}})
	if err != nil {
		return err
	}
	q.n.observe(seq)
	return nil
}

// probeKey signs probe SETs: a throwaway key, so checking an event
// costs an Ed25519 signature and never uses the issuer's key.
var probeKey = sync.OnceValues(func() (jwk.Key, error) {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return jwk.FromRaw(k)
})

// probe reports an event ssf.Sign refuses.
func probe(ev ssf.Event) error {
	key, err := probeKey()
	if err != nil {
		return err
	}
	ev.ID = "probe"
	_, err = ssf.Sign(ev, key, "probe", "probe")
	return err
}

// entryUntil is when ev's entry expires: its relevance plus the leeway
// receivers give a token past exp (SSF receivers' clock skew).
func entryUntil(ev ssf.Event) time.Time { return ev.RelevantUntil().Add(ssf.DefaultLeeway) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var _ ssf.Queue = (*StoreQueue)(nil)
