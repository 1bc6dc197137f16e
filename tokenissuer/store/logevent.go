package store

import (
	"context"
	"time"
)

// LogEvent is one System Log event in the shape of Okta's LogEvent
// object (Okta System Log API reference, "LogEvent object"), as stored
// and as `GET /api/v1/logs` answers it. It never holds a token, secret,
// code or password: identifiers only.
type LogEvent struct {
	UUID                  string                `json:"uuid"`
	Published             time.Time             `json:"published"`
	EventType             string                `json:"eventType"`
	Version               string                `json:"version"`
	Severity              string                `json:"severity"`
	DisplayMessage        string                `json:"displayMessage"`
	LegacyEventType       string                `json:"legacyEventType,omitempty"`
	Actor                 *LogActor             `json:"actor"`
	Client                *LogClient            `json:"client"`
	Outcome               *LogOutcome           `json:"outcome"`
	Target                []LogTarget           `json:"target"`
	Transaction           *LogTransaction       `json:"transaction"`
	DebugContext          *LogDebugContext      `json:"debugContext"`
	AuthenticationContext *LogAuthenticationCtx `json:"authenticationContext"`
	SecurityContext       *LogSecurityContext   `json:"securityContext"`
	Request               *LogRequest           `json:"request"`
}

// LogActor is who acted: a user, a client application, the system.
type LogActor struct {
	ID          string         `json:"id"`
	Type        string         `json:"type"`
	AlternateID string         `json:"alternateId"`
	DisplayName string         `json:"displayName"`
	DetailEntry map[string]any `json:"detailEntry"`
}

// LogTarget is what an event acted on.
type LogTarget struct {
	ID          string         `json:"id"`
	Type        string         `json:"type"`
	AlternateID string         `json:"alternateId"`
	DisplayName string         `json:"displayName"`
	DetailEntry map[string]any `json:"detailEntry"`
}

// LogClient is where the request came from.
type LogClient struct {
	UserAgent           *LogUserAgent  `json:"userAgent"`
	Zone                string         `json:"zone"`
	Device              string         `json:"device"`
	ID                  *string        `json:"id"`
	IPAddress           string         `json:"ipAddress"`
	GeographicalContext map[string]any `json:"geographicalContext"`
}

// LogUserAgent is the client's User-Agent.
type LogUserAgent struct {
	RawUserAgent string `json:"rawUserAgent"`
	OS           string `json:"os"`
	Browser      string `json:"browser"`
}

// LogOutcome is the result: SUCCESS, FAILURE, SKIPPED, ALLOW, DENY,
// CHALLENGE or UNKNOWN, with a reason.
type LogOutcome struct {
	Result string  `json:"result"`
	Reason *string `json:"reason"`
}

// LogTransaction groups the events of one request.
type LogTransaction struct {
	Type   string         `json:"type"`
	ID     string         `json:"id"`
	Detail map[string]any `json:"detail"`
}

// LogDebugContext holds event-specific details (grant type, scopes,
// policy, rule, jti, ...).
type LogDebugContext struct {
	DebugData map[string]any `json:"debugData"`
}

// LogAuthenticationCtx is how the actor authenticated.
type LogAuthenticationCtx struct {
	AuthenticationProvider *string `json:"authenticationProvider"`
	CredentialProvider     *string `json:"credentialProvider"`
	CredentialType         *string `json:"credentialType"`
	Issuer                 any     `json:"issuer"`
	Interface              *string `json:"interface"`
	AuthenticationStep     int     `json:"authenticationStep"`
	ExternalSessionID      string  `json:"externalSessionId"`
}

// LogSecurityContext is Okta's network reputation data; always empty
// here, kept for the shape.
type LogSecurityContext struct {
	AsNumber *int    `json:"asNumber"`
	AsOrg    *string `json:"asOrg"`
	ISP      *string `json:"isp"`
	Domain   *string `json:"domain"`
	IsProxy  *bool   `json:"isProxy"`
}

// LogRequest is the request's IP chain.
type LogRequest struct {
	IPChain []LogIPAddress `json:"ipChain"`
}

// LogIPAddress is one hop of the IP chain.
type LogIPAddress struct {
	IP                  string         `json:"ip"`
	GeographicalContext map[string]any `json:"geographicalContext"`
	Version             string         `json:"version"`
	Source              *string        `json:"source"`
}

// LogQuery selects events: those published in [Since, Until) (zero:
// unbounded), after the cursor After (the position of the last event of
// the previous page, as LogCursor gives it; empty: from the start),
// that Match accepts (nil: all), in published order (then UUID), oldest
// first unless Descending, at most Limit (1..1000).
type LogQuery struct {
	Since, Until time.Time
	After        string
	Limit        int
	Descending   bool
	Match        func(*LogEvent) bool
}

// LogCursor is an event's position for LogQuery.After.
func LogCursor(e *LogEvent) string {
	return e.Published.UTC().Format(time.RFC3339Nano) + "/" + e.UUID
}

// EventLog is the store of System Log events. Stores that keep the log
// (embedded and PostgreSQL) implement it beside Store; every node of a
// cluster writes to and reads from the same log.
type EventLog interface {
	// AppendEvents stores events (a batch, from one node's writer).
	AppendEvents(ctx context.Context, events []LogEvent) error
	// QueryEvents answers q, and whether more events match beyond the
	// Limit returned.
	QueryEvents(ctx context.Context, q LogQuery) ([]LogEvent, bool, error)
	// PurgeEvents deletes events published before the time (retention),
	// and, for a store with a size bound, the oldest beyond it.
	PurgeEvents(ctx context.Context, before time.Time) error
}
