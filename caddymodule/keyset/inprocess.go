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
	typed   bool
	// index caches the conversion of the last set seen.
	index atomic.Pointer[indexed]
}

type indexed struct {
	set  jwk.Set
	keys map[string]*Key
}

// NewInProcess returns a source over current, which returns the
// issuer's published key set (or nil before the issuer started). typed
// says the issuer sets `typ` "at+jwt" on every access token it signs
// (RFC 9068 section 2.1), as `token_issuer` does: a token of that
// issuer without it (an ID token) is then no access token.
func NewInProcess(current func() jwk.Set, typed bool) *InProcess {
	return &InProcess{current: current, typed: typed}
}

// TypesAccessTokens implements Typed.
func (p *InProcess) TypesAccessTokens() bool { return p.typed }

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
