// Package pgtest gives tests a PostgreSQL server and a schema of their
// own: APIACCESS_POSTGRES_DSN (CI sets it) or the local trust-auth
// server. Without a reachable server a test skips with the reason, or
// fails when APIACCESS_STRICT=1 (CI, where a skip would hide it).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
)

// DefaultDSN is the local server of a development machine or CI.
const DefaultDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// DSNFromEnv is the server the tests use, reachable or not.
func DSNFromEnv() string {
	if dsn := os.Getenv("APIACCESS_POSTGRES_DSN"); dsn != "" {
		return dsn
	}
	return DefaultDSN
}

var (
	reachOnce sync.Once
	reachErr  error
)

// DSN returns the server's DSN, or skips (fails under
// APIACCESS_STRICT=1) when it cannot be reached.
func DSN(t testing.TB) string {
	t.Helper()
	reachOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		var conn *pgx.Conn
		if conn, reachErr = pgx.Connect(ctx, DSNFromEnv()); reachErr == nil {
			reachErr = conn.Ping(ctx)
			conn.Close(ctx)
		}
	})
	testkit.Needf(t, reachErr == nil, "PostgreSQL unreachable, set APIACCESS_POSTGRES_DSN: %v", reachErr)
	return DSNFromEnv()
}

// FreshSchema names a schema no test has used, with prefix; it is
// dropped when the test ends. It is not created: the store does that.
func FreshSchema(t testing.TB, prefix string) string {
	t.Helper()
	dsn := DSN(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := prefix + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("dropping schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", name, err)
		}
	})
	return name
}
