package syslog

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func parse(t *testing.T, raw string) (*Request, *Error) {
	t.Helper()
	v, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	return Parse(v, now)
}

// TestParseDefaults: limit 100, ASCENDING, a week before until, and a
// request without until is a polling one, unless DESCENDING.
func TestParseDefaults(t *testing.T) {
	r, err := parse(t, "")
	if err != nil {
		t.Fatal(err)
	}
	if r.Limit != 100 || r.Query.Limit != 100 || r.Query.Descending || !r.Polling {
		t.Errorf("defaults: %+v", r)
	}
	// A polling page ends PollSettle before now, so late batches are not
	// skipped by a cursor that already passed their time.
	if !r.Query.Since.Equal(now.Add(-7*24*time.Hour)) || !r.Query.Until.Equal(now.Add(-PollSettle)) {
		t.Errorf("window %v..%v", r.Query.Since, r.Query.Until)
	}
	r, _ = parse(t, "since=2025-05-31T00:00:00Z")
	if !r.Polling || !r.Query.Since.Equal(time.Date(2025, 5, 31, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("since only: %+v", r)
	}
	r, _ = parse(t, "since=2025-05-31T00:00:00Z&sortOrder=DESCENDING")
	if r.Polling || !r.Query.Descending {
		t.Errorf("descending is bounded: %+v", r)
	}
	r, _ = parse(t, "until=2025-05-31T00:00:00.5+02:00&limit=1000")
	if r.Polling || r.Limit != 1000 || !r.Query.Until.Equal(time.Date(2025, 5, 30, 22, 0, 0, 5e8, time.UTC)) || !r.Query.Since.Equal(r.Query.Until.Add(-DefaultWindow)) {
		t.Errorf("until: %+v", r)
	}
	// Okta's own polling example sends an empty until.
	if r, _ = parse(t, "since=2025-05-31T00:00:00Z&until="); !r.Polling {
		t.Error("empty until is not polling")
	}
	if r, _ = parse(t, "limit=0"); r.Limit != 0 || r.Query.Limit != 1 {
		t.Errorf("limit=0: %+v", r)
	}
}

// TestParseErrors: Okta's E0000001 for every parameter that does not
// parse, with its causes.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ q, code, want string }{
		{"until=yesterday", CodeValidation, "Api validation failed: 'until': The date format in your query is not recognized. Please enter dates using ISO8601 string format.. 'until': must be a valid date-time or empty."},
		{"since=2025-13-01T00:00:00Z", CodeValidation, "'since': The date format"},
		{"since=0001-01-01T00:00:00Z", CodeValidation, "'since': The date format"},
		{"since=2025-05-01", CodeValidation, "'since': The date format"},
		{"since=2025-05-01T00:00:00 0000", CodeValidation, "'since': The date format"},
		{"since=2025-06-01T00:00:00Z&until=2025-05-01T00:00:00Z", CodeValidation, "'since': must be before until."},
		{"limit=1001", CodeValidation, "'limit': must be an integer between 0 and 1000."},
		{"limit=-1", CodeValidation, "'limit'"},
		{"limit=ten", CodeValidation, "'limit'"},
		{"sortOrder=descending", CodeValidation, "'sortOrder': must be ASCENDING or DESCENDING."},
		{"after=not-a-cursor", CodeValidation, "'after'"},
		{"after=" + cursorEncoding.EncodeToString([]byte("2025-01-01T00:00:00Z/")), CodeValidation, "'after'"},
		{"after=" + cursorEncoding.EncodeToString([]byte("yesterday/u1")), CodeValidation, "'after'"},
		{"limit=1&limit=2", CodeValidation, "'limit': must be given at most once."},
		{"filter=eventType+eqq+%22x%22", CodeInvalidFilter, "Unrecognized attribute operator 'eqq'"},
		{"filter=published+pr", CodeSearchCriteria, "Field: published"},
		{"q=" + strings.Repeat("x", 41), CodeValidation, "'q': Freeform search"},
	} {
		_, err := parse(t, tc.q)
		if err == nil {
			t.Errorf("%s: accepted", tc.q)
			continue
		}
		if err.Code != tc.code || !strings.Contains(err.Summary, tc.want) {
			t.Errorf("%s: got %s %q, want %s containing %q", tc.q, err.Code, err.Summary, tc.code, tc.want)
		}
	}
	_, err := parse(t, "until=x")
	if len(err.Causes) != 2 || err.Causes[0] != "until: The date format in your query is not recognized. Please enter dates using ISO8601 string format." || err.Causes[1] != "until: must be a valid date-time or empty." {
		t.Errorf("causes: %q", err.Causes)
	}
}

// TestParseMatch: filter and q together must both match.
func TestParseMatch(t *testing.T) {
	r, err := parse(t, url.Values{"filter": {`outcome.result eq "SUCCESS"`}, "q": {"jane"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	e := sample()
	if !r.Query.Match(e) {
		t.Error("both match, refused")
	}
	e.Outcome.Result = "FAILURE"
	if r.Query.Match(e) {
		t.Error("filter fails, accepted")
	}
	if r, _ := parse(t, "filter=+&q="); r.Query.Match != nil {
		t.Error("blank filter and q constrain")
	}
}

// TestLinks: self repeats the request; polling always has a next link
// that keeps since and not until; bounded pages have one only while
// more match, with until fixed; the cursor round-trips.
func TestLinks(t *testing.T) {
	const ep = "https://id.example.com/api/v1/logs"
	ev := []store.LogEvent{{UUID: "u1", Published: now.Add(-time.Hour)}, {UUID: "u2", Published: now.Add(-time.Minute)}}
	r, _ := parse(t, "limit=2&filter=eventType+pr&ignored=1")
	if got := r.SelfLink(ep); got != ep+"?filter=eventType+pr&limit=2" {
		t.Errorf("self %s", got)
	}
	next := r.NextLink(ep, ev, false)
	u, _ := url.Parse(next)
	q := u.Query()
	if q.Get("since") != "2025-05-25T12:00:00Z" || q.Has("until") || q.Get("limit") != "2" || q.Get("filter") != "eventType pr" {
		t.Errorf("polling next %s", next)
	}
	c, ok := decodeCursor(q.Get("after"))
	if !ok || c != store.LogCursor(&ev[1]) {
		t.Errorf("cursor %q %v", c, ok)
	}
	// An empty polling page continues where it started.
	r2, err := Parse(q, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if again := r2.NextLink(ep, nil, false); again != next {
		t.Errorf("empty poll: %s, want %s", again, next)
	}
	if r2.Query.After != c || !r2.Query.Since.Equal(now.Add(-DefaultWindow)) {
		t.Errorf("followed: %+v", r2.Query)
	}

	b, _ := parse(t, "since=2025-05-01T00:00:00Z&sortOrder=DESCENDING")
	if b.NextLink(ep, ev, false) != "" {
		t.Error("bounded last page has a next link")
	}
	u, _ = url.Parse(b.NextLink(ep, ev, true))
	if u.Query().Get("until") != "2025-06-01T12:00:00Z" || u.Query().Get("sortOrder") != "DESCENDING" {
		t.Errorf("bounded next %s", u)
	}
	if p, more := b.Page(nil, true); p == nil || !more {
		t.Error("page of none is not [] with more")
	}
	z, _ := parse(t, "limit=0&until=2025-06-01T00:00:00Z")
	if p, more := z.Page(ev, true); len(p) != 0 || more {
		t.Errorf("limit=0: %v %v", p, more)
	}
}
