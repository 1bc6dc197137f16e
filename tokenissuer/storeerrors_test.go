package tokenissuer

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/embedded"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/storetest"
)

// The decorator changes nothing a store does: it passes the suite
// every store must pass.
func TestCountingStoreConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		db, err := embedded.Open(filepath.Join(t.TempDir(), "x.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return countStoreErrors(db)
	})
}

// The issuer reaches the feed log through the decorator: it keeps it,
// and changes nothing it does.
func TestCountingStoreKeepsTheFeed(t *testing.T) {
	storetest.RunFeed(t, func(t *testing.T) store.FeedLog {
		db, err := embedded.Open(filepath.Join(t.TempDir(), "x.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		fl, ok := countStoreErrors(db).(store.FeedLog)
		if !ok {
			t.Fatal("the decorated store hides the feed log")
		}
		return fl
	})
}

// failingStore answers every call with err (after running fn, if any,
// whose error then wins as in a real store).
type failingStore struct{ err error }

func (f failingStore) Keys(context.Context, string) ([]store.KeyRecord, error) { return nil, f.err }
func (f failingStore) UpdateKeys(_ context.Context, _ string, fn func([]store.KeyRecord) ([]store.KeyRecord, error)) error {
	if _, err := fn(nil); err != nil {
		return fmt.Errorf("update keys: %w", err)
	}
	return f.err
}
func (f failingStore) Mark(context.Context, string, string, time.Time) (bool, error) {
	return false, f.err
}
func (f failingStore) Marked(context.Context, string, string) (bool, error) { return false, f.err }
func (f failingStore) Purge(context.Context, time.Time) error               { return f.err }
func (f failingStore) PutRefresh(context.Context, store.RefreshToken) error { return f.err }
func (f failingStore) GetRefresh(context.Context, string) (store.RefreshToken, error) {
	return store.RefreshToken{}, f.err
}
func (f failingStore) UpdateRefresh(_ context.Context, _ string, fn func(*store.RefreshToken) error) (store.RefreshToken, error) {
	if err := fn(&store.RefreshToken{}); err != nil {
		return store.RefreshToken{}, err
	}
	return store.RefreshToken{}, f.err
}
func (f failingStore) PutRecord(context.Context, string, string, []byte, time.Time) error {
	return f.err
}
func (f failingStore) CreateRecord(context.Context, string, string, []byte, time.Time) (bool, error) {
	return false, f.err
}
func (f failingStore) GetRecord(context.Context, string, string) ([]byte, error) { return nil, f.err }
func (f failingStore) UpdateRecord(_ context.Context, _, _ string, fn func([]byte) ([]byte, error)) ([]byte, error) {
	if _, err := fn(nil); err != nil {
		return nil, err
	}
	return nil, f.err
}
func (f failingStore) Incr(context.Context, string, string, int64, time.Time) (int64, error) {
	return 0, f.err
}
func (f failingStore) ListRecords(context.Context, string, string, string, int) ([]store.Record, error) {
	return nil, f.err
}

// calls makes one call of every method of s; fnErr is what the update
// functions return.
func calls(s store.Store, fnErr error) map[string]func() error {
	ctx := context.Background()
	return map[string]func() error{
		"keys": func() error { _, err := s.Keys(ctx, "a"); return err },
		"update_keys": func() error {
			return s.UpdateKeys(ctx, "a", func(r []store.KeyRecord) ([]store.KeyRecord, error) { return r, fnErr })
		},
		"mark":        func() error { _, err := s.Mark(ctx, "n", "k", time.Now()); return err },
		"marked":      func() error { _, err := s.Marked(ctx, "n", "k"); return err },
		"purge":       func() error { return s.Purge(ctx, time.Now()) },
		"put_refresh": func() error { return s.PutRefresh(ctx, store.RefreshToken{}) },
		"get_refresh": func() error { _, err := s.GetRefresh(ctx, "h"); return err },
		"update_refresh": func() error {
			_, err := s.UpdateRefresh(ctx, "h", func(*store.RefreshToken) error { return fnErr })
			return err
		},
		"put_record":    func() error { return s.PutRecord(ctx, "n", "k", nil, time.Now()) },
		"create_record": func() error { _, err := s.CreateRecord(ctx, "n", "k", nil, time.Now()); return err },
		"get_record":    func() error { _, err := s.GetRecord(ctx, "n", "k"); return err },
		"update_record": func() error {
			_, err := s.UpdateRecord(ctx, "n", "k", func(b []byte) ([]byte, error) { return b, fnErr })
			return err
		},
		"incr":         func() error { _, err := s.Incr(ctx, "n", "k", 1, time.Now()); return err },
		"list_records": func() error { _, err := s.ListRecords(ctx, "n", "k", "", 1); return err },
	}
}

// A failing store counts one error per failed call under the method's
// name; not-found answers, abandoned requests and the caller's own
// refusals count nothing, and every error reaches the caller unchanged.
func TestCountingStoreCountsFailures(t *testing.T) {
	reg := newTestRegistry(t)
	const name = "caddy_token_issuer_store_errors_total"
	down := fmt.Errorf("dial tcp: connection refused: %w", store.ErrUnavailable)
	refused := errors.New("refresh token reused")
	for _, c := range []struct {
		what       string
		err, fnErr error
		counted    bool
	}{
		{"store down", down, nil, true},
		{"deadline", context.DeadlineExceeded, nil, true},
		{"not found", fmt.Errorf("get: %w", store.ErrNotFound), nil, false},
		{"client gone", fmt.Errorf("query: %w", context.Canceled), nil, false},
		{"no error", nil, nil, false},
	} {
		for op, call := range calls(countStoreErrors(failingStore{c.err}), c.fnErr) {
			before := count(t, reg, name, "operation="+op)
			if err := call(); !errors.Is(err, c.err) {
				t.Errorf("%s: %s returned %v, want %v", c.what, op, err, c.err)
			}
			want := 0.0
			if c.counted {
				want = 1
			}
			if d := count(t, reg, name, "operation="+op) - before; d != want {
				t.Errorf("%s: %s counted %v errors, want %v", c.what, op, d, want)
			}
		}
	}
	// The update functions' own errors are the caller's decisions.
	for op, call := range calls(countStoreErrors(failingStore{down}), refused) {
		before := count(t, reg, name, "operation="+op)
		err := call()
		switch op {
		case "update_keys", "update_refresh", "update_record":
			if !errors.Is(err, refused) {
				t.Errorf("%s returned %v, want the function's error", op, err)
			}
			if d := count(t, reg, name, "operation="+op) - before; d != 0 {
				t.Errorf("%s counted its function's error as a store error", op)
			}
		}
	}
}
