package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/storetest"
)

func TestConformance(t *testing.T) {
	needServer(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		return openTest(t, Config{Schema: freshSchema(t)})
	})
}

// TestSchemaFromSearchPath: without a schema option the tables go in
// the first schema of the DSN's search_path, and every query names it.
func TestSchemaFromSearchPath(t *testing.T) {
	schema := freshSchema(t)
	admin(t, "CREATE SCHEMA "+schema)
	d := openTest(t, Config{DSN: testDSN() + "&search_path=" + schema})
	if d.Schema() != schema {
		t.Fatalf("Schema() = %q, want %q from search_path", d.Schema(), schema)
	}
	var n int
	if err := adminConn(t).QueryRow(context.Background(),
		`SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename LIKE 'apiaccess_%'`, schema).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 8 {
		t.Fatalf("%d apiaccess_ tables in %s, want 8", n, schema)
	}
}

// TestNodesAgreeOnFirstKey: nodes starting together on an empty
// database (separate pools, as separate processes would have) each
// create a key if there is none; all must end up with the same one.
func TestNodesAgreeOnFirstKey(t *testing.T) {
	schema := freshSchema(t)
	const nodes = 8
	dbs := make([]*DB, nodes)
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, nodes)
	for i := range nodes {
		wg.Go(func() {
			<-start
			d, err := Open(context.Background(), Config{DSN: testDSN(), Schema: schema, MaxConns: 2})
			if err != nil {
				errs[i] = err
				return
			}
			dbs[i] = d
			errs[i] = d.UpdateKeys(context.Background(), "default", func(cur []store.KeyRecord) ([]store.KeyRecord, error) {
				if len(cur) > 0 {
					return cur, nil
				}
				b := make([]byte, 8)
				rand.Read(b)
				return []store.KeyRecord{{KID: hex.EncodeToString(b), Alg: "ES256", State: store.KeyActive,
					Created: time.Now().UTC(), Sealed: []byte("sealed")}}, nil
			})
		})
	}
	close(start)
	wg.Wait()
	for _, d := range dbs {
		if d != nil {
			t.Cleanup(func() { d.Close() })
		}
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
	var first string
	for i, d := range dbs {
		recs, err := d.Keys(context.Background(), "default")
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1 || recs[0].State != store.KeyActive {
			t.Fatalf("node %d sees %d keys %+v, want one ACTIVE key", i, len(recs), recs)
		}
		if i == 0 {
			first = recs[0].KID
		} else if recs[0].KID != first {
			t.Fatalf("node %d sees key %s, node 0 sees %s: the nodes did not agree", i, recs[0].KID, first)
		}
	}
}

func count(t *testing.T, conn *pgx.Conn, table string) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPurgeOneNodeAtATime: while another node holds the schema's purge
// lock, Purge returns at once and deletes nothing; then it deletes.
func TestPurgeOneNodeAtATime(t *testing.T) {
	schema := freshSchema(t)
	d := openTest(t, Config{Schema: schema})
	ctx := context.Background()
	past := time.Now().Add(-time.Minute)
	if _, err := d.Mark(ctx, store.NSRevoked, "old", past); err != nil {
		t.Fatal(err)
	}
	if err := d.PutRecord(ctx, store.NSSession, "old", []byte("x"), past); err != nil {
		t.Fatal(err)
	}
	rt := store.RefreshToken{Hash: "old", Family: "f", IdleExpires: past, FamilyExpires: time.Now().Add(time.Hour)}
	if err := d.PutRefresh(ctx, rt); err != nil {
		t.Fatal(err)
	}
	tables := []string{"apiaccess_marks", "apiaccess_records", "apiaccess_refresh_tokens"}
	check := adminConn(t)

	other := adminConn(t)
	tx, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, lockClassPurge, schemaLockID(schema)); err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := d.Purge(pctx, time.Now()); err != nil {
		t.Fatalf("Purge while another node purges: %v, want nil", err)
	}
	for _, tb := range tables {
		if n := count(t, check, schema+"."+tb); n != 1 {
			t.Errorf("%s has %d rows after a Purge that found the lock taken, want 1 (untouched)", tb, n)
		}
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Purge(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if n := count(t, check, schema+"."+tb); n != 0 {
			t.Errorf("%s has %d rows after Purge, want 0", tb, n)
		}
	}
}

// TestRefreshExpiresColumn: Purge drops a token once either deadline has
// passed, as the embedded store does; UpdateRefresh moves the deadline.
func TestRefreshExpiresColumn(t *testing.T) {
	d := openTest(t, Config{Schema: freshSchema(t)})
	ctx := context.Background()
	now := time.Now()
	fam := store.RefreshToken{Hash: "fam", IdleExpires: now.Add(time.Hour), FamilyExpires: now.Add(-time.Second)}
	idle := store.RefreshToken{Hash: "idle", IdleExpires: now.Add(time.Hour), FamilyExpires: now.Add(2 * time.Hour)}
	for _, rt := range []store.RefreshToken{fam, idle} {
		if err := d.PutRefresh(ctx, rt); err != nil {
			t.Fatal(err)
		}
	}
	// The token is used: its idle deadline is now past (as a test only).
	if _, err := d.UpdateRefresh(ctx, "idle", func(rt *store.RefreshToken) error {
		rt.IdleExpires = now.Add(-time.Second)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := d.Purge(ctx, now); err != nil {
		t.Fatal(err)
	}
	noop := func(*store.RefreshToken) error { return nil }
	for _, h := range []string{"fam", "idle"} {
		if _, err := d.UpdateRefresh(ctx, h, noop); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("token %q survived Purge: %v", h, err)
		}
	}
}

// deadPort is a loopback port nothing listens on.
func deadPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func wantUnavailable(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("%s: %v, want an error wrapping store.ErrUnavailable", what, err)
	}
}

// TestUnreachableIsUnavailable: with no server to talk to, reads and
// writes fail with store.ErrUnavailable (the issuer's 503), and so does
// Open. It needs no PostgreSQL.
func TestUnreachableIsUnavailable(t *testing.T) {
	cfg := Config{DSN: "postgres://apiaccess:s3cr3t-pw@" + deadPort(t) + "/test?sslmode=disable",
		Schema: "public", ConnectTimeout: time.Second}
	pc, err := cfg.poolConfig()
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	d := newDB(pool, "public")
	defer d.Close()
	ctx := context.Background()

	_, err = d.Keys(ctx, "default")
	wantUnavailable(t, "Keys", err)
	_, err = d.Mark(ctx, store.NSRevoked, "k", time.Now().Add(time.Hour))
	wantUnavailable(t, "Mark", err)
	_, err = d.GetRecord(ctx, store.NSSession, "k")
	wantUnavailable(t, "GetRecord", err)
	called := false
	_, err = d.UpdateRecord(ctx, store.NSCode, "k", func(v []byte) ([]byte, error) { called = true; return nil, nil })
	wantUnavailable(t, "UpdateRecord", err)
	if called {
		t.Error("UpdateRecord called fn without a database")
	}
	err = d.UpdateKeys(ctx, "default", func(r []store.KeyRecord) ([]store.KeyRecord, error) { return r, nil })
	wantUnavailable(t, "UpdateKeys", err)
	if err != nil && strings.Contains(err.Error(), "s3cr3t-pw") {
		t.Errorf("error shows the password: %v", err)
	}

	_, err = Open(ctx, cfg)
	wantUnavailable(t, "Open", err)
	if err != nil && strings.Contains(err.Error(), "s3cr3t-pw") {
		t.Errorf("Open error shows the password: %v", err)
	}
}

// TestDeadlineIsUnavailable: a caller's deadline passing while the
// database is slow is unavailability; the caller cancelling is not.
func TestDeadlineIsUnavailable(t *testing.T) {
	d := openTest(t, Config{Schema: freshSchema(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := d.UpdateKeys(ctx, "default", func(r []store.KeyRecord) ([]store.KeyRecord, error) { return r, nil })
	if err != nil {
		t.Fatal(err)
	}
	// Hold the server's row so the next update waits past its deadline.
	other := adminConn(t)
	tx, err := other.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(context.Background(), "SELECT 1 FROM "+d.Schema()+".apiaccess_keys FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = d.UpdateKeys(ctx, "default", func(r []store.KeyRecord) ([]store.KeyRecord, error) { return r, nil })
	wantUnavailable(t, "UpdateKeys past its deadline", err)

	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	err = d.UpdateKeys(ctx, "default", func(r []store.KeyRecord) ([]store.KeyRecord, error) { return r, nil })
	if err == nil || errors.Is(err, store.ErrUnavailable) {
		t.Errorf("UpdateKeys cancelled by its caller: %v, want an error that is not ErrUnavailable", err)
	}
}

// proxy forwards loopback connections to PostgreSQL until cut, which
// closes the listener and every connection, as a server or network
// going away would.
type proxy struct {
	l     net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { io.Copy(s, c); s.Close() }()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) cut() {
	p.l.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestConnectionLostIsUnavailable: open connections that break (server
// or network gone) yield store.ErrUnavailable, not a bare I/O error.
func TestConnectionLostIsUnavailable(t *testing.T) {
	schema := freshSchema(t)
	pc, err := pgx.ParseConfig(testDSN())
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, net.JoinHostPort(pc.Host, strconv.Itoa(int(pc.Port))))
	dsn := strings.Replace(testDSN(), net.JoinHostPort(pc.Host, strconv.Itoa(int(pc.Port))), p.l.Addr().String(), 1)
	if dsn == testDSN() {
		t.Skip("cannot rewrite the test DSN's host:port to go through a proxy")
	}
	d := openTest(t, Config{DSN: dsn, Schema: schema, MaxConns: 4, ConnectTimeout: time.Second})
	ctx := context.Background()
	// Warm several pooled connections, then break them all.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, err := d.Mark(ctx, store.NSRevoked, "k", time.Now().Add(time.Hour)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	p.cut()
	for i := range 6 { // broken pooled connections, then refused dials
		_, err := d.Marked(ctx, store.NSRevoked, "k")
		t.Logf("Marked #%d: %v", i, err)
		wantUnavailable(t, fmt.Sprintf("Marked #%d", i), err)
		err = d.PutRecord(ctx, store.NSSession, "s", []byte("v"), time.Now().Add(time.Hour))
		wantUnavailable(t, fmt.Sprintf("PutRecord #%d", i), err)
	}
}

// TestTerminatedBackends: after the server ends the pool's sessions
// (pg_terminate_backend, as a restart or failover does), each call
// either succeeds on a fresh connection or reports ErrUnavailable, and
// the pool recovers.
func TestTerminatedBackends(t *testing.T) {
	schema := freshSchema(t)
	app := "apiaccess_term_" + schema[len("apiaccess_test_"):]
	d := openTest(t, Config{DSN: testDSN() + "&application_name=" + app, Schema: schema, MaxConns: 3})
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if err := d.PutRecord(ctx, store.NSSession, "s", []byte("v"), time.Now().Add(time.Hour)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	// Pids first: in one query the planner may call pg_terminate_backend
	// before filtering, on every session.
	conn := adminConn(t)
	rows, _ := conn.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE application_name = $1`, app)
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) == 0 {
		t.Fatal("no backend of the pool found to terminate")
	}
	n := len(pids)
	for _, pid := range pids {
		// The two-argument form waits until the backend has exited (PG 14+).
		if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend($1, 5000)`, pid); err != nil {
			t.Fatal(err)
		}
	}
	ok := false
	for i := range 5 {
		_, err := d.GetRecord(ctx, store.NSSession, "s")
		if err == nil {
			ok = true
			continue
		}
		t.Logf("call %d: %v", i, err)
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("call %d after terminating %d backends: %v, want success or ErrUnavailable", i, n, err)
		}
	}
	if !ok {
		t.Fatal("the pool did not recover after its backends were terminated")
	}
}

// TestClosedReportsErrClosed: a store used after Close says so.
func TestClosedReportsErrClosed(t *testing.T) {
	d := openTest(t, Config{Schema: freshSchema(t)})
	d.Close()
	ctx := context.Background()
	if _, err := d.Keys(ctx, "a"); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Keys after Close: %v", err)
	}
	if _, err := d.Mark(ctx, "ns", "k", time.Now().Add(time.Hour)); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Mark after Close: %v", err)
	}
	if err := d.UpdateKeys(ctx, "a", func(r []store.KeyRecord) ([]store.KeyRecord, error) { return r, nil }); !errors.Is(err, store.ErrClosed) {
		t.Errorf("UpdateKeys after Close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestCallerErrorsPassThrough: fn's error comes back as is, even one
// that looks like a database failure.
func TestCallerErrorsPassThrough(t *testing.T) {
	d := openTest(t, Config{Schema: freshSchema(t)})
	ctx := context.Background()
	if err := d.PutRecord(ctx, store.NSCode, "c", []byte("v"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	_, err := d.UpdateRecord(ctx, store.NSCode, "c", func([]byte) ([]byte, error) { return nil, io.EOF })
	if err != io.EOF {
		t.Errorf("UpdateRecord returned %v, want fn's io.EOF unchanged", err)
	}
}

// TestOperationTimeout: a database that stops answering (here: a row
// another session holds locked) fails the operation as unavailable once
// operation_timeout passes, without a deadline from the caller.
func TestOperationTimeout(t *testing.T) {
	schema := freshSchema(t)
	d := openTest(t, Config{Schema: schema, OperationTimeout: 300 * time.Millisecond})
	ctx := context.Background()
	if err := d.PutRecord(ctx, store.NSCode, "c", []byte("v"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	other := adminConn(t)
	tx, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT 1 FROM `+pgx.Identifier{schema}.Sanitize()+`.apiaccess_records WHERE ns = $1 FOR UPDATE`, store.NSCode); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = d.UpdateRecord(ctx, store.NSCode, "c", func([]byte) ([]byte, error) { return nil, nil })
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("UpdateRecord on a locked row: %v, want ErrUnavailable", err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("the operation took %v, not bounded by operation_timeout", waited)
	}
	// The record was not taken: once the lock is gone it still is there.
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := d.GetRecord(ctx, store.NSCode, "c"); err != nil || string(v) != "v" {
		t.Fatalf("record after the timeout: %q %v", v, err)
	}
}

// TestConcurrentTakersOneWinner: 16 takers of one authorization code,
// and of one approved device code, released together on a warm pool:
// exactly one wins each time. UpdateRecord's row lock (SELECT ... FOR
// UPDATE) is what makes the issuer's single use hold; without it every
// taker reads the unused record and wins. The conformance suite's case
// runs serially in practice and would not notice.
func TestConcurrentTakersOneWinner(t *testing.T) {
	needServer(t)
	const takers, rounds = 16, 10
	d := openTest(t, Config{Schema: freshSchema(t), MaxConns: takers})
	ctx := context.Background()
	// Warm the pool: every taker has a connection when released.
	conns := make([]*pgxpool.Conn, takers)
	for i := range conns {
		c, err := d.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	for _, c := range conns {
		c.Release()
	}
	errTaken := errors.New("code already used")
	// The issuer's two single-use takes: a code is marked used (code.go),
	// an approved device grant is deleted (device.go).
	takes := map[string]func([]byte) ([]byte, error){
		store.NSCode: func(v []byte) ([]byte, error) {
			if string(v) == "used" {
				return nil, errTaken
			}
			return []byte("used"), nil
		},
		store.NSDevice: func([]byte) ([]byte, error) { return nil, nil },
	}
	for ns, take := range takes {
		for round := range rounds {
			key := fmt.Sprintf("%s-%d", ns, round)
			if err := d.PutRecord(ctx, ns, key, []byte("fresh"), time.Now().Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			start := make(chan struct{})
			var wg sync.WaitGroup
			var mu sync.Mutex
			wins, other := 0, []error{}
			for range takers {
				wg.Go(func() {
					<-start
					_, err := d.UpdateRecord(ctx, ns, key, take)
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						wins++
					case !errors.Is(err, errTaken) && !errors.Is(err, store.ErrNotFound):
						other = append(other, err)
					}
				})
			}
			close(start)
			wg.Wait()
			if wins != 1 || len(other) > 0 {
				t.Fatalf("%s round %d: %d of %d takers won (want 1), other errors %v", ns, round, wins, takers, other)
			}
		}
	}
}
