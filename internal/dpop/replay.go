package dpop

import (
	"container/heap"
	"context"
	"errors"
	"sync"
	"time"
)

// ReplayCache remembers a proof's jti until it could no longer be
// accepted (RFC 9449 section 11.1). Seen reports whether key was seen
// before and is still remembered; if not, it remembers key until until.
// It must be atomic: of two concurrent calls with one key, one reports
// replayed. An error refuses the proof (fail closed).
type ReplayCache interface {
	Seen(ctx context.Context, key string, until time.Time) (replayed bool, err error)
}

// ErrReplayFull: a MemoryReplay holds its maximum of unexpired jtis.
var ErrReplayFull = errors.New("dpop: replay cache full")

// MemoryReplay is a bounded in-memory ReplayCache for one process. An
// entry is dropped at its until. When it holds max unexpired entries,
// Seen refuses new proofs with ErrReplayFull rather than forget a jti
// that could still be replayed: it fails closed. Safe for concurrent use.
type MemoryReplay struct {
	mu   sync.Mutex
	max  int
	now  func() time.Time
	seen map[string]time.Time
	exp  expiries
}

// NewMemoryReplay remembers at most max jtis (at least 1).
func NewMemoryReplay(max int) *MemoryReplay {
	if max < 1 {
		max = 1
	}
	return &MemoryReplay{max: max, now: time.Now, seen: map[string]time.Time{}}
}

// WithClock sets the clock (default time.Now); call it before use.
func (m *MemoryReplay) WithClock(now func() time.Time) *MemoryReplay {
	m.now = now
	return m
}

// Seen implements ReplayCache.
func (m *MemoryReplay) Seen(_ context.Context, key string, until time.Time) (bool, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for len(m.exp) > 0 && !m.exp[0].until.After(now) {
		delete(m.seen, heap.Pop(&m.exp).(expiry).key)
	}
	if _, ok := m.seen[key]; ok {
		return true, nil
	}
	if !until.After(now) {
		return false, nil // could not be accepted again anyway
	}
	if len(m.seen) >= m.max {
		return false, ErrReplayFull
	}
	m.seen[key] = until
	heap.Push(&m.exp, expiry{key: key, until: until})
	return false, nil
}

// Len is the number of remembered jtis, expired ones not yet dropped
// included.
func (m *MemoryReplay) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.seen)
}

// expiry is one remembered key; every key of seen has exactly one.
type expiry struct {
	key   string
	until time.Time
}

// expiries is a min-heap by until.
type expiries []expiry

func (h expiries) Len() int           { return len(h) }
func (h expiries) Less(i, j int) bool { return h[i].until.Before(h[j].until) }
func (h expiries) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiries) Push(x any)        { *h = append(*h, x.(expiry)) }
func (h *expiries) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = expiry{}
	*h = old[:len(old)-1]
	return x
}
