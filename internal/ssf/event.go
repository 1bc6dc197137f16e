package ssf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// Event types.
const (
	// EventSessionRevoked is CAEP 1.0 section 3.1 session-revoked: every
	// revocation the feed publishes.
	EventSessionRevoked = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
	// EventVerification is SSF 8.1.4.1.
	EventVerification = "https://schemas.openid.net/secevent/ssf/event-type/verification"
	// EventStreamUpdated is SSF 8.1.5.
	EventStreamUpdated = "https://schemas.openid.net/secevent/ssf/event-type/stream-updated"
)

// ClaimTokenExp is the event member carrying a revoked token's exp, the
// project's one extension (see doc.go).
const ClaimTokenExp = "urn:apiaccess:ssf:token_exp"

// MaxTokenLifetime is the longest access token lifetime an issuer of the
// project allows (Okta's upper bound, a day): how long a user or client
// cut-off, or a jti without a known exp, can matter.
const MaxTokenLifetime = 24 * time.Hour

// Initiating entities (CAEP 1.0 section 2).
const (
	InitiatedByAdmin  = "admin"
	InitiatedByUser   = "user"
	InitiatedByPolicy = "policy"
	InitiatedBySystem = "system"
)

// Event is one security event, as the issuer publishes it and a receiver
// reads it back from a SET.
type Event struct {
	// Type is the event type URI; empty means EventSessionRevoked.
	Type string
	// ID is the SET's jti, unique per SET (a Queue sets one per stream).
	ID string
	// Txn identifies the underlying revocation across SETs (SSF 4.1.9).
	Txn string
	// IssuedAt is the SET's iat.
	IssuedAt time.Time
	Subject  Subject
	// Time is event_timestamp, whole seconds: when the revocation
	// happened, and for users and clients the cut-off (doc.go).
	Time time.Time
	// InitiatingEntity is one of the InitiatedBy values, or empty.
	InitiatingEntity string
	// ReasonAdmin is CAEP's reason_admin: language tag to message.
	ReasonAdmin map[string]string
	// State is the verification event's state (SSF 8.1.4.1).
	State string
	// Status and Reason are the stream-updated event's (SSF 8.1.5).
	Status string
	Reason string
}

func (ev Event) eventType() string {
	if ev.Type == "" {
		return EventSessionRevoked
	}
	return ev.Type
}

// RelevantUntil is when the event stops mattering to any receiver: a
// revoked token's exp (or Time plus MaxTokenLifetime when unknown), a
// cut-off plus MaxTokenLifetime. A transmitter retains the event that
// long; verification and stream-updated events an hour after Time (or
// IssuedAt).
func (ev Event) RelevantUntil() time.Time {
	if ev.eventType() != EventSessionRevoked {
		if ev.Time.IsZero() {
			return ev.IssuedAt.Add(time.Hour)
		}
		return ev.Time.Add(time.Hour)
	}
	if ev.Subject.Kind == SubjectToken && !ev.Subject.Expiry.IsZero() {
		return ev.Subject.Expiry
	}
	return ev.Time.Add(MaxTokenLifetime)
}

// setClaims is a SET's claims (RFC 8417 section 2.2, SSF 4.1).
type setClaims struct {
	Iss    string                     `json:"iss"`
	Iat    json.Number                `json:"iat"`
	JTI    string                     `json:"jti"`
	Aud    Audience                   `json:"aud"`
	Txn    string                     `json:"txn,omitempty"`
	SubID  *SubjectID                 `json:"sub_id"`
	Events map[string]json.RawMessage `json:"events"`
	// Never in a SET (SSF 4.1.2, 4.1.7): present means another JWT.
	Sub json.RawMessage `json:"sub,omitempty"`
	Exp json.RawMessage `json:"exp,omitempty"`
	Nbf json.RawMessage `json:"nbf,omitempty"`
}

// eventBody is the event object of the events claim.
type eventBody struct {
	EventTimestamp   *json.Number      `json:"event_timestamp,omitempty"`
	InitiatingEntity string            `json:"initiating_entity,omitempty"`
	ReasonAdmin      map[string]string `json:"reason_admin,omitempty"`
	TokenExp         *json.Number      `json:"urn:apiaccess:ssf:token_exp,omitempty"`
	State            string            `json:"state,omitempty"`
	Status           string            `json:"status,omitempty"`
	Reason           string            `json:"reason,omitempty"`
}

// Audience is aud: one string or an array (RFC 7519 section 4.1.3).
type Audience []string

func (a Audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

func (a *Audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = Audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*a = many
	return nil
}

func numeric(t time.Time) *json.Number {
	n := json.Number(fmt.Sprint(t.Unix()))
	return &n
}

// numericDate reads a NumericDate (RFC 7519 section 2), fractions
// truncated.
func numericDate(n json.Number) (time.Time, error) {
	f, err := n.Float64()
	if err != nil || f < 0 || f > math.MaxInt32*4 || math.IsNaN(f) {
		return time.Time{}, errors.New("ssf: bad NumericDate")
	}
	return time.Unix(int64(f), 0), nil
}

// ErrEvent is returned for an event this package cannot write or does not
// understand.
var ErrEvent = errors.New("ssf: unsupported event")

// claims builds ev's SET claims.
func (ev Event) claims(iss string, aud []string) (setClaims, error) {
	if ev.ID == "" || iss == "" || len(aud) == 0 || ev.IssuedAt.IsZero() {
		return setClaims{}, fmt.Errorf("%w: jti, iss, aud and iat are required", ErrEvent)
	}
	sid, err := ev.Subject.subjectID()
	if err != nil {
		return setClaims{}, err
	}
	var body eventBody
	switch ev.eventType() {
	case EventSessionRevoked:
		if ev.Subject.Kind == SubjectStream {
			return setClaims{}, ErrSubject
		}
		if ev.Time.IsZero() {
			return setClaims{}, fmt.Errorf("%w: session-revoked needs its event_timestamp", ErrEvent)
		}
		body.EventTimestamp = numeric(ev.Time)
		body.InitiatingEntity = ev.InitiatingEntity
		body.ReasonAdmin = ev.ReasonAdmin
		if ev.Subject.Kind == SubjectToken && !ev.Subject.Expiry.IsZero() {
			body.TokenExp = numeric(ev.Subject.Expiry)
		}
	case EventVerification:
		if ev.Subject.Kind != SubjectStream {
			return setClaims{}, ErrSubject
		}
		body.State = ev.State
	case EventStreamUpdated:
		if ev.Subject.Kind != SubjectStream || ev.Status == "" {
			return setClaims{}, ErrEvent
		}
		body.Status, body.Reason = ev.Status, ev.Reason
	default:
		return setClaims{}, ErrEvent
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return setClaims{}, err
	}
	return setClaims{
		Iss: iss, Iat: *numeric(ev.IssuedAt), JTI: ev.ID, Aud: aud, Txn: ev.Txn,
		SubID: &sid, Events: map[string]json.RawMessage{ev.eventType(): raw},
	}, nil
}

// event reads an Event back from verified SET claims.
func (c setClaims) event() (Event, error) {
	if c.JTI == "" || c.SubID == nil {
		return Event{}, fmt.Errorf("%w: jti and sub_id are required", ErrEvent)
	}
	if c.Sub != nil || c.Exp != nil || c.Nbf != nil {
		return Event{}, fmt.Errorf("%w: sub, exp or nbf: not a SET", ErrEvent)
	}
	iat, err := numericDate(c.Iat)
	if err != nil {
		return Event{}, err
	}
	// SSF 4.2.1: one event, or alternative URIs of one type; we know one
	// URI per type, so exactly one.
	if len(c.Events) != 1 {
		return Event{}, fmt.Errorf("%w: %d events in one SET", ErrEvent, len(c.Events))
	}
	ev := Event{ID: c.JTI, Txn: c.Txn, IssuedAt: iat}
	var raw json.RawMessage
	for ev.Type, raw = range c.Events {
	}
	var body eventBody
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil {
		return Event{}, fmt.Errorf("%w: event object: %v", ErrEvent, err)
	}
	stream := ev.Type == EventVerification || ev.Type == EventStreamUpdated
	if ev.Subject, err = subjectFrom(*c.SubID, stream); err != nil {
		return Event{}, err
	}
	switch ev.Type {
	case EventSessionRevoked:
		if ev.Subject.Kind == SubjectStream {
			return Event{}, ErrSubject
		}
		if body.EventTimestamp == nil {
			return Event{}, fmt.Errorf("%w: session-revoked without event_timestamp", ErrEvent)
		}
		if ev.Time, err = numericDate(*body.EventTimestamp); err != nil {
			return Event{}, err
		}
		ev.InitiatingEntity, ev.ReasonAdmin = body.InitiatingEntity, body.ReasonAdmin
		if body.TokenExp != nil && ev.Subject.Kind == SubjectToken {
			if ev.Subject.Expiry, err = numericDate(*body.TokenExp); err != nil {
				return Event{}, err
			}
		}
	case EventVerification:
		ev.State = body.State
	case EventStreamUpdated:
		if body.Status == "" {
			return Event{}, fmt.Errorf("%w: stream-updated without status", ErrEvent)
		}
		ev.Status, ev.Reason = body.Status, body.Reason
	default:
		return Event{}, fmt.Errorf("%w: event type %q", ErrEvent, ev.Type)
	}
	return ev, nil
}
