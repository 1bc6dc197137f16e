package postgres_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/jackc/pgx/v5"

	_ "github.com/apiaccess/caddy-apiaccess/tokenissuer"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/postgres"
)

// TestCaddyStartsOnPostgres runs the `token_issuer` app from a Caddyfile
// with `storage postgres {env.*}`: the app starts, the schema is
// migrated and the first signing key is stored; a reload shares the
// store; stopping releases it.
func TestCaddyStartsOnPostgres(t *testing.T) {
	schema := postgres.FreshSchema(t)
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	app := "apiaccess_caddy_" + schema[len("apiaccess_test_"):]
	t.Setenv("APIACCESS_TEST_DATABASE_URL", postgres.TestDSN()+"&application_name="+app)
	caddyfile := func(interval string) []byte {
		return []byte(`{
	admin off
	persist_config off
	token_issuer {
		base_url http://localhost:9080
		key_encryption_secret 0123456789abcdef0123456789abcdef
		maintenance_interval ` + interval + `
		storage postgres {env.APIACCESS_TEST_DATABASE_URL} {
			schema ` + schema + `
			max_conns 4
		}
	}
}
`)
	}
	load := func(cfg []byte) {
		t.Helper()
		out, warn, err := caddyconfig.GetAdapter("caddyfile").Adapt(cfg, nil)
		if err != nil {
			t.Fatalf("adapting: %v (%v)", err, warn)
		}
		if !json.Valid(out) {
			t.Fatalf("adapted config is not JSON: %s", out)
		}
		if err := caddy.Load(out, true); err != nil {
			t.Fatalf("caddy.Load: %v", err)
		}
	}
	load(caddyfile("1m"))
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			caddy.Stop()
		}
	})

	conn, err := pgx.Connect(context.Background(), postgres.TestDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	activeKeys := func() int {
		t.Helper()
		rows, _ := conn.Query(context.Background(), "SELECT records FROM "+pgx.Identifier{schema, "apiaccess_keys"}.Sanitize())
		sets, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, raw := range sets {
			var recs []store.KeyRecord
			if err := json.Unmarshal(raw, &recs); err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if r.State == store.KeyActive {
					n++
				}
			}
		}
		return n
	}
	if n := activeKeys(); n == 0 {
		t.Fatal("the started app stored no ACTIVE signing key in PostgreSQL")
	}
	before := activeKeys()

	// A reload with another setting keeps using the same keys.
	load(caddyfile("2m"))
	if n := activeKeys(); n != before {
		t.Fatalf("after a reload %d ACTIVE keys, want the same %d", n, before)
	}

	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	// Stop cleaned the last config up, which closed the pool.
	deadline := time.Now().Add(3 * time.Second)
	for {
		var left int
		err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&left)
		if err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions of the store are still open after Stop", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
