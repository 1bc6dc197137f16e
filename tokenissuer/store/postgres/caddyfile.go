package postgres

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
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
//	}
//
// The DSN is given once, inline or as `dsn`; placeholders such as
// `{env.DATABASE_URL}` are expanded when the config loads.
func (m *Module) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the module name
	seen := map[string]bool{}
	if d.NextArg() {
		m.DSN = d.Val()
		seen["dsn"] = true
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for d.NextBlock(0) {
		name := d.Val()
		var dst any
		switch name {
		case "dsn":
			dst = &m.DSN
		case "schema":
			dst = &m.Schema
		case "max_conns":
			dst = &m.MaxConns
		case "min_conns":
			dst = &m.MinConns
		case "max_conn_lifetime":
			dst = &m.MaxConnLifetime
		case "max_conn_idle_time":
			dst = &m.MaxConnIdleTime
		case "connect_timeout":
			dst = &m.ConnectTimeout
		case "operation_timeout":
			dst = &m.OperationTimeout
		default:
			return d.Errf("unknown subdirective %q", name)
		}
		if seen[name] {
			return d.Errf("%s given twice", name)
		}
		seen[name] = true
		var arg string
		if !d.Args(&arg) || d.NextArg() {
			return d.ArgErr()
		}
		switch dst := dst.(type) {
		case *string:
			*dst = arg
		case *int32:
			least := int64(0)
			if name == "max_conns" {
				least = 1
			}
			n, err := strconv.ParseInt(arg, 10, 32)
			if err != nil || n < least {
				return d.Errf("%s %q: want a whole number of at least %d", name, arg, least)
			}
			*dst = int32(n)
		case *caddy.Duration:
			dur, err := caddy.ParseDuration(arg)
			if err != nil || dur <= 0 {
				return d.Errf("%s %q: want a positive duration such as 5s or 30m", name, arg)
			}
			*dst = caddy.Duration(dur)
		}
	}
	return nil
}

var _ caddyfile.Unmarshaler = (*Module)(nil)
