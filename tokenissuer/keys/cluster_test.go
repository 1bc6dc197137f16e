package keys

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/postgres"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/postgres/pgtest"
)

// postgresNodes opens n stores on one fresh PostgreSQL schema, each
// with its own pool, as n Caddy processes would.
func postgresNodes(t *testing.T, n int) []store.Store {
	t.Helper()
	schema := pgtest.FreshSchema(t, "apiaccess_keys_")
	out := make([]store.Store, n)
	for i := range out {
		db, err := postgres.Open(context.Background(), postgres.Config{DSN: pgtest.DSN(t), Schema: schema})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		out[i] = db
	}
	return out
}

// TestClusterAgreesOnKeys: nodes starting together on an empty database
// create one key pair between them, and nodes due together rotate once
// per schedule; every node then loads the same set.
func TestClusterAgreesOnKeys(t *testing.T) {
	const n = 4
	nodes := postgresNodes(t, n)
	clk := newClock()
	managers := make([]*Manager, n)
	for i, st := range nodes {
		managers[i] = NewManager("default", jwa.ES256, st, sealer(t, secret1), retention, clk.Now)
	}
	var wg sync.WaitGroup
	for _, m := range managers {
		wg.Go(func() {
			if _, err := m.Ensure(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	recs, err := nodes[0].Keys(context.Background(), "default")
	if err != nil || len(recs) != 2 {
		t.Fatalf("%d nodes starting together left %d keys (%v), want one ACTIVE and one NEXT", n, len(recs), err)
	}
	active := one(t, recs, store.KeyActive).KID
	for i, m := range managers {
		if got := m.Current().Active.KeyID(); got != active {
			t.Fatalf("node %d signs with %s, the store's ACTIVE key is %s", i, got, active)
		}
	}

	clk.Advance(25 * time.Hour)
	var mu sync.Mutex
	rotations := 0
	for _, m := range managers {
		wg.Go(func() {
			rotated, err := m.RotateIfDue(context.Background(), 24*time.Hour)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if rotated {
				rotations++
			}
		})
	}
	wg.Wait()
	if rotations != 1 {
		t.Fatalf("%d nodes due together rotated %d times, want 1", n, rotations)
	}
	recs, _ = nodes[0].Keys(context.Background(), "default")
	if len(byState(recs, store.KeyExpired)) != 1 {
		t.Fatalf("records after one rotation: %+v", recs)
	}
	active = one(t, recs, store.KeyActive).KID
	for i, m := range managers {
		if got := m.Current().Active.KeyID(); got != active {
			t.Fatalf("after the rotation node %d signs with %s, want %s", i, got, active)
		}
	}
}
