package tokenissuer

import (
	"context"
	"errors"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// countingStore is the store the app hands the issuer: every call goes
// to the real one, and a failed call counts in store_errors_total by
// operation. Not failures: ErrNotFound (a normal answer), an error the
// caller's own update function returned (a refused refresh, say), and
// context.Canceled (the client went away; a deadline still counts, as
// a slow store is one to hear about).
type countingStore struct{ s store.Store }

// countStoreErrors wraps s so its failures count in store_errors_total.
func countStoreErrors(s store.Store) store.Store {
	if fl, ok := s.(store.FeedLog); ok {
		return countingFeedStore{countingStore{s: s}, fl}
	}
	return countingStore{s: s}
}

// countingFeedStore is countingStore for a store that keeps the
// revocation feed's log too (both of ours), which the issuer reaches
// through the wrapper.
type countingFeedStore struct {
	countingStore
	fl store.FeedLog
}

func (c countingFeedStore) AppendFeed(ctx context.Context, entries []store.FeedEntry) (uint64, error) {
	seq, err := c.fl.AppendFeed(ctx, entries)
	c.check("append_feed", err, nil)
	return seq, err
}

func (c countingFeedStore) ReadFeed(ctx context.Context, after uint64, limit int) ([]store.FeedEntry, error) {
	r, err := c.fl.ReadFeed(ctx, after, limit)
	c.check("read_feed", err, nil)
	return r, err
}

func (c countingFeedStore) FeedHead(ctx context.Context) (uint64, error) {
	h, err := c.fl.FeedHead(ctx)
	c.check("feed_head", err, nil)
	return h, err
}

func (c countingFeedStore) PurgeFeed(ctx context.Context, now time.Time) error {
	err := c.fl.PurgeFeed(ctx, now)
	c.check("purge_feed", err, nil)
	return err
}

// check counts err as a failure of op unless it is one of the answers
// above; own is the last error the caller's function returned.
func (c countingStore) check(op string, err, own error) {
	if err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, context.Canceled) || (own != nil && errors.Is(err, own)) {
		return
	}
	storeErrors.WithLabelValues(op).Inc()
}

func (c countingStore) Keys(ctx context.Context, as string) ([]store.KeyRecord, error) {
	r, err := c.s.Keys(ctx, as)
	c.check("keys", err, nil)
	return r, err
}

func (c countingStore) UpdateKeys(ctx context.Context, as string, fn func([]store.KeyRecord) ([]store.KeyRecord, error)) error {
	var own error
	err := c.s.UpdateKeys(ctx, as, func(recs []store.KeyRecord) ([]store.KeyRecord, error) {
		out, err := fn(recs)
		own = err
		return out, err
	})
	c.check("update_keys", err, own)
	return err
}

func (c countingStore) Mark(ctx context.Context, namespace, key string, until time.Time) (bool, error) {
	ok, err := c.s.Mark(ctx, namespace, key, until)
	c.check("mark", err, nil)
	return ok, err
}

func (c countingStore) Marked(ctx context.Context, namespace, key string) (bool, error) {
	ok, err := c.s.Marked(ctx, namespace, key)
	c.check("marked", err, nil)
	return ok, err
}

func (c countingStore) Purge(ctx context.Context, now time.Time) error {
	err := c.s.Purge(ctx, now)
	c.check("purge", err, nil)
	return err
}

func (c countingStore) PutRefresh(ctx context.Context, rt store.RefreshToken) error {
	err := c.s.PutRefresh(ctx, rt)
	c.check("put_refresh", err, nil)
	return err
}

func (c countingStore) GetRefresh(ctx context.Context, hash string) (store.RefreshToken, error) {
	rt, err := c.s.GetRefresh(ctx, hash)
	c.check("get_refresh", err, nil)
	return rt, err
}

func (c countingStore) UpdateRefresh(ctx context.Context, hash string, fn func(*store.RefreshToken) error) (store.RefreshToken, error) {
	var own error
	rt, err := c.s.UpdateRefresh(ctx, hash, func(rt *store.RefreshToken) error {
		own = fn(rt)
		return own
	})
	c.check("update_refresh", err, own)
	return rt, err
}

func (c countingStore) PutRecord(ctx context.Context, namespace, key string, value []byte, until time.Time) error {
	err := c.s.PutRecord(ctx, namespace, key, value, until)
	c.check("put_record", err, nil)
	return err
}

func (c countingStore) CreateRecord(ctx context.Context, namespace, key string, value []byte, until time.Time) (bool, error) {
	ok, err := c.s.CreateRecord(ctx, namespace, key, value, until)
	c.check("create_record", err, nil)
	return ok, err
}

func (c countingStore) GetRecord(ctx context.Context, namespace, key string) ([]byte, error) {
	v, err := c.s.GetRecord(ctx, namespace, key)
	c.check("get_record", err, nil)
	return v, err
}

func (c countingStore) UpdateRecord(ctx context.Context, namespace, key string, fn func(old []byte) ([]byte, error)) ([]byte, error) {
	var own error
	v, err := c.s.UpdateRecord(ctx, namespace, key, func(old []byte) ([]byte, error) {
		nv, err := fn(old)
		own = err
		return nv, err
	})
	c.check("update_record", err, own)
	return v, err
}

func (c countingStore) Incr(ctx context.Context, namespace, key string, delta int64, until time.Time) (int64, error) {
	n, err := c.s.Incr(ctx, namespace, key, delta, until)
	c.check("incr", err, nil)
	return n, err
}

func (c countingStore) ListRecords(ctx context.Context, namespace, prefix, after string, limit int) ([]store.Record, error) {
	r, err := c.s.ListRecords(ctx, namespace, prefix, after, limit)
	c.check("list_records", err, nil)
	return r, err
}

// Explicit methods, not an embedded Store: a method added to the
// interface must be counted here to compile.
var _ store.Store = countingStore{}
