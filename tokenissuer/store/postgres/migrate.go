package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// migrations[i] brings the schema to version i+1. Each is applied once,
// in order, and recorded in apiaccess_schema_version. Never edit one
// that has been released: append another.
var migrations = []string{
	// 1: the initial tables. Keys and refresh tokens are JSON documents
	// (store.KeyRecord, store.RefreshToken); the columns beside them are
	// what queries select on. Mark and record keys are bytea: any bytes.
	`CREATE TABLE {s}.apiaccess_keys (
		server  text  PRIMARY KEY,
		records jsonb NOT NULL
	);
	CREATE TABLE {s}.apiaccess_marks (
		ns    text        NOT NULL,
		key   bytea       NOT NULL,
		until timestamptz NOT NULL,
		PRIMARY KEY (ns, key)
	);
	CREATE INDEX apiaccess_marks_until ON {s}.apiaccess_marks (until);
	CREATE TABLE {s}.apiaccess_refresh_tokens (
		hash    text        PRIMARY KEY,
		family  text        NOT NULL,
		expires timestamptz NOT NULL, -- the earlier of idle_exp and family_exp
		record  jsonb       NOT NULL
	);
	CREATE INDEX apiaccess_refresh_tokens_expires ON {s}.apiaccess_refresh_tokens (expires);
	CREATE TABLE {s}.apiaccess_records (
		ns    text        NOT NULL,
		key   bytea       NOT NULL,
		value bytea       NOT NULL,
		until timestamptz NOT NULL,
		PRIMARY KEY (ns, key)
	);
	CREATE INDEX apiaccess_records_until ON {s}.apiaccess_records (until);`,

	// 2: the System Log (store.EventLog), one row per event, the
	// LogEvent as jsonb. The primary key is the query order; uuid
	// collates bytewise ("C"), as the embedded store orders it.
	`CREATE TABLE {s}.apiaccess_log_events (
		published  timestamptz NOT NULL,
		uuid       text COLLATE "C" NOT NULL,
		event_type text        NOT NULL,
		event      jsonb       NOT NULL,
		PRIMARY KEY (published, uuid)
	);`,

	// 3: the revocation feed (store.FeedLog): one row per entry, and a
	// one-row counter holding the head. Appenders update the counter in
	// their transaction, so its row lock orders them: commits come in
	// seq order and a rolled-back append gives its numbers back.
	`CREATE TABLE {s}.apiaccess_feed (
		seq   bigint      PRIMARY KEY,
		until timestamptz NOT NULL,
		data  bytea       NOT NULL
	);
	CREATE TABLE {s}.apiaccess_feed_head (
		one boolean PRIMARY KEY DEFAULT true CHECK (one),
		seq bigint  NOT NULL
	);
	INSERT INTO {s}.apiaccess_feed_head (seq) VALUES (0);`,
}

// Advisory lock classes: the first key of pg_advisory_xact_lock(int, int)
// (PostgreSQL docs, "Advisory Lock Functions"), fixed for this program;
// the second is the schema's lockID, so stores in different schemas of
// one database do not wait for each other.
const (
	lockClassMigrate int32 = 0x41504901 // "API" 1
	lockClassPurge   int32 = 0x41504902 // "API" 2
)

// schemaLockID is a schema's second advisory lock key (FNV-1a, so every
// node computes the same one).
func schemaLockID(schema string) int32 {
	h := fnv.New32a()
	h.Write([]byte(schema))
	return int32(h.Sum32())
}

// ErrSchemaTooNew means the database was migrated by a newer version of
// this program; running older code against it could corrupt it.
var ErrSchemaTooNew = errors.New("postgres: database schema is newer than this program")

// migrate brings the schema to the latest version in one transaction,
// under an advisory lock so nodes starting together apply each
// migration once. It creates nothing that exists, so a role limited to
// reading and writing rows can run an already migrated schema.
func (d *DB) migrate(ctx context.Context) error {
	ident := pgx.Identifier{d.schema}.Sanitize()
	versions := ident + ".apiaccess_schema_version"
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, lockClassMigrate, d.lockID); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, d.schema).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			if _, err := tx.Exec(ctx, `CREATE SCHEMA `+ident); err != nil {
				return err
			}
		}
		if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, versions).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			_, err := tx.Exec(ctx, `CREATE TABLE `+versions+` (
				version    integer     PRIMARY KEY,
				applied_at timestamptz NOT NULL DEFAULT now()
			)`)
			if err != nil {
				return err
			}
		}
		var cur int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+versions).Scan(&cur); err != nil {
			return err
		}
		if cur > len(migrations) {
			return fmt.Errorf("%w: schema %q is at version %d, this program knows up to %d; upgrade it",
				ErrSchemaTooNew, d.schema, cur, len(migrations))
		}
		fill := strings.NewReplacer("{s}", ident)
		for v := cur + 1; v <= len(migrations); v++ {
			if _, err := tx.Exec(ctx, fill.Replace(migrations[v-1])); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO `+versions+` (version) VALUES ($1)`, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrSchemaTooNew) {
		return fmt.Errorf("postgres: migrating schema %q: %w", d.schema, unavailable(err))
	}
	return err
}
