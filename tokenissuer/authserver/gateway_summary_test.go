package authserver

import (
	"fmt"
	"net/url"
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
// acceptance is returned to be logged at once rather than held, so
// memory is bounded however many tokens call; made-up methods are one
// key; after close every acceptance is returned at once.
func TestGatewaySummariesBounded(t *testing.T) {
	s := newSummaries()
	now := time.Unix(1_800_000_000, 0)
	var now1 int
	for n := range summaryKeys + 10 {
		if s.add(gatewaylog.Decision{Time: now, Allowed: true, Method: "GET", JTI: fmt.Sprint("AT.", n)}) != nil {
			now1++
		}
	}
	if len(s.open) != summaryKeys || now1 != 10 {
		t.Fatalf("%d open, %d to log at once; want %d and 10", len(s.open), now1, summaryKeys)
	}
	if got := s.flush(now.Add(summaryWindow)); len(got) != summaryKeys || len(s.open) != 0 {
		t.Fatalf("after the window: %d flushed, %d open", len(got), len(s.open))
	}
	for n := range 100 {
		if s.add(gatewaylog.Decision{Time: now, Allowed: true, Method: fmt.Sprint("M", n), JTI: "AT.x"}) != nil {
			t.Fatal("a made-up method opened a summary of its own")
		}
	}
	if len(s.open) != 1 {
		t.Fatalf("%d summaries for one token and made-up methods, want 1", len(s.open))
	}
	if got := s.close(); len(got) != 1 || got[0].n != 100 {
		t.Fatalf("close returned %v", got)
	}
	if s.add(gatewaylog.Decision{Time: now, Allowed: true, JTI: "AT.late"}) == nil {
		t.Fatal("an acceptance after close was kept where nothing flushes it")
	}
}

// TestGatewayEventsBudget: however many addresses send refusals, the
// gateway's events together stay within gatewayBurst at once; the rest
// are counted, and the issuer's own events still find room.
func TestGatewayEventsBudget(t *testing.T) {
	el := &memEventLog{}
	obs := &countingObserver{}
	e := newFlowEnvWith(t, "https://id.example.com", func(o *Options) { o.EventLog, o.Observer = el, obsWith{noObserver{}, obs} }, nil)
	const n = gatewayBurst + 1000
	for k := range n {
		e.iss.RecordGatewayDecision(gatewaylog.Decision{Time: e.clock.Now(), Status: 401, Reason: "no_token", Method: "GET", Host: "api", Path: "/",
			ClientIP: fmt.Sprintf("10.%d.%d.%d", k>>16&255, k>>8&255, k&255)})
	}
	if status, tok := e.post(tokenEP, "svc", url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}}); status != 200 {
		t.Fatalf("client_credentials: %d %v", status, tok)
	}
	e.iss.StopEvents()
	evs := el.all()
	gw := len(ofType(evs, "apiaccess.gateway.request"))
	if gw > gatewayBurst || gw < gatewayBurst/2 || int64(n-gw) != obs.suppressed.Load()+obs.dropped.Load() {
		t.Fatalf("%d gateway events stored of %d, %d suppressed, %d dropped; want at most %d, the rest counted", gw, n, obs.suppressed.Load(), obs.dropped.Load(), gatewayBurst)
	}
	if len(ofType(evs, "app.oauth2.as.token.grant.access_token")) != 1 {
		t.Fatal("the issuer's own grant event was lost among the gateway's")
	}
}
