package ssf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

type queueFixture struct {
	q     *MemQueue
	clock *testkit.Clock
	key   jwk.Key
	keys  jwk.Set
}

func newQueueFixture(t testing.TB) *queueFixture {
	key := privateKey(t, "ec", "k1")
	f := &queueFixture{clock: testkit.NewClock(t0), key: key, keys: publicSet(t, key)}
	f.q = NewMemQueue(func(ev Event, aud string) (string, error) { return Sign(ev, key, testIss, aud) })
	f.q.Now = f.clock.Now
	return f
}

// publish queues a token revocation per jti, valid for an hour.
func (f *queueFixture) publish(t testing.TB, jtis ...string) {
	t.Helper()
	for _, jti := range jtis {
		ev := Event{Txn: "txn-" + jti, Time: f.clock.Now(),
			Subject: Subject{Kind: SubjectToken, Issuer: testIss, JTI: jti, Expiry: f.clock.Now().Add(time.Hour)}}
		if err := f.q.Publish(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
}

func intp(n int) *int { return &n }

// poll polls and returns the response, its SET jtis in delivery order and
// the revoked token jtis, verified with the stream's aud.
func (f *queueFixture) poll(t testing.TB, stream, aud string, req PollRequest) (PollResponse, []string, []string) {
	t.Helper()
	resp, err := f.q.Poll(context.Background(), stream, req)
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
	v := &Verifier{Issuer: testIss, Audience: aud, Keys: f.keys, Now: f.clock.Now}
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

func TestPollMaxEventsAcksMoreAvailable(t *testing.T) {
	f := newQueueFixture(t)
	ctx := context.Background()
	if err := f.q.AddStream(ctx, "s1", testAud); err != nil {
		t.Fatal(err)
	}
	f.publish(t, "a", "b", "c", "d", "e")

	resp, ids, tokens := f.poll(t, "s1", testAud, PollRequest{MaxEvents: intp(2), ReturnImmediately: true})
	if !slices.Equal(tokens, []string{"a", "b"}) || !resp.MoreAvailable {
		t.Fatalf("first poll: %v more=%v, want [a b] more", tokens, resp.MoreAvailable)
	}
	// Unacknowledged SETs come again (RFC 8936 2.4), with the same jti.
	_, again, _ := f.poll(t, "s1", testAud, PollRequest{MaxEvents: intp(2), ReturnImmediately: true})
	if !slices.Equal(again, ids) {
		t.Fatalf("redelivery %v, want %v", again, ids)
	}
	// Acknowledging them releases them: the next ones follow.
	resp, ids, tokens = f.poll(t, "s1", testAud, PollRequest{MaxEvents: intp(2), ReturnImmediately: true, Ack: ids})
	if !slices.Equal(tokens, []string{"c", "d"}) || !resp.MoreAvailable {
		t.Fatalf("after ack: %v more=%v", tokens, resp.MoreAvailable)
	}
	// maxEvents 0: acknowledge only, answered at once without
	// returnImmediately.
	resp, none, _ := f.poll(t, "s1", testAud, PollRequest{MaxEvents: intp(0), Ack: ids})
	if len(none) != 0 || !resp.MoreAvailable {
		t.Fatalf("ack-only poll: %v more=%v, want none and more", none, resp.MoreAvailable)
	}
	resp, ids, tokens = f.poll(t, "s1", testAud, PollRequest{ReturnImmediately: true})
	if !slices.Equal(tokens, []string{"e"}) || resp.MoreAvailable {
		t.Fatalf("last: %v more=%v", tokens, resp.MoreAvailable)
	}
	if c, _ := f.q.Cursor(ctx, "s1"); c != 4 {
		t.Errorf("cursor %d, want 4", c)
	}
	resp, none, _ = f.poll(t, "s1", testAud, PollRequest{ReturnImmediately: true, Ack: ids})
	if len(none) != 0 || resp.MoreAvailable {
		t.Fatalf("drained: %v more=%v", none, resp.MoreAvailable)
	}
	if c, _ := f.q.Cursor(ctx, "s1"); c != 5 {
		t.Errorf("cursor %d, want 5", c)
	}
	b, _ := json.Marshal(resp)
	if string(b) != `{"sets":{}}` {
		t.Errorf("empty response %s", b)
	}
}

func TestPollOutOfOrderAcks(t *testing.T) {
	f := newQueueFixture(t)
	ctx := context.Background()
	_ = f.q.AddStream(ctx, "s1", testAud)
	f.publish(t, "a", "b", "c")
	_, ids, _ := f.poll(t, "s1", testAud, PollRequest{ReturnImmediately: true})
	// Acknowledge b and c only: a stays, the cursor stays before it.
	_, _, tokens := f.poll(t, "s1", testAud, PollRequest{ReturnImmediately: true, Ack: ids[1:]})
	if !slices.Equal(tokens, []string{"a"}) {
		t.Fatalf("pending %v, want [a]", tokens)
	}
	if c, _ := f.q.Cursor(ctx, "s1"); c != 0 {
		t.Errorf("cursor %d, want 0", c)
	}
	f.poll(t, "s1", testAud, PollRequest{ReturnImmediately: true, Ack: ids[:1]})
	if c, _ := f.q.Cursor(ctx, "s1"); c != 3 {
		t.Errorf("cursor %d, want 3", c)
	}
}

func TestPollStreamsAreSeparate(t *testing.T) {
	f := newQueueFixture(t)
	ctx := context.Background()
	const aud2 = "https://gateway2.example.com/ssf"
	_ = f.q.AddStream(ctx, "s1", testAud)
	_ = f.q.AddStream(ctx, "s2", aud2)
	f.publish(t, "a")
	r1, ids1, _ := f.poll(t, "s1", testAud, PollRequest{ReturnImmediately: true})
	r2, ids2, _ := f.poll(t, "s2", aud2, PollRequest{ReturnImmediately: true})
	if len(ids1) != 1 || len(ids2) != 1 || ids1[0] == ids2[0] {
		t.Fatalf("jtis %v %v: one SET each, distinct jti (RFC 8417 2.2)", ids1, ids2)
	}
	// Each SET carries its stream's aud; the txn ties them (SSF 4.1.9).
	v1 := &Verifier{Issuer: testIss, Audience: testAud, Keys: f.keys, Now: f.clock.Now}
	if _, err := v1.Verify(r2.Sets[ids2[0]]); !errors.Is(err, ErrAudience) {
		t.Errorf("s2's SET verified with s1's aud: %v", err)
	}
	e1, _ := v1.Verify(r1.Sets[ids1[0]])
	e2, _ := (&Verifier{Issuer: testIss, Audience: aud2, Keys: f.keys, Now: f.clock.Now}).Verify(r2.Sets[ids2[0]])
	if e1.Txn != "txn-a" || e2.Txn != "txn-a" {
		t.Errorf("txn %q %q", e1.Txn, e2.Txn)
	}
	// s2's jti acknowledged on s1 acknowledges nothing.
	_, _, tokens := f.poll(t, "s1", testAud, PollRequest{ReturnImmediately: true, Ack: append(ids2, "garbage", "1.x.y")})
	if !slices.Equal(tokens, []string{"a"}) {
		t.Fatalf("s1 pending %v after foreign acks, want [a]", tokens)
	}
	// A verification event goes to its stream only.
	ver := Event{Type: EventVerification, State: "st", Subject: Subject{Kind: SubjectStream, StreamID: "s2"}}
	if err := f.q.PublishTo(ctx, "s2", ver); err != nil {
		t.Fatal(err)
	}
	if err := f.q.PublishTo(ctx, "nope", ver); !errors.Is(err, ErrUnknownStream) {
		t.Errorf("PublishTo unknown stream: %v", err)
	}
	_, ids, _ := f.poll(t, "s1", testAud, PollRequest{ReturnImmediately: true, Ack: ids1})
	if len(ids) != 0 {
		t.Errorf("s1 got %v", ids)
	}
	r2, ids2b, _ := f.poll(t, "s2", aud2, PollRequest{ReturnImmediately: true, Ack: ids2})
	if len(ids2b) != 1 {
		t.Fatalf("s2 got %v, want the verification event", ids2b)
	}
	ev, err := (&Verifier{Issuer: testIss, Audience: aud2, Keys: f.keys, Now: f.clock.Now}).Verify(r2.Sets[ids2b[0]])
	if err != nil || ev.Type != EventVerification || ev.State != "st" || ev.Subject.StreamID != "s2" {
		t.Fatalf("verification event %+v %v", ev, err)
	}
}

func TestPollCatchUpAndRewind(t *testing.T) {
	f := newQueueFixture(t)
	ctx := context.Background()
	_ = f.q.AddStream(ctx, "s1", testAud)
	f.publish(t, "a", "b")
	_, ids, _ := f.poll(t, "s1", testAud, PollRequest{ReturnImmediately: true})
	f.poll(t, "s1", testAud, PollRequest{MaxEvents: intp(0), Ack: ids})
	// A receiver that lost its state: a new stream gets every retained
	// event, acknowledged elsewhere or not.
	_ = f.q.AddStream(ctx, "s1-new", testAud)
	if _, _, tokens := f.poll(t, "s1-new", testAud, PollRequest{ReturnImmediately: true}); !slices.Equal(tokens, []string{"a", "b"}) {
		t.Fatalf("new stream got %v", tokens)
	}
	// Or the old stream rewound.
	if err := f.q.Rewind(ctx, "s1", 1); err != nil {
		t.Fatal(err)
	}
	if _, _, tokens := f.poll(t, "s1", testAud, PollRequest{ReturnImmediately: true}); !slices.Equal(tokens, []string{"b"}) {
		t.Fatalf("rewound to 1: %v", tokens)
	}
	if err := f.q.Rewind(ctx, "s1", 9); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("rewind forward: %v", err)
	}
	// A receiver that only lost its connection keeps its stream: what it
	// acknowledged stays acknowledged.
	f.publish(t, "c")
	if _, _, tokens := f.poll(t, "s1-new", testAud, PollRequest{ReturnImmediately: true}); !slices.Equal(tokens, []string{"a", "b", "c"}) {
		t.Fatalf("s1-new: %v", tokens)
	}
}

func TestPollSetErrs(t *testing.T) {
	f := newQueueFixture(t)
	var mu sync.Mutex
	heard := map[string]SetErr{}
	f.q.OnSetErr = func(stream, jti string, e SetErr) {
		mu.Lock()
		defer mu.Unlock()
		heard[stream+" "+jti] = e
	}
	_ = f.q.AddStream(context.Background(), "s1", testAud)
	f.publish(t, "a", "b")
	_, ids, _ := f.poll(t, "s1", testAud, PollRequest{ReturnImmediately: true})
	errs := map[string]SetErr{ids[0]: {Err: ErrCodeInvalidKey, Description: "no key"}}
	_, _, tokens := f.poll(t, "s1", testAud, PollRequest{ReturnImmediately: true, SetErrs: errs})
	if !slices.Equal(tokens, []string{"b"}) {
		t.Fatalf("after setErrs: %v, want [b]: a reported SET is not sent again", tokens)
	}
	if heard["s1 "+ids[0]].Err != ErrCodeInvalidKey {
		t.Errorf("OnSetErr heard %v", heard)
	}
}

func TestPollRequestErrors(t *testing.T) {
	f := newQueueFixture(t)
	ctx := context.Background()
	if _, err := f.q.Poll(ctx, "nope", PollRequest{}); !errors.Is(err, ErrUnknownStream) {
		t.Errorf("unknown stream: %v", err)
	}
	_ = f.q.AddStream(ctx, "s1", testAud)
	if err := f.q.AddStream(ctx, "s1", testAud); !errors.Is(err, ErrStreamExists) {
		t.Errorf("second AddStream: %v", err)
	}
	if _, err := f.q.Poll(ctx, "s1", PollRequest{MaxEvents: intp(-1)}); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("negative maxEvents: %v", err)
	}
	if err := f.q.Publish(ctx, Event{Time: t0, Subject: Subject{Kind: SubjectToken, JTI: "no-iss"}}); !errors.Is(err, ErrSubject) {
		t.Errorf("bad event published: %v", err)
	}
	if err := f.q.RemoveStream(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.q.Poll(ctx, "s1", PollRequest{}); !errors.Is(err, ErrUnknownStream) {
		t.Errorf("removed stream: %v", err)
	}
}

func TestPollLongPoll(t *testing.T) {
	f := newQueueFixture(t)
	ctx := context.Background()
	_ = f.q.AddStream(ctx, "s1", testAud)

	// Nothing comes: the poll ends at LongPoll with no SETs.
	f.q.LongPoll = 20 * time.Millisecond
	resp, err := f.q.Poll(ctx, "s1", PollRequest{})
	if err != nil || len(resp.Sets) != 0 || resp.MoreAvailable {
		t.Fatalf("idle long poll: %+v %v", resp, err)
	}
	// An event published while the poll waits ends it.
	f.q.LongPoll = time.Minute
	done := make(chan PollResponse)
	go func() {
		resp, err := f.q.Poll(ctx, "s1", PollRequest{})
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	f.publish(t, "a")
	select {
	case resp := <-done:
		if len(resp.Sets) != 1 {
			t.Fatalf("long poll got %d SETs", len(resp.Sets))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long poll did not return on publish")
	}
	// A cancelled request ends the wait.
	f.pollAckAll(t, "s1")
	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error)
	go func() {
		_, err := f.q.Poll(cctx, "s1", PollRequest{MaxEvents: intp(5)})
		errc <- err
	}()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled poll: %v", err)
	}
}

// pollAckAll acknowledges every pending SET of the stream.
func (f *queueFixture) pollAckAll(t testing.TB, stream string) {
	t.Helper()
	resp, err := f.q.Poll(context.Background(), stream, PollRequest{ReturnImmediately: true})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for id := range resp.Sets {
		ids = append(ids, id)
	}
	if _, err := f.q.Poll(context.Background(), stream, PollRequest{MaxEvents: intp(0), Ack: ids}); err != nil {
		t.Fatal(err)
	}
}

func TestQueueBoundsAndExpiry(t *testing.T) {
	f := newQueueFixture(t)
	ctx := context.Background()
	f.q.MaxRetained = 3
	f.q.MaxStreams = 1
	_ = f.q.AddStream(ctx, "s1", testAud)
	if err := f.q.AddStream(ctx, "s2", testAud); !errors.Is(err, ErrTooManyStreams) {
		t.Errorf("second stream over MaxStreams: %v", err)
	}
	// Two tokens expiring in 10 minutes, one in an hour.
	for i, d := range []time.Duration{10 * time.Minute, 10 * time.Minute, time.Hour} {
		ev := tokenEvent(fmt.Sprint("t", i), t0.Add(d))
		ev.ID = ""
		if err := f.q.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.q.Publish(ctx, tokenEvent("t3", t0.Add(time.Hour))); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("publish over MaxRetained: %v", err)
	}
	// An already expired token is not queued at all.
	if err := f.q.Publish(ctx, tokenEvent("old", t0.Add(-time.Second))); err != nil || f.q.Len() != 3 {
		t.Fatalf("expired event: %v, len %d", err, f.q.Len())
	}
	// Once the two have expired, they are neither delivered nor retained,
	// and there is room again.
	f.clock.Advance(10 * time.Minute)
	if _, _, tokens := f.poll(t, "s1", testAud, PollRequest{ReturnImmediately: true}); !slices.Equal(tokens, []string{"t2"}) {
		t.Fatalf("after expiry: %v, want [t2]", tokens)
	}
	if n := f.q.Len(); n != 1 {
		t.Errorf("retained %d, want 1", n)
	}
	if c, _ := f.q.Cursor(ctx, "s1"); c != 2 {
		t.Errorf("cursor %d, want 2 (past the expired events)", c)
	}
	if err := f.q.Publish(ctx, tokenEvent("t3", t0.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	// A user cut-off is retained for the longest token lifetime.
	user := Event{Time: f.clock.Now(), Subject: Subject{Kind: SubjectUser, UID: "00u1"}}
	if got, want := user.RelevantUntil(), f.clock.Now().Add(MaxTokenLifetime); !got.Equal(want) {
		t.Errorf("user cut-off relevant until %v, want %v", got, want)
	}
	// MaxBatch caps a poll without maxEvents.
	f.q.MaxBatch = 1
	resp, ids, _ := f.poll(t, "s1", testAud, PollRequest{ReturnImmediately: true})
	if len(ids) != 1 || !resp.MoreAvailable {
		t.Errorf("MaxBatch 1: %d SETs more=%v", len(ids), resp.MoreAvailable)
	}
}

func TestQueueConcurrent(t *testing.T) {
	f := newQueueFixture(t)
	ctx := context.Background()
	const streams, publishers, perPublisher = 3, 4, 50
	for i := range streams {
		if err := f.q.AddStream(ctx, fmt.Sprint("s", i), testAud); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perPublisher {
				f.publish(t, fmt.Sprintf("p%d-%d", p, i))
			}
		}()
	}
	got := make([]map[string]bool, streams)
	var rg sync.WaitGroup
	for s := range streams {
		got[s] = map[string]bool{}
		rg.Add(1)
		go func() {
			defer rg.Done()
			v := &Verifier{Issuer: testIss, Audience: testAud, Keys: f.keys, Now: f.clock.Now}
			var ack []string
			for len(got[s]) < publishers*perPublisher {
				resp, err := f.q.Poll(ctx, fmt.Sprint("s", s), PollRequest{MaxEvents: intp(7), Ack: ack})
				if err != nil {
					t.Error(err)
					return
				}
				ack = ack[:0]
				for id, set := range resp.Sets {
					ev, err := v.Verify(set)
					if err != nil {
						t.Error(err)
						return
					}
					got[s][ev.Subject.JTI] = true
					ack = append(ack, id)
				}
			}
			f.q.Poll(ctx, fmt.Sprint("s", s), PollRequest{MaxEvents: intp(0), Ack: ack})
		}()
	}
	wg.Wait()
	rg.Wait()
	for s := range streams {
		if c, _ := f.q.Cursor(ctx, fmt.Sprint("s", s)); c != publishers*perPublisher {
			t.Errorf("stream %d: cursor %d, want %d", s, c, publishers*perPublisher)
		}
	}
}
