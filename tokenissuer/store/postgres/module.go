package postgres

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/internal/duration"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

func init() {
	caddy.RegisterModule(Module{})
}

// pools shares one open store across config reloads: a new config is
// provisioned and started before the old one is cleaned up, and needs
// neither a second pool nor to run the migrations again.
var pools = caddy.NewUsagePool()

// Module is the PostgreSQL store as a Caddy guest module
// (`token_issuer.storage.postgres`): the issuer's keys, revocations,
// refresh tokens, sign-in state and System Log in one database, shared by every
// Caddy instance that points at it. The tables (`apiaccess_*`) are
// created, and later upgraded, when the app starts.
type Module struct {
	// DSN is the PostgreSQL connection string, as a URL
	// (`postgres://user:password@host:5432/database?sslmode=verify-full`)
	// or key=value pairs. Required. Placeholders are expanded, so keep
	// the password out of the config with `{env.DATABASE_URL}` or
	// `{file./run/secrets/dsn}`. Over a network use
	// `sslmode=verify-full`: a warning is logged otherwise. pgx's
	// `pool_*` parameters are honoured unless the fields below are set.
	DSN string `json:"dsn,omitempty"`

	// Schema holds the tables; created if missing (which needs the
	// CREATE privilege on the database, the first time only). 1-63
	// lower-case letters, digits or `_`. Default: the first existing
	// schema of the connection's search_path, usually `public`.
	Schema string `json:"schema,omitempty"`

	// MaxConns is the most connections this instance opens. Default:
	// the DSN's `pool_max_conns`, else 4 or the number of CPUs,
	// whichever is more.
	MaxConns int32 `json:"max_conns,omitempty"`

	// MinConns is how many connections are kept open even when idle.
	// Default: the DSN's `pool_min_conns`, else 0.
	MinConns int32 `json:"min_conns,omitempty"`

	// MaxConnLifetime is how long a connection is used before it is
	// replaced, so that load spreads after a failover or scale-out.
	// Default: the DSN's `pool_max_conn_lifetime`, else 1h.
	MaxConnLifetime duration.Duration `json:"max_conn_lifetime,omitempty"`

	// MaxConnIdleTime is how long an idle connection stays open.
	// Default: the DSN's `pool_max_conn_idle_time`, else 30m.
	MaxConnIdleTime duration.Duration `json:"max_conn_idle_time,omitempty"`

	// ConnectTimeout bounds each attempt to open a connection; a request
	// that needs one gets 503 `temporarily_unavailable` when the database
	// cannot be reached in time. Default: the DSN's `connect_timeout`,
	// else 5s.
	ConnectTimeout duration.Duration `json:"connect_timeout,omitempty"`

	// OperationTimeout bounds each read or write of issuer state, so a
	// database that stops answering without closing the connection gets
	// requests a 503 `temporarily_unavailable` instead of holding them.
	// Default: 10s.
	OperationTimeout duration.Duration `json:"operation_timeout,omitempty"`

	// LogRetention is how long System Log events are kept; older ones
	// are deleted by the issuer's maintenance (on one node at a time).
	// At least 1h. Default: 90 days, as Okta keeps its System Log.
	LogRetention duration.Duration `json:"log_retention,omitempty"`

	cfg    Config
	key    string
	opened bool
	log    *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Module) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "token_issuer.storage.postgres",
		New: func() caddy.Module { return new(Module) },
	}
}

type poolDB struct{ *DB }

func (p poolDB) Destruct() error { return p.DB.Close() }

// Provision expands placeholders and checks the configuration. It
// connects to nothing: it also runs for `caddy validate` and `caddy
// adapt`, maybe where the database cannot be reached.
func (m *Module) Provision(ctx caddy.Context) error {
	m.log = ctx.Logger()
	// ReplaceKnown leaves unknown {...} alone: a password may hold braces.
	repl := caddy.NewReplacer()
	m.cfg = Config{
		DSN:              repl.ReplaceKnown(m.DSN, ""),
		Schema:           repl.ReplaceKnown(m.Schema, ""),
		MaxConns:         m.MaxConns,
		MinConns:         m.MinConns,
		MaxConnLifetime:  time.Duration(m.MaxConnLifetime),
		MaxConnIdleTime:  time.Duration(m.MaxConnIdleTime),
		ConnectTimeout:   time.Duration(m.ConnectTimeout),
		OperationTimeout: time.Duration(m.OperationTimeout),
		LogRetention:     time.Duration(m.LogRetention),
	}
	pc, err := m.cfg.poolConfig()
	if err != nil {
		return err
	}
	// The pool key holds the DSN, so it stays in memory only.
	key, err := json.Marshal(m.cfg)
	if err != nil {
		return err
	}
	m.key = string(key)
	if hosts := unverifiedHosts(&pc.ConnConfig.Config); len(hosts) > 0 {
		m.log.Warn("the PostgreSQL connection is not verified TLS: credentials, signing keys (sealed) and tokens cross the network readable or open to interception; use sslmode=verify-full",
			zap.Strings("hosts", hosts))
	}
	return nil
}

// unverifiedHosts lists the non-local hosts that cfg would reach without
// TLS or without checking the server's certificate (sslmode disable,
// allow, prefer or require).
func unverifiedHosts(cfg *pgconn.Config) []string {
	var out []string
	check := func(host string, tls, verified bool) {
		if strings.HasPrefix(host, "/") || host == "localhost" {
			return // a Unix socket or this machine
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return
		}
		if !tls || !verified {
			out = append(out, host)
		}
	}
	verified := func(c *pgconn.FallbackConfig) bool {
		return c.TLSConfig != nil && (!c.TLSConfig.InsecureSkipVerify || c.TLSConfig.VerifyPeerCertificate != nil)
	}
	first := &pgconn.FallbackConfig{Host: cfg.Host, TLSConfig: cfg.TLSConfig}
	for _, c := range append([]*pgconn.FallbackConfig{first}, cfg.Fallbacks...) {
		check(c.Host, c.TLSConfig != nil, verified(c))
	}
	return dedupe(out)
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	out := s[:0]
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// OpenStore connects and migrates the schema, or shares the store a
// previous config with the same settings opened.
func (m *Module) OpenStore(ctx context.Context) (store.Store, error) {
	v, loaded, err := pools.LoadOrNew(m.key, func() (caddy.Destructor, error) {
		db, err := Open(ctx, m.cfg)
		if err != nil {
			return nil, err
		}
		return poolDB{db}, nil
	})
	if err != nil {
		return nil, err
	}
	m.opened = true
	db := v.(poolDB).DB
	if !loaded {
		cc := db.pool.Config().ConnConfig
		m.log.Info("postgres store open",
			zap.String("host", cc.Host), zap.Uint16("port", cc.Port), zap.String("database", cc.Database),
			zap.String("user", cc.User), zap.String("schema", db.Schema()), zap.Int("schema_version", len(migrations)))
	}
	return db, nil
}

// Cleanup releases this config's use of the pool; the last user closes it.
func (m *Module) Cleanup() error {
	if !m.opened {
		return nil
	}
	_, err := pools.Delete(m.key)
	return err
}

var (
	_ caddy.Provisioner  = (*Module)(nil)
	_ caddy.CleanerUpper = (*Module)(nil)
	_ store.Opener       = (*Module)(nil)
)
