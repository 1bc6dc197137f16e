// Package gatewaylog is how `require_token` hands its decisions to the
// System Log of a `token_issuer` app in the same Caddy, so that one
// `GET /api/v1/logs` query shows who called which API. The gateway does
// not import the issuer: the app offers Recorder, and any app that does
// will receive the decisions.
package gatewaylog

import "time"

// Decision is one `require_token` decision about one request. It never
// holds the token: identifiers of a verified token only.
type Decision struct {
	// Time of the decision.
	Time time.Time
	// Allowed: the request went on to the next handler.
	Allowed bool
	// Status of a refusal (401, 403, 503); 0 when allowed.
	Status int
	// Reason of a refusal, require_token's stable word (e.g. `expired`,
	// `insufficient_scope`); "" when allowed.
	Reason string
	// Route is the route's name (`route_name`), "" when none is set.
	Route string
	// Method, Host and Path of the request; Path without the query,
	// which may carry a token (`token_query`).
	Method, Host, Path string
	// ClientIP is Caddy's client IP (honouring `trusted_proxies`);
	// UserAgent the request's, as sent.
	ClientIP, UserAgent string
	// RequestID is Caddy's `{http.request.uuid}`, so the event matches
	// the access log line.
	RequestID string
	// Of a token whose signature and issuer were verified only: a token
	// that failed those checks tells nothing trustworthy about who sent
	// it. Subject is `sub`, ClientID `cid` (or `client_id`), UserID
	// `uid`, JTI `jti`, Scopes the granted scopes.
	Issuer, Subject, ClientID, UserID, JTI string
	Scopes                                 []string
}

// Recorder keeps decisions. RecordGatewayDecision must not block the
// request: it queues the decision or drops it (and counts the drop).
type Recorder interface {
	RecordGatewayDecision(Decision)
}
