package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// RunEventLog runs the System Log part of the suite (store.EventLog).
// open must return a fresh, empty log for each call.
func RunEventLog(t *testing.T, open func(t *testing.T) store.EventLog) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(*testing.T, store.EventLog)
	}{
		{"RoundTripAndOrder", testLogOrder},
		{"SinceInclusiveUntilExclusive", testLogBounds},
		{"CursorPagesWithEqualTimes", testLogPaging},
		{"MatchAcrossPages", testLogMatchPaging},
		{"LimitAndMore", testLogLimitMore},
		{"InvalidQueries", testLogInvalid},
		{"AppendReplacesAndRefuses", testLogAppend},
		{"PublishedMicrosecondsUTC", testLogPrecision},
		{"PurgeByTime", testLogPurge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

// RunEventLogBound checks a store's size bound: open returns a fresh
// log that keeps at most max events, dropped oldest first by
// PurgeEvents.
func RunEventLogBound(t *testing.T, open func(t *testing.T, max int) store.EventLog) {
	t.Helper()
	l := open(t, 10)
	var all []store.LogEvent
	for i := range 25 {
		all = append(all, logEv(fmt.Sprintf("u%02d", i), int64(i/2), "a"))
	}
	appendLog(t, l, all[:13]...)
	appendLog(t, l, all[13:]...)
	if err := l.PurgeEvents(context.Background(), time.Time{}); err != nil {
		t.Fatalf("PurgeEvents: %v", err)
	}
	got := queryAll(t, l, store.LogQuery{}, 100)
	if want := uuids(all[15:]); !slices.Equal(uuids(got), want) {
		t.Fatalf("after purge with a bound of 10: %v, want the newest %v", uuids(got), want)
	}
	// The bound counts replaced events once.
	appendLog(t, l, all[20:]...)
	appendLog(t, l, logEv("u99", 30, "a"))
	if err := l.PurgeEvents(context.Background(), time.Time{}); err != nil {
		t.Fatalf("PurgeEvents: %v", err)
	}
	got = queryAll(t, l, store.LogQuery{}, 100)
	if want := append(uuids(all[16:]), "u99"); !slices.Equal(uuids(got), want) {
		t.Fatalf("after re-appending and one more: %v, want %v", uuids(got), want)
	}
}

// RunEventLogShared checks that two handles of one shared store (two
// nodes of a cluster) write to one log: each sees the other's events,
// in one order, and a cursor from one pages on the other.
func RunEventLogShared(t *testing.T, a, b store.EventLog) {
	t.Helper()
	var fromA, fromB, all []store.LogEvent
	for i := range 10 {
		e := logEv(fmt.Sprintf("n%02d", i), int64(i/3), "a")
		all = append(all, e)
		if i%2 == 0 {
			fromA = append(fromA, e)
		} else {
			fromB = append(fromB, e)
		}
	}
	appendLog(t, a, fromA...)
	appendLog(t, b, fromB...)
	for name, l := range map[string]store.EventLog{"a": a, "b": b} {
		if got := queryAll(t, l, store.LogQuery{}, 100); !slices.Equal(uuids(got), uuids(all)) {
			t.Fatalf("node %s sees %v, want every node's %v", name, uuids(got), uuids(all))
		}
	}
	page, more, err := a.QueryEvents(context.Background(), store.LogQuery{Limit: 4})
	if err != nil || !more || len(page) != 4 {
		t.Fatalf("first page on a: %d events, more %v, %v", len(page), more, err)
	}
	rest := queryAll(t, b, store.LogQuery{After: store.LogCursor(&page[3])}, 3)
	if got := append(uuids(page), uuids(rest)...); !slices.Equal(got, uuids(all)) {
		t.Fatalf("paged across nodes: %v, want %v", got, uuids(all))
	}
}

// logEv is an event at second sec (plus a fixed microsecond offset, so
// precision is exercised) of the suite's epoch.
func logEv(id string, sec int64, typ string) store.LogEvent {
	reason := "because"
	return store.LogEvent{
		UUID:           id,
		Published:      ts(sec).Add(123456 * time.Microsecond),
		EventType:      typ,
		Version:        "0",
		Severity:       "INFO",
		DisplayMessage: "event " + id,
		Actor:          &store.LogActor{ID: "0oa" + id, Type: "PublicClientApp", AlternateID: "client-" + id},
		Outcome:        &store.LogOutcome{Result: "SUCCESS", Reason: &reason},
		Target:         []store.LogTarget{{ID: "aus1", Type: "AuthorizationServer"}},
		Transaction:    &store.LogTransaction{Type: "WEB", ID: "tx-" + id},
		DebugContext:   &store.LogDebugContext{DebugData: map[string]any{"grantType": "client_credentials", "n": id}},
		Client:         &store.LogClient{IPAddress: "127.0.0.1", UserAgent: &store.LogUserAgent{RawUserAgent: "test"}},
	}
}

func appendLog(t *testing.T, l store.EventLog, events ...store.LogEvent) {
	t.Helper()
	if err := l.AppendEvents(context.Background(), events); err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
}

func uuids(events []store.LogEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.UUID
	}
	return out
}

// queryAll pages through q with pages of limit, checking that only the
// last page says no more, and returns every event.
func queryAll(t *testing.T, l store.EventLog, q store.LogQuery, limit int) []store.LogEvent {
	t.Helper()
	q.Limit = limit
	var out []store.LogEvent
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("paging does not end")
		}
		page, more, err := l.QueryEvents(context.Background(), q)
		if err != nil {
			t.Fatalf("QueryEvents(%+v): %v", q, err)
		}
		if len(page) > limit {
			t.Fatalf("page of %d events, limit %d", len(page), limit)
		}
		out = append(out, page...)
		if !more {
			return out
		}
		if len(page) != limit {
			t.Fatalf("page of %d events with more = true, want a full page of %d", len(page), limit)
		}
		q.After = store.LogCursor(&page[len(page)-1])
	}
}

// sorted is events in (published, uuid) order.
func sorted(events []store.LogEvent, desc bool) []store.LogEvent {
	out := slices.Clone(events)
	slices.SortFunc(out, func(a, b store.LogEvent) int {
		if c := a.Published.Compare(b.Published); c != 0 {
			return c
		}
		return strings.Compare(a.UUID, b.UUID)
	})
	if desc {
		slices.Reverse(out)
	}
	return out
}

func reversed(s []string) []string {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}

func testLogOrder(t *testing.T, l store.EventLog) {
	// Out of order within and across batches; equal times order by uuid.
	batch1 := []store.LogEvent{logEv("c", 5, "x"), logEv("a", 1, "x"), logEv("e", 3, "y")}
	batch2 := []store.LogEvent{logEv("b", 5, "y"), logEv("d", 0, "x"), logEv("a2", 1, "x")}
	appendLog(t, l, batch1...)
	appendLog(t, l, batch2...)
	all := append(slices.Clone(batch1), batch2...)
	want := []string{"d", "a", "a2", "e", "b", "c"}
	got, more, err := l.QueryEvents(context.Background(), store.LogQuery{Limit: 100})
	if err != nil || more {
		t.Fatalf("QueryEvents: more %v, %v", more, err)
	}
	if !slices.Equal(uuids(got), want) || !slices.Equal(uuids(sorted(all, false)), want) {
		t.Fatalf("ascending %v, want %v", uuids(got), want)
	}
	got, _, err = l.QueryEvents(context.Background(), store.LogQuery{Limit: 100, Descending: true})
	if err != nil || !slices.Equal(uuids(got), reversed(want)) {
		t.Fatalf("descending %v (%v), want %v", uuids(got), err, reversed(want))
	}
	// The document comes back whole.
	e := got[len(got)-1] // "d"
	w := logEv("d", 0, "x")
	if !e.Published.Equal(w.Published) || e.EventType != "x" || e.DisplayMessage != w.DisplayMessage ||
		e.Actor == nil || e.Actor.AlternateID != "client-d" || e.Outcome == nil || e.Outcome.Reason == nil ||
		*e.Outcome.Reason != "because" || len(e.Target) != 1 || e.Target[0].ID != "aus1" ||
		e.Transaction == nil || e.Transaction.ID != "tx-d" || e.DebugContext == nil ||
		e.DebugContext.DebugData["n"] != "d" || e.Client == nil || e.Client.UserAgent == nil ||
		e.Client.UserAgent.RawUserAgent != "test" {
		t.Fatalf("event read back as %+v, want %+v", e, w)
	}
}

func testLogBounds(t *testing.T, l store.EventLog) {
	var all []store.LogEvent
	for i := range 10 {
		all = append(all, logEv(fmt.Sprintf("u%d", i), int64(i), "x"))
	}
	appendLog(t, l, all...)
	since, until := all[2].Published, all[7].Published
	for _, c := range []struct {
		q    store.LogQuery
		want []store.LogEvent
	}{
		{store.LogQuery{Since: since}, all[2:]},
		{store.LogQuery{Until: until}, all[:7]},
		{store.LogQuery{Since: since, Until: until}, all[2:7]},
		{store.LogQuery{Since: since.Add(time.Microsecond), Until: until.Add(time.Microsecond)}, all[3:8]},
		// Bounds finer than the stored microseconds.
		{store.LogQuery{Since: since.Add(time.Nanosecond), Until: until.Add(time.Nanosecond)}, all[3:8]},
		{store.LogQuery{Since: since.Add(-time.Nanosecond), Until: until.Add(-time.Nanosecond)}, all[2:7]},
		{store.LogQuery{Since: until, Until: until}, nil},
		{store.LogQuery{Since: until, Until: since}, nil},
		{store.LogQuery{Since: ts(100)}, nil},
		{store.LogQuery{Until: ts(-100)}, nil},
	} {
		for _, desc := range []bool{false, true} {
			q := c.q
			q.Descending = desc
			got := queryAll(t, l, q, 2)
			if want := uuids(sorted(c.want, desc)); !slices.Equal(uuids(got), want) {
				t.Errorf("since %v until %v descending %v: %v, want %v", q.Since, q.Until, desc, uuids(got), want)
			}
		}
	}
}

func testLogPaging(t *testing.T, l store.EventLog) {
	// 30 events, five per timestamp, appended in three unordered batches.
	var all []store.LogEvent
	for i := range 30 {
		all = append(all, logEv(fmt.Sprintf("p%02d", (i*7)%30), int64(i/5), "x"))
	}
	for _, b := range [][]store.LogEvent{all[20:], all[:7], all[7:20]} {
		appendLog(t, l, b...)
	}
	for _, desc := range []bool{false, true} {
		for _, limit := range []int{1, 3, 5, 7, 30, 31} {
			got := queryAll(t, l, store.LogQuery{Descending: desc}, limit)
			if want := uuids(sorted(all, desc)); !slices.Equal(uuids(got), want) {
				t.Errorf("descending %v, pages of %d: %v, want %v", desc, limit, uuids(got), want)
			}
		}
		// Paging within bounds.
		q := store.LogQuery{Since: ts(1), Until: ts(4), Descending: desc}
		var want []store.LogEvent
		for _, e := range all {
			if !e.Published.Before(ts(1)) && e.Published.Before(ts(4)) {
				want = append(want, e)
			}
		}
		if got := queryAll(t, l, q, 4); !slices.Equal(uuids(got), uuids(sorted(want, desc))) {
			t.Errorf("descending %v, bounded pages: %v, want %v", desc, uuids(got), uuids(sorted(want, desc)))
		}
	}
	// A cursor of an event that is no longer stored still pages on.
	s := sorted(all, false)
	gone := logEv("p07x", 2, "x") // between p07 and p08 of second 2? only by uuid order
	got := queryAll(t, l, store.LogQuery{After: store.LogCursor(&gone)}, 100)
	var want []string
	for _, e := range s {
		if c := e.Published.Compare(gone.Published); c > 0 || (c == 0 && e.UUID > gone.UUID) {
			want = append(want, e.UUID)
		}
	}
	if !slices.Equal(uuids(got), want) {
		t.Errorf("after a cursor of no stored event: %v, want %v", uuids(got), want)
	}
}

func testLogMatchPaging(t *testing.T, l store.EventLog) {
	var all []store.LogEvent
	for i := range 40 {
		typ := "other"
		if i%3 == 0 {
			typ = "wanted"
		}
		all = append(all, logEv(fmt.Sprintf("m%02d", i), int64(i/4), typ))
	}
	appendLog(t, l, all...)
	match := func(e *store.LogEvent) bool { return e.EventType == "wanted" }
	var want []store.LogEvent
	for _, e := range all {
		if e.EventType == "wanted" {
			want = append(want, e)
		}
	}
	for _, desc := range []bool{false, true} {
		for _, limit := range []int{1, 2, 4, 14} {
			got := queryAll(t, l, store.LogQuery{Match: match, Descending: desc}, limit)
			if !slices.Equal(uuids(got), uuids(sorted(want, desc))) {
				t.Errorf("descending %v, pages of %d: %v, want %v", desc, limit, uuids(got), uuids(sorted(want, desc)))
			}
		}
	}
	// No match at all: an empty answer, no more.
	got, more, err := l.QueryEvents(context.Background(), store.LogQuery{Limit: 5, Match: func(*store.LogEvent) bool { return false }})
	if err != nil || more || len(got) != 0 {
		t.Fatalf("matching nothing: %d events, more %v, %v", len(got), more, err)
	}
}

func testLogLimitMore(t *testing.T, l store.EventLog) {
	var all []store.LogEvent
	for i := range 6 {
		all = append(all, logEv(fmt.Sprintf("l%d", i), int64(i), "x"))
	}
	appendLog(t, l, all...)
	ctx := context.Background()
	for _, c := range []struct {
		limit int
		more  bool
	}{{5, true}, {6, false}, {7, false}, {1, true}} {
		got, more, err := l.QueryEvents(ctx, store.LogQuery{Limit: c.limit})
		if err != nil || more != c.more || len(got) != min(c.limit, 6) {
			t.Errorf("limit %d: %d events, more %v (%v), want %d, more %v", c.limit, len(got), more, err, min(c.limit, 6), c.more)
		}
	}
	// Exactly Limit matches left: no more.
	got, more, err := l.QueryEvents(ctx, store.LogQuery{Limit: 2, After: store.LogCursor(&all[3])})
	if err != nil || more || !slices.Equal(uuids(got), []string{"l4", "l5"}) {
		t.Errorf("last two: %v, more %v, %v", uuids(got), more, err)
	}
	got, more, err = l.QueryEvents(ctx, store.LogQuery{Limit: 2, After: store.LogCursor(&all[2]), Descending: true})
	if err != nil || more || !slices.Equal(uuids(got), []string{"l1", "l0"}) {
		t.Errorf("first two, descending: %v, more %v, %v", uuids(got), more, err)
	}
	// An empty log.
	got, more, err = l.QueryEvents(ctx, store.LogQuery{Limit: 1, Since: ts(1000)})
	if err != nil || more || len(got) != 0 {
		t.Errorf("past the end: %v, more %v, %v", uuids(got), more, err)
	}
}

func testLogInvalid(t *testing.T, l store.EventLog) {
	appendLog(t, l, logEv("i", 0, "x"))
	for _, q := range []store.LogQuery{
		{Limit: 0},
		{Limit: -1},
		{Limit: store.MaxLogLimit + 1},
		{Limit: 10, After: "nonsense"},
		{Limit: 10, After: "2024-01-01T00:00:00Z/"},
		{Limit: 10, After: "yesterday/abc"},
	} {
		if _, _, err := l.QueryEvents(context.Background(), q); !errors.Is(err, store.ErrInvalidLogQuery) {
			t.Errorf("QueryEvents(limit %d, after %q) = %v, want ErrInvalidLogQuery", q.Limit, q.After, err)
		}
	}
	if _, _, err := l.QueryEvents(context.Background(), store.LogQuery{Limit: store.MaxLogLimit}); err != nil {
		t.Errorf("limit %d: %v", store.MaxLogLimit, err)
	}
}

func testLogAppend(t *testing.T, l store.EventLog) {
	ctx := context.Background()
	appendLog(t, l) // an empty batch is fine
	e := logEv("r", 1, "first")
	appendLog(t, l, e)
	e.EventType = "second"
	appendLog(t, l, e, logEv("s", 1, "x"))
	got := queryAll(t, l, store.LogQuery{}, 10)
	if !slices.Equal(uuids(got), []string{"r", "s"}) || got[0].EventType != "second" {
		t.Fatalf("after re-appending r: %v (r is %q), want r replaced", uuids(got), got[0].EventType)
	}
	// A batch with an event stores refuse stores nothing.
	bad := []store.LogEvent{logEv("t", 2, "x"), {Published: ts(3), EventType: "x"}}
	if err := l.AppendEvents(ctx, bad); err == nil {
		t.Fatal("AppendEvents accepted an event without uuid")
	}
	if err := l.AppendEvents(ctx, []store.LogEvent{{UUID: "z", EventType: "x"}}); err == nil {
		t.Fatal("AppendEvents accepted an event without published time")
	}
	if got := queryAll(t, l, store.LogQuery{}, 10); len(got) != 2 {
		t.Fatalf("after refused batches: %v, want r and s only", uuids(got))
	}
}

func testLogPrecision(t *testing.T, l store.EventLog) {
	e := logEv("n", 0, "x")
	at := ts(0).Add(123456789 * time.Nanosecond)
	e.Published = at.In(time.FixedZone("X", 3*3600))
	appendLog(t, l, e)
	got := queryAll(t, l, store.LogQuery{}, 10)
	if len(got) != 1 || !got[0].Published.Equal(at.Truncate(time.Microsecond)) || got[0].Published.Location() != time.UTC {
		t.Fatalf("published read back as %v, want %v in UTC", got, at.Truncate(time.Microsecond))
	}
	// Its own cursor (and Since at its time) pages past it, not to it.
	if next := queryAll(t, l, store.LogQuery{After: store.LogCursor(&got[0])}, 10); len(next) != 0 {
		t.Fatalf("after its own cursor: %v", uuids(next))
	}
	if same := queryAll(t, l, store.LogQuery{Since: got[0].Published}, 10); len(same) != 1 {
		t.Fatalf("since its own time: %v", uuids(same))
	}
}

func testLogPurge(t *testing.T, l store.EventLog) {
	var all []store.LogEvent
	for i := range 8 {
		all = append(all, logEv(fmt.Sprintf("g%d", i), int64(i), "x"))
	}
	appendLog(t, l, all...)
	if err := l.PurgeEvents(context.Background(), all[3].Published); err != nil {
		t.Fatalf("PurgeEvents: %v", err)
	}
	if got := queryAll(t, l, store.LogQuery{}, 100); !slices.Equal(uuids(got), uuids(all[3:])) {
		t.Fatalf("after purging before g3: %v, want %v", uuids(got), uuids(all[3:]))
	}
	if err := l.PurgeEvents(context.Background(), ts(1000)); err != nil {
		t.Fatalf("PurgeEvents: %v", err)
	}
	if got := queryAll(t, l, store.LogQuery{}, 100); len(got) != 0 {
		t.Fatalf("after purging everything: %v", uuids(got))
	}
}
