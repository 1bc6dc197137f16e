package embedded

import (
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/apiaccess/caddy-apiaccess/internal/caddyargs"
)

// UnmarshalCaddyfile parses the module's part of the `token_issuer`
// global option's `storage` subdirective:
//
//	storage embedded [<path>] {
//		path           <path>
//		log_retention  <duration>
//		log_max_events <n>
//	}
//
// The path is given once, inline or as `path`.
func (m *Module) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the module name
	once := caddyargs.Once{}
	if d.NextArg() {
		m.Path = d.Val()
		once["path"] = true // `storage embedded <path>` sets it
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "path":
			err = caddyargs.One(d, once, &m.Path)
		case "log_retention":
			err = caddyargs.Duration(d, once, &m.LogRetention)
			if err == nil && time.Duration(m.LogRetention) < minLogRetention {
				err = d.Errf("log_retention %s: must be at least %s", m.LogRetention, minLogRetention)
			}
		case "log_max_events":
			err = maxEventsArg(d, once, &m.LogMaxEvents)
		default:
			return caddyargs.Unknown(d)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// maxEventsArg reads a positive event count.
func maxEventsArg(d *caddyfile.Dispenser, once caddyargs.Once, dst *int) error {
	name := d.Val()
	var arg string
	if err := caddyargs.One(d, once, &arg); err != nil {
		return err
	}
	n, err := strconv.ParseInt(arg, 10, 0)
	if err != nil || n < 1 {
		return d.Errf("%s %q: want a whole number of at least 1", name, arg)
	}
	*dst = int(n)
	return nil
}

var _ caddyfile.Unmarshaler = (*Module)(nil)
