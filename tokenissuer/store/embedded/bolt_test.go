package embedded

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/storetest"
)

func open(t *testing.T, path string) *DB {
	t.Helper()
	db, err := Open(path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return db
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		db := open(t, filepath.Join(t.TempDir(), "x.db"))
		t.Cleanup(func() { db.Close() })
		return db
	})
}

func TestDataSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "x.db")
	db := open(t, path)
	created := time.Unix(1_700_000_000, 0).UTC()
	err := db.UpdateKeys(ctx, "default", func([]store.KeyRecord) ([]store.KeyRecord, error) {
		return []store.KeyRecord{{KID: "k1", Alg: "RS256", State: store.KeyActive, Created: created, Sealed: []byte("s")}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fresh, err := db.Mark(ctx, store.NSRevoked, "jti", time.Now().Add(time.Hour)); err != nil || !fresh {
		t.Fatalf("Mark = %v, %v", fresh, err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	db = open(t, path)
	defer db.Close()
	recs, err := db.Keys(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].KID != "k1" || recs[0].State != store.KeyActive ||
		!recs[0].Created.Equal(created) || string(recs[0].Sealed) != "s" {
		t.Fatalf("after reopen Keys = %+v, want the k1 record", recs)
	}
	if ok, err := db.Marked(ctx, store.NSRevoked, "jti"); err != nil || !ok {
		t.Fatalf("after reopen Marked = %v, %v; a revocation was lost", ok, err)
	}
	if fresh, err := db.Mark(ctx, store.NSRevoked, "jti", time.Now().Add(time.Hour)); err != nil || fresh {
		t.Fatalf("after reopen Mark of a used key = %v, %v; want false (replay)", fresh, err)
	}
}

func TestFileIsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "token_issuer")
	path := filepath.Join(dir, "issuer.db")
	db := open(t, path)
	defer db.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("store file mode = %o, want 600 (it holds sealed signing keys)", m)
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m := di.Mode().Perm(); m != 0o700 {
		t.Errorf("created store directory mode = %o, want 700", m)
	}
}

// TestClosedReportsErrClosed: a store used after Close says so with
// store.ErrClosed, as the interface documents.
func TestClosedReportsErrClosed(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "c.db"))
	db.Close()
	ctx := context.Background()
	if _, err := db.Keys(ctx, "a"); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Keys after Close: %v", err)
	}
	if _, err := db.Mark(ctx, "ns", "k", time.Now().Add(time.Hour)); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Mark after Close: %v", err)
	}
}
