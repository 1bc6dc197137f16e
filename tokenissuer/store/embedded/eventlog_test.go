package embedded

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/storetest"
)

func openLog(t *testing.T) *DB {
	t.Helper()
	db := open(t, filepath.Join(t.TempDir(), "x.db"))
	t.Cleanup(func() { db.Close() })
	return db
}

func TestEventLogConformance(t *testing.T) {
	storetest.RunEventLog(t, func(t *testing.T) store.EventLog { return openLog(t) })
}

func TestEventLogSizeBound(t *testing.T) {
	storetest.RunEventLogBound(t, func(t *testing.T, max int) store.EventLog {
		db := openLog(t)
		db.SetLogLimits(0, max)
		return db
	})
}

// TestEventLogChunks: queries and purges longer than one transaction's
// chunk resume where they stopped, in both directions.
func TestEventLogChunks(t *testing.T) {
	ctx := context.Background()
	db := openLog(t)
	base := time.Unix(1_700_000_000, 0).UTC()
	n := scanChunk*2 + 17
	events := make([]store.LogEvent, n)
	for i := range events {
		events[i] = store.LogEvent{UUID: "e" + string(rune('a'+i%7)), Published: base.Add(time.Duration(i/7) * time.Millisecond), EventType: "x"}
	}
	if err := db.AppendEvents(ctx, events); err != nil {
		t.Fatal(err)
	}
	for _, desc := range []bool{false, true} {
		// Matches only near the far end: the scan crosses chunks.
		last := events[n-1]
		if desc {
			last = events[0]
		}
		got, more, err := db.QueryEvents(ctx, store.LogQuery{Limit: 10, Descending: desc,
			Match: func(e *store.LogEvent) bool { return e.Published.Equal(last.Published) }})
		if err != nil || more || len(got) == 0 || !got[0].Published.Equal(last.Published) {
			t.Fatalf("descending %v: %d events, more %v, %v", desc, len(got), more, err)
		}
		seen := 0
		_, _, err = db.QueryEvents(ctx, store.LogQuery{Limit: 1, Descending: desc,
			Match: func(*store.LogEvent) bool { seen++; return false }})
		if err != nil || seen != n {
			t.Fatalf("descending %v: a full scan saw %d events, want %d (%v)", desc, seen, n, err)
		}
	}
	db.SetLogLimits(0, 5)
	if err := db.PurgeEvents(ctx, time.Time{}); err != nil {
		t.Fatal(err)
	}
	got, more, err := db.QueryEvents(ctx, store.LogQuery{Limit: 100})
	if err != nil || more || len(got) != 5 {
		t.Fatalf("after bounding to 5: %d events, more %v, %v", len(got), more, err)
	}
}

// TestPurgeAppliesLogRetention: the store's Purge, which the issuer's
// maintenance calls, drops events older than the retention and keeps
// the size bound.
func TestPurgeAppliesLogRetention(t *testing.T) {
	ctx := context.Background()
	db := openLog(t)
	now := time.Now()
	mk := func(id string, age time.Duration) store.LogEvent {
		return store.LogEvent{UUID: id, Published: now.Add(-age), EventType: "x"}
	}
	events := []store.LogEvent{mk("old", 91*24*time.Hour), mk("edge", 89*24*time.Hour), mk("new1", time.Hour), mk("new2", time.Minute)}
	if err := db.AppendEvents(ctx, events); err != nil {
		t.Fatal(err)
	}
	if err := db.Purge(ctx, now); err != nil {
		t.Fatal(err)
	}
	got, _, err := db.QueryEvents(ctx, store.LogQuery{Limit: 10})
	if err != nil || len(got) != 3 || got[0].UUID != "edge" {
		t.Fatalf("after Purge with the default 90 days: %v, %v", got, err)
	}
	db.SetLogLimits(2*time.Hour, 1)
	if err := db.Purge(ctx, now); err != nil {
		t.Fatal(err)
	}
	got, _, err = db.QueryEvents(ctx, store.LogQuery{Limit: 10})
	if err != nil || len(got) != 1 || got[0].UUID != "new2" {
		t.Fatalf("after Purge with 2h and a bound of 1: %v, %v", got, err)
	}
}

// TestEventLogSurvivesReopen: events and their count persist.
func TestEventLogSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "x.db")
	db := open(t, path)
	base := time.Unix(1_700_000_000, 0).UTC()
	if err := db.AppendEvents(ctx, []store.LogEvent{{UUID: "a", Published: base}, {UUID: "b", Published: base}, {UUID: "c", Published: base}}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = open(t, path)
	defer db.Close()
	db.SetLogLimits(0, 2)
	if err := db.PurgeEvents(ctx, time.Time{}); err != nil {
		t.Fatal(err)
	}
	got, _, err := db.QueryEvents(ctx, store.LogQuery{Limit: 10})
	if err != nil || len(got) != 2 || got[0].UUID != "b" {
		t.Fatalf("after reopen and a bound of 2: %v, %v", got, err)
	}
}
