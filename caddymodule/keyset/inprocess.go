package keyset

import (
	"context"
	"sync/atomic"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// InProcess reads the keys of an issuer served by the same process,
// with no HTTP: a key rotation there is seen by the next request here.
type InProcess struct {
	current func() jwk.Set
	// index caches the conversion of the last set seen.
	index atomic.Pointer[indexed]
}

type indexed struct {
	set  jwk.Set
	keys map[string]*Key
}

// NewInProcess returns a source over current, which returns the
// issuer's published key set (or nil before the issuer started).
func NewInProcess(current func() jwk.Set) *InProcess {
	return &InProcess{current: current}
}

// Key implements Source.
func (p *InProcess) Key(_ context.Context, kid string) (*Key, error) {
	set := p.current()
	if set == nil {
		return nil, ErrUnavailable
	}
	ix := p.index.Load()
	if ix == nil || ix.set != set {
		ix = &indexed{set: set, keys: Index(set)}
		p.index.Store(ix)
	}
	if k, ok := ix.keys[kid]; ok {
		return k, nil
	}
	return nil, ErrUnknownKID
}
