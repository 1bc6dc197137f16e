package ssftx

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/ssf"
)

// entryJSON is a feed entry's Data: the fields of ssf.Event (not its
// ID, which is per stream) and, for PublishTo, the one stream it is
// for. Field names are fixed here, apart from the Go names, as the
// entries outlive a program version.
type entryJSON struct {
	Only             string            `json:"only,omitempty"`
	Type             string            `json:"type,omitempty"`
	Txn              string            `json:"txn"`
	IssuedAt         time.Time         `json:"iat"`
	Time             time.Time         `json:"time,omitzero"`
	Subject          subjectJSON       `json:"subject"`
	InitiatingEntity string            `json:"initiating_entity,omitempty"`
	ReasonAdmin      map[string]string `json:"reason_admin,omitempty"`
	State            string            `json:"state,omitempty"`
	Status           string            `json:"status,omitempty"`
	Reason           string            `json:"reason,omitempty"`
}

type subjectJSON struct {
	Kind     string    `json:"kind"`
	Issuer   string    `json:"iss,omitempty"`
	JTI      string    `json:"jti,omitempty"`
	Expiry   time.Time `json:"exp,omitzero"`
	Sub      string    `json:"sub,omitempty"`
	UID      string    `json:"uid,omitempty"`
	ClientID string    `json:"cid,omitempty"`
	StreamID string    `json:"stream,omitempty"`
}

var kindNames = map[ssf.SubjectKind]string{
	ssf.SubjectToken: "token", ssf.SubjectUser: "user", ssf.SubjectClient: "client", ssf.SubjectStream: "stream",
}

// item is a decoded feed entry.
type item struct {
	seq   uint64
	ev    ssf.Event
	only  string
	until time.Time
}

func (it *item) eligible(streamID string) bool { return it.only == "" || it.only == streamID }

func encodeEntry(ev ssf.Event, only string) ([]byte, error) {
	kind, ok := kindNames[ev.Subject.Kind]
	if !ok {
		return nil, ssf.ErrSubject
	}
	s := ev.Subject
	return json.Marshal(entryJSON{
		Only: only, Type: ev.Type, Txn: ev.Txn, IssuedAt: ev.IssuedAt, Time: ev.Time,
		Subject: subjectJSON{Kind: kind, Issuer: s.Issuer, JTI: s.JTI, Expiry: s.Expiry,
			Sub: s.Sub, UID: s.UID, ClientID: s.ClientID, StreamID: s.StreamID},
		InitiatingEntity: ev.InitiatingEntity, ReasonAdmin: ev.ReasonAdmin,
		State: ev.State, Status: ev.Status, Reason: ev.Reason,
	})
}

func decodeEntry(seq uint64, data []byte, until time.Time) (item, error) {
	var e entryJSON
	if err := json.Unmarshal(data, &e); err != nil {
		return item{}, fmt.Errorf("ssftx: decoding feed entry %d: %s", seq, jsonProblem(err))
	}
	var kind ssf.SubjectKind
	for k, name := range kindNames {
		if name == e.Subject.Kind {
			kind = k
		}
	}
	if kind == 0 {
		return item{}, fmt.Errorf("ssftx: feed entry %d: unknown subject kind", seq)
	}
	s := e.Subject
	ev := ssf.Event{
		Type: e.Type, Txn: e.Txn, IssuedAt: e.IssuedAt, Time: e.Time,
		Subject: ssf.Subject{Kind: kind, Issuer: s.Issuer, JTI: s.JTI, Expiry: s.Expiry,
			Sub: s.Sub, UID: s.UID, ClientID: s.ClientID, StreamID: s.StreamID},
		InitiatingEntity: e.InitiatingEntity, ReasonAdmin: e.ReasonAdmin,
		State: e.State, Status: e.Status, Reason: e.Reason,
	}
	return item{seq: seq, ev: ev, only: e.Only, until: until}, nil
}

// jsonProblem describes a decoding error without quoting the data
// (json's messages may carry a character or a value of it).
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q has the wrong type", typ.Field) // our schema's name
	default:
		return "invalid JSON"
	}
}
