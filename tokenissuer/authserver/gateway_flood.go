package authserver

import (
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientip"
)

// Refusals of require_token are logged by default, and anyone can send
// requests without a valid token: unchecked, one client could push the
// real events out of a bounded log (the embedded store's
// log_max_events) and cost the store a write per request. So each client
// address (an IPv6 /64 counts as one) may add denyRate refusals a second
// to the System Log, denyBurst at once; the rest are counted, and the
// next refusal logged for that address says how many were left out.
// Caddy's log and the metrics still see every refusal.
const (
	denyRate  = 10
	denyBurst = 100
	// denyAddrs bounds the addresses tracked; past it, idle ones are
	// forgotten, and new ones share one budget until some are.
	denyAddrs = 10_000
	denyIdle  = time.Minute
	// denySweep is the least time between two sweeps of a full table:
	// a sweep walks it all, and must not run per request.
	denySweep = denyIdle / 4
)

// denyGuard admits refusal events per client address.
type denyGuard struct {
	mu     sync.Mutex
	byAddr map[string]*denyBudget
	shared denyBudget
	swept  time.Time
	// lost is told of refusals left out of the log (for the metric).
	lost func(n int)
}

type denyBudget struct {
	lim        *rate.Limiter
	suppressed int64
	last       time.Time
}

func newDenyGuard(lost func(int)) *denyGuard {
	return &denyGuard{byAddr: map[string]*denyBudget{}, shared: denyBudget{lim: rate.NewLimiter(denyRate, denyBurst)}, lost: lost}
}

// admit reports whether a refusal for ip may be logged at now, and how
// many refusals for ip were left out since the last one logged.
func (g *denyGuard) admit(ip string, now time.Time) (bool, int64) {
	key := clientip.KeyOf(ip)
	g.mu.Lock()
	defer g.mu.Unlock()
	b := g.byAddr[key]
	if b == nil {
		if len(g.byAddr) >= denyAddrs && now.Sub(g.swept) >= denySweep {
			g.swept = now
			g.forgetIdle(now)
		}
		if len(g.byAddr) >= denyAddrs {
			b = &g.shared
		} else {
			b = &denyBudget{lim: rate.NewLimiter(denyRate, denyBurst)}
			g.byAddr[key] = b
		}
	}
	b.last = now
	if !b.lim.AllowN(now, 1) {
		b.suppressed++
		g.suppressed(1)
		return false, 0
	}
	n := b.suppressed
	b.suppressed = 0
	return true, n
}

// suppressed counts n gateway events left out of the log.
func (g *denyGuard) suppressed(n int) {
	if g.lost != nil {
		g.lost(n)
	}
}

// forgetIdle drops addresses not seen for denyIdle: their budget is
// full again, so forgetting them changes nothing but the count of left
// out refusals, which the metric already has.
func (g *denyGuard) forgetIdle(now time.Time) {
	for k, b := range g.byAddr {
		if now.Sub(b.last) > denyIdle {
			delete(g.byAddr, k)
		}
	}
}
