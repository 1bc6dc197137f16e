package store

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestLogCursorRoundTrip(t *testing.T) {
	at := time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.FixedZone("X", 7200))
	e := &LogEvent{UUID: "a/b", Published: at}
	c := LogCursor(e)
	pt, id, err := ParseLogCursor(c)
	if err != nil || !pt.Equal(at) || pt.Location() != time.UTC || id != "a/b" {
		t.Fatalf("ParseLogCursor(%q) = %v, %q, %v", c, pt, id, err)
	}
	for _, bad := range []string{"", "/", "x/y", "2024-05-06T07:08:09Z", "2024-05-06T07:08:09Z/", "2024-05-06 07:08:09/x"} {
		if _, _, err := ParseLogCursor(bad); !errors.Is(err, ErrInvalidLogQuery) {
			t.Errorf("ParseLogCursor(%q) = %v, want ErrInvalidLogQuery", bad, err)
		}
	}
}

func TestLogQueryCheck(t *testing.T) {
	ok := []LogQuery{{Limit: 1}, {Limit: MaxLogLimit}, {Limit: 5, After: "2024-05-06T07:08:09Z/x"}}
	for _, q := range ok {
		if err := q.Check(); err != nil {
			t.Errorf("%+v: %v", q, err)
		}
	}
	bad := []LogQuery{{}, {Limit: -1}, {Limit: MaxLogLimit + 1}, {Limit: 5, After: "x"}}
	for _, q := range bad {
		if err := q.Check(); !errors.Is(err, ErrInvalidLogQuery) {
			t.Errorf("%+v: %v, want ErrInvalidLogQuery", q, err)
		}
	}
}

func TestCheckLogEvent(t *testing.T) {
	now := time.Now()
	if err := CheckLogEvent(&LogEvent{UUID: "u", Published: now}); err != nil {
		t.Fatal(err)
	}
	for _, e := range []LogEvent{
		{Published: now},
		{UUID: strings.Repeat("u", 129), Published: now},
		{UUID: "a\x00b", Published: now},
		{UUID: "\xff", Published: now},
		{UUID: "u"},
		{UUID: "u", Published: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if CheckLogEvent(&e) == nil {
			t.Errorf("CheckLogEvent accepted uuid %q published %v", e.UUID, e.Published)
		}
	}
}
