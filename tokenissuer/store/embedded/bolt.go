// Package embedded is the default store: one bbolt file in Caddy's data
// directory, nothing to set up. One process at a time may open a file.
package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

var (
	bucketKeys    = []byte("keys")
	bucketMarks   = []byte("marks")
	bucketRefresh = []byte("refresh")
	bucketRecords = []byte("records")
)

// DB is a bbolt-backed store.Store.
type DB struct {
	db *bolt.DB
	// The System Log's limits (SetLogLimits): retention in nanoseconds
	// and the most events kept.
	logRetention, logMax atomic.Int64
}

// Open opens (creating if needed) the store file at path. The file and
// its directory are private to the owner: they hold sealed signing keys.
func Open(path string) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating store directory: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("opening store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketKeys, bucketMarks, bucketRefresh, bucketRecords, bucketLog, bucketLogMeta, bucketFeed} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialising store %s: %w", path, err)
	}
	d := &DB{db: db}
	d.SetLogLimits(store.DefaultLogRetention, DefaultLogMaxEvents)
	return d, nil
}

// Close closes the file.
func (d *DB) Close() error { return d.db.Close() }

// closed maps bbolt's error for a closed file to store.ErrClosed.
func closed(err error) error {
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return store.ErrClosed
	}
	return err
}

// Keys implements store.Store.
func (d *DB) Keys(_ context.Context, as string) ([]store.KeyRecord, error) {
	var out []store.KeyRecord
	err := d.db.View(func(tx *bolt.Tx) error {
		var err error
		out, err = readKeys(tx, as)
		return err
	})
	return out, closed(err)
}

// UpdateKeys implements store.Store; bbolt serialises writers, so the
// read-modify-write is atomic.
func (d *DB) UpdateKeys(_ context.Context, as string, fn func([]store.KeyRecord) ([]store.KeyRecord, error)) error {
	return closed(d.db.Update(func(tx *bolt.Tx) error {
		cur, err := readKeys(tx, as)
		if err != nil {
			return err
		}
		next, err := fn(cur)
		if err != nil {
			return err
		}
		b, err := json.Marshal(next)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketKeys).Put([]byte(as), b)
	}))
}

func readKeys(tx *bolt.Tx, as string) ([]store.KeyRecord, error) {
	v := tx.Bucket(bucketKeys).Get([]byte(as))
	if v == nil {
		return nil, nil
	}
	var recs []store.KeyRecord
	if err := json.Unmarshal(v, &recs); err != nil {
		return nil, fmt.Errorf("decoding keys of %q: %w", as, err)
	}
	return recs, nil
}

func markKey(ns, key string) []byte { return []byte(ns + "\x00" + key) }

// Mark implements store.Store.
func (d *DB) Mark(_ context.Context, ns, key string, until time.Time) (bool, error) {
	fresh := false
	err := d.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMarks)
		k := markKey(ns, key)
		if v := b.Get(k); len(v) == 8 && time.Unix(0, int64(binary.BigEndian.Uint64(v))).After(time.Now()) {
			return nil
		}
		fresh = true
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], uint64(until.UnixNano()))
		return b.Put(k, v[:])
	})
	return fresh, closed(err)
}

// Marked implements store.Store.
func (d *DB) Marked(_ context.Context, ns, key string) (bool, error) {
	found := false
	err := d.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMarks).Get(markKey(ns, key))
		found = len(v) == 8 && time.Unix(0, int64(binary.BigEndian.Uint64(v))).After(time.Now())
		return nil
	})
	return found, closed(err)
}

// Purge implements store.Store. It also drops expired feed entries
// (PurgeFeed) and applies the System Log's retention and size bound
// (SetLogLimits), so the issuer's maintenance keeps both.
func (d *DB) Purge(ctx context.Context, now time.Time) error {
	if err := d.purgeMarks(now); err != nil {
		return err
	}
	if err := d.PurgeFeed(ctx, now); err != nil {
		return err
	}
	return d.purgeLog(ctx, now)
}

func (d *DB) purgeMarks(now time.Time) error {
	return closed(d.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketMarks).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(v) != 8 || time.Unix(0, int64(binary.BigEndian.Uint64(v))).Before(now) {
				if err := c.Delete(); err != nil {
					return err
				}
			}
		}
		c = tx.Bucket(bucketRecords).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(v) < 8 || time.Unix(0, int64(binary.BigEndian.Uint64(v))).Before(now) {
				if err := c.Delete(); err != nil {
					return err
				}
			}
		}
		c = tx.Bucket(bucketRefresh).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var rt store.RefreshToken
			if json.Unmarshal(v, &rt) != nil || rt.IdleExpires.Before(now) || rt.FamilyExpires.Before(now) {
				if err := c.Delete(); err != nil {
					return err
				}
			}
		}
		return nil
	}))
}

// PutRefresh implements store.Store.
func (d *DB) PutRefresh(_ context.Context, rt store.RefreshToken) error {
	b, err := json.Marshal(rt)
	if err != nil {
		return err
	}
	return closed(d.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRefresh).Put([]byte(rt.Hash), b)
	}))
}

// GetRefresh implements store.Store.
func (d *DB) GetRefresh(_ context.Context, hash string) (store.RefreshToken, error) {
	var rt store.RefreshToken
	err := d.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketRefresh).Get([]byte(hash))
		if v == nil {
			return store.ErrNotFound
		}
		return json.Unmarshal(v, &rt)
	})
	return rt, closed(err)
}

// UpdateRefresh implements store.Store.
func (d *DB) UpdateRefresh(_ context.Context, hash string, fn func(*store.RefreshToken) error) (store.RefreshToken, error) {
	var rt store.RefreshToken
	err := d.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRefresh)
		v := b.Get([]byte(hash))
		if v == nil {
			return store.ErrNotFound
		}
		if err := json.Unmarshal(v, &rt); err != nil {
			return err
		}
		if err := fn(&rt); err != nil {
			return err
		}
		nv, err := json.Marshal(rt)
		if err != nil {
			return err
		}
		return b.Put([]byte(hash), nv)
	})
	return rt, closed(err)
}

// Records are stored as 8 bytes of expiry (Unix nanoseconds) + value.

// PutRecord implements store.Store.
func (d *DB) PutRecord(_ context.Context, ns, key string, value []byte, until time.Time) error {
	v := make([]byte, 8+len(value))
	binary.BigEndian.PutUint64(v, uint64(until.UnixNano()))
	copy(v[8:], value)
	return closed(d.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRecords).Put(markKey(ns, key), v)
	}))
}

// CreateRecord implements store.Store; bbolt serialises writers, so the
// check and the put are atomic.
func (d *DB) CreateRecord(_ context.Context, ns, key string, value []byte, until time.Time) (bool, error) {
	created := false
	err := d.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		k := markKey(ns, key)
		if v := b.Get(k); len(v) >= 8 && time.Unix(0, int64(binary.BigEndian.Uint64(v))).After(time.Now()) {
			return nil
		}
		created = true
		v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(value)), uint64(until.UnixNano()))
		return b.Put(k, append(v, value...))
	})
	return created && err == nil, closed(err)
}

// GetRecord implements store.Store.
func (d *DB) GetRecord(_ context.Context, ns, key string) ([]byte, error) {
	var out []byte
	err := d.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketRecords).Get(markKey(ns, key))
		if len(v) < 8 || !time.Unix(0, int64(binary.BigEndian.Uint64(v))).After(time.Now()) {
			return store.ErrNotFound
		}
		out = append([]byte(nil), v[8:]...)
		return nil
	})
	return out, closed(err)
}

// UpdateRecord implements store.Store.
func (d *DB) UpdateRecord(_ context.Context, ns, key string, fn func([]byte) ([]byte, error)) ([]byte, error) {
	var old []byte
	err := d.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		k := markKey(ns, key)
		v := b.Get(k)
		if len(v) < 8 || !time.Unix(0, int64(binary.BigEndian.Uint64(v))).After(time.Now()) {
			return store.ErrNotFound
		}
		old = append([]byte(nil), v[8:]...)
		nv, err := fn(old)
		if err != nil {
			return err
		}
		if nv == nil {
			return b.Delete(k)
		}
		out := make([]byte, 8+len(nv))
		copy(out, v[:8])
		copy(out[8:], nv)
		return b.Put(k, out)
	})
	return old, closed(err)
}

// Incr implements store.Store; bbolt serialises writers, so the
// read-add-write is atomic.
func (d *DB) Incr(_ context.Context, ns, key string, delta int64, until time.Time) (int64, error) {
	var n int64
	err := d.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		k := markKey(ns, key)
		exp := uint64(until.UnixNano())
		n = delta
		if v := b.Get(k); len(v) >= 8 && time.Unix(0, int64(binary.BigEndian.Uint64(v))).After(time.Now()) {
			old, err := strconv.ParseInt(string(v[8:]), 10, 64)
			if err != nil {
				return fmt.Errorf("record %s/%q is not a counter", ns, key)
			}
			n, exp = old+delta, binary.BigEndian.Uint64(v)
		}
		v := binary.BigEndian.AppendUint64(make([]byte, 0, 28), exp)
		return b.Put(k, strconv.AppendInt(v, n, 10))
	})
	return n, closed(err)
}

// ListRecords implements store.Store: a cursor from the first key
// after after (or from prefix) while keys hold the prefix.
func (d *DB) ListRecords(_ context.Context, ns, prefix, after string, limit int) ([]store.Record, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("ListRecords: limit %d, want a positive one", limit)
	}
	var out []store.Record
	err := d.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRecords).Cursor()
		p := markKey(ns, prefix)
		from, skip := p, []byte(nil)
		if a := markKey(ns, after); after != "" && bytes.Compare(a, p) >= 0 {
			from, skip = a, a
		}
		now := time.Now()
		for k, v := c.Seek(from); k != nil && bytes.HasPrefix(k, p) && len(out) < limit; k, v = c.Next() {
			if skip != nil && bytes.Equal(k, skip) {
				continue
			}
			if len(v) < 8 || !time.Unix(0, int64(binary.BigEndian.Uint64(v))).After(now) {
				continue
			}
			out = append(out, store.Record{Key: string(k[len(ns)+1:]), Value: append([]byte(nil), v[8:]...)})
		}
		return nil
	})
	return out, closed(err)
}

var _ store.Store = (*DB)(nil)
