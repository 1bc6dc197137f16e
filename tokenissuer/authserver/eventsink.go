package authserver

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// The sink's bounds: events wait in memory for at most sinkInterval, and
// are written sinkBatch at a time; past sinkQueue waiting, new events
// are dropped (and counted) rather than slow a grant down.
const (
	sinkQueue    = 8192
	sinkBatch    = 256
	sinkInterval = 500 * time.Millisecond
	// sinkFlushTimeout bounds one write, and the last flush at Stop.
	sinkFlushTimeout = 10 * time.Second
)

// EventObserver is told of the System Log writer's losses, for metrics;
// an Observer that also implements it is told. Calls must not block.
// FeedObserver is an Observer that also hears of revocation-feed
// entries skipped because they could not be decoded (each once).
type FeedObserver interface {
	FeedEntrySkipped()
}

type EventObserver interface {
	// EventsDropped: n events were not kept, the queue being full.
	EventsDropped(n int)
	// EventWriteFailed: the store refused a batch of n events.
	EventWriteFailed(n int)
	// EventsSuppressed: n gateway refusals were left out, their client
	// address being over its budget (gateway_flood.go).
	EventsSuppressed(n int)
}

// eventSink queues System Log events and writes them to the store's
// EventLog in batches from one goroutine, so a grant never waits on the
// log: add only ever puts an event in a bounded channel.
type eventSink struct {
	el    store.EventLog
	queue chan store.LogEvent
	log   *zap.Logger
	obs   EventObserver
	batch int
	every time.Duration
	// onTick, when set, runs on the writer's goroutine at every interval
	// and returns events that waited elsewhere, stored with the batch
	// (not through the queue, which only this goroutine drains).
	onTick func() []store.LogEvent

	startOnce, stopOnce sync.Once
	closed              atomic.Bool
	stop                chan struct{}
	done                chan struct{}
}

func newEventSink(el store.EventLog, log *zap.Logger, obs EventObserver) *eventSink {
	return &eventSink{el: el, queue: make(chan store.LogEvent, sinkQueue), log: log, obs: obs,
		batch: sinkBatch, every: sinkInterval, stop: make(chan struct{}), done: make(chan struct{})}
}

// add queues e, or drops it (counted) when the queue is full or the
// writer has stopped.
func (s *eventSink) add(e store.LogEvent) {
	if s.closed.Load() {
		if s.obs != nil {
			s.obs.EventsDropped(1)
		}
		return
	}
	select {
	case s.queue <- e:
	default:
		if s.obs != nil {
			s.obs.EventsDropped(1)
		}
	}
}

// addShared queues e only while the queue is less than half full, so
// that events of others (the gateways') never take the room of the
// issuer's own; it reports whether e was queued.
func (s *eventSink) addShared(e store.LogEvent) bool {
	if s.closed.Load() || len(s.queue) >= cap(s.queue)/2 {
		return false
	}
	select {
	case s.queue <- e:
		return true
	default:
		return false
	}
}

// start runs the writer until close; events added before start wait in
// the queue.
func (s *eventSink) start() {
	s.startOnce.Do(func() { go s.run() })
}

// close writes what is queued and stops the writer; it waits for that
// last drain, which gets sinkFlushTimeout in all (a hanging store cannot
// hold a reload for one timeout per batch). Events added afterwards are
// counted as dropped.
func (s *eventSink) close() {
	s.start()
	s.closed.Store(true)
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
}

func (s *eventSink) run() {
	defer close(s.done)
	t := time.NewTicker(s.every)
	defer t.Stop()
	buf := make([]store.LogEvent, 0, s.batch)
	for {
		select {
		case e := <-s.queue:
			buf = append(buf, e)
			if len(buf) >= s.batch {
				buf = s.write(context.Background(), buf)
			}
		case <-t.C:
			if s.onTick != nil {
				for _, e := range s.onTick() {
					buf = append(buf, e)
					if len(buf) >= s.batch {
						buf = s.write(context.Background(), buf)
					}
				}
			}
			buf = s.write(context.Background(), buf)
		case <-s.stop:
			ctx, cancel := context.WithTimeout(context.Background(), sinkFlushTimeout)
			defer cancel()
			for {
				select {
				case e := <-s.queue:
					buf = append(buf, e)
					if len(buf) >= s.batch {
						buf = s.write(ctx, buf)
					}
				default:
					s.write(ctx, buf)
					return
				}
			}
		}
	}
}

// write stores buf and returns it emptied. A failure is logged (without
// the events: they name users and clients) and counted; the batch is
// not retried, so a store outage cannot grow memory.
func (s *eventSink) write(parent context.Context, buf []store.LogEvent) []store.LogEvent {
	if len(buf) == 0 {
		return buf
	}
	ctx, cancel := context.WithTimeout(parent, sinkFlushTimeout)
	err := ctx.Err() // the drain's time is up: count the rest as failed
	if err == nil {
		err = s.appendEvents(ctx, buf)
	}
	cancel()
	if err != nil {
		s.log.Error("storing System Log events failed", zap.Int("events", len(buf)), zap.Error(err))
		if s.obs != nil {
			s.obs.EventWriteFailed(len(buf))
		}
	}
	// A fresh buffer: the store may still hold this one.
	return make([]store.LogEvent, 0, s.batch)
}

// appendEvents calls the store, turning a panic into an error: the
// writer must outlive a broken store.
func (s *eventSink) appendEvents(ctx context.Context, buf []store.LogEvent) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errPanicked{r}
		}
	}()
	return s.el.AppendEvents(ctx, buf)
}

type errPanicked struct{ v any }

func (e errPanicked) Error() string { return "event log panicked" }
