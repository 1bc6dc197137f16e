package syslog

import (
	"encoding/base64"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// Paging and window defaults (Okta's System Log API reference, request
// parameters).
const (
	DefaultLimit = 100
	MaxLimit     = store.MaxLogLimit
	// DefaultWindow is how far before `until` a request without `since`
	// starts: "7 days prior to until".
	DefaultWindow = 7 * 24 * time.Hour
)

// params are the parameters of `GET /api/v1/logs`, in the order the
// links repeat them.
var params = []string{"since", "until", "after", "filter", "q", "limit", "sortOrder"}

// Request is a parsed `GET /api/v1/logs` query.
type Request struct {
	// Query is what to ask the EventLog (its Limit at least 1; a
	// request for limit=0 need not ask: see Page).
	Query store.LogQuery
	// Polling: the request has no `until` and is ASCENDING, Okta's
	// polling request, whose pages never end: it always gets a next
	// link, even with no events. Others are bounded: the last page has
	// no next link.
	Polling bool
	// Limit is the page size asked for, 0 to 1000.
	Limit int

	given url.Values // the parameters as given, for the self link
	next  url.Values // the parameters of the next page but after
}

// Parse reads the parameters of a System Log query at time now.
// Parameters it does not know are ignored, as Okta does; one of its own
// given twice is refused, as is any that does not parse (Okta's
// E0000001, E0000031 and E0000053 errors).
func Parse(v url.Values, now time.Time) (*Request, *Error) {
	r := &Request{given: url.Values{}, next: url.Values{}}
	get := map[string]string{}
	for _, p := range params {
		switch vals := v[p]; len(vals) {
		case 0:
		case 1:
			get[p] = vals[0]
			r.given.Set(p, vals[0])
		default:
			return nil, validation(p, "must be given at most once.")
		}
	}
	var since, until time.Time
	var err *Error
	if since, err = parseTime("since", get["since"]); err != nil {
		return nil, err
	}
	if until, err = parseTime("until", get["until"]); err != nil {
		return nil, err
	}
	switch s := get["sortOrder"]; s {
	case "", "ASCENDING":
	case "DESCENDING":
		r.Query.Descending = true
	default:
		return nil, validation("sortOrder", "must be ASCENDING or DESCENDING.")
	}
	r.Limit = DefaultLimit
	if s := get["limit"]; s != "" {
		n, perr := strconv.Atoi(s)
		if perr != nil || n < 0 || n > MaxLimit {
			return nil, validation("limit", "must be an integer between 0 and 1000.")
		}
		r.Limit = n
	}
	r.Query.Limit = max(r.Limit, 1)
	if s := get["after"]; s != "" {
		c, ok := decodeCursor(s)
		if !ok {
			return nil, validation("after", "is not a cursor this API returned; follow the next link.")
		}
		r.Query.After = c
	}
	var matchers []func(*store.LogEvent) bool
	if s := get["filter"]; strings.TrimSpace(s) != "" {
		f, err := ParseFilter(s)
		if err != nil {
			return nil, err
		}
		matchers = append(matchers, f.Match)
	}
	if k, err := ParseKeywords(get["q"]); err != nil {
		return nil, err
	} else if k != nil {
		matchers = append(matchers, k.Match)
	}
	switch len(matchers) {
	case 1:
		r.Query.Match = matchers[0]
	case 2:
		r.Query.Match = func(e *store.LogEvent) bool { return matchers[0](e) && matchers[1](e) }
	}

	r.Polling = until.IsZero() && !r.Query.Descending
	end := until
	if end.IsZero() {
		end = now
	}
	if since.IsZero() {
		since = end.Add(-DefaultWindow)
	}
	if !since.Before(end) && !until.IsZero() {
		return nil, validation("since", "must be before until.")
	}
	// Polling pages end PollSettle before now: events reach the store
	// in batches from every node's writer, so a later batch may hold
	// events published before the newest stored one, and a cursor that
	// ran ahead of them would skip them for good. Bounded pages end at
	// until, which the next link fixes when it defaulted to now.
	r.Query.Since, r.Query.Until = since, end
	if r.Polling {
		r.Query.Until = end.Add(-PollSettle)
	}
	for _, p := range []string{"filter", "q", "limit", "sortOrder"} {
		if s, ok := get[p]; ok {
			r.next.Set(p, s)
		}
	}
	r.next.Set("since", stamp(since))
	if !r.Polling {
		r.next.Set("until", stamp(end))
	}
	return r, nil
}

// stamp is a time as the links carry it: RFC 3339, UTC, milliseconds
// or finer as needed.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// parseTime reads since or until: RFC 3339 ("The Internet Date/Time
// Format profile of ISO 8601"); empty is unset. An offset whose "+"
// arrived as a space (Okta's examples write `since=...T00:00:00+00:00`
// unencoded, and a query string reads "+" as a space) is read as "+".
// The error is Okta's.
func parseTime(name, s string) (time.Time, *Error) {
	if s == "" {
		return time.Time{}, nil
	}
	if n := len(s) - 6; n > 0 && s[n] == ' ' && s[n+3] == ':' {
		s = s[:n] + "+" + s[n+1:]
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	// Stores keep times as Unix nanoseconds (store.CheckLogEvent).
	if y := t.Year(); err != nil || y < 1678 || y > 2261 {
		return time.Time{}, validation(name,
			"The date format in your query is not recognized. Please enter dates using ISO8601 string format.",
			"must be a valid date-time or empty.")
	}
	return t, nil
}

// cursorEncoding makes store cursors opaque in links ("after ...
// Opaque token"): clients follow links and do not craft them.
var cursorEncoding = base64.RawURLEncoding

// maxCursor bounds an after parameter.
const maxCursor = 512

// EncodeCursor is the `after` value that continues after e.
func EncodeCursor(e *store.LogEvent) string {
	return cursorEncoding.EncodeToString([]byte(store.LogCursor(e)))
}

// decodeCursor checks and decodes an `after` value to a store cursor:
// "<RFC 3339 time>/<uuid>" as store.LogCursor writes it.
func decodeCursor(s string) (string, bool) {
	if len(s) > maxCursor {
		return "", false
	}
	b, err := cursorEncoding.DecodeString(s)
	if err != nil {
		return "", false
	}
	c := string(b)
	_, id, err := store.ParseLogCursor(c)
	if err != nil {
		return "", false
	}
	for _, r := range id {
		if r <= ' ' || r > '~' {
			return "", false
		}
	}
	return c, true
}

// SelfLink is the URL of this request (Okta: "link: <url>; rel=\"self\"")
// below endpoint, with the System Log parameters as given.
func (r *Request) SelfLink(endpoint string) string {
	return link(endpoint, r.given)
}

// NextLink is the URL of the page after page (the events answered),
// given whether the EventLog reported more, or "" when there is none:
// a polling request always has one (after its last event, or where
// this page started when it is empty); a bounded one only while more
// events match.
func (r *Request) NextLink(endpoint string, page []store.LogEvent, more bool) string {
	if !r.Polling && !more {
		return ""
	}
	v := url.Values{}
	for k, vals := range r.next {
		v[k] = vals
	}
	switch {
	case len(page) > 0:
		v.Set("after", EncodeCursor(&page[len(page)-1]))
	case r.given.Get("after") != "":
		v.Set("after", r.given.Get("after"))
	}
	return link(endpoint, v)
}

// Page is what to answer of what the EventLog answered, and whether
// more events match beyond it. A request for limit=0 gets no events
// and, bounded, no next link (a page of none makes no progress); a
// caller may skip the query for it.
func (r *Request) Page(events []store.LogEvent, more bool) ([]store.LogEvent, bool) {
	if r.Limit == 0 {
		return []store.LogEvent{}, false
	}
	if events == nil {
		events = []store.LogEvent{}
	}
	return events, more
}

func link(endpoint string, v url.Values) string {
	if len(v) == 0 {
		return endpoint
	}
	return endpoint + "?" + v.Encode()
}

// PollSettle is how far behind now a polling page ends: more than the
// event writer's flush interval plus its store timeout, so that every
// node's batch for that time is stored before a cursor passes it.
const PollSettle = 15 * time.Second
