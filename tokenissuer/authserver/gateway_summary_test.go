package authserver

import (
	"fmt"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/gatewaylog"
)

// TestGatewayAcceptancesSummarised: acceptances of one token, address,
// route and method within a second are one event counting them, with
// the first request's id and path; another token, address or route, or
// a later second, is another event; summaries still open when the
// writer stops are logged, none is lost.
func TestGatewayAcceptancesSummarised(t *testing.T) {
	el := &memEventLog{}
	e := newFlowEnvWith(t, "https://id.example.com", func(o *Options) { o.EventLog = el }, nil)
	t0 := e.clock.Now()
	ok := func(at time.Duration, route, jti, ip, path, id string) {
		e.iss.RecordGatewayDecision(gatewaylog.Decision{Time: t0.Add(at), Allowed: true, Route: route, Method: "GET", Host: "api",
			Path: path, ClientIP: ip, RequestID: id, Issuer: "https://id.example.com/oauth2/default", ClientID: "svc", Subject: "svc", JTI: jti})
	}
	for n := range 50 {
		ok(time.Duration(n)*10*time.Millisecond, "orders", "AT.1", "192.0.2.1", fmt.Sprintf("/orders/%d", n), fmt.Sprint("req-", n))
	}
	ok(100*time.Millisecond, "orders", "AT.2", "192.0.2.1", "/orders/x", "other-token")
	ok(100*time.Millisecond, "orders", "AT.1", "192.0.2.2", "/orders/x", "other-address")
	ok(100*time.Millisecond, "billing", "AT.1", "192.0.2.1", "/billing", "other-route")
	ok(1200*time.Millisecond, "orders", "AT.1", "192.0.2.1", "/orders/late", "next-second")
	ok(1300*time.Millisecond, "orders", "AT.1", "192.0.2.1", "/orders/later", "next-second-2")
	e.iss.StopEvents()

	got := map[string]string{} // first request id -> count
	var total int
	for _, ev := range ofType(el.all(), "apiaccess.gateway.request") {
		n, _ := ev.DebugContext.DebugData["requestCount"].(string)
		got[ev.Transaction.ID] = n
		var c int
		fmt.Sscan(n, &c)
		total += c
		if ev.Transaction.ID == "req-0" && (ev.DebugContext.DebugData["requestUri"] != "/orders/0" || !ev.Published.Equal(t0.UTC().Truncate(time.Microsecond))) {
			t.Errorf("the summary does not carry its first request: %v at %v", ev.DebugContext.DebugData, ev.Published)
		}
	}
	want := map[string]string{"req-0": "50", "other-token": "1", "other-address": "1", "other-route": "1", "next-second": "2"}
	if fmt.Sprint(got) != fmt.Sprint(want) || total != 55 {
		t.Fatalf("summaries %v (%d requests), want %v (55)", got, total, want)
	}
}

// TestGatewaySummariesBounded: past summaryKeys open summaries, an
// acceptance is logged at once rather than held, so memory is bounded
// however many tokens call.
func TestGatewaySummariesBounded(t *testing.T) {
	var emitted int
	s := newSummaries(func(*gatewaylog.Decision, int64) { emitted++ })
	now := time.Unix(1_800_000_000, 0)
	for n := range summaryKeys + 10 {
		s.add(gatewaylog.Decision{Time: now, Allowed: true, JTI: fmt.Sprint("AT.", n)})
	}
	if len(s.open) != summaryKeys || emitted != 10 {
		t.Fatalf("%d open, %d logged at once; want %d and 10", len(s.open), emitted, summaryKeys)
	}
	s.flush(now.Add(summaryWindow))
	if len(s.open) != 0 || emitted != summaryKeys+10 {
		t.Fatalf("after the window: %d open, %d logged", len(s.open), emitted)
	}
}
