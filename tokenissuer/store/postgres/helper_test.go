package postgres

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/postgres/pgtest"
)

// testDSN is the server the tests use (pgtest.DSNFromEnv).
func testDSN() string { return pgtest.DSNFromEnv() }

// needServer skips the test when PostgreSQL cannot be reached, or fails
// it when APIACCESS_STRICT=1.
func needServer(t *testing.T) {
	t.Helper()
	pgtest.DSN(t)
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
	return pgtest.FreshSchema(t, "apiaccess_test_")
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
