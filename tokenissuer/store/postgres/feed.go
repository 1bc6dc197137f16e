package postgres

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// The revocation feed (store.FeedLog) is the table apiaccess_feed and
// its one-row counter apiaccess_feed_head (migration 3). An append
// bumps the counter first: the UPDATE locks the row until commit, so a
// concurrent appender on any node waits, then reads the committed
// count (PostgreSQL docs, "Read Committed Isolation Level"). Appends
// therefore commit in seq order, and a row lock is released only after
// its transaction became visible, so a reader's snapshot that holds seq
// N holds every lower one (the prefix property). A rollback undoes the
// bump as well: no gap.

// feedSQL are the feed's statements.
type feedSQL struct{ bump, insert, read, head, purge string }

func feedQueries(q func(string) string) feedSQL {
	return feedSQL{
		bump: q(`UPDATE {s}.apiaccess_feed_head SET seq = seq + $1 RETURNING seq`),
		// $1 is the first seq; the arrays hold the entries in order.
		insert: q(`INSERT INTO {s}.apiaccess_feed (seq, until, data)
			SELECT $1::bigint + n - 1, u, b FROM unnest($2::timestamptz[], $3::bytea[]) WITH ORDINALITY AS x(u, b, n)`),
		read:  q(`SELECT seq, until, data FROM {s}.apiaccess_feed WHERE seq > $1 AND until > $2 ORDER BY seq LIMIT $3`),
		head:  q(`SELECT seq FROM {s}.apiaccess_feed_head`),
		purge: q(`DELETE FROM {s}.apiaccess_feed WHERE until < $1`),
	}
}

// AppendFeed implements store.FeedLog in one transaction.
func (d *DB) AppendFeed(ctx context.Context, entries []store.FeedEntry) (uint64, error) {
	if len(entries) == 0 {
		return 0, nil
	}
	until := make([]time.Time, len(entries))
	data := make([][]byte, len(entries))
	for i := range entries {
		if err := store.CheckFeedEntry(&entries[i]); err != nil {
			return 0, err
		}
		until[i], data[i] = entries[i].Until, entries[i].Data
		if data[i] == nil {
			data[i] = []byte{} // NULL is refused
		}
	}
	ctx, cancel := d.op(ctx)
	defer cancel()
	var last int64
	err := d.inTx(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, d.sql.feedBump, len(entries)).Scan(&last); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, d.sql.feedInsert, last-int64(len(entries))+1, until, data)
		return err
	})
	if err != nil {
		return 0, err
	}
	return uint64(last), nil
}

// ReadFeed implements store.FeedLog: one statement, one snapshot.
// Expiry is judged by this process's clock, as GetRecord does.
func (d *DB) ReadFeed(ctx context.Context, after uint64, limit int) ([]store.FeedEntry, error) {
	if err := store.CheckFeedLimit(limit); err != nil {
		return nil, err
	}
	if after >= math.MaxInt64 {
		return nil, nil // seq is a bigint: nothing lies beyond
	}
	ctx, cancel := d.op(ctx)
	defer cancel()
	if d.closed.Load() {
		return nil, store.ErrClosed
	}
	rows, err := d.pool.Query(ctx, d.sql.feedRead, int64(after), time.Now(), limit)
	if err != nil {
		return nil, d.result(err)
	}
	defer rows.Close()
	var out []store.FeedEntry
	for rows.Next() {
		var e store.FeedEntry
		var seq int64
		if err := rows.Scan(&seq, &e.Until, &e.Data); err != nil {
			return nil, d.result(err)
		}
		e.Seq, e.Until = uint64(seq), e.Until.UTC()
		out = append(out, e)
	}
	return out, d.result(rows.Err())
}

// FeedHead implements store.FeedLog.
func (d *DB) FeedHead(ctx context.Context) (uint64, error) {
	ctx, cancel := d.op(ctx)
	defer cancel()
	if d.closed.Load() {
		return 0, store.ErrClosed
	}
	var head int64
	err := d.pool.QueryRow(ctx, d.sql.feedHead).Scan(&head)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, errors.New("postgres: the feed's counter row is missing")
	}
	return uint64(head), d.result(err)
}

// PurgeFeed implements store.FeedLog.
func (d *DB) PurgeFeed(ctx context.Context, now time.Time) error {
	ctx, cancel := d.op(ctx)
	defer cancel()
	if d.closed.Load() {
		return store.ErrClosed
	}
	_, err := d.pool.Exec(ctx, d.sql.feedPurge, now)
	return d.result(err)
}

var _ store.FeedLog = (*DB)(nil)
