package ssftx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/ssf"
)

// TestQueueSuite runs MemQueue's semantics (internal/ssf queue_test.go)
// against ssf.MemQueue itself and StoreQueue on each store: the two
// queues are interchangeable behind ssf.Queue.
func TestQueueSuite(t *testing.T) {
	tests := []struct {
		name string
		fn   func(*testing.T, *fixture)
	}{
		{"MaxEventsAcksMoreAvailable", suiteMaxEvents},
		{"OutOfOrderAcks", suiteOutOfOrderAcks},
		{"StreamsAreSeparate", suiteStreamsSeparate},
		{"CatchUpAndRewind", suiteCatchUpRewind},
		{"SetErrs", suiteSetErrs},
		{"RequestErrors", suiteRequestErrors},
		{"LongPoll", suiteLongPoll},
		{"ExpiryAndBounds", suiteExpiry},
		{"Concurrent", suiteConcurrent},
	}
	queues := []struct {
		name string
		make func(t *testing.T, f *fixture) ssf.Queue
	}{
		{"mem", func(t *testing.T, f *fixture) ssf.Queue {
			q := ssf.NewMemQueue(f.sign)
			q.Now = f.clock.Now
			return q
		}},
	}
	for _, b := range backings {
		queues = append(queues, struct {
			name string
			make func(t *testing.T, f *fixture) ssf.Queue
		}{b.name, func(t *testing.T, f *fixture) ssf.Queue {
			bk := b.open(t)
			return f.storeQueue(bk.st, bk.log)
		}})
	}
	for _, qc := range queues {
		t.Run(qc.name, func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					f := newFixture(t)
					f.q = qc.make(t, f)
					tc.fn(t, f)
				})
			}
		})
	}
}

func suiteMaxEvents(t *testing.T, f *fixture) {
	ctx := context.Background()
	if err := f.q.AddStream(ctx, "s1", testAud); err != nil {
		t.Fatal(err)
	}
	f.publish(t, f.q, "a", "b", "c", "d", "e")
	resp, ids, tokens := f.poll(t, f.q, "s1", testAud, ssf.PollRequest{MaxEvents: intp(2), ReturnImmediately: true})
	if !slices.Equal(tokens, []string{"a", "b"}) || !resp.MoreAvailable {
		t.Fatalf("first poll: %v more=%v, want [a b] more", tokens, resp.MoreAvailable)
	}
	// Unacknowledged SETs come again (RFC 8936 2.4), with the same jti.
	_, again, _ := f.poll(t, f.q, "s1", testAud, ssf.PollRequest{MaxEvents: intp(2), ReturnImmediately: true})
	if !slices.Equal(again, ids) {
		t.Fatalf("redelivery %v, want %v", again, ids)
	}
	resp, ids, tokens = f.poll(t, f.q, "s1", testAud, ssf.PollRequest{MaxEvents: intp(2), ReturnImmediately: true, Ack: ids})
	if !slices.Equal(tokens, []string{"c", "d"}) || !resp.MoreAvailable {
		t.Fatalf("after ack: %v more=%v", tokens, resp.MoreAvailable)
	}
	// maxEvents 0: acknowledge only, answered at once.
	resp, none, _ := f.poll(t, f.q, "s1", testAud, ssf.PollRequest{MaxEvents: intp(0), Ack: ids})
	if len(none) != 0 || !resp.MoreAvailable {
		t.Fatalf("ack-only poll: %v more=%v, want none and more", none, resp.MoreAvailable)
	}
	resp, ids, tokens = f.poll(t, f.q, "s1", testAud, ssf.PollRequest{ReturnImmediately: true})
	if !slices.Equal(tokens, []string{"e"}) || resp.MoreAvailable {
		t.Fatalf("last: %v more=%v", tokens, resp.MoreAvailable)
	}
	if c := cursor(t, f.q, "s1"); c != 4 {
		t.Errorf("cursor %d, want 4", c)
	}
	resp, none, _ = f.poll(t, f.q, "s1", testAud, ssf.PollRequest{ReturnImmediately: true, Ack: ids})
	if len(none) != 0 || resp.MoreAvailable {
		t.Fatalf("drained: %v more=%v", none, resp.MoreAvailable)
	}
	if c := cursor(t, f.q, "s1"); c != 5 {
		t.Errorf("cursor %d, want 5", c)
	}
	if b, _ := json.Marshal(resp); string(b) != `{"sets":{}}` {
		t.Errorf("empty response %s", b)
	}
}

func suiteOutOfOrderAcks(t *testing.T, f *fixture) {
	ctx := context.Background()
	_ = f.q.AddStream(ctx, "s1", testAud)
	f.publish(t, f.q, "a", "b", "c")
	_, ids, _ := f.poll(t, f.q, "s1", testAud, ssf.PollRequest{ReturnImmediately: true})
	_, _, tokens := f.poll(t, f.q, "s1", testAud, ssf.PollRequest{ReturnImmediately: true, Ack: ids[1:]})
	if !slices.Equal(tokens, []string{"a"}) {
		t.Fatalf("pending %v, want [a]", tokens)
	}
	if c := cursor(t, f.q, "s1"); c != 0 {
		t.Errorf("cursor %d, want 0", c)
	}
	f.poll(t, f.q, "s1", testAud, ssf.PollRequest{ReturnImmediately: true, Ack: ids[:1]})
	if c := cursor(t, f.q, "s1"); c != 3 {
		t.Errorf("cursor %d, want 3", c)
	}
}

func suiteStreamsSeparate(t *testing.T, f *fixture) {
	ctx := context.Background()
	const aud2 = "https://gateway2.example.com/ssf"
	_ = f.q.AddStream(ctx, "s1", testAud)
	_ = f.q.AddStream(ctx, "s2", aud2)
	f.publish(t, f.q, "a")
	r1, ids1, _ := f.poll(t, f.q, "s1", testAud, ssf.PollRequest{ReturnImmediately: true})
	r2, ids2, _ := f.poll(t, f.q, "s2", aud2, ssf.PollRequest{ReturnImmediately: true})
	if len(ids1) != 1 || len(ids2) != 1 || ids1[0] == ids2[0] {
		t.Fatalf("jtis %v %v: one SET each, distinct jti (RFC 8417 2.2)", ids1, ids2)
	}
	v1 := &ssf.Verifier{Issuer: testIss, Audience: testAud, Keys: f.keys, Now: f.clock.Now}
	if _, err := v1.Verify(r2.Sets[ids2[0]]); !errors.Is(err, ssf.ErrAudience) {
		t.Errorf("s2's SET verified with s1's aud: %v", err)
	}
	e1, _ := v1.Verify(r1.Sets[ids1[0]])
	if e1.Txn != "txn-a" {
		t.Errorf("txn %q", e1.Txn)
	}
	// s2's jti acknowledged on s1 acknowledges nothing.
	_, _, tokens := f.poll(t, f.q, "s1", testAud, ssf.PollRequest{ReturnImmediately: true, Ack: append(ids2, "garbage", "1.x.y", "99999.")})
	if !slices.Equal(tokens, []string{"a"}) {
		t.Fatalf("s1 pending %v after foreign acks, want [a]", tokens)
	}
	// A verification event goes to its stream only (SSF 8.1.4.1).
	ver := ssf.Event{Type: ssf.EventVerification, State: "st", Subject: ssf.Subject{Kind: ssf.SubjectStream, StreamID: "s2"}}
	if err := f.q.PublishTo(ctx, "s2", ver); err != nil {
		t.Fatal(err)
	}
	if err := f.q.PublishTo(ctx, "nope", ver); !errors.Is(err, ssf.ErrUnknownStream) {
		t.Errorf("PublishTo unknown stream: %v", err)
	}
	if _, ids, _ := f.poll(t, f.q, "s1", testAud, ssf.PollRequest{ReturnImmediately: true, Ack: ids1}); len(ids) != 0 {
		t.Errorf("s1 got %v", ids)
	}
	if c := cursor(t, f.q, "s1"); c != 2 {
		t.Errorf("s1 cursor %d, want 2: past s2's event", c)
	}
	r2, ids2b, _ := f.poll(t, f.q, "s2", aud2, ssf.PollRequest{ReturnImmediately: true, Ack: ids2})
	if len(ids2b) != 1 {
		t.Fatalf("s2 got %v, want the verification event", ids2b)
	}
	ev, err := (&ssf.Verifier{Issuer: testIss, Audience: aud2, Keys: f.keys, Now: f.clock.Now}).Verify(r2.Sets[ids2b[0]])
	if err != nil || ev.Type != ssf.EventVerification || ev.State != "st" || ev.Subject.StreamID != "s2" {
		t.Fatalf("verification event %+v %v", ev, err)
	}
}

func suiteCatchUpRewind(t *testing.T, f *fixture) {
	ctx := context.Background()
	_ = f.q.AddStream(ctx, "s1", testAud)
	f.publish(t, f.q, "a", "b")
	f.ackAll(t, f.q, "s1", testAud)
	// A receiver that lost its state: a new stream gets every retained
	// event (doc.go "Resuming").
	_ = f.q.AddStream(ctx, "s1-new", testAud)
	if _, _, tokens := f.poll(t, f.q, "s1-new", testAud, ssf.PollRequest{ReturnImmediately: true}); !slices.Equal(tokens, []string{"a", "b"}) {
		t.Fatalf("new stream got %v", tokens)
	}
	if err := f.q.Rewind(ctx, "s1", 1); err != nil {
		t.Fatal(err)
	}
	if _, _, tokens := f.poll(t, f.q, "s1", testAud, ssf.PollRequest{ReturnImmediately: true}); !slices.Equal(tokens, []string{"b"}) {
		t.Fatalf("rewound to 1: %v", tokens)
	}
	if err := f.q.Rewind(ctx, "s1", 9); !errors.Is(err, ssf.ErrInvalidRequest) {
		t.Errorf("rewind forward: %v", err)
	}
	if err := f.q.Rewind(ctx, "nope", 0); !errors.Is(err, ssf.ErrUnknownStream) {
		t.Errorf("rewind of an unknown stream: %v", err)
	}
	f.publish(t, f.q, "c")
	if _, _, tokens := f.poll(t, f.q, "s1-new", testAud, ssf.PollRequest{ReturnImmediately: true}); !slices.Equal(tokens, []string{"a", "b", "c"}) {
		t.Fatalf("s1-new: %v", tokens)
	}
}

func suiteSetErrs(t *testing.T, f *fixture) {
	var mu sync.Mutex
	heard := map[string]ssf.SetErr{}
	configure(f.q, queueSettings{onSetErr: func(stream, jti string, e ssf.SetErr) {
		mu.Lock()
		defer mu.Unlock()
		heard[stream+" "+jti] = e
	}})
	_ = f.q.AddStream(context.Background(), "s1", testAud)
	f.publish(t, f.q, "a", "b")
	_, ids, _ := f.poll(t, f.q, "s1", testAud, ssf.PollRequest{ReturnImmediately: true})
	errs := map[string]ssf.SetErr{ids[0]: {Err: ssf.ErrCodeInvalidKey, Description: "no key"}}
	_, _, tokens := f.poll(t, f.q, "s1", testAud, ssf.PollRequest{ReturnImmediately: true, SetErrs: errs})
	if !slices.Equal(tokens, []string{"b"}) {
		t.Fatalf("after setErrs: %v, want [b]: a reported SET is not sent again", tokens)
	}
	mu.Lock()
	defer mu.Unlock()
	if heard["s1 "+ids[0]].Err != ssf.ErrCodeInvalidKey {
		t.Errorf("OnSetErr heard %v", heard)
	}
}

// suiteRequestErrors: unknown streams and malformed requests (RFC 8936
// section 2.4: invalid_request).
func suiteRequestErrors(t *testing.T, f *fixture) {
	ctx := context.Background()
	for _, id := range []string{"nope", ""} {
		if _, err := f.q.Poll(ctx, id, ssf.PollRequest{}); !errors.Is(err, ssf.ErrUnknownStream) {
			t.Errorf("poll of unknown stream %q: %v", id, err)
		}
		if _, err := f.q.Cursor(ctx, id); !errors.Is(err, ssf.ErrUnknownStream) {
			t.Errorf("cursor of unknown stream %q: %v", id, err)
		}
		if err := f.q.RemoveStream(ctx, id); !errors.Is(err, ssf.ErrUnknownStream) {
			t.Errorf("removing unknown stream %q: %v", id, err)
		}
	}
	if err := f.q.AddStream(ctx, "", testAud); !errors.Is(err, ssf.ErrInvalidRequest) {
		t.Errorf("AddStream without id: %v", err)
	}
	if err := f.q.AddStream(ctx, "s0", ""); !errors.Is(err, ssf.ErrInvalidRequest) {
		t.Errorf("AddStream without aud: %v", err)
	}
	_ = f.q.AddStream(ctx, "s1", testAud)
	if err := f.q.AddStream(ctx, "s1", testAud); !errors.Is(err, ssf.ErrStreamExists) {
		t.Errorf("second AddStream: %v", err)
	}
	if _, err := f.q.Poll(ctx, "s1", ssf.PollRequest{MaxEvents: intp(-1)}); !errors.Is(err, ssf.ErrInvalidRequest) {
		t.Errorf("negative maxEvents: %v", err)
	}
	if err := f.q.Publish(ctx, ssf.Event{Time: f.clock.Now(), Subject: ssf.Subject{Kind: ssf.SubjectToken, JTI: "no-iss"}}); !errors.Is(err, ssf.ErrSubject) {
		t.Errorf("bad event published: %v", err)
	}
	if err := f.q.RemoveStream(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.q.Poll(ctx, "s1", ssf.PollRequest{}); !errors.Is(err, ssf.ErrUnknownStream) {
		t.Errorf("removed stream: %v", err)
	}
}

func suiteLongPoll(t *testing.T, f *fixture) {
	ctx := context.Background()
	_ = f.q.AddStream(ctx, "s1", testAud)
	configure(f.q, queueSettings{longPoll: 20 * time.Millisecond})
	resp, err := f.q.Poll(ctx, "s1", ssf.PollRequest{})
	if err != nil || len(resp.Sets) != 0 || resp.MoreAvailable {
		t.Fatalf("idle long poll: %+v %v", resp, err)
	}
	// An event published while the poll waits ends it.
	configure(f.q, queueSettings{longPoll: time.Minute})
	done := make(chan ssf.PollResponse, 1)
	go func() {
		resp, err := f.q.Poll(ctx, "s1", ssf.PollRequest{})
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	f.publish(t, f.q, "a")
	select {
	case resp := <-done:
		if len(resp.Sets) != 1 {
			t.Fatalf("long poll got %d SETs", len(resp.Sets))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long poll did not return on publish")
	}
	// A cancelled request ends the wait.
	f.ackAll(t, f.q, "s1", testAud)
	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := f.q.Poll(cctx, "s1", ssf.PollRequest{MaxEvents: intp(5)})
		errc <- err
	}()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled poll: %v", err)
	}
}

func suiteExpiry(t *testing.T, f *fixture) {
	ctx := context.Background()
	configure(f.q, queueSettings{maxStreams: 1})
	_ = f.q.AddStream(ctx, "s1", testAud)
	if err := f.q.AddStream(ctx, "s2", testAud); !errors.Is(err, ssf.ErrTooManyStreams) {
		t.Errorf("second stream over MaxStreams: %v", err)
	}
	for i, d := range []time.Duration{10 * time.Minute, 10 * time.Minute, time.Hour} {
		if err := f.q.Publish(ctx, tokenEvent(f, fmt.Sprint("t", i), d)); err != nil {
			t.Fatal(err)
		}
	}
	// An already expired token (past the queue's leeway) is not queued
	// at all.
	if err := f.q.Publish(ctx, tokenEvent(f, "old", -expiryLeeway(f.q)-time.Second)); err != nil {
		t.Fatal(err)
	}
	// Once the two have expired they are not delivered, and the cursor
	// moves past them.
	f.clock.Advance(10*time.Minute + expiryLeeway(f.q))
	if _, _, tokens := f.poll(t, f.q, "s1", testAud, ssf.PollRequest{ReturnImmediately: true}); !slices.Equal(tokens, []string{"t2"}) {
		t.Fatalf("after expiry: %v, want [t2]", tokens)
	}
	if c := cursor(t, f.q, "s1"); c != 2 {
		t.Errorf("cursor %d, want 2 (past the expired events)", c)
	}
	f.publish(t, f.q, "t3")
	configure(f.q, queueSettings{maxStreams: 1, maxBatch: 1})
	resp, ids, _ := f.poll(t, f.q, "s1", testAud, ssf.PollRequest{ReturnImmediately: true})
	if len(ids) != 1 || !resp.MoreAvailable {
		t.Errorf("MaxBatch 1: %d SETs more=%v", len(ids), resp.MoreAvailable)
	}
}

func suiteConcurrent(t *testing.T, f *fixture) {
	ctx := context.Background()
	const streams, publishers, perPublisher = 3, 4, 25
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
				f.publish(t, f.q, fmt.Sprintf("p%d-%d", p, i))
			}
		}()
	}
	var rg sync.WaitGroup
	for s := range streams {
		rg.Add(1)
		go func() {
			defer rg.Done()
			f.drain(t, f.q, fmt.Sprint("s", s), publishers*perPublisher)
		}()
	}
	wg.Wait()
	rg.Wait()
	for s := range streams {
		if c := cursor(t, f.q, fmt.Sprint("s", s)); c != publishers*perPublisher {
			t.Errorf("stream %d: cursor %d, want %d", s, c, publishers*perPublisher)
		}
	}
}

// drain long-polls stream until it has seen want distinct tokens,
// acknowledging each batch with the next poll.
func (f *fixture) drain(t *testing.T, q ssf.Queue, stream string, want int) map[string]bool {
	ctx := context.Background()
	v := &ssf.Verifier{Issuer: testIss, Audience: testAud, Keys: f.keys, Now: f.clock.Now}
	got := map[string]bool{}
	var ack []string
	for len(got) < want {
		resp, err := q.Poll(ctx, stream, ssf.PollRequest{MaxEvents: intp(7), Ack: ack})
		if err != nil {
			t.Error(err)
			return got
		}
		ack = ack[:0]
		for id, set := range resp.Sets {
			ev, err := v.Verify(set)
			if err != nil {
				t.Error(err)
				return got
			}
			got[ev.Subject.JTI] = true
			ack = append(ack, id)
		}
	}
	if _, err := q.Poll(ctx, stream, ssf.PollRequest{MaxEvents: intp(0), Ack: ack}); err != nil {
		t.Error(err)
	}
	return got
}

// expiryLeeway is how long past RelevantUntil the queue keeps an event:
// StoreQueue keeps it for ssf.DefaultLeeway (gateways' clock skew).
func expiryLeeway(q ssf.Queue) time.Duration {
	if _, ok := q.(*StoreQueue); ok {
		return ssf.DefaultLeeway
	}
	return 0
}
