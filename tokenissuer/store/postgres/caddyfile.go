package postgres

import (
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/apiaccess/caddy-apiaccess/internal/caddyargs"
)

// UnmarshalCaddyfile parses the module's part of the `token_issuer`
// global option's `storage` subdirective:
//
//	storage postgres [<dsn>] {
//		dsn                <dsn>
//		schema             <name>
//		max_conns          <n>
//		min_conns          <n>
//		max_conn_lifetime  <duration>
//		max_conn_idle_time <duration>
//		connect_timeout    <duration>
//		operation_timeout  <duration>
//		log_retention      <duration>
//	}
//
// The DSN is given once, inline or as `dsn`; placeholders such as
// `{env.DATABASE_URL}` are expanded when the config loads.
func (m *Module) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the module name
	once := caddyargs.Once{}
	if d.NextArg() {
		m.DSN = d.Val()
		once["dsn"] = true // `postgres <dsn>` sets it
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for d.NextBlock(0) {
		var err error
		switch name := d.Val(); name {
		case "dsn":
			err = caddyargs.One(d, once, &m.DSN)
		case "schema":
			err = caddyargs.One(d, once, &m.Schema)
		case "max_conns":
			err = connsArg(d, once, &m.MaxConns, 1)
		case "min_conns":
			err = connsArg(d, once, &m.MinConns, 0)
		case "max_conn_lifetime":
			err = caddyargs.Duration(d, once, &m.MaxConnLifetime)
		case "max_conn_idle_time":
			err = caddyargs.Duration(d, once, &m.MaxConnIdleTime)
		case "connect_timeout":
			err = caddyargs.Duration(d, once, &m.ConnectTimeout)
		case "operation_timeout":
			err = caddyargs.Duration(d, once, &m.OperationTimeout)
		case "log_retention":
			err = caddyargs.Duration(d, once, &m.LogRetention)
			if err == nil && time.Duration(m.LogRetention) < MinLogRetention {
				err = d.Errf("log_retention %s: must be at least %s", m.LogRetention, MinLogRetention)
			}
		default:
			return caddyargs.Unknown(d)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// connsArg reads a connection count of at least least.
func connsArg(d *caddyfile.Dispenser, once caddyargs.Once, dst *int32, least int64) error {
	name := d.Val()
	var arg string
	if err := caddyargs.One(d, once, &arg); err != nil {
		return err
	}
	n, err := strconv.ParseInt(arg, 10, 32)
	if err != nil || n < least {
		return d.Errf("%s %q: want a whole number of at least %d", name, arg, least)
	}
	*dst = int32(n)
	return nil
}

var _ caddyfile.Unmarshaler = (*Module)(nil)
