// Package postgres is the shared store: the issuer's state in a
// PostgreSQL database, so several Caddy instances can issue for the same
// authorization servers. Tables are created and upgraded by versioned
// migrations when the store opens (migrate.go). Tested with PostgreSQL 15.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// Config says where the store is and how the connection pool behaves.
// Zero values keep the DSN's settings (pool_max_conns and so on) or
// pgxpool's defaults.
type Config struct {
	// DSN is a PostgreSQL connection string, URL or key=value form.
	DSN string
	// Schema holds the tables; created if missing. Empty: the first
	// existing schema of the connection's search_path (usually public).
	Schema string
	// MaxConns, MinConns, MaxConnLifetime and MaxConnIdleTime size the
	// pool, as the Module fields of the same names document.
	MaxConns        int32
	MinConns        int32
	MaxConnLifetime time.Duration
	MaxConnIdleTime time.Duration
	// ConnectTimeout bounds each new connection. Default: the DSN's
	// connect_timeout, else DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// OperationTimeout bounds each store operation, so a database that
	// hangs without dropping the connection fails requests (503) rather
	// than holding them. Default: DefaultOperationTimeout.
	OperationTimeout time.Duration
	// LogRetention is how long System Log events are kept; Purge
	// deletes older ones. Default: store.DefaultLogRetention.
	LogRetention time.Duration
}

// DefaultOperationTimeout bounds one store operation when the
// configuration does not.
const DefaultOperationTimeout = 10 * time.Second

// DefaultConnectTimeout bounds a connection attempt when neither the
// configuration nor the DSN does: without it an unreachable host holds
// a request for the operating system's TCP timeout.
const DefaultConnectTimeout = 5 * time.Second

// MinLogRetention is the shortest log retention accepted, so that a
// slip (`90m` for `90d`) does not empty the log at every maintenance.
const MinLogRetention = time.Hour

// schemaName is an unquoted-style identifier (PostgreSQL docs, "Identifiers
// and Key Words"). Lower case only so it means the same quoted or not.
var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// poolConfig validates c and turns it into a pgxpool configuration. It
// makes no network call.
func (c Config) poolConfig() (*pgxpool.Config, error) {
	if strings.TrimSpace(c.DSN) == "" {
		return nil, errors.New("postgres: dsn is required")
	}
	if c.Schema != "" && !schemaName.MatchString(c.Schema) {
		return nil, fmt.Errorf("postgres: schema %q must be 1-63 lower-case letters, digits or _, not starting with a digit", c.Schema)
	}
	switch {
	case c.MaxConns < 0:
		return nil, fmt.Errorf("postgres: max_conns %d must be at least 1", c.MaxConns)
	case c.MinConns < 0:
		return nil, fmt.Errorf("postgres: min_conns %d must not be negative", c.MinConns)
	case c.MaxConnLifetime < 0 || c.MaxConnIdleTime < 0 || c.ConnectTimeout < 0 || c.OperationTimeout < 0:
		return nil, errors.New("postgres: durations must not be negative")
	case c.LogRetention != 0 && c.LogRetention < MinLogRetention:
		return nil, fmt.Errorf("postgres: log_retention %s must be at least %s", c.LogRetention, MinLogRetention)
	}
	pc, err := pgxpool.ParseConfig(c.DSN)
	if err != nil {
		return nil, parseError(err)
	}
	if c.MaxConns > 0 {
		pc.MaxConns = c.MaxConns
	}
	if c.MinConns > 0 {
		pc.MinConns = c.MinConns
	}
	if pc.MinConns > pc.MaxConns {
		return nil, fmt.Errorf("postgres: min_conns %d is more than max_conns %d", pc.MinConns, pc.MaxConns)
	}
	if c.MaxConnLifetime > 0 {
		pc.MaxConnLifetime = c.MaxConnLifetime
	}
	if c.MaxConnIdleTime > 0 {
		pc.MaxConnIdleTime = c.MaxConnIdleTime
	}
	switch {
	case c.ConnectTimeout > 0:
		pc.ConnConfig.ConnectTimeout = c.ConnectTimeout
	case pc.ConnConfig.ConnectTimeout == 0:
		pc.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	return pc, nil
}

// DB is a PostgreSQL-backed store.Store.
type DB struct {
	pool   *pgxpool.Pool
	schema string // resolved: never empty
	lockID int32  // second key of this schema's advisory locks
	sql    queries
	closed atomic.Bool
	opTime time.Duration
	// logRetention is the System Log's retention, applied by Purge.
	logRetention time.Duration
}

// op bounds one operation by the operation timeout; past it the error
// is context.DeadlineExceeded, which counts as unavailable.
func (d *DB) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d.opTime)
}

// Open connects, creates or upgrades the tables and returns the store.
// Several processes may open the same schema at once: migrations are
// serialised by an advisory lock.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	pc, err := cfg.poolConfig()
	if err != nil {
		return nil, err
	}
	// The pool outlives ctx (it is shared across config reloads): its
	// background connects must not stop when ctx ends.
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, unavailable(err)
	}
	schema := cfg.Schema
	if schema == "" {
		// The schema unqualified names would use (PostgreSQL docs, "The
		// Schema Search Path"), fixed now so every query names it.
		var cur *string
		if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&cur); err != nil {
			pool.Close()
			return nil, fmt.Errorf("postgres: finding the current schema: %w", unavailable(err))
		}
		if cur == nil {
			pool.Close()
			return nil, errors.New("postgres: the connection's search_path names no existing schema; set schema")
		}
		schema = *cur
	}
	d := newDB(pool, schema)
	if cfg.OperationTimeout > 0 {
		d.opTime = cfg.OperationTimeout
	}
	if cfg.LogRetention > 0 {
		d.logRetention = cfg.LogRetention
	}
	if err := d.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return d, nil
}

func newDB(pool *pgxpool.Pool, schema string) *DB {
	return &DB{pool: pool, schema: schema, lockID: schemaLockID(schema), sql: buildQueries(schema), opTime: DefaultOperationTimeout,
		logRetention: store.DefaultLogRetention}
}

// Close closes the pool; later calls return store.ErrClosed.
func (d *DB) Close() error {
	if !d.closed.Swap(true) {
		d.pool.Close()
	}
	return nil
}

// Schema reports the schema that holds the tables.
func (d *DB) Schema() string { return d.schema }

// queries are the statements with the schema's table names filled in.
type queries struct {
	keys, keysEnsure, keysLock, keysWrite                     string
	mark, marked                                              string
	purgeMarks, purgeRecords, purgeRefresh                    string
	refreshPut, refreshGet, refreshLock, refreshWrite         string
	recordPut, recordGet, recordLock, recordSet, recordDelete string
	recordCreate                                              string
	incr                                                      string
	logAppend, logSelect, logPurge                            string
	feedBump, feedInsert, feedRead, feedHead, feedPurge       string

	// recordList[lowerExclusive][bounded]: ListRecords's range scans.
	recordList [2][2]string
}

func buildQueries(schema string) queries {
	r := strings.NewReplacer("{s}", pgx.Identifier{schema}.Sanitize())
	q := r.Replace
	logAppend, logSelect, logPurge := logQueries(q)
	f := feedQueries(q)
	return queries{
		logAppend: logAppend, logSelect: logSelect, logPurge: logPurge,
		feedBump: f.bump, feedInsert: f.insert, feedRead: f.read, feedHead: f.head, feedPurge: f.purge,

		keys: q(`SELECT records FROM {s}.apiaccess_keys WHERE server = $1`),
		// A 'null' row taken and locked before fn runs makes the first
		// update of a server wait for, then see, a concurrent first
		// update: all nodes agree on one key set. It is rolled back with
		// fn's error.
		keysEnsure: q(`INSERT INTO {s}.apiaccess_keys (server, records) VALUES ($1, 'null') ON CONFLICT (server) DO NOTHING`),
		keysLock:   q(`SELECT records FROM {s}.apiaccess_keys WHERE server = $1 FOR UPDATE`),
		keysWrite:  q(`UPDATE {s}.apiaccess_keys SET records = $2 WHERE server = $1`),

		// ON CONFLICT DO UPDATE either inserts or locks the existing row
		// and re-checks WHERE on its latest version (PostgreSQL docs,
		// INSERT "ON CONFLICT Clause"): a row comes back only for the
		// one caller that set the mark.
		mark: q(`INSERT INTO {s}.apiaccess_marks AS m (ns, key, until) VALUES ($1, $2, $3)
			ON CONFLICT (ns, key) DO UPDATE SET until = EXCLUDED.until WHERE m.until <= $4
			RETURNING true`),
		marked: q(`SELECT EXISTS (SELECT 1 FROM {s}.apiaccess_marks WHERE ns = $1 AND key = $2 AND until > $3)`),

		purgeMarks:   q(`DELETE FROM {s}.apiaccess_marks WHERE until < $1`),
		purgeRecords: q(`DELETE FROM {s}.apiaccess_records WHERE until < $1`),
		purgeRefresh: q(`DELETE FROM {s}.apiaccess_refresh_tokens WHERE expires < $1`),

		refreshPut: q(`INSERT INTO {s}.apiaccess_refresh_tokens (hash, family, expires, record) VALUES ($1, $2, $3, $4)
			ON CONFLICT (hash) DO UPDATE SET family = EXCLUDED.family, expires = EXCLUDED.expires, record = EXCLUDED.record`),
		refreshGet:   q(`SELECT record FROM {s}.apiaccess_refresh_tokens WHERE hash = $1`),
		refreshLock:  q(`SELECT record FROM {s}.apiaccess_refresh_tokens WHERE hash = $1 FOR UPDATE`),
		refreshWrite: q(`UPDATE {s}.apiaccess_refresh_tokens SET family = $2, expires = $3, record = $4 WHERE hash = $1`),

		recordPut: q(`INSERT INTO {s}.apiaccess_records (ns, key, value, until) VALUES ($1, $2, $3, $4)
			ON CONFLICT (ns, key) DO UPDATE SET value = EXCLUDED.value, until = EXCLUDED.until`),
		// As mark: the insert, or the conflicting row locked and its
		// latest version re-checked, so a row comes back only for the one
		// caller that created the record.
		recordCreate: q(`INSERT INTO {s}.apiaccess_records AS r (ns, key, value, until) VALUES ($1, $2, $3, $4)
			ON CONFLICT (ns, key) DO UPDATE SET value = EXCLUDED.value, until = EXCLUDED.until WHERE r.until <= $5
			RETURNING true`),
		recordGet: q(`SELECT value FROM {s}.apiaccess_records WHERE ns = $1 AND key = $2 AND until > $3`),
		// FOR UPDATE waits for a concurrent taker and re-checks the row
		// (PostgreSQL docs, "Read Committed Isolation Level"): a deleted
		// record is then not found, so exactly one take wins.
		recordLock:   q(`SELECT value FROM {s}.apiaccess_records WHERE ns = $1 AND key = $2 AND until > $3 FOR UPDATE`),
		recordSet:    q(`UPDATE {s}.apiaccess_records SET value = $3 WHERE ns = $1 AND key = $2`),
		recordDelete: q(`DELETE FROM {s}.apiaccess_records WHERE ns = $1 AND key = $2`),
		// A range on the primary key (ns, key): bytea compares bytewise,
		// so the keys with a prefix are those from it up to (not
		// including) its successor (prefixEnd).
		recordList: [2][2]string{
			{q(`SELECT key, value FROM {s}.apiaccess_records WHERE ns = $1 AND key >= $2 AND until > $3 ORDER BY key LIMIT $4`),
				q(`SELECT key, value FROM {s}.apiaccess_records WHERE ns = $1 AND key >= $2 AND key < $5 AND until > $3 ORDER BY key LIMIT $4`)},
			{q(`SELECT key, value FROM {s}.apiaccess_records WHERE ns = $1 AND key > $2 AND until > $3 ORDER BY key LIMIT $4`),
				q(`SELECT key, value FROM {s}.apiaccess_records WHERE ns = $1 AND key > $2 AND key < $5 AND until > $3 ORDER BY key LIMIT $4`)},
		},
		// One statement: the insert, or the conflicting row locked and
		// re-read at its latest version (PostgreSQL docs, INSERT "ON
		// CONFLICT Clause"), so concurrent callers on any node each get
		// a distinct count. SET expressions see the old row: an expired
		// counter restarts with the new expiry. The count is decimal
		// text, as GetRecord returns it.
		incr: q(`INSERT INTO {s}.apiaccess_records AS r (ns, key, value, until) VALUES ($1, $2, convert_to($3::bigint::text, 'UTF8'), $4)
			ON CONFLICT (ns, key) DO UPDATE SET
				value = CASE WHEN r.until <= $5 THEN EXCLUDED.value
					ELSE convert_to((convert_from(r.value, 'UTF8')::bigint + $3::bigint)::text, 'UTF8') END,
				until = CASE WHEN r.until <= $5 THEN EXCLUDED.until ELSE r.until END
			RETURNING convert_from(value, 'UTF8')::bigint`),
	}
}

// bin passes a key or value as bytea, never NULL: keys can be any bytes
// (a client's jti, a form value), which text columns would refuse.
func bin(s string) []byte {
	if s == "" {
		return []byte{}
	}
	return []byte(s)
}

// callerError marks an error returned by fn so it is handed back as is,
// never classified as a database error.
type callerError struct{ err error }

func (e *callerError) Error() string { return e.err.Error() }
func (e *callerError) Unwrap() error { return e.err }

// result maps a database error for the caller: fn's own error unchanged,
// store.ErrClosed after Close, store.ErrUnavailable for an unreachable
// server.
func (d *DB) result(err error) error {
	if err == nil {
		return nil
	}
	if ce, ok := errors.AsType[*callerError](err); ok {
		return ce.err
	}
	if d.closed.Load() {
		return store.ErrClosed
	}
	return unavailable(err)
}

// inTx runs f in a read-committed transaction; an error rolls it back.
func (d *DB) inTx(ctx context.Context, f func(pgx.Tx) error) error {
	if d.closed.Load() {
		return store.ErrClosed
	}
	return d.result(pgx.BeginFunc(ctx, d.pool, f))
}

// Keys implements store.Store.
func (d *DB) Keys(ctx context.Context, as string) ([]store.KeyRecord, error) {
	ctx, cancel := d.op(ctx)
	defer cancel()
	if d.closed.Load() {
		return nil, store.ErrClosed
	}
	var raw []byte
	err := d.pool.QueryRow(ctx, d.sql.keys, as).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, d.result(err)
	}
	return decodeKeys(as, raw)
}

func decodeKeys(as string, raw []byte) ([]store.KeyRecord, error) {
	var recs []store.KeyRecord
	if err := json.Unmarshal(raw, &recs); err != nil {
		return nil, fmt.Errorf("decoding keys of %q: %w", as, err)
	}
	return recs, nil
}

// UpdateKeys implements store.Store. The server's row is locked for the
// whole read-modify-write, across processes.
func (d *DB) UpdateKeys(ctx context.Context, as string, fn func([]store.KeyRecord) ([]store.KeyRecord, error)) error {
	ctx, cancel := d.op(ctx)
	defer cancel()
	return d.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, d.sql.keysEnsure, as); err != nil {
			return err
		}
		var raw []byte
		if err := tx.QueryRow(ctx, d.sql.keysLock, as).Scan(&raw); err != nil {
			return err
		}
		cur, err := decodeKeys(as, raw)
		if err != nil {
			return err
		}
		next, err := fn(cur)
		if err != nil {
			return &callerError{err}
		}
		b, err := json.Marshal(next)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, d.sql.keysWrite, as, b)
		return err
	})
}

// Mark implements store.Store. Expiry is judged by this process's clock,
// as the embedded store does: until was computed from it too.
func (d *DB) Mark(ctx context.Context, ns, key string, until time.Time) (bool, error) {
	ctx, cancel := d.op(ctx)
	defer cancel()
	if d.closed.Load() {
		return false, store.ErrClosed
	}
	var fresh bool
	err := d.pool.QueryRow(ctx, d.sql.mark, ns, bin(key), until, time.Now()).Scan(&fresh)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return fresh, d.result(err)
}

// Marked implements store.Store.
func (d *DB) Marked(ctx context.Context, ns, key string) (bool, error) {
	ctx, cancel := d.op(ctx)
	defer cancel()
	if d.closed.Load() {
		return false, store.ErrClosed
	}
	var found bool
	err := d.pool.QueryRow(ctx, d.sql.marked, ns, bin(key), time.Now()).Scan(&found)
	return found, d.result(err)
}

// Purge implements store.Store, and drops expired feed entries
// (PurgeFeed) too. One node purges at a time: the others
// find the schema's purge lock taken and return at once, since the
// work is being done. The node that purges then applies the System
// Log's retention, so the issuer's maintenance keeps the log.
func (d *DB) Purge(ctx context.Context, now time.Time) error {
	opCtx, cancel := d.op(ctx)
	defer cancel()
	var got bool
	err := d.inTx(opCtx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(opCtx, `SELECT pg_try_advisory_xact_lock($1, $2)`, lockClassPurge, d.lockID).Scan(&got); err != nil {
			return err
		}
		if !got {
			return nil
		}
		for _, q := range []string{d.sql.purgeMarks, d.sql.purgeRecords, d.sql.purgeRefresh, d.sql.feedPurge} {
			if _, err := tx.Exec(opCtx, q, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || !got {
		return err
	}
	return d.PurgeEvents(ctx, now.Add(-d.logRetention))
}

// refreshExpiry is when Purge may drop a token: the embedded store drops
// it once either its idle or its family deadline has passed.
func refreshExpiry(rt *store.RefreshToken) time.Time {
	if rt.IdleExpires.Before(rt.FamilyExpires) {
		return rt.IdleExpires
	}
	return rt.FamilyExpires
}

// PutRefresh implements store.Store.
func (d *DB) PutRefresh(ctx context.Context, rt store.RefreshToken) error {
	ctx, cancel := d.op(ctx)
	defer cancel()
	if d.closed.Load() {
		return store.ErrClosed
	}
	b, err := json.Marshal(rt)
	if err != nil {
		return err
	}
	_, err = d.pool.Exec(ctx, d.sql.refreshPut, rt.Hash, rt.Family, refreshExpiry(&rt), b)
	return d.result(err)
}

// GetRefresh implements store.Store: one autocommit SELECT.
func (d *DB) GetRefresh(ctx context.Context, hash string) (store.RefreshToken, error) {
	ctx, cancel := d.op(ctx)
	defer cancel()
	var rt store.RefreshToken
	if d.closed.Load() {
		return rt, store.ErrClosed
	}
	var raw []byte
	err := d.pool.QueryRow(ctx, d.sql.refreshGet, hash).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return rt, store.ErrNotFound
	}
	if err != nil {
		return rt, d.result(err)
	}
	if err := json.Unmarshal(raw, &rt); err != nil {
		return rt, fmt.Errorf("decoding refresh token: %w", err)
	}
	return rt, nil
}

// UpdateRefresh implements store.Store. Like the embedded store it does
// not judge expiry: the issuer reads the deadlines in fn.
func (d *DB) UpdateRefresh(ctx context.Context, hash string, fn func(*store.RefreshToken) error) (store.RefreshToken, error) {
	ctx, cancel := d.op(ctx)
	defer cancel()
	var rt store.RefreshToken
	err := d.inTx(ctx, func(tx pgx.Tx) error {
		var raw []byte
		if err := tx.QueryRow(ctx, d.sql.refreshLock, hash).Scan(&raw); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return store.ErrNotFound
			}
			return err
		}
		if err := json.Unmarshal(raw, &rt); err != nil {
			return fmt.Errorf("decoding refresh token: %w", err)
		}
		if err := fn(&rt); err != nil {
			return &callerError{err}
		}
		b, err := json.Marshal(rt)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, d.sql.refreshWrite, hash, rt.Family, refreshExpiry(&rt), b)
		return err
	})
	return rt, err
}

// PutRecord implements store.Store.
func (d *DB) PutRecord(ctx context.Context, ns, key string, value []byte, until time.Time) error {
	ctx, cancel := d.op(ctx)
	defer cancel()
	if d.closed.Load() {
		return store.ErrClosed
	}
	if value == nil {
		value = []byte{} // NULL is refused; read back as nil, as embedded does
	}
	_, err := d.pool.Exec(ctx, d.sql.recordPut, ns, bin(key), value, until)
	return d.result(err)
}

// CreateRecord implements store.Store in one statement. Expiry is
// judged by this process's clock, as Mark does.
func (d *DB) CreateRecord(ctx context.Context, ns, key string, value []byte, until time.Time) (bool, error) {
	ctx, cancel := d.op(ctx)
	defer cancel()
	if d.closed.Load() {
		return false, store.ErrClosed
	}
	if value == nil {
		value = []byte{}
	}
	var created bool
	err := d.pool.QueryRow(ctx, d.sql.recordCreate, ns, bin(key), value, until, time.Now()).Scan(&created)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return created, d.result(err)
}

// ListRecords implements store.Store: one range scan of the primary key.
func (d *DB) ListRecords(ctx context.Context, ns, prefix, after string, limit int) ([]store.Record, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("ListRecords: limit %d, want a positive one", limit)
	}
	ctx, cancel := d.op(ctx)
	defer cancel()
	if d.closed.Load() {
		return nil, store.ErrClosed
	}
	lower, exclusive := prefix, 0
	if after != "" && after >= prefix {
		lower, exclusive = after, 1
	}
	args := []any{ns, bin(lower), time.Now(), limit}
	bounded := 0
	if end, ok := prefixEnd(prefix); ok {
		args, bounded = append(args, end), 1
	}
	rows, err := d.pool.Query(ctx, d.sql.recordList[exclusive][bounded], args...)
	if err != nil {
		return nil, d.result(err)
	}
	defer rows.Close()
	var out []store.Record
	for rows.Next() {
		var k, v []byte
		if err := rows.Scan(&k, &v); err != nil {
			return nil, d.result(err)
		}
		out = append(out, store.Record{Key: string(k), Value: emptyNil(v)})
	}
	if err := rows.Err(); err != nil {
		return nil, d.result(err)
	}
	return out, nil
}

// prefixEnd is the least byte string above every string with prefix p,
// or false when there is none (p empty or all 0xff).
func prefixEnd(p string) ([]byte, bool) {
	b := []byte(p)
	for n := len(b) - 1; n >= 0; n-- {
		if b[n] < 0xff {
			b[n]++
			return b[:n+1], true
		}
	}
	return nil, false
}

// GetRecord implements store.Store: one autocommit SELECT.
func (d *DB) GetRecord(ctx context.Context, ns, key string) ([]byte, error) {
	ctx, cancel := d.op(ctx)
	defer cancel()
	if d.closed.Load() {
		return nil, store.ErrClosed
	}
	var v []byte
	err := d.pool.QueryRow(ctx, d.sql.recordGet, ns, bin(key), time.Now()).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, d.result(err)
	}
	return emptyNil(v), nil
}

// emptyNil returns an empty value as nil, as the embedded store does.
func emptyNil(v []byte) []byte {
	if len(v) == 0 {
		return nil
	}
	return v
}

// UpdateRecord implements store.Store.
func (d *DB) UpdateRecord(ctx context.Context, ns, key string, fn func([]byte) ([]byte, error)) ([]byte, error) {
	ctx, cancel := d.op(ctx)
	defer cancel()
	var old []byte
	err := d.inTx(ctx, func(tx pgx.Tx) error {
		var v []byte
		if err := tx.QueryRow(ctx, d.sql.recordLock, ns, bin(key), time.Now()).Scan(&v); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return store.ErrNotFound
			}
			return err
		}
		old = emptyNil(v)
		nv, err := fn(old)
		if err != nil {
			return &callerError{err}
		}
		if nv == nil {
			_, err = tx.Exec(ctx, d.sql.recordDelete, ns, bin(key))
			return err
		}
		_, err = tx.Exec(ctx, d.sql.recordSet, ns, bin(key), nv)
		return err
	})
	return old, err
}

// Incr implements store.Store. Expiry is judged by this process's
// clock, as Mark does.
func (d *DB) Incr(ctx context.Context, ns, key string, delta int64, until time.Time) (int64, error) {
	ctx, cancel := d.op(ctx)
	defer cancel()
	if d.closed.Load() {
		return 0, store.ErrClosed
	}
	var n int64
	err := d.pool.QueryRow(ctx, d.sql.incr, ns, bin(key), delta, until, time.Now()).Scan(&n)
	return n, d.result(err)
}

var _ store.Store = (*DB)(nil)
