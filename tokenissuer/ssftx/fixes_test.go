package ssftx

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/ssf"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// TestBadEntrySkipped: an entry that cannot be decoded stops neither
// the in-process view nor a stream: both move past it, and it is
// reported once.
func TestBadEntrySkipped(t *testing.T) {
	ctx := context.Background()
	b := openEmbedded(t)
	f := newFixture(t)
	q := f.storeQueue(b.st, b.log)
	var bad []uint64
	q.OnBadEntry = func(seq uint64, err error) { bad = append(bad, seq) }
	_ = q.AddStream(ctx, "s1", testAud)
	until := f.clock.Now().Add(time.Hour)
	f.publish(t, q, "a")
	if _, err := b.log.AppendFeed(ctx, []store.FeedEntry{{Data: []byte("{not json"), Until: until}}); err != nil {
		t.Fatal(err)
	}
	f.publish(t, q, "b")
	if _, err := b.log.AppendFeed(ctx, []store.FeedEntry{{Data: []byte(`{"txn":"t","subject":{"kind":"martian"}}`), Until: until}}); err != nil {
		t.Fatal(err)
	}
	evs, last, err := q.Events(ctx, 0, 0)
	if err != nil || len(evs) != 2 || last != 4 || evs[0].Subject.JTI != "a" || evs[1].Subject.JTI != "b" {
		t.Fatalf("Events: %v last %d, %v", evs, last, err)
	}
	_, ids, tokens := f.poll(t, q, "s1", testAud, ssf.PollRequest{ReturnImmediately: true})
	if len(tokens) != 2 || tokens[0] != "a" || tokens[1] != "b" {
		t.Fatalf("poll: %v", tokens)
	}
	if _, err := q.Poll(ctx, "s1", ssf.PollRequest{MaxEvents: intp(0), Ack: ids}); err != nil {
		t.Fatal(err)
	}
	if c := cursor(t, q, "s1"); c != 4 {
		t.Fatalf("cursor %d, want 4: past the bad entries", c)
	}
	if _, _, err := q.Events(ctx, 0, 0); err != nil {
		t.Fatal(err)
	}
	if len(bad) != 2 || bad[0] != 2 || bad[1] != 4 {
		t.Fatalf("reported %v, want [2 4] once each", bad)
	}
}

// TestEntryKeptPastExpiryLeeway: a revocation stays in the feed for
// ssf.DefaultLeeway past the token's exp, as gateways accept a token
// that long past exp.
func TestEntryKeptPastExpiryLeeway(t *testing.T) {
	ctx := context.Background()
	b := openEmbedded(t)
	f := newFixture(t)
	q := f.storeQueue(b.st, b.log)
	_ = q.AddStream(ctx, "s1", testAud)
	ev := tokenEvent(f, "a", time.Minute)
	if err := q.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	entries, err := b.log.ReadFeed(ctx, 0, 10)
	if err != nil || len(entries) != 1 || !entries[0].Until.Equal(ev.Subject.Expiry.Add(ssf.DefaultLeeway)) {
		t.Fatalf("entries %v, %v: want Until exp+%v", entries, err, ssf.DefaultLeeway)
	}
	// Published after exp but within the leeway: kept too.
	if err := q.Publish(ctx, tokenEvent(f, "b", -time.Minute)); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(3 * time.Minute) // past a's exp, within the leeway
	if evs, _, err := q.Events(ctx, 0, 0); err != nil || len(evs) != 2 {
		t.Fatalf("Events within the leeway: %v, %v", evs, err)
	}
	if _, _, tokens := f.poll(t, q, "s1", testAud, ssf.PollRequest{ReturnImmediately: true}); len(tokens) != 2 {
		t.Fatalf("poll within the leeway: %v", tokens)
	}
	f.clock.Advance(4 * time.Minute) // a: exp+7min
	if _, _, tokens := f.poll(t, q, "s1", testAud, ssf.PollRequest{ReturnImmediately: true}); len(tokens) != 0 {
		t.Fatalf("poll past the leeway: %v", tokens)
	}
}

// TestNewerPollSupersedes: a poll held for events ends, empty, when a
// newer poll of the same stream comes; the newer one gets the events.
func TestNewerPollSupersedes(t *testing.T) {
	ctx := context.Background()
	b := openEmbedded(t)
	f := newFixture(t)
	q := f.storeQueue(b.st, b.log)
	q.LongPoll = time.Minute
	_ = q.AddStream(ctx, "s1", testAud)
	_ = q.AddStream(ctx, "s2", testAud)
	type answer struct {
		resp ssf.PollResponse
		err  error
	}
	poll := func(stream string) chan answer {
		ch := make(chan answer, 1)
		go func() {
			r, err := q.Poll(ctx, stream, ssf.PollRequest{})
			ch <- answer{r, err}
		}()
		return ch
	}
	older := poll("s1")
	other := poll("s2") // another stream's poll is not affected
	waitWaiting(t, q)
	newer := poll("s1")
	select {
	case a := <-older:
		if a.err != nil || a.resp.Sets == nil || len(a.resp.Sets) != 0 || !a.resp.MoreAvailable {
			t.Fatalf("superseded poll: %+v", a)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the older poll still waits")
	}
	f.publish(t, q, "a")
	for _, ch := range []chan answer{newer, other} {
		select {
		case a := <-ch:
			if a.err != nil || len(a.resp.Sets) != 1 {
				t.Fatalf("poll after publish: %+v", a)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no answer after publish")
		}
	}
}

// TestRepeatedPollSignsNothing: SETs still unacknowledged are not
// signed again, and the cache is bounded.
func TestRepeatedPollSignsNothing(t *testing.T) {
	ctx := context.Background()
	b := openEmbedded(t)
	f := newFixture(t)
	var signs atomic.Int64
	q := NewStoreQueue(b.st, b.log, func(ev ssf.Event, aud string) (string, error) {
		signs.Add(1)
		return f.sign(ev, aud)
	})
	q.Now = f.clock.Now
	_ = q.AddStream(ctx, "s1", testAud)
	_ = q.AddStream(ctx, "s2", testAud)
	f.publish(t, q, "a", "b", "c")
	first, _, _ := f.poll(t, q, "s1", testAud, ssf.PollRequest{ReturnImmediately: true})
	if n := signs.Load(); n != 3 {
		t.Fatalf("first poll signed %d, want 3", n)
	}
	again, _, _ := f.poll(t, q, "s1", testAud, ssf.PollRequest{ReturnImmediately: true})
	if n := signs.Load(); n != 3 {
		t.Fatalf("repeated poll signed %d more", n-3)
	}
	for id, set := range first.Sets {
		if again.Sets[id] != set {
			t.Fatalf("SET %s differs", id)
		}
	}
	// Another stream's SETs are its own (its jti tag).
	if _, ids, _ := f.poll(t, q, "s2", testAud, ssf.PollRequest{ReturnImmediately: true}); signs.Load() != 6 || len(ids) != 3 {
		t.Fatalf("s2: %d signs, %v", signs.Load(), ids)
	}
	// Past the TTL a SET is signed anew.
	f.clock.Advance(DefaultSETCacheTTL)
	f.poll(t, q, "s1", testAud, ssf.PollRequest{ReturnImmediately: true})
	if n := signs.Load(); n != 9 {
		t.Fatalf("after the TTL: %d signs, want 9", n)
	}
	// Bounded.
	q.SETCache = 2
	f.clock.Advance(DefaultSETCacheTTL)
	f.poll(t, q, "s1", testAud, ssf.PollRequest{ReturnImmediately: true})
	q.sets.mu.Lock()
	n := q.sets.ll.Len()
	q.sets.mu.Unlock()
	if n > 2 {
		t.Fatalf("cache holds %d, bound 2", n)
	}
}
