package ssf

import (
	"sync"
	"sync/atomic"
)

// hashTable maps non-zero 64-bit hashes to int64 values. Readers take no
// lock and write no shared memory (a gateway checks every request against
// it from every core); writers serialize on mu. It is open addressing with
// linear probing, at most 3/4 full, so a probe always meets an empty slot.
// Growing and pruning build a new table and publish it atomically; a
// reader still on the old one sees a consistent, slightly older set.
type hashTable struct {
	mu    sync.Mutex
	cur   atomic.Pointer[slots]
	count atomic.Int64
}

type slots []slot

type slot struct {
	key atomic.Uint64 // 0: empty
	val atomic.Int64
}

const minSlots = 16

func (m *hashTable) table() slots {
	if t := m.cur.Load(); t != nil {
		return *t
	}
	return nil
}

// get is h's value.
func (m *hashTable) get(h uint64) (int64, bool) {
	t := m.table()
	if len(t) == 0 {
		return 0, false
	}
	mask := uint64(len(t) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		switch t[i].key.Load() {
		case h:
			return t[i].val.Load(), true
		case 0:
			return 0, false
		}
	}
}

// putMax sets h's value to v, or keeps a larger one; a new key is
// refused once limit keys are held.
func (m *hashTable) putMax(h uint64, v int64, limit int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.table()
	if len(t) > 0 {
		mask := uint64(len(t) - 1)
		for i := h & mask; ; i = (i + 1) & mask {
			k := t[i].key.Load()
			if k == h {
				if t[i].val.Load() < v {
					t[i].val.Store(v)
				}
				return nil
			}
			if k == 0 {
				break
			}
		}
	}
	n := int(m.count.Load())
	if n >= limit {
		return ErrRevocationsFull
	}
	if (n+1)*4 > len(t)*3 {
		t = m.rebuild(n+1, func(int64) bool { return true }) // doubles
	}
	insert(t, h, v)
	m.count.Add(1)
	return nil
}

// insert places a key known to be absent; the value is stored first, so
// a reader that sees the key sees its value.
func insert(t slots, h uint64, v int64) {
	mask := uint64(len(t) - 1)
	i := h & mask
	for t[i].key.Load() != 0 {
		i = (i + 1) & mask
	}
	t[i].val.Store(v)
	t[i].key.Store(h)
}

// prune drops the keys whose value is at or below floor.
func (m *hashTable) prune(floor int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.table()
	live := 0
	for i := range t {
		if t[i].key.Load() != 0 && t[i].val.Load() > floor {
			live++
		}
	}
	if live == int(m.count.Load()) {
		return
	}
	m.rebuild(live, func(v int64) bool { return v > floor })
	m.count.Store(int64(live))
}

// rebuild copies the kept entries into a table sized for n keys and
// publishes it; mu held.
func (m *hashTable) rebuild(n int, keep func(int64) bool) slots {
	size := minSlots
	for size*3 < n*4 {
		size *= 2
	}
	nt := make(slots, size)
	t := m.table()
	for i := range t {
		if k, v := t[i].key.Load(), t[i].val.Load(); k != 0 && keep(v) {
			insert(nt, k, v)
		}
	}
	m.cur.Store(&nt)
	return nt
}
