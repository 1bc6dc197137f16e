package ssftx

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/ssf"
)

// TestEntryRoundTrip: every field of an event survives the feed, and
// so does the stream a PublishTo entry is for.
func TestEntryRoundTrip(t *testing.T) {
	at := time.Unix(1_750_000_000, 123).UTC()
	for _, ev := range []ssf.Event{
		{Txn: "t1", IssuedAt: at, Time: at, InitiatingEntity: ssf.InitiatedByAdmin, ReasonAdmin: map[string]string{"en": "lost"},
			Subject: ssf.Subject{Kind: ssf.SubjectToken, Issuer: testIss, JTI: "j", Expiry: at.Add(time.Hour)}},
		{Type: ssf.EventSessionRevoked, Txn: "t2", IssuedAt: at, Time: at,
			Subject: ssf.Subject{Kind: ssf.SubjectUser, Issuer: testIss, Sub: "alice@example.com", UID: "00u1", ClientID: "c1"}},
		{Txn: "t3", IssuedAt: at, Time: at, Subject: ssf.Subject{Kind: ssf.SubjectClient, ClientID: "c1"}},
		{Type: ssf.EventVerification, Txn: "t4", IssuedAt: at, State: "s", Subject: ssf.Subject{Kind: ssf.SubjectStream, StreamID: "s1"}},
		{Type: ssf.EventStreamUpdated, Txn: "t5", IssuedAt: at, Status: "paused", Reason: "r", Subject: ssf.Subject{Kind: ssf.SubjectStream, StreamID: "s1"}},
	} {
		for _, only := range []string{"", "s1"} {
			data, err := encodeEntry(ev, only)
			if err != nil {
				t.Fatal(err)
			}
			it, err := decodeEntry(7, data, at)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(it.ev, ev) || it.only != only || it.seq != 7 {
				t.Errorf("round trip of %+v for %q:\n got %+v for %q", ev, only, it.ev, it.only)
			}
		}
	}
	if _, err := encodeEntry(ssf.Event{Subject: ssf.Subject{Kind: 99}}, ""); !errors.Is(err, ssf.ErrSubject) {
		t.Errorf("unknown subject kind: %v", err)
	}
	for _, bad := range []string{``, `{`, `{"subject":{"kind":"galaxy"}}`, `[]`} {
		if _, err := decodeEntry(1, []byte(bad), at); err == nil {
			t.Errorf("entry %q decoded", bad)
		}
	}
}
