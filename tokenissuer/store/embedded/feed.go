package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// The revocation feed (store.FeedLog) is the bucket "feed": key the
// 8-byte big-endian seq, value 8 bytes of Until (Unix nanoseconds) and
// the data. The bucket's sequence is the head: bbolt keeps it in the
// bucket header, in the same write transaction as the entries, so
// appends commit in seq order, a failed one rolls its numbers back, and
// deleting entries never lowers it.
var bucketFeed = []byte("feed")

func feedKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq) }

// feedUntil is how an Until is kept: UTC, whole microseconds, as
// PostgreSQL keeps it.
func feedUntil(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// AppendFeed implements store.FeedLog: one write transaction.
func (d *DB) AppendFeed(_ context.Context, entries []store.FeedEntry) (uint64, error) {
	if len(entries) == 0 {
		return 0, nil
	}
	for i := range entries {
		if err := store.CheckFeedEntry(&entries[i]); err != nil {
			return 0, err
		}
	}
	var last uint64
	err := d.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFeed)
		b.FillPercent = 0.9 // appended at the end
		seq := b.Sequence()
		for _, e := range entries {
			seq++
			v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(e.Data)), uint64(feedUntil(e.Until).UnixNano()))
			if err := b.Put(feedKey(seq), append(v, e.Data...)); err != nil {
				return err
			}
		}
		last = seq
		return b.SetSequence(seq)
	})
	if err != nil {
		return 0, closed(err)
	}
	return last, nil
}

// ReadFeed implements store.FeedLog: one read transaction, a snapshot
// of committed appends.
func (d *DB) ReadFeed(_ context.Context, after uint64, limit int) ([]store.FeedEntry, error) {
	if err := store.CheckFeedLimit(limit); err != nil {
		return nil, err
	}
	if after == ^uint64(0) {
		return nil, nil
	}
	now := time.Now()
	var out []store.FeedEntry
	err := d.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketFeed).Cursor()
		for k, v := c.Seek(feedKey(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			if len(k) != 8 || len(v) < 8 {
				continue
			}
			until := time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC()
			if !until.After(now) {
				continue
			}
			out = append(out, store.FeedEntry{Seq: binary.BigEndian.Uint64(k), Data: bytes.Clone(v[8:]), Until: until})
		}
		return nil
	})
	return out, closed(err)
}

// FeedHead implements store.FeedLog.
func (d *DB) FeedHead(context.Context) (uint64, error) {
	var head uint64
	err := d.db.View(func(tx *bolt.Tx) error {
		head = tx.Bucket(bucketFeed).Sequence()
		return nil
	})
	return head, closed(err)
}

// PurgeFeed implements store.FeedLog, a chunk per write transaction.
func (d *DB) PurgeFeed(ctx context.Context, now time.Time) error {
	for {
		n := 0
		err := d.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketFeed)
			var doomed [][]byte
			c := b.Cursor()
			for k, v := c.First(); k != nil && len(doomed) < purgeChunk; k, v = c.Next() {
				if len(v) < 8 || time.Unix(0, int64(binary.BigEndian.Uint64(v))).Before(now) {
					doomed = append(doomed, bytes.Clone(k))
				}
			}
			for _, k := range doomed {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			n = len(doomed)
			return nil
		})
		if err != nil || n < purgeChunk {
			return closed(err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

var _ store.FeedLog = (*DB)(nil)
