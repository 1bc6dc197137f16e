package authserver

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// countingObserver counts the sink's losses.
type countingObserver struct{ dropped, failed, suppressed atomic.Int64 }

func (o *countingObserver) EventsDropped(n int)    { o.dropped.Add(int64(n)) }
func (o *countingObserver) EventWriteFailed(n int) { o.failed.Add(int64(n)) }
func (o *countingObserver) EventsSuppressed(n int) { o.suppressed.Add(int64(n)) }

// blockingLog holds every AppendEvents until release is closed.
type blockingLog struct {
	memEventLog
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (b *blockingLog) AppendEvents(ctx context.Context, evs []store.LogEvent) error {
	b.once.Do(func() { close(b.entered) })
	<-b.release
	return b.memEventLog.AppendEvents(ctx, evs)
}

// failingLog refuses every batch.
type failingLog struct{ memEventLog }

func (*failingLog) AppendEvents(context.Context, []store.LogEvent) error {
	return errors.New("disk full")
}

func ev(n int) store.LogEvent {
	return store.LogEvent{UUID: strings.Repeat("u", n+1), EventType: "user.session.start", DisplayMessage: "secret-looking-content"}
}

// TestEventSinkBatchesAndFlushesOnClose: events are written in batches
// of at most the batch size, and close writes what is still queued.
func TestEventSinkBatchesAndFlushesOnClose(t *testing.T) {
	el := &memEventLog{}
	s := newEventSink(el, zap.NewNop(), nil)
	s.batch, s.every = 4, time.Hour // only size and close flush
	for n := range 10 {
		s.add(ev(n))
	}
	s.start()
	s.close()
	if got := len(el.all()); got != 10 {
		t.Fatalf("%d events stored, want 10", got)
	}
	if el.calls != 3 {
		t.Fatalf("%d writes for 10 events in batches of 4, want 3", el.calls)
	}
	s.add(ev(11)) // after close: not kept, not blocking
	if got := len(el.all()); got != 10 {
		t.Fatalf("%d events after an add past close", got)
	}
}

// TestEventSinkFlushesOnInterval: a lone event is written within the
// interval, without close.
func TestEventSinkFlushesOnInterval(t *testing.T) {
	el := &memEventLog{}
	s := newEventSink(el, zap.NewNop(), nil)
	s.every = 10 * time.Millisecond
	s.start()
	defer s.close()
	s.add(ev(0))
	deadline := time.Now().Add(5 * time.Second)
	for len(el.all()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the event was not written within 5s with a 10ms interval")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestEventSinkDropsWhenFull: with the store stuck, add never blocks;
// past the queue's bound events are dropped and counted.
func TestEventSinkDropsWhenFull(t *testing.T) {
	el := &blockingLog{entered: make(chan struct{}), release: make(chan struct{})}
	obs := &countingObserver{}
	s := newEventSink(el, zap.NewNop(), obs)
	s.queue = make(chan store.LogEvent, 3)
	s.batch = 1
	s.start()
	s.add(ev(0))
	<-el.entered // the writer is stuck on event 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := 1; n <= 10; n++ {
			s.add(ev(n))
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("add blocked on a stuck store")
	}
	// 3 wait in the queue, at most 1 more was taken by the writer.
	if d := obs.dropped.Load(); d < 6 || d > 7 {
		t.Fatalf("%d dropped, want 6 or 7 of 10 beyond a queue of 3", d)
	}
	close(el.release)
	s.close()
	if got := int64(len(el.all())) + obs.dropped.Load(); got != 11 {
		t.Fatalf("%d stored + dropped, want all 11", got)
	}
}

// TestEventSinkStoreErrorsCounted: a refused batch is counted and
// logged by its size, never its contents.
func TestEventSinkStoreErrorsCounted(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	obs := &countingObserver{}
	s := newEventSink(&failingLog{}, zap.New(core), obs)
	for n := range 5 {
		s.add(ev(n))
	}
	s.close()
	if obs.failed.Load() != 5 {
		t.Fatalf("%d failed events counted, want 5", obs.failed.Load())
	}
	entries := logs.All()
	if len(entries) != 1 || entries[0].ContextMap()["events"] != int64(5) {
		t.Fatalf("log of the failure: %v", entries)
	}
	for _, e := range entries {
		if line := e.Message + " " + strings.Join(keysOf(e.ContextMap()), " "); strings.Contains(line, "secret-looking") {
			t.Fatalf("the failure log holds event contents: %s", line)
		}
		for _, v := range e.ContextMap() {
			if s, ok := v.(string); ok && strings.Contains(s, "secret-looking") {
				t.Fatalf("the failure log holds event contents: %v", e.ContextMap())
			}
		}
	}
}

func keysOf(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestIssuerWithoutEventLog: no EventLog, no sink; StopEvents is a no-op.
func TestIssuerWithoutEventLog(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	if e.iss.sink != nil {
		t.Fatal("a sink without an EventLog")
	}
	e.iss.StopEvents()
}

// TestEventSinkAfterClose: an event logged after the writer stopped (an
// old server finishing a grant during a reload) is counted as dropped,
// not lost silently.
func TestEventSinkAfterClose(t *testing.T) {
	el := &blockingLog{entered: make(chan struct{}, 16), release: make(chan struct{})}
	close(el.release)
	obs := &countingObserver{}
	s := newEventSink(el, zap.NewNop(), obs)
	s.start()
	s.close()
	s.add(ev(1))
	if d := obs.dropped.Load(); d != 1 || len(el.all()) != 0 {
		t.Fatalf("after close: %d dropped, %d stored; want 1 dropped", d, len(el.all()))
	}
}

// TestEventSinkTickEventsNotDropped: events handed over at a tick (the
// gateway's summaries) are stored in batches even when there are more
// than the queue holds: they do not go through the queue.
func TestEventSinkTickEventsNotDropped(t *testing.T) {
	el := &memEventLog{}
	obs := &countingObserver{}
	s := newEventSink(el, zap.NewNop(), obs)
	s.every = 5 * time.Millisecond
	var once sync.Once
	s.onTick = func() []store.LogEvent {
		var out []store.LogEvent
		once.Do(func() {
			for n := range sinkQueue + 2000 {
				out = append(out, ev(n))
			}
		})
		return out
	}
	s.start()
	testkit.WaitFor(t, "the tick's events stored", 10*time.Second, func() bool { return len(el.all()) == sinkQueue+2000 })
	s.close()
	if obs.dropped.Load() != 0 || el.calls < (sinkQueue+2000)/sinkBatch {
		t.Fatalf("%d dropped, %d writes", obs.dropped.Load(), el.calls)
	}
}

// TestEventSinkSharedRoom: addShared leaves half the queue to add.
func TestEventSinkSharedRoom(t *testing.T) {
	s := newEventSink(&memEventLog{}, zap.NewNop(), nil) // not started: nothing drains
	shared := 0
	for n := range sinkQueue {
		if s.addShared(ev(n)) {
			shared++
		}
	}
	if shared != sinkQueue/2 {
		t.Fatalf("addShared queued %d, want half the queue (%d)", shared, sinkQueue/2)
	}
	for n := range sinkQueue / 2 {
		s.add(ev(n))
	}
	if len(s.queue) != sinkQueue {
		t.Fatalf("add found no room: queue %d of %d", len(s.queue), sinkQueue)
	}
	s.close()
}
