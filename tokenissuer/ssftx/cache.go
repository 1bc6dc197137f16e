package ssftx

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// Poll cost bounds: a receiver with ssf.read can poll in a loop
// without acknowledging; each poll must then cost neither a new
// signature per SET nor a held goroutine per request.
const (
	DefaultSETCache    = 10000
	DefaultSETCacheTTL = 5 * time.Minute
)

// setCache is a bounded LRU of signed SETs by stream tag, seq and aud.
// A SET's claims and jti are fixed per stream and event, so the same
// SET may be delivered again until acknowledged.
type setCache struct {
	mu  sync.Mutex
	ll  *list.List // front: most recently used
	idx map[setKey]*list.Element
}

type setKey struct {
	tag, aud string
	seq      uint64
}

type setVal struct {
	key    setKey
	jti    string
	set    string
	signed time.Time
}

func (q *StoreQueue) setCacheSize() int {
	if q.SETCache < 0 {
		return 0
	}
	return orDefault(q.SETCache, DefaultSETCache)
}

// cachedSET is the SET signed for k as jti within the TTL, if kept.
func (q *StoreQueue) cachedSET(k setKey, jti string, now time.Time) (string, bool) {
	c := &q.sets
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.idx[k]
	if !ok {
		return "", false
	}
	v := e.Value.(*setVal)
	if v.jti != jti || now.Sub(v.signed) >= orDefault(q.SETCacheTTL, DefaultSETCacheTTL) || now.Before(v.signed) {
		c.ll.Remove(e)
		delete(c.idx, k)
		return "", false
	}
	c.ll.MoveToFront(e)
	return v.set, true
}

// keepSET caches a SET just signed, evicting the least recently used.
func (q *StoreQueue) keepSET(k setKey, jti, set string, now time.Time) {
	n := q.setCacheSize()
	if n == 0 {
		return
	}
	c := &q.sets
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ll == nil {
		c.ll, c.idx = list.New(), map[setKey]*list.Element{}
	}
	if e, ok := c.idx[k]; ok {
		c.ll.Remove(e)
	}
	c.idx[k] = c.ll.PushFront(&setVal{key: k, jti: jti, set: set, signed: now})
	for c.ll.Len() > n {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.idx, old.Value.(*setVal).key)
	}
}

// pollRegistry holds the poll of each stream in flight in this process.
// A newer poll of a stream supersedes the older: the older stops
// waiting (and signing) and answers with what it has, often nothing.
// A receiver whose connection was cut while its poll was held thus
// gets its next poll served at once, and a client cannot pile up held
// polls of one stream.
type pollRegistry struct {
	mu sync.Mutex
	m  map[string]*pollTicket
}

type pollTicket struct{ stop context.CancelFunc }

// begin registers a poll of streamID and supersedes the one in flight;
// the returned context ends when a newer poll begins. end unregisters.
func (q *StoreQueue) beginPoll(ctx context.Context, streamID string) (context.Context, func()) {
	pctx, stop := context.WithCancel(ctx)
	t := &pollTicket{stop: stop}
	r := &q.polls
	r.mu.Lock()
	if r.m == nil {
		r.m = map[string]*pollTicket{}
	}
	if old := r.m[streamID]; old != nil {
		old.stop()
	}
	r.m[streamID] = t
	r.mu.Unlock()
	return pctx, func() {
		r.mu.Lock()
		if r.m[streamID] == t {
			delete(r.m, streamID)
		}
		r.mu.Unlock()
		stop()
	}
}
