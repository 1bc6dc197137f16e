package ssftx

import (
	"sync"

	"go.uber.org/zap"
)

// badEntries remembers the seqs of undecodable entries already
// reported, so each is logged and counted once (bounded: forgotten in
// bulk past maxBadEntries, then reported again at most once more).
type badEntries struct {
	mu   sync.Mutex
	seen map[uint64]struct{}
}

const maxBadEntries = 10000

// badEntry reports an undecodable feed entry the first time it is met.
// The error names the seq and the JSON problem, never the data.
func (q *StoreQueue) badEntry(seq uint64, err error) {
	b := &q.bad
	b.mu.Lock()
	if _, dup := b.seen[seq]; dup {
		b.mu.Unlock()
		return
	}
	if b.seen == nil || len(b.seen) >= maxBadEntries {
		b.seen = map[uint64]struct{}{}
	}
	b.seen[seq] = struct{}{}
	b.mu.Unlock()
	if q.Logger != nil {
		q.Logger.Error("revocation feed entry cannot be decoded; skipped (receivers will not get it)", zap.Uint64("seq", seq), zap.Error(err))
	}
	if q.OnBadEntry != nil {
		q.OnBadEntry(seq, err)
	}
}
