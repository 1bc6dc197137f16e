package dpop

import (
	"strings"
	"sync"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// DefaultKeyCacheSize is the number of proof headers a Verifier keeps
// parsed.
const DefaultKeyCacheSize = 1024

// header is the outcome of a proof header that passed every check: a
// client signs all its proofs with one key, so its header (typ, alg,
// jwk) repeats and is parsed once.
type header struct {
	alg jwa.SignatureAlgorithm
	key jwk.Key
	raw any
	jkt string
}

// headerCache maps a header's exact base64url text to its outcome. The
// outcome is a function of those bytes and the Verifier's options only,
// so a hit is what parsing again would give. Bounded: when full, an
// arbitrary entry goes. Only headers whose signature verified are put.
type headerCache struct {
	mu  sync.RWMutex
	max int
	m   map[string]*header
}

func newHeaderCache(max int) *headerCache {
	if max <= 0 {
		return nil
	}
	return &headerCache{max: max, m: make(map[string]*header)}
}

func (c *headerCache) get(h64 string) *header {
	if c == nil {
		return nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[h64]
}

func (c *headerCache) put(h64 string, h *header) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[h64]; ok {
		return
	}
	if len(c.m) >= c.max {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[strings.Clone(h64)] = h // not a slice of the proof, which it would keep
}

func (c *headerCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
