package postgres

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/storetest"
)

func TestEventLogConformance(t *testing.T) {
	needServer(t)
	storetest.RunEventLog(t, func(t *testing.T) store.EventLog {
		return openTest(t, Config{Schema: freshSchema(t)})
	})
}

// TestEventLogCluster: two nodes (separate pools on one schema) write
// to one log; each node's query shows both nodes' events.
func TestEventLogCluster(t *testing.T) {
	needServer(t)
	schema := freshSchema(t)
	a := openTest(t, Config{Schema: schema, MaxConns: 2})
	b := openTest(t, Config{Schema: schema, MaxConns: 2})
	storetest.RunEventLogShared(t, a, b)
}

// TestEventLogChunks: a filtered query whose matches lie beyond the
// first chunk of rows reads on, in both directions, and reports more
// only when a match lies beyond the limit.
func TestEventLogChunks(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	d := openTest(t, Config{Schema: freshSchema(t)})
	base := time.Unix(1_700_000_000, 0).UTC()
	n := logChunk*2 + 5
	events := make([]store.LogEvent, n)
	for i := range events {
		typ := "other"
		if i == 3 || i >= n-3 {
			typ = "wanted"
		}
		events[i] = store.LogEvent{UUID: "e" + string(rune('a'+i%5)), Published: base.Add(time.Duration(i/5) * time.Millisecond), EventType: typ}
	}
	if err := d.AppendEvents(ctx, events); err != nil {
		t.Fatal(err)
	}
	match := func(e *store.LogEvent) bool { return e.EventType == "wanted" }
	got, more, err := d.QueryEvents(ctx, store.LogQuery{Limit: 3, Descending: true, Match: match})
	if err != nil || !more || len(got) != 3 {
		t.Fatalf("newest 3 wanted: %d, more %v, %v", len(got), more, err)
	}
	got, more, err = d.QueryEvents(ctx, store.LogQuery{Limit: 4, Match: match})
	if err != nil || more || len(got) != 4 {
		t.Fatalf("oldest 4 wanted: %d, more %v, %v", len(got), more, err)
	}
	seen := 0
	if _, _, err := d.QueryEvents(ctx, store.LogQuery{Limit: 1, Match: func(*store.LogEvent) bool { seen++; return false }}); err != nil || seen != n {
		t.Fatalf("a full scan saw %d of %d (%v)", seen, n, err)
	}
	// The first purge of a large log goes in chunks to the end.
	if err := d.PurgeEvents(ctx, base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, _, err := d.QueryEvents(ctx, store.LogQuery{Limit: 10}); err != nil || len(got) != 0 {
		t.Fatalf("after purging all: %d, %v", len(got), err)
	}
}

// TestPurgeAppliesLogRetention: Purge, which the issuer's maintenance
// calls, drops events older than the retention.
func TestPurgeAppliesLogRetention(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	d := openTest(t, Config{Schema: freshSchema(t), LogRetention: 2 * time.Hour})
	now := time.Now()
	if err := d.AppendEvents(ctx, []store.LogEvent{
		{UUID: "old", Published: now.Add(-3 * time.Hour)},
		{UUID: "new", Published: now.Add(-time.Hour)},
	}); err != nil {
		t.Fatal(err)
	}
	if err := d.Purge(ctx, now); err != nil {
		t.Fatal(err)
	}
	got, _, err := d.QueryEvents(ctx, store.LogQuery{Limit: 10})
	if err != nil || len(got) != 1 || got[0].UUID != "new" {
		t.Fatalf("after Purge with 2h retention: %v, %v", got, err)
	}
}

// TestEventWithNUL: jsonb refuses \u0000; such an event is stored with
// U+FFFD instead, and its batch is not lost.
func TestEventWithNUL(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	d := openTest(t, Config{Schema: freshSchema(t)})
	at := time.Unix(1_700_000_000, 0).UTC()
	e := store.LogEvent{UUID: "n", Published: at, EventType: "user.session\x00.start",
		Actor: &store.LogActor{AlternateID: "alice\x00@example.com", DisplayName: `back\slash\u0000`}}
	if err := d.AppendEvents(ctx, []store.LogEvent{e, {UUID: "m", Published: at}}); err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	got, _, err := d.QueryEvents(ctx, store.LogQuery{Limit: 10})
	if err != nil || len(got) != 2 {
		t.Fatalf("QueryEvents: %v, %v", got, err)
	}
	if a := got[1].Actor; a == nil || a.AlternateID != "alice\uFFFD@example.com" || a.DisplayName != `back\slash\u0000` {
		t.Fatalf("actor read back as %+v", a)
	}
}

func TestJSONBSafe(t *testing.T) {
	for _, s := range []string{"", "plain", "a\x00b", `a\u0000b`, "\\\x00", `\\` + "\x00", "\x00\x00"} {
		b, _ := json.Marshal(s)
		var back string
		if err := json.Unmarshal(jsonbSafe(b), &back); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		want := ""
		for _, r := range s {
			if r == 0 {
				r = '\uFFFD'
			}
			want += string(r)
		}
		if back != want {
			t.Errorf("%q: %q, want %q", s, back, want)
		}
	}
}
