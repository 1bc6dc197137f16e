package clientauth

import (
	"net/http"
	"sync"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
)

// Throttle settings. A bcrypt secret check costs up to ~0.8 s of CPU
// and needs no authentication, so failures are counted and further
// attempts refused without a hash check (OWASP ASVS 2.2.1):
//
//   - per client id, for bcrypt checks only: at most ClientFailures
//     failed or running bcrypt checks per client per window, so
//     attackers spread over many addresses still cannot spend more than
//     that on one client. A secret already verified since the start
//     costs one HMAC and is always accepted, so a client under attack
//     keeps working with its real secret;
//   - per client address (clientip.Key: Caddy's client_ip, IPv6 by /64), for every
//     credential check: after AddressFailures failures the address is
//     refused outright, verified secrets included, so it gets no more
//     guesses of any kind.
const (
	DefaultClientFailures  = 10
	DefaultAddressFailures = 20
	DefaultThrottleWindow  = 5 * time.Minute
	// DefaultTrackedAddresses caps the address counters; a full table
	// keeps the entries it has (a throttled address stays throttled)
	// and tracks no new ones until entries expire, so random addresses
	// cannot grow memory. The per-client bound still holds then.
	DefaultTrackedAddresses = 10000
)

// ErrThrottled answers an attempt refused by the throttle: 429 with
// Retry-After, in RFC 6749 section 5.2 form (Okta answers rate limits
// with 429 too, error E0000047 "API call exceeded rate limit due to too
// many requests."). temporarily_unavailable rather than invalid_client:
// the credentials were not checked, and the client should retry later.
var ErrThrottled = &oauth.Error{Code: "temporarily_unavailable", Status: http.StatusTooManyRequests,
	Description: "API call exceeded rate limit due to too many requests."}

// failures counts failures per key in fixed windows, with a cap on keys.
type failures struct {
	limit  int
	window time.Duration
	max    int // most keys tracked; 0: unbounded (keys known in advance)
	now    func() time.Time

	mu sync.Mutex
	m  map[string]*failCount
}

type failCount struct {
	start   time.Time
	fails   int
	running int // checks admitted by begin and not yet ended
}

func newFailures(limit int, window time.Duration, maxKeys int, now func() time.Time) *failures {
	return &failures{limit: limit, window: window, max: maxKeys, now: now, m: map[string]*failCount{}}
}

// get returns key's live counter, creating it when create is set and
// the table has room; nil otherwise. Callers hold mu.
func (f *failures) get(key string, create bool) *failCount {
	now := f.now()
	e := f.m[key]
	if e != nil && e.running == 0 && now.Sub(e.start) >= f.window {
		delete(f.m, key)
		e = nil
	}
	if e != nil || !create {
		return e
	}
	if f.max > 0 && len(f.m) >= f.max {
		for k, v := range f.m {
			if v.running == 0 && now.Sub(v.start) >= f.window {
				delete(f.m, k)
			}
		}
		if len(f.m) >= f.max {
			return nil
		}
	}
	e = &failCount{start: now}
	f.m[key] = e
	return e
}

// blocked reports whether key has reached its failure limit, and for
// how long (checks that need no begin: running ones do not count).
func (f *failures) blocked(key string) (bool, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.get(key, false)
	if e == nil || e.fails < f.limit {
		return false, 0
	}
	return true, f.retry(e)
}

func (f *failures) retry(e *failCount) time.Duration {
	return max(e.start.Add(f.window).Sub(f.now()), time.Second)
}

// begin admits one check for key unless failures and running checks
// have reached the limit, so concurrent attempts cannot overshoot it.
func (f *failures) begin(key string) (bool, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.get(key, true)
	if e == nil {
		return true, 0
	}
	if e.fails+e.running >= f.limit {
		return false, f.retry(e)
	}
	e.running++
	return true, 0
}

// beginClean admits one check for key only while key has no failure
// and no check running; end(key, false) finishes it.
func (f *failures) beginClean(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.get(key, true)
	if e == nil || e.fails > 0 || e.running > 0 {
		return false
	}
	e.running++
	return true
}

// end finishes a check admitted by begin.
func (f *failures) end(key string, failed bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.m[key]; e != nil {
		e.running--
		if failed {
			e.fails++
		}
	}
}

// fail records a failure of a check that needed no begin.
func (f *failures) fail(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.get(key, true); e != nil {
		e.fails++
	}
}

func (f *failures) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.m)
}
