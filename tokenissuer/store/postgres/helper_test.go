package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const defaultTestDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// testDSN is the server the tests use: APIACCESS_POSTGRES_DSN (CI sets
// it) or a local trust-auth server.
func testDSN() string {
	if dsn := os.Getenv("APIACCESS_POSTGRES_DSN"); dsn != "" {
		return dsn
	}
	return defaultTestDSN
}

var (
	reachOnce sync.Once
	reachErr  error
)

// needServer skips the test when PostgreSQL cannot be reached, or fails
// it when APIACCESS_STRICT=1 (CI, where a skip would hide the tests).
func needServer(t *testing.T) {
	t.Helper()
	reachOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		var conn *pgx.Conn
		if conn, reachErr = pgx.Connect(ctx, testDSN()); reachErr == nil {
			reachErr = conn.Ping(ctx)
			conn.Close(ctx)
		}
	})
	if reachErr == nil {
		return
	}
	if os.Getenv("APIACCESS_STRICT") == "1" {
		t.Fatalf("PostgreSQL unreachable (APIACCESS_STRICT=1): %v", reachErr)
	}
	t.Skipf("PostgreSQL unreachable, set APIACCESS_POSTGRES_DSN: %v", reachErr)
}

// admin runs a statement on its own connection, outside any store.
func admin(t *testing.T, sql string, args ...any) {
	t.Helper()
	conn := adminConn(t)
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// adminConn is a connection of its own, closed when the test ends.
func adminConn(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), testDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// freshSchema names a schema no test has used; it is dropped when the
// test ends. It is not created: the store's migration does that.
func freshSchema(t *testing.T) string {
	t.Helper()
	needServer(t)
	b := make([]byte, 6)
	rand.Read(b)
	name := "apiaccess_test_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), testDSN())
		if err != nil {
			t.Errorf("dropping schema %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", name, err)
		}
	})
	return name
}

// openTest opens a store on cfg (the test server's DSN if empty),
// closed when the test ends.
func openTest(t *testing.T, cfg Config) *DB {
	t.Helper()
	if cfg.DSN == "" {
		cfg.DSN = testDSN()
	}
	d, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}
