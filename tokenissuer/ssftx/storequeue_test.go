package ssftx

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/ssf"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/embedded"
)

// TestRestart: a stream's state and the feed survive the issuer
// closing and reopening its store: unacknowledged events come again,
// with the same jtis, acknowledged ones do not.
func TestRestart(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	path := filepath.Join(t.TempDir(), "issuer.db")
	db, err := embedded.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	q := f.storeQueue(db, db)
	if err := q.AddStream(ctx, "s1", testAud); err != nil {
		t.Fatal(err)
	}
	f.publish(t, q, "a", "b", "c")
	_, ids, _ := f.poll(t, q, "s1", testAud, ssf.PollRequest{ReturnImmediately: true})
	f.poll(t, q, "s1", testAud, ssf.PollRequest{MaxEvents: intp(0), Ack: []string{ids[1]}})
	db.Close()

	db, err = embedded.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q = f.storeQueue(db, db)
	_, again, tokens := f.poll(t, q, "s1", testAud, ssf.PollRequest{ReturnImmediately: true})
	if !slices.Equal(tokens, []string{"a", "c"}) || !slices.Equal(again, []string{ids[0], ids[2]}) {
		t.Fatalf("after restart: %v %v, want a and c again with jtis %v", tokens, again, []string{ids[0], ids[2]})
	}
	f.poll(t, q, "s1", testAud, ssf.PollRequest{MaxEvents: intp(0), Ack: again})
	if c := cursor(t, q, "s1"); c != 3 {
		t.Fatalf("cursor %d, want 3", c)
	}
	f.publish(t, q, "d")
	if _, ids, _ := f.poll(t, q, "s1", testAud, ssf.PollRequest{ReturnImmediately: true}); len(ids) != 1 || seqOf(ids[0]) != 4 {
		t.Fatalf("after restart a new event got %v, want seq 4", ids)
	}
}

func forEachBacking(t *testing.T, fn func(t *testing.T, b backing)) {
	for _, b := range backings {
		t.Run(b.name, func(t *testing.T) { fn(t, b.open(t)) })
	}
}

func storedStream(t *testing.T, st store.Store, id string) stream {
	t.Helper()
	v, err := st.GetRecord(context.Background(), store.NSSSFStream, id)
	if err != nil {
		t.Fatal(err)
	}
	var s stream
	if err := json.Unmarshal(v, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestBoundedAcked: a stream is delivered only within MaxAcked seqs of
// its cursor, so its stored acknowledgements never exceed MaxAcked
// however the receiver acknowledges.
func TestBoundedAcked(t *testing.T) {
	forEachBacking(t, func(t *testing.T, b backing) {
		f := newFixture(t)
		q := f.storeQueue(b.st, b.log)
		q.MaxAcked = 3
		_ = q.AddStream(context.Background(), "s1", testAud)
		f.publish(t, q, "a", "b", "c", "d", "e", "f")
		resp, ids, tokens := f.poll(t, q, "s1", testAud, ssf.PollRequest{ReturnImmediately: true})
		if !slices.Equal(tokens, []string{"a", "b", "c"}) || resp.MoreAvailable {
			t.Fatalf("window of 3: %v more=%v", tokens, resp.MoreAvailable)
		}
		// Acks beyond the window (a forged jti for d) are ignored.
		tag := strings.Split(ids[0], ".")[1]
		forged := "4." + tag + ".txn-d"
		_, _, tokens = f.poll(t, q, "s1", testAud, ssf.PollRequest{ReturnImmediately: true, Ack: []string{ids[1], ids[2], ids[2], forged, ids[1]}})
		if !slices.Equal(tokens, []string{"a"}) {
			t.Fatalf("a unacknowledged holds the window: %v", tokens)
		}
		if s := storedStream(t, b.st, "s1"); s.Cursor != 0 || !slices.Equal(s.Acked, []uint64{2, 3}) {
			t.Fatalf("stored state %+v, want cursor 0 acked [2 3]", s)
		}
		_, _, tokens = f.poll(t, q, "s1", testAud, ssf.PollRequest{ReturnImmediately: true, Ack: ids[:1]})
		if !slices.Equal(tokens, []string{"d", "e", "f"}) {
			t.Fatalf("after acking a: %v", tokens)
		}
		if s := storedStream(t, b.st, "s1"); s.Cursor != 3 || len(s.Acked) != 0 {
			t.Fatalf("stored state %+v, want cursor 3, none acked", s)
		}
	})
}

// TestTwoNodes: a stream added and published to at node A is polled
// at node B, and a long poll waiting at B returns soon after a publish
// at A (B sees A's append through the feed's head).
func TestTwoNodes(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	b := openPostgres(t)
	a := f.storeQueue(b.st, b.log)
	st, log := b.node(t)
	qb := f.storeQueue(st, log)
	qb.LongPoll = time.Minute
	if err := a.AddStream(ctx, "s1", testAud); err != nil {
		t.Fatal(err)
	}
	f.publish(t, a, "a")
	_, ids, tokens := f.poll(t, qb, "s1", testAud, ssf.PollRequest{ReturnImmediately: true})
	if !slices.Equal(tokens, []string{"a"}) {
		t.Fatalf("node B polled %v", tokens)
	}
	done := make(chan []string, 1)
	go func() {
		_, _, tokens := f.poll(t, qb, "s1", testAud, ssf.PollRequest{Ack: ids})
		done <- tokens
	}()
	waitWaiting(t, qb)
	f.publish(t, a, "b")
	select {
	case tokens := <-done:
		if !slices.Equal(tokens, []string{"b"}) {
			t.Fatalf("long poll at B got %v", tokens)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("a long poll at B did not notice a publish at A within 3s")
	}
	if c := cursor(t, a, "s1"); c != 1 {
		t.Errorf("B's acknowledgement seen at A: cursor %d, want 1", c)
	}
}

// waitWaiting returns once some poll or Wait of q waits.
func waitWaiting(t *testing.T, q *StoreQueue) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		q.n.mu.Lock()
		n := q.n.waiters
		q.n.mu.Unlock()
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing waits")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestConcurrentPollsKeepAcks: polls of one stream at two nodes at
// once each record their acknowledgements (the store's atomic update),
// and two nodes draining one stream together leave its cursor at the
// end.
func TestConcurrentPollsKeepAcks(t *testing.T) {
	forEachBacking(t, func(t *testing.T, b backing) {
		ctx := context.Background()
		f := newFixture(t)
		qa := f.storeQueue(b.st, b.log)
		st, log := b.node(t)
		qb := f.storeQueue(st, log)
		_ = qa.AddStream(ctx, "s1", testAud)
		for round := range 10 {
			f.publish(t, qa, fmt.Sprint("x", round), fmt.Sprint("y", round))
			_, ids, _ := f.poll(t, qa, "s1", testAud, ssf.PollRequest{ReturnImmediately: true})
			var wg sync.WaitGroup
			for i, q := range []*StoreQueue{qa, qb} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := q.Poll(ctx, "s1", ssf.PollRequest{MaxEvents: intp(0), Ack: ids[i : i+1]}); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			if c := cursor(t, qb, "s1"); c != uint64(2*(round+1)) {
				t.Fatalf("round %d: cursor %d, want %d: an acknowledgement was lost", round, c, 2*(round+1))
			}
		}
		// Two nodes drain one stream while events come.
		const n = 40
		go func() {
			for i := range n {
				f.publish(t, qa, fmt.Sprint("z", i))
			}
		}()
		var mu sync.Mutex
		seen := map[string]bool{}
		var wg sync.WaitGroup
		for _, q := range []*StoreQueue{qa, qb} {
			q.LongPoll = 50 * time.Millisecond
			wg.Add(1)
			go func() {
				defer wg.Done()
				var ack []string
				for {
					c, err := q.Cursor(ctx, "s1")
					if err != nil || c == 20+n {
						return
					}
					_, ids, tokens := f.poll(t, q, "s1", testAud, ssf.PollRequest{MaxEvents: intp(5), Ack: ack})
					mu.Lock()
					for _, tk := range tokens {
						seen[tk] = true
					}
					mu.Unlock()
					ack = ids
				}
			}()
		}
		wg.Wait()
		if len(seen) != n {
			t.Fatalf("the two nodes saw %d of %d events", len(seen), n)
		}
	})
}

// TestEventsAndWait: the in-process view reads every node's broadcast
// events, not PublishTo ones; Wait returns on a local publish at once,
// on an append it did not make within HeadPoll, and not before either.
func TestEventsAndWait(t *testing.T) {
	forEachBacking(t, func(t *testing.T, b backing) {
		ctx := context.Background()
		f := newFixture(t)
		q := f.storeQueue(b.st, b.log)
		q.HeadPoll = 20 * time.Millisecond
		_ = q.AddStream(ctx, "s1", testAud)
		f.publish(t, q, "a")
		ver := ssf.Event{Type: ssf.EventVerification, Subject: ssf.Subject{Kind: ssf.SubjectStream, StreamID: "s1"}}
		if err := q.PublishTo(ctx, "s1", ver); err != nil {
			t.Fatal(err)
		}
		f.publish(t, q, "b")
		evs, last, err := q.Events(ctx, 0, 0)
		if err != nil || len(evs) != 2 || evs[0].Subject.JTI != "a" || evs[1].Subject.JTI != "b" || last != 3 {
			t.Fatalf("Events: %+v last %d, %v", evs, last, err)
		}
		if evs, last2, _ := q.Events(ctx, 0, 1); len(evs) != 1 || last2 != 1 {
			t.Fatalf("Events limit 1: %d, last %d", len(evs), last2)
		}
		// Nothing new: Wait lasts until its context ends.
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		q.Wait(short, last)
		if short.Err() == nil {
			t.Fatal("Wait returned with nothing new")
		}
		cancel()
		// A local publish wakes it at once.
		woke := make(chan struct{})
		go func() { q.Wait(ctx, last); close(woke) }()
		waitWaiting(t, q)
		f.publish(t, q, "c")
		<-woke
		// An append by another node (here straight to the feed) is seen
		// by the watcher.
		_, log := b.node(t)
		woke = make(chan struct{})
		go func() { q.Wait(ctx, last+1); close(woke) }()
		waitWaiting(t, q)
		if _, err := log.AppendFeed(ctx, []store.FeedEntry{{Data: []byte(`{}`), Until: time.Now().Add(time.Hour)}}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-woke:
		case <-time.After(3 * time.Second):
			t.Fatal("Wait did not notice another node's append")
		}
		// The watcher runs only while someone waits.
		stopped := make(chan struct{})
		go func() { q.n.running.Wait(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			t.Fatal("the head watcher still runs with no one waiting")
		}
		// An entry this package cannot read is skipped (TestBadEntrySkipped).
		if evs, next, err := q.Events(ctx, last+1, 0); err != nil || len(evs) != 0 || next != last+2 {
			t.Fatalf("an undecodable entry: %v next %d, %v", evs, next, err)
		}
	})
}

// TestEventsSkipExpired: expired events are not in the view, and the
// cursor Events returns moves past them so Wait does not spin.
func TestEventsSkipExpired(t *testing.T) {
	forEachBacking(t, func(t *testing.T, b backing) {
		ctx := context.Background()
		f := newFixture(t)
		q := f.storeQueue(b.st, b.log)
		f.publish(t, q, "a", "b")
		f.clock.Advance(2 * time.Hour)
		evs, last, err := q.Events(ctx, 0, 0)
		if err != nil || len(evs) != 0 || last != 2 {
			t.Fatalf("all expired: %v last %d, %v", evs, last, err)
		}
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		q.Wait(short, last)
		if short.Err() == nil {
			t.Fatal("Wait returned with nothing new")
		}
	})
}

// TestMaxStreamsIndex: MaxStreams counts the index of stream ids;
// removing a stream frees its place, and ids of streams that are gone
// (a node stopped between writes) are cleared when the index is full.
func TestMaxStreamsIndex(t *testing.T) {
	forEachBacking(t, func(t *testing.T, b backing) {
		ctx := context.Background()
		f := newFixture(t)
		q := f.storeQueue(b.st, b.log)
		q.MaxStreams = 2
		for _, id := range []string{"s1", "s2"} {
			if err := q.AddStream(ctx, id, testAud); err != nil {
				t.Fatal(err)
			}
		}
		if err := q.AddStream(ctx, "s3", testAud); err != ssf.ErrTooManyStreams {
			t.Fatalf("third stream: %v", err)
		}
		if err := q.RemoveStream(ctx, "s1"); err != nil {
			t.Fatal(err)
		}
		if err := q.AddStream(ctx, "s3", testAud); err != nil {
			t.Fatalf("after a removal: %v", err)
		}
		// s2's record lost without its index entry.
		if _, err := b.st.UpdateRecord(ctx, store.NSSSFStream, "s2", func([]byte) ([]byte, error) { return nil, nil }); err != nil {
			t.Fatal(err)
		}
		if err := q.AddStream(ctx, "s4", testAud); err != nil {
			t.Fatalf("with a stale index entry: %v", err)
		}
		if err := q.AddStream(ctx, strings.Repeat("x", maxIDLen+1), testAud); err == nil {
			t.Fatal("an oversized stream id was accepted")
		}
	})
}
