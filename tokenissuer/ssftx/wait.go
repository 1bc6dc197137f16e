package ssftx

import (
	"context"
	"sync"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/ssf"
)

// notifier wakes waiters when the feed's head rises: at once for a
// Publish in this process, and within HeadPoll for other nodes' appends,
// seen by a watcher goroutine that runs only while someone waits.
type notifier struct {
	mu      sync.Mutex
	head    uint64        // the highest head seen
	wake    chan struct{} // closed, and replaced, when head rises
	waiters int
	stop    context.CancelFunc // the watcher's, while it runs
	running sync.WaitGroup     // the watcher
}

// observe notes a head and wakes the waiters if it rose.
func (n *notifier) observe(head uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if head > n.head {
		n.head = head
		if n.wake != nil {
			close(n.wake)
		}
		n.wake = make(chan struct{})
	}
}

// Wait returns when an entry with seq > after may exist (a Publish in
// this process, or the feed's head moved past after), or ctx ends.
func (q *StoreQueue) Wait(ctx context.Context, after uint64) {
	n := &q.n
	n.mu.Lock()
	if n.head > after {
		n.mu.Unlock()
		return
	}
	if n.wake == nil {
		n.wake = make(chan struct{})
	}
	wake := n.wake
	if n.waiters++; n.waiters == 1 {
		q.startWatcher()
	}
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		if n.waiters--; n.waiters == 0 {
			n.stop()
			n.stop = nil
		}
		n.mu.Unlock()
	}()
	select {
	case <-wake:
	case <-ctx.Done():
	}
}

// startWatcher starts re-reading the head every HeadPoll; the last
// waiter to leave stops it. Called with n.mu held.
func (q *StoreQueue) startWatcher() {
	n := &q.n
	ctx, cancel := context.WithCancel(context.Background())
	n.stop = cancel
	n.running.Add(1)
	go func() {
		defer n.running.Done()
		t := time.NewTicker(orDefault(q.HeadPoll, DefaultHeadPoll))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			// An error (the database away) leaves the waiters to their
			// deadlines; their next read reports it.
			if head, err := q.log.FeedHead(ctx); err == nil {
				n.observe(head)
			}
		}
	}()
}

// Events is the issuer's in-process view of the feed: the live
// broadcast events (Publish, not PublishTo) with seq > after, oldest
// first, at most limit (at most MaxBatch; 0: MaxBatch), and the seq to
// pass as after next time (and to Wait). Their ID is empty: jtis are
// per stream.
func (q *StoreQueue) Events(ctx context.Context, after uint64, limit int) (evs []ssf.Event, last uint64, err error) {
	if limit <= 0 || limit > q.maxBatch() {
		limit = q.maxBatch()
	}
	head, err := q.log.FeedHead(ctx)
	if err != nil {
		return nil, after, err
	}
	q.n.observe(head)
	entries, err := q.log.ReadFeed(ctx, after, limit)
	if err != nil {
		return nil, after, err
	}
	last = after
	now := q.now()
	for _, e := range entries {
		last = e.Seq
		it, err := decodeEntry(e.Seq, e.Data, e.Until)
		if err != nil {
			q.badEntry(e.Seq, err)
			continue
		}
		if it.only == "" && it.until.After(now) {
			evs = append(evs, it.ev)
		}
	}
	if len(entries) < limit {
		// Complete up to the head (prefix property): the rest expired.
		last = max(last, head)
	}
	return evs, last, nil
}
