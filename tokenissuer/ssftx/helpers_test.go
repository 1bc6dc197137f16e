package ssftx

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/apiaccess/caddy-apiaccess/internal/ssf"
	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/embedded"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/postgres"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/postgres/pgtest"
)

const (
	testIss = "https://issuer.example.com/oauth2/default"
	testAud = "https://gateway.example.com/ssf"
)

// backing is a store for StoreQueues: st and log are one store; node
// opens another handle of it (another node, for a shared store).
type backing struct {
	st   store.Store
	log  store.FeedLog
	node func(t *testing.T) (store.Store, store.FeedLog)
}

func openEmbedded(t *testing.T) backing {
	t.Helper()
	db, err := embedded.Open(filepath.Join(t.TempDir(), "issuer.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	// One process per bbolt file: a second "node" is the same handle.
	return backing{st: db, log: db, node: func(*testing.T) (store.Store, store.FeedLog) { return db, db }}
}

func openPostgres(t *testing.T) backing {
	t.Helper()
	schema := pgtest.FreshSchema(t, "apiaccess_ssftx_")
	open := func(t *testing.T) (store.Store, store.FeedLog) {
		db, err := postgres.Open(context.Background(), postgres.Config{DSN: pgtest.DSN(t), Schema: schema, MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db, db
	}
	st, log := open(t)
	return backing{st: st, log: log, node: open}
}

// backings are the stores the suite runs on.
var backings = []struct {
	name string
	open func(t *testing.T) backing
}{
	{"embedded", openEmbedded},
	{"postgres", openPostgres},
}

// fixture is a queue under test with its clock and keys.
type fixture struct {
	q     ssf.Queue
	clock *testkit.Clock
	key   jwk.Key
	keys  jwk.Set
	sign  ssf.Signer
}

func newKeys(t testing.TB) (jwk.Key, jwk.Set, ssf.Signer) {
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := jwk.FromRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	_ = key.Set(jwk.KeyIDKey, "k1")
	pub, err := jwk.PublicKeyOf(key)
	if err != nil {
		t.Fatal(err)
	}
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	return key, set, func(ev ssf.Event, aud string) (string, error) { return ssf.Sign(ev, key, testIss, aud) }
}

// The clock starts at the wall clock: the stores judge expiry by it.
func newFixture(t testing.TB) *fixture {
	key, keys, sign := newKeys(t)
	return &fixture{clock: testkit.NewClock(time.Now().Truncate(time.Second)), key: key, keys: keys, sign: sign}
}

func (f *fixture) storeQueue(st store.Store, log store.FeedLog) *StoreQueue {
	q := NewStoreQueue(st, log, f.sign)
	q.Now = f.clock.Now
	return q
}

// queueSettings are the fields both queues have.
type queueSettings struct {
	maxBatch   int
	maxStreams int
	longPoll   time.Duration
	onSetErr   func(stream, jti string, e ssf.SetErr)
}

func configure(q ssf.Queue, s queueSettings) {
	switch q := q.(type) {
	case *ssf.MemQueue:
		q.MaxBatch, q.MaxStreams, q.LongPoll, q.OnSetErr = s.maxBatch, s.maxStreams, s.longPoll, s.onSetErr
	case *StoreQueue:
		q.MaxBatch, q.MaxStreams, q.LongPoll, q.OnSetErr = s.maxBatch, s.maxStreams, s.longPoll, s.onSetErr
	}
}

func tokenEvent(f *fixture, jti string, ttl time.Duration) ssf.Event {
	return ssf.Event{Txn: "txn-" + jti, Time: f.clock.Now(),
		Subject: ssf.Subject{Kind: ssf.SubjectToken, Issuer: testIss, JTI: jti, Expiry: f.clock.Now().Add(ttl)}}
}

// publish queues a token revocation per jti, valid for an hour.
func (f *fixture) publish(t testing.TB, q ssf.Queue, jtis ...string) {
	t.Helper()
	for _, jti := range jtis {
		if err := q.Publish(context.Background(), tokenEvent(f, jti, time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
}

func intp(n int) *int { return &n }

// poll polls q and returns the response, its SET jtis in seq order and
// the revoked token jtis, each SET verified with the stream's aud.
func (f *fixture) poll(t testing.TB, q ssf.Queue, stream, aud string, req ssf.PollRequest) (ssf.PollResponse, []string, []string) {
	t.Helper()
	resp, err := q.Poll(context.Background(), stream, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Sets == nil {
		t.Fatal("sets is nil: RFC 8936 2.2 requires the member")
	}
	var ids []string
	for id := range resp.Sets {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return seqOf(ids[i]) < seqOf(ids[j]) })
	v := &ssf.Verifier{Issuer: testIss, Audience: aud, Keys: f.keys, Now: f.clock.Now}
	var tokens []string
	for _, id := range ids {
		ev, err := v.Verify(resp.Sets[id])
		if err != nil {
			t.Fatalf("SET %s: %v", id, err)
		}
		if ev.ID != id {
			t.Fatalf("SET jti %s under key %s", ev.ID, id)
		}
		tokens = append(tokens, ev.Subject.JTI)
	}
	return resp, ids, tokens
}

func seqOf(jti string) uint64 {
	s, _, _ := strings.Cut(jti, ".")
	n, _ := strconv.ParseUint(s, 10, 64)
	return n
}

func cursor(t testing.TB, q ssf.Queue, stream string) uint64 {
	t.Helper()
	c, err := q.Cursor(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// ackAll acknowledges every pending SET of the stream.
func (f *fixture) ackAll(t testing.TB, q ssf.Queue, stream, aud string) []string {
	t.Helper()
	_, ids, tokens := f.poll(t, q, stream, aud, ssf.PollRequest{ReturnImmediately: true})
	if _, err := q.Poll(context.Background(), stream, ssf.PollRequest{MaxEvents: intp(0), Ack: ids}); err != nil {
		t.Fatal(err)
	}
	return tokens
}
