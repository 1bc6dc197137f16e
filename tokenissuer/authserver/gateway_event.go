package authserver

import (
	"strconv"
	"strings"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/gatewaylog"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// Decisions of `require_token` handlers of the same Caddy (per route:
// rejections, all or none) are System Log events too, so that one query
// shows who called which API. Okta's catalog has no gateway event: the
// type is the project's own.
const (
	eventGatewayRequest = "apiaccess.gateway.request"
	msgGatewayRequest   = "API request decision of require_token"
	// Okta's outcome results for an access decision.
	resultAllow = "ALLOW"
	resultDeny  = "DENY"
	// targetRoute is the type of the route a decision is about.
	targetRoute = "apiaccess.Route"
)

// All gateway events together may take gatewayRate a second (burst
// gatewayBurst) and at most half of the writer's queue, so that however
// many addresses or tokens call, the issuer's own events (grants,
// lockouts, revocations) keep their place in the queue and in a bounded
// log; the rest are counted as suppressed.
const (
	gatewayRate  = 200
	gatewayBurst = 2000
)

// RecordGatewayDecision queues a gateway decision as a System Log event
// (gatewaylog.Recorder); it never blocks, and does nothing when the
// store keeps no log.
func (i *Issuer) RecordGatewayDecision(d gatewaylog.Decision) {
	if i.sink == nil {
		return
	}
	if d.Time.IsZero() {
		d.Time = i.now()
	}
	// Bounded before anything keeps them (an open summary holds them).
	d.Method, d.Host, d.Path, d.Route = echoBounded(d.Method, 32), echo(d.Host), echo(d.Path), echo(d.Route)
	d.UserAgent = echoBounded(d.UserAgent, maxUserAgent)
	d.Issuer, d.Subject, d.ClientID, d.UserID, d.JTI = echo(d.Issuer), echo(d.Subject), echo(d.ClientID), echo(d.UserID), echo(d.JTI)
	for n, sc := range d.Scopes {
		d.Scopes[n] = echo(sc)
	}
	if d.Allowed {
		if sm := i.accepted.add(d); sm != nil {
			i.queueGateway(i.summaryEvent(sm))
		}
		return
	}
	ok, suppressed := i.denials.admit(d.ClientIP, d.Time)
	if !ok {
		return
	}
	ev := i.gatewayEvent(&d)
	if suppressed > 0 {
		ev.DebugContext.DebugData["suppressedDenials"] = strconv.FormatInt(suppressed, 10)
	}
	i.queueGateway(ev)
}

// queueGateway queues a gateway event within the gateway budget.
func (i *Issuer) queueGateway(ev store.LogEvent) {
	if !i.gatewayBudget.AllowN(i.now(), 1) || !i.sink.addShared(ev) {
		i.denials.suppressed(1)
	}
}

// summaryEvent is the event of a summary of acceptances.
func (i *Issuer) summaryEvent(sm *summary) store.LogEvent {
	ev := i.gatewayEvent(&sm.first)
	ev.DebugContext.DebugData["requestCount"] = strconv.FormatInt(sm.n, 10)
	return ev
}

// dueSummaries are the events of the summaries whose window ended, for
// the writer to store at its tick (without going through its queue,
// which only it drains); within the gateway budget.
func (i *Issuer) dueSummaries() []store.LogEvent {
	return i.summaryEvents(i.accepted.flush(i.now()))
}

func (i *Issuer) summaryEvents(done []*summary) []store.LogEvent {
	out := make([]store.LogEvent, 0, len(done))
	for _, sm := range done {
		if !i.gatewayBudget.AllowN(i.now(), 1) {
			i.denials.suppressed(1)
			continue
		}
		out = append(out, i.summaryEvent(sm))
	}
	return out
}

// gatewayEvent is the LogEvent of d, whose strings RecordGatewayDecision
// bounded and made valid UTF-8; the query is never kept (it may hold a
// token).
func (i *Issuer) gatewayEvent(d *gatewaylog.Decision) store.LogEvent {
	txn := d.RequestID
	if txn == "" {
		txn = newUUID()
	}
	host := d.Host
	ev := store.LogEvent{
		UUID:           newUUID(),
		Published:      d.Time.UTC().Truncate(time.Microsecond),
		EventType:      eventGatewayRequest,
		Version:        "0",
		Severity:       "INFO",
		DisplayMessage: msgGatewayRequest,
		Outcome:        &store.LogOutcome{Result: resultAllow},
		Transaction:    &store.LogTransaction{Type: "WEB", ID: txn},
		Client:         &store.LogClient{IPAddress: d.ClientIP},
		Request:        &store.LogRequest{IPChain: []store.LogIPAddress{{IP: d.ClientIP}}},
		Actor:          gatewayActor(d),
	}
	if d.UserAgent != "" {
		ev.Client.UserAgent = &store.LogUserAgent{RawUserAgent: d.UserAgent}
	}
	debug := map[string]any{"requestUri": d.Path, "httpMethod": d.Method, "host": host}
	if !d.Allowed {
		ev.Severity = "WARN"
		reason := d.Reason
		ev.Outcome = &store.LogOutcome{Result: resultDeny, Reason: &reason}
		debug["statusCode"] = strconv.Itoa(d.Status)
	}
	route := d.Route
	if route == "" {
		route = host
	}
	ev.Target = append(ev.Target, store.LogTarget{ID: route, Type: targetRoute, AlternateID: host, DisplayName: route})
	if d.Issuer != "" {
		debug["issuer"] = d.Issuer
		if s, ok := i.ServerByIssuer(d.Issuer); ok {
			debug["authorizationServer"] = s.ID
			ev.Target = append(ev.Target, store.LogTarget{ID: s.ID, Type: "AuthorizationServer", AlternateID: s.Issuer, DisplayName: s.ID})
		}
	}
	if d.ClientID != "" {
		debug["clientId"] = d.ClientID
		ev.Target = append(ev.Target, clientTarget(i, d.ClientID))
	}
	if d.JTI != "" {
		jti := d.JTI
		debug["jti"] = jti
		ev.Target = append(ev.Target, store.LogTarget{ID: jti, Type: "access_token", AlternateID: jti, DisplayName: "Access Token"})
	}
	if d.Allowed && len(d.Scopes) > 0 {
		debug["grantedScopes"] = strings.Join(d.Scopes, " ")
	}
	ev.DebugContext = &store.LogDebugContext{DebugData: debug}
	return ev
}

// gatewayActor is who called: the user a token names, else its client,
// else (no verified token) Okta's unknown actor.
func gatewayActor(d *gatewaylog.Decision) *store.LogActor {
	switch {
	case d.UserID != "":
		alt := d.Subject
		if alt == "" {
			alt = d.UserID
		}
		return &store.LogActor{ID: d.UserID, Type: "User", AlternateID: alt, DisplayName: alt}
	case d.ClientID != "":
		return &store.LogActor{ID: d.ClientID, Type: "PublicClientApp", AlternateID: d.ClientID, DisplayName: d.ClientID}
	case d.Subject != "":
		return &store.LogActor{ID: d.Subject, Type: "User", AlternateID: d.Subject, DisplayName: d.Subject}
	}
	return &store.LogActor{ID: "unknown", Type: "User", AlternateID: "unknown", DisplayName: "Unknown"}
}
