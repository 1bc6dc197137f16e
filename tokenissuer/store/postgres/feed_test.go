package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/storetest"
)

func TestFeedConformance(t *testing.T) {
	needServer(t)
	storetest.RunFeed(t, func(t *testing.T) store.FeedLog {
		return openTest(t, Config{Schema: freshSchema(t)})
	})
}

// TestFeedCluster: two nodes (separate pools on one schema) append to
// one feed, and each node's reader sees one gap-free sequence.
func TestFeedCluster(t *testing.T) {
	needServer(t)
	schema := freshSchema(t)
	a := openTest(t, Config{Schema: schema, MaxConns: 4})
	b := openTest(t, Config{Schema: schema, MaxConns: 4})
	storetest.RunFeedShared(t, a, b)
}

func TestFeedSurvivesReopen(t *testing.T) {
	needServer(t)
	schema := freshSchema(t)
	storetest.RunFeedReopen(t,
		func(t *testing.T) store.FeedLog { return openTest(t, Config{Schema: schema}) },
		func(t *testing.T, l store.FeedLog) store.FeedLog {
			l.(*DB).Close()
			return openTest(t, Config{Schema: schema})
		})
}

// TestFeedRollbackLeavesNoGap: an append waits for another transaction
// holding the counter row, and once that one rolls back it takes the
// numbers the rolled-back one had.
func TestFeedRollbackLeavesNoGap(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	d := openTest(t, Config{Schema: freshSchema(t)})
	if _, err := d.AppendFeed(ctx, []store.FeedEntry{{Data: []byte("a"), Until: time.Now().Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	tx, err := adminConn(t).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "UPDATE "+pgx.Identifier{d.Schema(), "apiaccess_feed_head"}.Sanitize()+" SET seq = seq + 5"); err != nil {
		t.Fatal(err)
	}
	got := make(chan uint64, 1)
	go func() {
		n, err := d.AppendFeed(ctx, []store.FeedEntry{{Data: []byte("b"), Until: time.Now().Add(time.Hour)}})
		if err != nil {
			t.Error(err)
		}
		got <- n
	}()
	// Wait until the append waits for the row lock.
	watch := adminConn(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting bool
		err := watch.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE '%apiaccess_feed_head%')`).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the append never waited for the counter row")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if h, err := d.FeedHead(ctx); err != nil || h != 1 {
		t.Fatalf("head while an append is uncommitted: %d, %v", h, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if n := <-got; n != 2 {
		t.Fatalf("append after a rolled-back one got seq %d, want 2 (no gap)", n)
	}
}

// TestFeedUnreachableIsUnavailable: the feed's calls without a server
// fail with store.ErrUnavailable. It needs no PostgreSQL.
func TestFeedUnreachableIsUnavailable(t *testing.T) {
	cfg := Config{DSN: "postgres://apiaccess@" + deadPort(t) + "/test?sslmode=disable", Schema: "public", ConnectTimeout: time.Second}
	pc, err := cfg.poolConfig()
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	d := newDB(pool, "public")
	defer d.Close()
	ctx := context.Background()
	_, err = d.AppendFeed(ctx, []store.FeedEntry{{Data: []byte("x"), Until: time.Now().Add(time.Hour)}})
	wantUnavailable(t, "AppendFeed", err)
	_, err = d.ReadFeed(ctx, 0, 10)
	wantUnavailable(t, "ReadFeed", err)
	_, err = d.FeedHead(ctx)
	wantUnavailable(t, "FeedHead", err)
	wantUnavailable(t, "PurgeFeed", d.PurgeFeed(ctx, time.Now()))
}
