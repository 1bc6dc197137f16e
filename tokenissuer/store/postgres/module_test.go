package postgres

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/apiaccess/caddy-apiaccess/internal/duration"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

func caddyCtx(t *testing.T) caddy.Context {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	return ctx
}

// TestProvisionMakesNoConnection: Provision expands placeholders and
// checks the settings but connects to nothing (`caddy validate` runs it).
func TestProvisionMakesNoConnection(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dsn := "postgres://issuer:pw@" + l.Addr().String() + "/issuer?sslmode=disable"
	t.Setenv("APIACCESS_TEST_PG_DSN", dsn)
	m := &Module{DSN: "{env.APIACCESS_TEST_PG_DSN}", MinConns: 2, MaxConns: 4, ConnectTimeout: duration.Duration(time.Second)}
	if err := m.Provision(caddyCtx(t)); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if m.cfg.DSN != dsn {
		t.Errorf("expanded DSN = %q, want %q", m.cfg.DSN, dsn)
	}
	l.(*net.TCPListener).SetDeadline(time.Now().Add(300 * time.Millisecond))
	if c, err := l.Accept(); err == nil {
		c.Close()
		t.Fatal("Provision (or something it started) connected to the database")
	}

	// An unreachable host provisions just as well.
	m = &Module{DSN: "postgres://issuer@192.0.2.1:5432/issuer?sslmode=verify-full"}
	start := time.Now()
	if err := m.Provision(caddyCtx(t)); err != nil {
		t.Fatalf("Provision with an unreachable host: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Provision took %v: it waited on the network", d)
	}
}

// TestProvisionLeavesUnknownBraces: a literal {..} in a password is not
// a placeholder and stays.
func TestProvisionLeavesUnknownBraces(t *testing.T) {
	m := &Module{DSN: "host=127.0.0.1 user=issuer password=pa{ss}word dbname=issuer sslmode=disable"}
	if err := m.Provision(caddyCtx(t)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.cfg.DSN, "pa{ss}word") {
		t.Errorf("DSN after Provision = %q, the password's braces were replaced", m.cfg.DSN)
	}
}

func TestProvisionErrors(t *testing.T) {
	const pw = "s3cr3t-pw"
	for _, tc := range []struct {
		name string
		m    Module
		want string
	}{
		{"no dsn", Module{}, "dsn is required"},
		{"empty env", Module{DSN: "{env.APIACCESS_TEST_UNSET_VARIABLE}"}, "dsn is required"},
		{"bad port", Module{DSN: "postgres://u:" + pw + "@db:port/x"}, "invalid dsn"},
		{"bad sslmode", Module{DSN: "postgres://u:" + pw + "@db/x?sslmode=bogus"}, "sslmode is invalid"},
		{"bad sslmode key=value", Module{DSN: "host=db password=" + pw + " sslmode=bogus"}, "sslmode is invalid"},
		{"not a dsn", Module{DSN: "postgres://u:" + pw + "@[db/x"}, "invalid dsn"},
		{"missing root cert", Module{DSN: "postgres://u:" + pw + "@db/x?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"}, "/nonexistent/ca.pem"},
		{"bad schema", Module{DSN: "postgres://db/x", Schema: "Issuer; DROP"}, "schema"},
		{"min over max", Module{DSN: "postgres://db/x", MaxConns: 2, MinConns: 3}, "min_conns 3 is more than max_conns 2"},
		{"min over dsn max", Module{DSN: "postgres://db/x?pool_max_conns=2", MinConns: 3}, "min_conns 3 is more than max_conns 2"},
		{"short log retention", Module{DSN: "postgres://db/x", LogRetention: duration.Duration(time.Minute)}, "log_retention 1m0s must be at least 1h0m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.m.Provision(caddyCtx(t))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Provision: %v, want an error containing %q", err, tc.want)
			}
			t.Log(err)
			if strings.Contains(err.Error(), pw) {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

// TestSettingsOverrideDSN: explicit fields win over the DSN's pool_*
// and connect_timeout; unset ones keep them, else the defaults.
func TestSettingsOverrideDSN(t *testing.T) {
	c := Config{DSN: "postgres://db/x?pool_max_conns=7&pool_min_conns=1&connect_timeout=9"}
	pc, err := c.poolConfig()
	if err != nil {
		t.Fatal(err)
	}
	if pc.MaxConns != 7 || pc.MinConns != 1 || pc.ConnConfig.ConnectTimeout != 9*time.Second {
		t.Errorf("DSN settings not kept: max %d min %d timeout %v", pc.MaxConns, pc.MinConns, pc.ConnConfig.ConnectTimeout)
	}
	c = Config{DSN: c.DSN, MaxConns: 20, MinConns: 2, ConnectTimeout: 2 * time.Second,
		MaxConnLifetime: time.Minute, MaxConnIdleTime: 10 * time.Second}
	if pc, err = c.poolConfig(); err != nil {
		t.Fatal(err)
	}
	if pc.MaxConns != 20 || pc.MinConns != 2 || pc.ConnConfig.ConnectTimeout != 2*time.Second ||
		pc.MaxConnLifetime != time.Minute || pc.MaxConnIdleTime != 10*time.Second {
		t.Errorf("fields did not override the DSN: %+v", pc)
	}
	if pc, err = (Config{DSN: "postgres://db/x"}).poolConfig(); err != nil {
		t.Fatal(err)
	}
	if pc.ConnConfig.ConnectTimeout != DefaultConnectTimeout {
		t.Errorf("connect timeout = %v, want the default %v", pc.ConnConfig.ConnectTimeout, DefaultConnectTimeout)
	}
}

func TestUnverifiedHosts(t *testing.T) {
	for _, tc := range []struct {
		dsn  string
		want []string
	}{
		{"postgres://db.example.com/x?sslmode=verify-full", nil},
		{"postgres://db.example.com/x?sslmode=verify-ca", nil},
		{"postgres://db.example.com/x?sslmode=disable", []string{"db.example.com"}},
		{"postgres://db.example.com/x?sslmode=require", []string{"db.example.com"}},
		{"postgres://db.example.com/x", []string{"db.example.com"}}, // prefer
		{"postgres://127.0.0.1/x?sslmode=disable", nil},
		{"postgres://localhost/x?sslmode=disable", nil},
		{"host=/var/run/postgresql dbname=x", nil},
		{"postgres://a.example.com,b.example.com/x?sslmode=disable", []string{"a.example.com", "b.example.com"}},
	} {
		pc, err := (Config{DSN: tc.dsn}).poolConfig()
		if err != nil {
			t.Fatalf("%s: %v", tc.dsn, err)
		}
		if got := unverifiedHosts(&pc.ConnConfig.Config); !slices.Equal(got, tc.want) {
			t.Errorf("%s: unverified hosts %v, want %v", tc.dsn, got, tc.want)
		}
	}
}

func TestUnmarshalCaddyfile(t *testing.T) {
	for _, tc := range []struct {
		name, input string
		want        Module
		err         string
	}{
		{name: "inline dsn", input: `postgres {env.DATABASE_URL}`,
			want: Module{DSN: "{env.DATABASE_URL}"}},
		{name: "block", input: `postgres {
				dsn "postgres://issuer@db/issuer?sslmode=verify-full"
				schema issuer
				max_conns 20
				min_conns 2
				max_conn_lifetime 30m
				max_conn_idle_time 5m
				connect_timeout 3s
				log_retention 30d
			}`,
			want: Module{DSN: "postgres://issuer@db/issuer?sslmode=verify-full", Schema: "issuer", MaxConns: 20, MinConns: 2,
				MaxConnLifetime: duration.Duration(30 * time.Minute), MaxConnIdleTime: duration.Duration(5 * time.Minute),
				ConnectTimeout: duration.Duration(3 * time.Second), LogRetention: duration.Duration(30 * 24 * time.Hour)}},
		{name: "inline dsn and block", input: "postgres {env.DATABASE_URL} {\nmax_conns 8\n}",
			want: Module{DSN: "{env.DATABASE_URL}", MaxConns: 8}},
		{name: "min_conns zero", input: "postgres x {\nmin_conns 0\n}", want: Module{DSN: "x"}},

		{name: "two inline arguments", input: `postgres a b`, err: "wrong argument count"},
		{name: "dsn twice", input: "postgres a {\ndsn b\n}", err: `duplicate subdirective "dsn"`},
		{name: "duplicate", input: "postgres {\nmax_conns 2\nmax_conns 3\n}", err: `duplicate subdirective "max_conns"`},
		{name: "unknown", input: "postgres {\nmax_connections 2\n}", err: `unknown subdirective "max_connections"`},
		{name: "no value", input: "postgres {\nschema\n}", err: "wrong argument count"},
		{name: "two values", input: "postgres {\nschema a b\n}", err: "wrong argument count"},
		{name: "max_conns not a number", input: "postgres {\nmax_conns many\n}", err: `max_conns "many": want a whole number of at least 1`},
		{name: "max_conns zero", input: "postgres {\nmax_conns 0\n}", err: `max_conns "0": want a whole number of at least 1`},
		{name: "min_conns negative", input: "postgres {\nmin_conns -1\n}", err: `min_conns "-1": want a whole number of at least 0`},
		{name: "max_conns overflow", input: "postgres {\nmax_conns 3000000000\n}", err: "want a whole number"},
		{name: "bad duration", input: "postgres {\nconnect_timeout soon\n}", err: `connect_timeout "soon": not a duration`},
		{name: "zero duration", input: "postgres {\nmax_conn_lifetime 0s\n}", err: `max_conn_lifetime "0s": zero would mean the default`},
		{name: "short log retention", input: "postgres {\nlog_retention 59m\n}", err: `log_retention 59m0s: must be at least 1h0m0s`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m Module
			err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				if !strings.Contains(err.Error(), "Testfile:") {
					t.Errorf("error %q does not name the file and line", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m != tc.want {
				t.Errorf("got %+v\nwant %+v", m, tc.want)
			}
		})
	}
}

// TestOpenStoreSharesAcrossReloads: two configs with the same settings
// (old and new, during a reload) share one pool; it closes when the
// last one is cleaned up.
func TestOpenStoreSharesAcrossReloads(t *testing.T) {
	schema := freshSchema(t)
	provision := func() *Module {
		m := &Module{DSN: testDSN(), Schema: schema, MaxConns: 2}
		if err := m.Provision(caddyCtx(t)); err != nil {
			t.Fatal(err)
		}
		return m
	}
	oldM, newM := provision(), provision()
	ctx := context.Background()
	s1, err := oldM.OpenStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := newM.OpenStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s1 != s2 {
		t.Fatal("the same settings opened two stores, want one shared")
	}
	if err := oldM.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Marked(ctx, "ns", "k"); err != nil {
		t.Fatalf("store closed while the new config still uses it: %v", err)
	}
	if err := newM.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Marked(ctx, "ns", "k"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("after the last Cleanup: %v, want store.ErrClosed", err)
	}
	// A module never opened cleans up without error.
	if err := provision().Cleanup(); err != nil {
		t.Fatal(err)
	}
}
