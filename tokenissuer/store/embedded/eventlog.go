package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	json "github.com/goccy/go-json"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// Events are encoded with goccy/go-json, which writes the JSON
// encoding/json writes (sorted map keys, HTML escaping; only some floats
// are spelt otherwise, 1e-07 for 1e-7, with the same value) and decodes
// as it does, at a fraction of the cost: decoding dominates a query (about 4x faster over 1M events)
// and encoding every gateway decision's event (BENCHMARKS.md).
//
// The System Log is the bucket "log": key 8 bytes of published time
// (Unix nanoseconds, sign bit flipped so that big-endian byte order is
// time order) + the UUID, value the event's JSON, so a cursor walks
// events in (published, uuid) order. "logmeta" holds the number of
// events, kept by every write, for the size bound.
var (
	bucketLog     = []byte("log")
	bucketLogMeta = []byte("logmeta")
	metaCount     = []byte("count")
)

// DefaultLogMaxEvents is the embedded store's size bound unless
// configured otherwise. A typical event (1.3 KB of JSON) takes about
// 2 KB of the file: bbolt's 4 KB pages hold two such events.
const DefaultLogMaxEvents = 1_000_000

const (
	// scanChunk is how many keys a query reads per read transaction, so
	// a long scan does not hold one open (a writer growing the file
	// waits for open readers).
	scanChunk = 4096
	// purgeChunk is how many events one purge transaction deletes, so
	// writers are not held up for long.
	purgeChunk = 10_000
)

// SetLogLimits sets how long events are kept (retention; 0 keeps them
// until the size bound drops them) and the most events kept (maxEvents;
// 0: no bound). Purge applies them; a handle shared across config
// reloads takes the latest configuration's values.
func (d *DB) SetLogLimits(retention time.Duration, maxEvents int) {
	d.logRetention.Store(int64(retention))
	d.logMax.Store(int64(maxEvents))
}

func timeKey(t time.Time) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 48), uint64(t.UnixNano())^(1<<63))
}

func eventKey(t time.Time, id string) []byte { return append(timeKey(t), id...) }

// normalise gives e the published time every store keeps: UTC, whole
// microseconds (PostgreSQL's precision), so cursors agree across stores.
func normalise(e *store.LogEvent) {
	e.Published = e.Published.UTC().Truncate(time.Microsecond)
}

// AppendEvents implements store.EventLog: the batch in one write
// transaction.
func (d *DB) AppendEvents(_ context.Context, events []store.LogEvent) error {
	if len(events) == 0 {
		return nil
	}
	type kv struct{ k, v []byte }
	rows := make([]kv, 0, len(events))
	for i := range events {
		e := events[i]
		if err := store.CheckLogEvent(&e); err != nil {
			return err
		}
		normalise(&e)
		v, err := json.Marshal(&e)
		if err != nil {
			return fmt.Errorf("encoding log event %s: %w", e.UUID, err)
		}
		rows = append(rows, kv{eventKey(e.Published, e.UUID), v})
	}
	// bbolt fills pages best with keys in order.
	slices.SortStableFunc(rows, func(a, b kv) int { return bytes.Compare(a.k, b.k) })
	return closed(d.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLog)
		b.FillPercent = 0.9 // mostly appended at the end
		added := int64(0)
		for _, r := range rows {
			if b.Get(r.k) == nil {
				added++
			}
			if err := b.Put(r.k, r.v); err != nil {
				return err
			}
		}
		return addCount(tx, added)
	}))
}

func eventCount(tx *bolt.Tx) int64 {
	v := tx.Bucket(bucketLogMeta).Get(metaCount)
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

func addCount(tx *bolt.Tx, delta int64) error {
	if delta == 0 {
		return nil
	}
	n := max(eventCount(tx)+delta, 0)
	return tx.Bucket(bucketLogMeta).Put(metaCount, binary.BigEndian.AppendUint64(nil, uint64(n)))
}

// scan is a query's position between read transactions.
type scan struct {
	q         store.LogQuery
	lo, hi    []byte // keys in [lo, hi) are in range; nil: unbounded
	next      []byte // where to go on: ascending the first key to read, descending the bound below which to read
	incl      bool   // descending: next itself may be read
	out       []store.LogEvent
	more, end bool
}

// QueryEvents implements store.EventLog. It walks the keys from Since
// or the cursor towards Until (or backwards), decoding events and
// applying Match, until Limit events match and one more is found (more
// = true) or the range ends.
func (d *DB) QueryEvents(ctx context.Context, q store.LogQuery) ([]store.LogEvent, bool, error) {
	if err := q.Check(); err != nil {
		return nil, false, err
	}
	s := &scan{q: q}
	if !q.Since.IsZero() {
		s.lo = timeKey(q.Since)
	}
	if !q.Until.IsZero() {
		s.hi = timeKey(q.Until)
	}
	if q.After != "" {
		t, id, _ := store.ParseLogCursor(q.After) // checked above
		c := eventKey(t, id)
		if q.Descending {
			if s.hi == nil || bytes.Compare(c, s.hi) < 0 {
				s.hi = c
			}
		} else {
			// The first key after c: c with a zero byte appended.
			c = append(c, 0)
			if s.lo == nil || bytes.Compare(c, s.lo) > 0 {
				s.lo = c
			}
		}
	}
	if q.Descending {
		s.next = s.hi
	} else {
		s.next = s.lo
	}
	for !s.end {
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		if err := d.db.View(s.chunk); err != nil {
			return nil, false, closed(err)
		}
	}
	return s.out, s.more, nil
}

// chunk reads up to scanChunk keys from where the scan stopped.
func (s *scan) chunk(tx *bolt.Tx) error {
	c := tx.Bucket(bucketLog).Cursor()
	var k, v []byte
	switch {
	case s.q.Descending && s.next == nil:
		k, v = c.Last()
	case s.q.Descending:
		// The largest key below next (or next itself, when incl).
		if k, v = c.Seek(s.next); k == nil {
			k, v = c.Last()
		} else if !s.incl || !bytes.Equal(k, s.next) {
			k, v = c.Prev()
		}
	case s.next == nil:
		k, v = c.First()
	default:
		k, v = c.Seek(s.next)
	}
	for n := 0; ; n++ {
		if k == nil || (s.q.Descending && s.lo != nil && bytes.Compare(k, s.lo) < 0) ||
			(!s.q.Descending && s.hi != nil && bytes.Compare(k, s.hi) >= 0) {
			s.end = true
			return nil
		}
		if n == scanChunk {
			s.next, s.incl = bytes.Clone(k), true // resume at k itself
			return nil
		}
		if s.q.Match == nil && len(s.out) == s.q.Limit {
			s.more, s.end = true, true // no need to decode it
			return nil
		}
		var e store.LogEvent
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("decoding log event %x: %w", k, err)
		}
		if s.q.Match == nil || s.q.Match(&e) {
			if len(s.out) == s.q.Limit {
				s.more, s.end = true, true
				return nil
			}
			s.out = append(s.out, e)
		}
		if s.q.Descending {
			k, v = c.Prev()
		} else {
			k, v = c.Next()
		}
	}
}

// PurgeEvents implements store.EventLog: events published before the
// time (unless it is zero), then the oldest beyond the size bound, a chunk per write
// transaction.
func (d *DB) PurgeEvents(ctx context.Context, before time.Time) error {
	for limit := timeKey(before); !before.IsZero(); {
		n, err := d.dropOldest(func(k []byte, _ int64) bool { return bytes.Compare(k, limit) < 0 })
		if err != nil {
			return err
		}
		if n < purgeChunk {
			break
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	maxEvents := d.logMax.Load()
	if maxEvents <= 0 {
		return nil
	}
	for {
		n, err := d.dropOldest(func(_ []byte, count int64) bool { return count > maxEvents })
		if err != nil {
			return err
		}
		if n < purgeChunk {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// dropOldest deletes up to purgeChunk of the oldest events while drop
// says so, given the key and the number of events left, in one write
// transaction; it returns how many it deleted.
func (d *DB) dropOldest(drop func(k []byte, count int64) bool) (int, error) {
	n := 0
	err := d.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLog)
		count := eventCount(tx)
		// Collect the keys, then delete them: the walk never sees a
		// page it is changing.
		var doomed [][]byte
		c := b.Cursor()
		for k, _ := c.First(); k != nil && len(doomed) < purgeChunk && drop(k, count-int64(len(doomed))); k, _ = c.Next() {
			doomed = append(doomed, bytes.Clone(k))
		}
		for _, k := range doomed {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(doomed)
		return addCount(tx, -int64(n))
	})
	return n, closed(err)
}

// purgeLog applies the configured retention and size bound as of now;
// Purge calls it, so the issuer's maintenance loop keeps the log.
func (d *DB) purgeLog(ctx context.Context, now time.Time) error {
	var before time.Time // zero: no retention, only the size bound
	if r := time.Duration(d.logRetention.Load()); r > 0 {
		before = now.Add(-r)
	}
	return d.PurgeEvents(ctx, before)
}

var _ store.EventLog = (*DB)(nil)
