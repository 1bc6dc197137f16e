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
	if d.Allowed {
		i.accepted.add(d)
		return
	}
	ok, suppressed := i.denials.admit(d.ClientIP, d.Time)
	if !ok {
		return
	}
	ev := i.gatewayEvent(&d)
	if suppressed > 0 {
		ev.DebugContext.DebugData["suppressedDenials"] = suppressedNote(suppressed)
	}
	i.sink.add(ev)
}

// logAccepted logs a summary of n acceptances (gateway_summary.go).
func (i *Issuer) logAccepted(d *gatewaylog.Decision, n int64) {
	ev := i.gatewayEvent(d)
	ev.DebugContext.DebugData["requestCount"] = countNote(n)
	i.sink.add(ev)
}

// gatewayEvent is the LogEvent of d. Every string from the request is
// bounded and made valid UTF-8; the query is never kept (it may hold a
// token).
func (i *Issuer) gatewayEvent(d *gatewaylog.Decision) store.LogEvent {
	txn := d.RequestID
	if txn == "" {
		txn = newUUID()
	}
	host := echo(d.Host)
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
		ev.Client.UserAgent = &store.LogUserAgent{RawUserAgent: echoBounded(d.UserAgent, maxUserAgent)}
	}
	debug := map[string]any{"requestUri": echo(d.Path), "httpMethod": echo(d.Method), "host": host}
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
		debug["clientId"] = echo(d.ClientID)
		ev.Target = append(ev.Target, clientTarget(i, d.ClientID))
	}
	if d.JTI != "" {
		jti := echo(d.JTI)
		debug["jti"] = jti
		ev.Target = append(ev.Target, store.LogTarget{ID: jti, Type: "access_token", AlternateID: jti, DisplayName: "Access Token"})
	}
	if d.Allowed && len(d.Scopes) > 0 {
		debug["grantedScopes"] = echo(strings.Join(d.Scopes, " "))
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
		return &store.LogActor{ID: echo(d.UserID), Type: "User", AlternateID: echo(alt), DisplayName: echo(alt)}
	case d.ClientID != "":
		return &store.LogActor{ID: echo(d.ClientID), Type: "PublicClientApp", AlternateID: echo(d.ClientID), DisplayName: echo(d.ClientID)}
	case d.Subject != "":
		return &store.LogActor{ID: echo(d.Subject), Type: "User", AlternateID: echo(d.Subject), DisplayName: echo(d.Subject)}
	}
	return &store.LogActor{ID: "unknown", Type: "User", AlternateID: "unknown", DisplayName: "Unknown"}
}
