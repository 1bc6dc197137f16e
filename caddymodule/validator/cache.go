package validator

import (
	"crypto/sha256"
	"sync"
	"time"
	"unsafe"
)

// cache holds tokens whose signature and standard claims were verified,
// keyed by the SHA-256 of the token (the token itself is never kept).
// An entry never outlives the token's exp. When full, an arbitrary
// entry is evicted: Go map iteration order is random, which makes this
// random eviction at O(1).
type cache struct {
	shards [cacheShards]cacheShard
	per    int
}

const cacheShards = 16

type cacheShard struct {
	mu sync.RWMutex
	m  map[[32]byte]*verified
}

func newCache(size int) *cache {
	if size <= 0 {
		return nil
	}
	c := &cache{per: max(1, size/cacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[[32]byte]*verified)
	}
	return c
}

func (c *cache) get(key [32]byte, now time.Time) *verified {
	s := &c.shards[key[0]%cacheShards]
	s.mu.RLock()
	v := s.m[key]
	s.mu.RUnlock()
	if v == nil {
		return nil
	}
	if !now.Before(v.exp) {
		s.mu.Lock()
		delete(s.m, key)
		s.mu.Unlock()
		return nil
	}
	return v
}

func (c *cache) put(key [32]byte, v *verified) {
	s := &c.shards[key[0]%cacheShards]
	s.mu.Lock()
	if len(s.m) >= c.per {
		for k := range s.m {
			delete(s.m, k)
			break
		}
	}
	s.m[key] = v
	s.mu.Unlock()
}

// tokenKey hashes the token in place: sha256.Sum256([]byte(tok)) would
// copy a token longer than 32 bytes to the heap. The slice aliases the
// string's bytes only for the call and is never written to or kept.
func tokenKey(tok string) [32]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(tok), len(tok)))
}
