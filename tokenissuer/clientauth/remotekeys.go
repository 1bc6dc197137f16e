package clientauth

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Limits of jwks_uri fetches. A client's key server is not trusted: it
// may answer slowly, endlessly or with gigabytes, or redirect inward.
const (
	// MaxJWKSBytes is the largest key set read; a larger answer fails
	// the fetch without being buffered.
	MaxJWKSBytes = 1 << 20
	// JWKSConnectTimeout bounds the TCP connect and the TLS handshake,
	// JWKSHeaderTimeout the wait for the response headers, and
	// JWKSFetchTimeout the whole fetch, body included.
	JWKSConnectTimeout = 5 * time.Second
	JWKSHeaderTimeout  = 5 * time.Second
	JWKSFetchTimeout   = 10 * time.Second
	// JWKSMaxAge is how long a fetched set is used before it is fetched
	// again (in the background of a request, the old set still serving).
	JWKSMaxAge = 15 * time.Minute
	// refreshInterval is the least time between two fetches of one
	// jwks_uri for unknown kids or after a failure, so forged kids
	// cannot make us hammer a client's key server.
	refreshInterval = time.Minute
	maxRedirects    = 3 // followed, within the origin
)

// remoteKeys fetches and caches the key sets of jwks_uri clients. Each
// URL has its own state, HTTP client and connections: a key server that
// hangs delays only its own client (jwk.Cache's shared fetch workers
// let a few hanging servers stall every client).
type remoteKeys struct {
	now func() time.Time
	// lookup resolves a host name; tests replace it.
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	// Timeouts; tests shorten them.
	connect, header, total time.Duration

	mu   sync.Mutex
	sets map[string]*remoteSet
}

type remoteSet struct {
	client *http.Client
	// fetching holds one token: its holder is the URL's only fetch.
	fetching chan struct{}

	mu      sync.Mutex
	set     jwk.Set
	fetched time.Time // of set
	tried   time.Time // last fetch started
	err     error     // of the last fetch
}

func newRemoteKeys(now func() time.Time) *remoteKeys {
	return &remoteKeys{
		now: now,
		lookup: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		},
		connect: JWKSConnectTimeout, header: JWKSHeaderTimeout, total: JWKSFetchTimeout,
		sets: map[string]*remoteSet{},
	}
}

// entry returns the state of rawURL, creating it on first use (the URLs
// come from configuration, so the map is bounded).
func (r *remoteKeys) entry(rawURL string) (*remoteSet, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.sets[rawURL]; ok {
		return e, nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	e := &remoteSet{client: r.httpClient(u), fetching: make(chan struct{}, 1)}
	r.sets[rawURL] = e
	return e, nil
}

// get returns the key set at rawURL. It fetches when there is none yet
// or kid is not in it (and the request waits), or when the set is older
// than JWKSMaxAge (in the background, the old set serving meanwhile);
// fetches start at most once per refreshInterval. A fetch in progress
// is waited for only when there is no set to use.
func (r *remoteKeys) get(ctx context.Context, rawURL, kid string) (jwk.Set, error) {
	e, err := r.entry(rawURL)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	set, err := e.set, e.err
	stale := set != nil && r.now().Sub(e.fetched) >= JWKSMaxAge
	missing := set == nil
	if !missing && kid != "" {
		_, found := set.LookupKeyID(kid)
		missing = !found
	}
	e.mu.Unlock()
	if !missing && !stale {
		return set, nil
	}
	if set != nil {
		select {
		case e.fetching <- struct{}{}:
		default: // another request is fetching; use what we have
			return set, nil
		}
	} else {
		select {
		case e.fetching <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	e.mu.Lock()
	if !e.tried.IsZero() && r.now().Sub(e.tried) < refreshInterval {
		// Fetched a moment ago (maybe while we waited): use that.
		set, err = e.set, e.err
		e.mu.Unlock()
		<-e.fetching
		return set, orNoSet(set, err)
	}
	e.tried = r.now()
	e.mu.Unlock()
	// Not cancelled with the request: the result serves every request
	// for this URL, and the fetch has its own deadline.
	fctx := context.WithoutCancel(ctx)
	if !missing {
		go func() {
			defer func() { <-e.fetching }()
			r.store(fctx, e, rawURL)
		}()
		return set, nil
	}
	defer func() { <-e.fetching }()
	return r.store(fctx, e, rawURL)
}

// store fetches e's set and records the outcome; a failure keeps the
// last good set (the key server may be down for a moment).
func (r *remoteKeys) store(ctx context.Context, e *remoteSet, rawURL string) (jwk.Set, error) {
	fresh, err := r.fetch(ctx, e.client, rawURL)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.err = err
	if err != nil {
		return e.set, orNoSet(e.set, err)
	}
	e.set, e.fetched = fresh, r.now()
	return fresh, nil
}

// orNoSet is err when there is no set to use, else nil.
func orNoSet(set jwk.Set, err error) error {
	if set != nil {
		return nil
	}
	// Never nil with no set: callers use the set.
	return cmp.Or(err, errNotFetched)
}

var errNotFetched = errors.New("key set not fetched yet")

// fetch GETs one key set within the limits above.
func (r *remoteKeys) fetch(ctx context.Context, client *http.Client, rawURL string) (jwk.Set, error) {
	ctx, cancel := context.WithTimeout(ctx, r.total)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks_uri answered %s", resp.Status)
	}
	if resp.ContentLength > MaxJWKSBytes {
		return nil, fmt.Errorf("jwks_uri answer of %d bytes exceeds %d", resp.ContentLength, MaxJWKSBytes)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > MaxJWKSBytes {
		return nil, fmt.Errorf("jwks_uri answer exceeds %d bytes", MaxJWKSBytes)
	}
	set, err := jwk.Parse(body)
	if err != nil {
		return nil, err
	}
	if err := onlyPublic(set); err != nil {
		return nil, err
	}
	return set, nil
}

// httpClient is the client for one configured jwks_uri u: its own
// connections, no proxy from the environment (a proxy would be dialled
// instead of the checked address), timeouts, redirects only within u's
// origin, and addresses checked by dialPolicy.
func (r *remoteKeys) httpClient(u *url.URL) *http.Client {
	policy := dialPolicyFor(u.Hostname())
	dialer := &net.Dialer{Timeout: r.connect}
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			ips, err := r.resolve(ctx, host)
			if err != nil {
				return nil, err
			}
			var last error
			for _, ip := range ips {
				if !policy.permits(ip) {
					last = fmt.Errorf("jwks_uri host %s resolves to %s, an internal address (name the address in jwks_uri to allow it)", host, ip)
					continue
				}
				c, err := dialer.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
				if err == nil {
					return c, nil
				}
				last = err
			}
			return nil, last
		},
		TLSHandshakeTimeout:    r.connect,
		ResponseHeaderTimeout:  r.header,
		MaxResponseHeaderBytes: 64 << 10,
		MaxIdleConnsPerHost:    1,
		IdleConnTimeout:        time.Minute,
	}
	origin := u.Scheme + "://" + strings.ToLower(u.Host)
	return &http.Client{
		Transport: tr,
		Timeout:   r.total,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > maxRedirects {
				return errors.New("jwks_uri: too many redirects")
			}
			if got := req.URL.Scheme + "://" + strings.ToLower(req.URL.Host); got != origin {
				return fmt.Errorf("jwks_uri redirected to another origin (%s)", got)
			}
			return nil
		},
	}
}

func (r *remoteKeys) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip}, nil
	}
	ips, err := r.lookup(ctx, host)
	if err == nil && len(ips) == 0 {
		err = fmt.Errorf("jwks_uri host %s has no address", host)
	}
	return ips, err
}

// dialPolicy says which addresses a jwks_uri may reach: public ones,
// and an internal one (loopback, private, link-local, ...) only when the
// configured URL names it: the address itself, or localhost for
// loopback. A name that resolves inward (DNS rebinding, a planted
// record) is refused, so a client's key server cannot reach the admin
// API or the metadata service.
type dialPolicy struct {
	named     netip.Addr
	localhost bool
}

func dialPolicyFor(host string) dialPolicy {
	var p dialPolicy
	if ip, err := netip.ParseAddr(host); err == nil {
		p.named = ip.Unmap()
	}
	p.localhost = strings.EqualFold(host, "localhost")
	return p
}

func (p dialPolicy) permits(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !internal(ip) {
		return true
	}
	return ip == p.named || (p.localhost && ip.IsLoopback())
}

// nonPublic are ranges outside the public internet that net/netip has
// no predicate for (RFC 6890).
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),     // "this network": 0.x reaches the host itself
	netip.MustParsePrefix("100.64.0.0/10"), // shared address space (CGNAT)
	netip.MustParsePrefix("192.0.0.0/24"),  // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),   // reserved, and broadcast
	netip.MustParsePrefix("64:ff9b::/96"),  // NAT64: may map to any IPv4, internal included
	netip.MustParsePrefix("64:ff9b:1::/48"),
}

// internal reports whether ip is not a public unicast address.
func internal(ip netip.Addr) bool {
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() || !ip.IsValid() {
		return true
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
