package authserver

import (
	"fmt"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/gatewaylog"
)

// TestGatewayRefusalsBoundedPerAddress: a client sending refused
// requests adds at most denyBurst events at once and denyRate a second
// to the System Log; the next event logged for it says how many were
// left out, and the metric counts them. Another address keeps its own
// budget, an IPv6 /64 is one address, and accepted requests are never
// held back (they are summarised: gateway_summary.go).
func TestGatewayRefusalsBoundedPerAddress(t *testing.T) {
	el := &memEventLog{}
	obs := &countingObserver{}
	e := newFlowEnvWith(t, "https://id.example.com", func(o *Options) { o.EventLog, o.Observer = el, obsWith{noObserver{}, obs} }, nil)
	deny := func(ip string) {
		e.iss.RecordGatewayDecision(gatewaylog.Decision{Time: e.clock.Now(), Status: 401, Reason: "no_token", Method: "GET", Host: "api", Path: "/", ClientIP: ip})
	}
	for range denyBurst + 50 {
		deny("198.51.100.7")
	}
	for n := range denyBurst + 50 { // one /64, many addresses
		deny(fmt.Sprintf("2001:db8:1:2::%x", n+1))
	}
	deny("203.0.113.9")
	for range 20 {
		e.iss.RecordGatewayDecision(gatewaylog.Decision{Time: e.clock.Now(), Allowed: true, Method: "GET", Host: "api", Path: "/", ClientIP: "198.51.100.7"})
	}
	e.clock.Advance(time.Second) // denyRate more for each
	deny("198.51.100.7")
	e.iss.StopEvents()

	byIP := map[string]int{}
	var allowed int
	var note, count any
	for _, ev := range ofType(el.all(), "apiaccess.gateway.request") {
		if ev.Outcome.Result == "ALLOW" {
			allowed++
			count = ev.DebugContext.DebugData["requestCount"]
			continue
		}
		key := ev.Client.IPAddress
		if len(key) > 14 && key[:14] == "2001:db8:1:2::" {
			key = "2001:db8:1:2::/64"
		}
		byIP[key]++
		if n, ok := ev.DebugContext.DebugData["suppressedDenials"]; ok {
			note = n
		}
	}
	if byIP["198.51.100.7"] != denyBurst+1 || byIP["2001:db8:1:2::/64"] != denyBurst || byIP["203.0.113.9"] != 1 || allowed != 1 || count != "20" {
		t.Fatalf("refusals logged per address %v and %d acceptance summaries (count %v); want %d, %d, 1 and one of 20", byIP, allowed, count, denyBurst+1, denyBurst)
	}
	if note != "50" {
		t.Fatalf("the refusal logged after the budget refilled notes %v left out, want 50", note)
	}
	if got := obs.suppressed.Load(); got != 100 {
		t.Fatalf("metric counts %d refusals left out, want 100", got)
	}
}

// TestDenyGuardBoundsAddresses: past denyAddrs addresses, idle ones are
// forgotten and new ones share one budget, so memory stays bounded
// however many addresses send.
func TestDenyGuardBoundsAddresses(t *testing.T) {
	g := newDenyGuard(nil)
	now := time.Unix(1_800_000_000, 0)
	for n := range denyAddrs + 500 {
		g.admit(fmt.Sprintf("10.%d.%d.%d", n>>16&255, n>>8&255, n&255), now)
	}
	if len(g.byAddr) != denyAddrs {
		t.Fatalf("%d addresses tracked, want the bound %d", len(g.byAddr), denyAddrs)
	}
	// The 500 beyond the bound shared one budget: it is spent.
	shared := 0
	for range denyBurst {
		if ok, _ := g.admit("192.0.2.200", now); ok {
			shared++
		}
	}
	if shared != 0 {
		t.Fatalf("the shared budget admitted %d more after %d addresses over the bound", shared, 500)
	}
	// Later, idle addresses are forgotten and a new one has its own.
	if ok, _ := g.admit("192.0.2.201", now.Add(2*denyIdle)); !ok || len(g.byAddr) != 1 {
		t.Fatalf("after the idle time: admitted %v, %d tracked", ok, len(g.byAddr))
	}
}

// obsWith is an Observer that also counts the System Log's losses.
type obsWith struct {
	noObserver
	*countingObserver
}
