package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
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
// first unless Descending, at most Limit (1..MaxLogLimit). With
// Descending, "after" the cursor means older than it: the next page in
// the same order. Check says whether a query is well formed.
type LogQuery struct {
	Since, Until time.Time
	After        string
	Limit        int
	Descending   bool
	Match        func(*LogEvent) bool
}

// MaxLogLimit is the most events one query returns (Okta System Log
// API: `limit` up to 1000).
const MaxLogLimit = 1000

// DefaultLogRetention is how long stores keep events unless configured
// otherwise: Okta keeps the System Log for 90 days.
const DefaultLogRetention = 90 * 24 * time.Hour

// ErrInvalidLogQuery is returned (wrapped) for a LogQuery that Check
// refuses: a bad cursor or a Limit out of range.
var ErrInvalidLogQuery = errors.New("store: invalid log query")

// Check reports a query stores refuse: Limit outside 1..MaxLogLimit,
// or an After that is not a LogCursor.
func (q LogQuery) Check() error {
	if q.Limit < 1 || q.Limit > MaxLogLimit {
		return fmt.Errorf("%w: limit %d is not in 1..%d", ErrInvalidLogQuery, q.Limit, MaxLogLimit)
	}
	if q.After != "" {
		if _, _, err := ParseLogCursor(q.After); err != nil {
			return err
		}
	}
	return nil
}

// ErrNoEventLog is answered by an EventLog stand-in whose storage keeps
// no System Log, so that a reader can tell "no log" from "no events".
var ErrNoEventLog = errors.New("store: the storage keeps no System Log")

// LogCursor is an event's position for LogQuery.After.
func LogCursor(e *LogEvent) string {
	return e.Published.UTC().Format(time.RFC3339Nano) + "/" + e.UUID
}

// ParseLogCursor reads a LogCursor back: the event's published time
// and UUID. An error wraps ErrInvalidLogQuery.
func ParseLogCursor(c string) (time.Time, string, error) {
	ts, id, ok := strings.Cut(c, "/")
	if ok && id != "" {
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			return t.UTC(), id, nil
		}
	}
	return time.Time{}, "", fmt.Errorf("%w: malformed cursor", ErrInvalidLogQuery)
}

// EventLog is the store of System Log events. Stores that keep the log
// (embedded and PostgreSQL) implement it beside Store; every node of a
// cluster writes to and reads from the same log. Published times are
// kept to the microsecond (PostgreSQL's precision) and read back in
// UTC; an event needs a UUID and a published time.
type EventLog interface {
	// AppendEvents stores events (a batch, from one node's writer). An
	// event with the (published, UUID) of a stored one replaces it.
	AppendEvents(ctx context.Context, events []LogEvent) error
	// QueryEvents answers q, and whether more events match beyond the
	// Limit returned. A query Check refuses is an error wrapping
	// ErrInvalidLogQuery.
	QueryEvents(ctx context.Context, q LogQuery) ([]LogEvent, bool, error)
	// PurgeEvents deletes events published before the time (retention),
	// and, for a store with a size bound, the oldest beyond it.
	PurgeEvents(ctx context.Context, before time.Time) error
}

// CheckLogEvent reports an event stores refuse to append: a UUID that
// is empty, longer than 128 bytes, not UTF-8 or holding a NUL (which
// PostgreSQL text refuses), or a published time outside years
// 1678..2261 (what Unix nanoseconds can hold; zero is outside).
func CheckLogEvent(e *LogEvent) error {
	if e.UUID == "" || len(e.UUID) > 128 || !utf8.ValidString(e.UUID) || strings.IndexByte(e.UUID, 0) >= 0 {
		return fmt.Errorf("store: log event uuid %q: want 1-128 bytes of UTF-8 without NUL", e.UUID)
	}
	if y := e.Published.Year(); y < 1678 || y > 2261 {
		return fmt.Errorf("store: log event %s: published time %s out of range", e.UUID, e.Published)
	}
	return nil
}
