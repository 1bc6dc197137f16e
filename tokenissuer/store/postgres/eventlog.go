package postgres

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// The System Log is the table apiaccess_log_events (migration 2): one
// row per event, keyed by (published, uuid), the event as jsonb.
// Queries page on that key (keyset pagination), so each page is an
// index range scan however deep into the log it starts; Match runs
// here, on chunks of rows, until Limit events match or the range ends.

const (
	// logChunk is how many rows one query fetches when Match filters.
	logChunk = 1000
	// logPurgeChunk is how many rows one DELETE removes, so a first
	// purge of a large log does not hold one long transaction.
	logPurgeChunk = 10_000
)

// AppendEvents implements store.EventLog: the batch in one INSERT
// (arrays unnested, one round trip); an event at the position of a
// stored one replaces it.
func (d *DB) AppendEvents(ctx context.Context, events []store.LogEvent) error {
	if len(events) == 0 {
		return nil
	}
	type row struct {
		published time.Time
		uuid, typ string
		doc       string
	}
	// Last wins within the batch: one statement cannot update a row twice.
	byKey := make(map[string]int, len(events))
	rows := make([]row, 0, len(events))
	for i := range events {
		e := events[i]
		if err := store.CheckLogEvent(&e); err != nil {
			return err
		}
		e.Published = e.Published.UTC().Truncate(time.Microsecond)
		b, err := json.Marshal(&e)
		if err != nil {
			return fmt.Errorf("encoding log event %s: %w", e.UUID, err)
		}
		r := row{e.Published, e.UUID, columnText(e.EventType), string(jsonbSafe(b))}
		k := strconv.FormatInt(e.Published.UnixMicro(), 10) + "/" + e.UUID
		if j, ok := byKey[k]; ok {
			rows[j] = r
			continue
		}
		byKey[k] = len(rows)
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b row) int {
		return cmp.Or(a.published.Compare(b.published), strings.Compare(a.uuid, b.uuid))
	})
	ps, us, ts, docs := make([]time.Time, len(rows)), make([]string, len(rows)), make([]string, len(rows)), make([]string, len(rows))
	for i, r := range rows {
		ps[i], us[i], ts[i], docs[i] = r.published, r.uuid, r.typ, r.doc
	}
	ctx, cancel := d.op(ctx)
	defer cancel()
	if d.closed.Load() {
		return store.ErrClosed
	}
	_, err := d.pool.Exec(ctx, d.sql.logAppend, ps, us, ts, docs)
	return d.result(err)
}

// columnText makes s storable in a text column: valid UTF-8, no NUL.
func columnText(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// jsonbSafe replaces the escape \u0000 in JSON text with \uFFFD: jsonb
// refuses it (PostgreSQL docs, "JSON Types"), and one event holding a
// NUL (a login typed with one) must not lose its whole batch.
func jsonbSafe(b []byte) []byte {
	nul := []byte(`\u0000`)
	if !bytes.Contains(b, nul) {
		return b
	}
	out := make([]byte, 0, len(b))
	for {
		i := bytes.Index(b, nul)
		if i < 0 {
			return append(out, b...)
		}
		// An escape only if the backslash is not itself escaped: an odd
		// run of backslashes ends at i.
		n := 0
		for j := i; j >= 0 && b[j] == '\\'; j-- {
			n++
		}
		out = append(out, b[:i]...)
		if n%2 == 1 {
			out = append(out, `\uFFFD`...)
		} else {
			out = append(out, nul...)
		}
		b = b[i+len(nul):]
	}
}

// QueryEvents implements store.EventLog.
func (d *DB) QueryEvents(ctx context.Context, q store.LogQuery) ([]store.LogEvent, bool, error) {
	if err := q.Check(); err != nil {
		return nil, false, err
	}
	var (
		cur    time.Time
		curID  string
		hasCur bool
	)
	if q.After != "" {
		cur, curID, _ = store.ParseLogCursor(q.After) // checked above
		hasCur = true
	}
	chunk := logChunk
	if q.Match == nil {
		chunk = q.Limit + 1 // the first row beyond the limit says more
	}
	var out []store.LogEvent
	for {
		sql, args := d.logQuery(q, hasCur, cur, curID, chunk)
		n, last, lastID, more, err := d.queryChunk(ctx, sql, args, q, &out)
		if err != nil {
			return nil, false, err
		}
		if more || n < chunk {
			return out, more, nil
		}
		cur, curID, hasCur = last, lastID, true
	}
}

// logQuery is the SQL for one chunk: the bounds that are set, the
// keyset condition past the cursor, ordered by the primary key.
func (d *DB) logQuery(q store.LogQuery, hasCur bool, cur time.Time, curID string, chunk int) (string, []any) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if !q.Since.IsZero() {
		where = append(where, "published >= "+arg(ceilMicro(q.Since)))
	}
	if !q.Until.IsZero() {
		where = append(where, "published < "+arg(ceilMicro(q.Until)))
	}
	order := "published, uuid"
	if hasCur {
		op := ">"
		if q.Descending {
			op = "<"
		}
		where = append(where, "(published, uuid) "+op+" ("+arg(cur)+"::timestamptz, "+arg(curID)+"::text)")
	}
	if q.Descending {
		order = "published DESC, uuid DESC"
	}
	sql := d.sql.logSelect
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	return sql + " ORDER BY " + order + " LIMIT " + arg(chunk), args
}

// ceilMicro rounds t up to a whole microsecond: pgx would truncate it,
// and for published times (whole microseconds) p >= t holds exactly
// when p >= ceilMicro(t), as the embedded store compares.
func ceilMicro(t time.Time) time.Time {
	if tr := t.Truncate(time.Microsecond); !tr.Equal(t) {
		return tr.Add(time.Microsecond)
	}
	return t
}

// queryChunk runs one chunk's query, appending matching events to out
// up to the limit; it reports the rows read, the last row's key, and
// whether a match beyond the limit was found.
func (d *DB) queryChunk(ctx context.Context, sql string, args []any, q store.LogQuery, out *[]store.LogEvent) (n int, last time.Time, lastID string, more bool, err error) {
	ctx, cancel := d.op(ctx)
	defer cancel()
	if d.closed.Load() {
		return 0, last, "", false, store.ErrClosed
	}
	rows, err := d.pool.Query(ctx, sql, args...)
	if err != nil {
		return 0, last, "", false, d.result(err)
	}
	defer rows.Close()
	var doc []byte
	for rows.Next() {
		if err := rows.Scan(&last, &lastID, &doc); err != nil {
			return 0, last, "", false, d.result(err)
		}
		n++
		if q.Match == nil && len(*out) == q.Limit {
			return n, last, lastID, true, nil // no need to decode it
		}
		var e store.LogEvent
		if err := json.Unmarshal(doc, &e); err != nil {
			return 0, last, "", false, fmt.Errorf("decoding log event %s: %w", lastID, err)
		}
		e.Published = last.UTC()
		if q.Match != nil && !q.Match(&e) {
			continue
		}
		if len(*out) == q.Limit {
			return n, last, lastID, true, nil
		}
		*out = append(*out, e)
	}
	return n, last, lastID, false, d.result(rows.Err())
}

// PurgeEvents implements store.EventLog: the events published before
// the time (unless it is zero), a chunk per statement.
func (d *DB) PurgeEvents(ctx context.Context, before time.Time) error {
	if before.IsZero() {
		return nil
	}
	for {
		n, err := d.purgeEventsChunk(ctx, before)
		if err != nil || n < logPurgeChunk {
			return err
		}
	}
}

func (d *DB) purgeEventsChunk(ctx context.Context, before time.Time) (int64, error) {
	ctx, cancel := d.op(ctx)
	defer cancel()
	if d.closed.Load() {
		return 0, store.ErrClosed
	}
	tag, err := d.pool.Exec(ctx, d.sql.logPurge, before, logPurgeChunk)
	if err != nil {
		return 0, d.result(err)
	}
	return tag.RowsAffected(), nil
}

// logQueries are the System Log's statements.
func logQueries(q func(string) string) (appendSQL, selectSQL, purgeSQL string) {
	appendSQL = q(`INSERT INTO {s}.apiaccess_log_events (published, uuid, event_type, event)
		SELECT p, u, t, e::jsonb FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[]) AS x(p, u, t, e)
		ON CONFLICT (published, uuid) DO UPDATE SET event_type = EXCLUDED.event_type, event = EXCLUDED.event`)
	selectSQL = q(`SELECT published, uuid, event FROM {s}.apiaccess_log_events`)
	// The oldest first, a bounded number at a time, by the key's index.
	purgeSQL = q(`DELETE FROM {s}.apiaccess_log_events WHERE (published, uuid) IN (
		SELECT published, uuid FROM {s}.apiaccess_log_events WHERE published < $1 ORDER BY published, uuid LIMIT $2)`)
	return
}

var _ store.EventLog = (*DB)(nil)
