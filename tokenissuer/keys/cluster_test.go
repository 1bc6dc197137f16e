package keys

import (
	"bytes"
	"context"
	"errors"
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

// TestClusterWrongSecretNodeIsRefused replays the finding on a shared
// PostgreSQL store: one node misconfigured with another secret and
// another algorithm starts, is refused without writing, and the
// correctly configured node still starts and signs. Before the fix the
// refused node left ACTIVE/NEXT keys sealed with its secret, and every
// node sharing the store failed to start.
func TestClusterWrongSecretNodeIsRefused(t *testing.T) {
	nodes := postgresNodes(t, 2)
	clk := newClock()
	ctx := context.Background()
	ensure(t, NewManager("default", jwa.ES256, nodes[0], sealer(t, secret1), retention, clk.Now))
	before := snapshot(t, nodes[0], "default")

	clk.Advance(time.Hour)
	bad := NewManager("default", jwa.RS256, nodes[1], sealer(t, secret2), retention, clk.Now)
	if err := CheckSecret(ctx, nodes[1], sealer(t, secret2), clk.Now(), "default"); !errors.Is(err, ErrUnseal) {
		t.Fatalf("CheckSecret on the misconfigured node: err = %v, want ErrUnseal", err)
	}
	if _, err := bad.Ensure(ctx); !errors.Is(err, ErrUnseal) {
		t.Fatalf("Ensure on the misconfigured node: err = %v, want ErrUnseal", err)
	}
	if _, err := bad.Rotate(ctx); !errors.Is(err, ErrUnseal) {
		t.Fatalf("Rotate on the misconfigured node: err = %v, want ErrUnseal", err)
	}
	if got := snapshot(t, nodes[0], "default"); !bytes.Equal(got, before) {
		t.Fatalf("the refused node changed the shared store:\nbefore %s\nafter  %s", before, got)
	}

	good := NewManager("default", jwa.ES256, nodes[0], sealer(t, secret1), retention, clk.Now)
	if what := ensure(t, good); what != "" {
		t.Fatalf("the right node's restart reported %q, want no change", what)
	}
	signs(t, good)
}
