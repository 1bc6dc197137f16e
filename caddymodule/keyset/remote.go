package keyset

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Remote fetches an issuer's keys over HTTP: lazily on first use (never
// at load), then in the background; an unknown kid triggers at most one
// refetch per MinRefresh, shared by all requests waiting for it (single
// flight). When the issuer is unreachable, the last keys fetched keep
// being used.
//
// Freshness: a key the issuer publishes at time P (an emergency
// rotation activates a key in that same moment) is found by every
// request from P + MinRefresh on, since a fetch may start by then and
// any fetch started after P sees the key. A flood of unknown kids costs
// at most one fetch per MinRefresh, whatever their number: all that is
// remembered is when the last fetch started.
type Remote struct {
	Issuer string
	// JWKSURI, when empty, is discovered from the issuer's metadata.
	JWKSURI string
	// MinRefresh is the least time between two fetches caused by
	// unknown kids or failures, and so the longest a key used without
	// prior publication is refused. Default DefaultMinRefresh.
	MinRefresh time.Duration
	// RefreshEvery is the background refresh period.
	RefreshEvery time.Duration
	Client       *http.Client
	Now          func() time.Time
	// OnError receives background and on-demand fetch failures.
	OnError func(error)

	keys    atomic.Pointer[map[string]*Key]
	fetches atomic.Int64
	// started numbers fetches in the order they began; stored is the
	// number of the one whose keys are in use (under mu), so a slow
	// background fetch cannot replace newer keys with older ones.
	started atomic.Int64
	stored  int64

	mu          sync.Mutex
	inflight    chan struct{}
	lastAttempt time.Time
	jwksURI     string
}

// DefaultMinRefresh is MinRefresh when unset: a key activated without
// prior publication is accepted within 15 s, and an unknown-kid flood
// costs at most four fetches a minute. It is above the 10 s fetch
// timeout, so a fetch that started before a key was published has
// ended when the next one may start.
const DefaultMinRefresh = 15 * time.Second

// maxBody bounds metadata and JWKS documents.
const maxBody = 1 << 20

// Fetches is the number of JWKS fetches made (for metrics and tests).
func (r *Remote) Fetches() int64 { return r.fetches.Load() }

// Key implements Source.
func (r *Remote) Key(ctx context.Context, kid string) (*Key, error) {
	if m := r.keys.Load(); m != nil {
		if k, ok := (*m)[kid]; ok {
			return k, nil
		}
	}
	if !r.refresh(ctx) {
		// A concurrent fetch may have stored new keys since the first look.
		m := r.keys.Load()
		if m == nil {
			return nil, ErrUnavailable
		}
		if k, ok := (*m)[kid]; ok {
			return k, nil
		}
		return nil, ErrUnknownKID
	}
	m := r.keys.Load()
	if m == nil {
		return nil, ErrUnavailable
	}
	if k, ok := (*m)[kid]; ok {
		return k, nil
	}
	return nil, ErrUnknownKID
}

func (r *Remote) minRefresh() time.Duration {
	if r.MinRefresh > 0 {
		return r.MinRefresh
	}
	return DefaultMinRefresh
}

func (r *Remote) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// refresh fetches once if allowed, or waits for the fetch in flight. It
// reports whether a fetch completed (successfully or not) for this call.
// The limit counts from when the last fetch started, not from when a
// kid was last found missing: a kid first seen during a fetch that
// began before its key was published must not wait longer than
// MinRefresh after that fetch began.
func (r *Remote) refresh(ctx context.Context) bool {
	r.mu.Lock()
	if ch := r.inflight; ch != nil {
		r.mu.Unlock()
		select {
		case <-ch:
			return true
		case <-ctx.Done():
			return false
		}
	}
	now := r.now()
	if !r.lastAttempt.IsZero() && now.Sub(r.lastAttempt) < r.minRefresh() {
		r.mu.Unlock()
		return false
	}
	ch := make(chan struct{})
	r.inflight, r.lastAttempt = ch, now
	r.mu.Unlock()

	err := r.fetch(context.WithoutCancel(ctx))
	r.mu.Lock()
	r.inflight = nil
	r.mu.Unlock()
	close(ch)
	if err != nil && r.OnError != nil {
		r.OnError(err)
	}
	return true
}

// Run refreshes in the background until ctx ends.
func (r *Remote) Run(ctx context.Context) {
	t := time.NewTicker(r.RefreshEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.fetch(ctx); err != nil && r.OnError != nil && ctx.Err() == nil {
				r.OnError(err)
			}
		}
	}
}

func (r *Remote) fetch(ctx context.Context) error {
	seq := r.started.Add(1)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r.mu.Lock()
	uri := r.jwksURI
	r.mu.Unlock()
	if uri == "" {
		uri = r.JWKSURI
	}
	if uri == "" {
		var err error
		if uri, err = r.discover(ctx); err != nil {
			return err
		}
		r.mu.Lock()
		r.jwksURI = uri
		r.mu.Unlock()
	}
	r.fetches.Add(1)
	body, status, err := r.get(ctx, uri)
	if err != nil {
		return fmt.Errorf("fetching JWKS of %s: %w", r.Issuer, err)
	}
	if status != http.StatusOK {
		if status == http.StatusNotFound && r.JWKSURI == "" {
			// The issuer may have moved its keys: discover again next time.
			r.mu.Lock()
			r.jwksURI = ""
			r.mu.Unlock()
		}
		return fmt.Errorf("fetching JWKS of %s: status %d", r.Issuer, status)
	}
	// One key of a type we do not know must not hide the others.
	set, err := jwk.Parse(body, jwk.WithIgnoreParseError(true))
	if err != nil {
		return fmt.Errorf("JWKS of %s: %w", r.Issuer, err)
	}
	idx := Index(set)
	if len(idx) == 0 {
		return fmt.Errorf("JWKS of %s has no usable public signature key", r.Issuer)
	}
	r.mu.Lock()
	if seq > r.stored {
		r.stored = seq
		r.keys.Store(&idx)
	}
	r.mu.Unlock()
	return nil
}

// discover reads the issuer's metadata (OpenID Connect Discovery, then
// RFC 8414 in both its inserted and appended forms) for jwks_uri. The
// metadata's issuer must equal the configured one (RFC 8414 section 3.3).
func (r *Remote) discover(ctx context.Context) (string, error) {
	u, err := url.Parse(r.Issuer)
	if err != nil {
		return "", err
	}
	candidates := []string{
		r.Issuer + "/.well-known/openid-configuration",
		u.Scheme + "://" + u.Host + "/.well-known/oauth-authorization-server" + u.Path,
		r.Issuer + "/.well-known/oauth-authorization-server",
	}
	var last error
	for _, c := range candidates {
		body, status, err := r.get(ctx, c)
		if err != nil {
			last = err
			continue
		}
		if status != http.StatusOK {
			last = fmt.Errorf("%s: status %d", c, status)
			continue
		}
		var meta struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := json.Unmarshal(body, &meta); err != nil {
			last = fmt.Errorf("%s: %w", c, err)
			continue
		}
		if meta.Issuer != r.Issuer {
			return "", fmt.Errorf("metadata at %s names issuer %q, not %q", c, meta.Issuer, r.Issuer)
		}
		ju, err := url.Parse(meta.JWKSURI)
		if err != nil || ju.Host == "" || (ju.Scheme != "https" && !(ju.Scheme == "http" && u.Scheme == "http")) {
			return "", fmt.Errorf("metadata of %s has an unusable jwks_uri %q", r.Issuer, meta.JWKSURI)
		}
		return meta.JWKSURI, nil
	}
	return "", fmt.Errorf("discovering keys of %s: %w", r.Issuer, last)
}

func (r *Remote) get(ctx context.Context, u string) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/json")
	c := r.Client
	if c == nil {
		c = http.DefaultClient
	}
	res, err := c.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxBody+1))
	if err != nil {
		return nil, 0, err
	}
	if len(body) > maxBody {
		return nil, 0, fmt.Errorf("%s: document larger than %d bytes", u, maxBody)
	}
	if strings.TrimSpace(string(body)) == "" && res.StatusCode == http.StatusOK {
		return nil, 0, fmt.Errorf("%s: empty document", u)
	}
	return body, res.StatusCode, nil
}
