package postgres

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func versions(t *testing.T, schema string) []int {
	t.Helper()
	rows, _ := adminConn(t).Query(context.Background(),
		"SELECT version FROM "+pgx.Identifier{schema, "apiaccess_schema_version"}.Sanitize()+" ORDER BY version")
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

func allVersions() []int {
	var want []int
	for v := range len(migrations) {
		want = append(want, v+1)
	}
	return want
}

// TestConcurrentOpenMigratesOnce: nodes starting together on a schema
// that does not exist yet all open, and each migration is applied once.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	schema := freshSchema(t)
	const nodes = 8
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, nodes)
	for i := range nodes {
		wg.Go(func() {
			<-start
			d, err := Open(context.Background(), Config{DSN: testDSN(), Schema: schema, MaxConns: 1})
			if err == nil {
				d.Close()
			}
			errs[i] = err
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("node %d: Open: %v", i, err)
		}
	}
	if got := versions(t, schema); !slices.Equal(got, allVersions()) {
		t.Fatalf("schema versions = %v, want %v (one row per migration)", got, allVersions())
	}
	// Opening again applies nothing more.
	openTest(t, Config{Schema: schema}).Close()
	if got := versions(t, schema); !slices.Equal(got, allVersions()) {
		t.Fatalf("after reopening, schema versions = %v, want %v", got, allVersions())
	}
}

// TestNewerSchemaRefused: a database migrated by a newer build is not
// used by an older one.
func TestNewerSchemaRefused(t *testing.T) {
	schema := freshSchema(t)
	openTest(t, Config{Schema: schema}).Close()
	newer := len(migrations) + 1
	admin(t, "INSERT INTO "+pgx.Identifier{schema, "apiaccess_schema_version"}.Sanitize()+" (version) VALUES ($1)", newer)
	_, err := Open(context.Background(), Config{DSN: testDSN(), Schema: schema})
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open of a schema at version %d: %v, want ErrSchemaTooNew", newer, err)
	}
	if !strings.Contains(err.Error(), "upgrade") {
		t.Errorf("error %q does not say what to do", err)
	}
}

// TestMigratedSchemaNeedsNoDDL: once migrated, a role that may only read
// and write rows can open the store (no CREATE ... IF NOT EXISTS, which
// would need the CREATE privilege even when nothing is created).
func TestMigratedSchemaNeedsNoDDL(t *testing.T) {
	schema := freshSchema(t)
	openTest(t, Config{Schema: schema}).Close()
	role := schema + "_rw"
	s := pgx.Identifier{schema}.Sanitize()
	r := pgx.Identifier{role}.Sanitize()
	admin(t, "CREATE ROLE "+r+" LOGIN")
	t.Cleanup(func() {
		admin(t, "DROP OWNED BY "+r)
		admin(t, "DROP ROLE "+r)
	})
	admin(t, "GRANT USAGE ON SCHEMA "+s+" TO "+r)
	admin(t, "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "+s+" TO "+r)

	pc, err := pgx.ParseConfig(testDSN())
	if err != nil {
		t.Fatal(err)
	}
	dsn := strings.Replace(testDSN(), "//"+pc.User+"@", "//"+role+"@", 1)
	if dsn == testDSN() {
		t.Skip("cannot rewrite the test DSN's user")
	}
	d, err := Open(context.Background(), Config{DSN: dsn, Schema: schema})
	if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
		t.Skipf("cannot log in as a new role on this server: %v", err)
	}
	if err != nil {
		t.Fatalf("Open as a role without DDL rights on a migrated schema: %v", err)
	}
	defer d.Close()
	if _, err := d.Mark(context.Background(), "ns", "k", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
}
