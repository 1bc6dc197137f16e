package caddymodule

import (
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/apiaccess/caddy-apiaccess/internal/caddyargs"
)

// parseRevocations parses the `revocations` block of `require_token` at
// its token:
//
//	revocations {
//		feed <url>
//		client_id <client_id>
//		client_secret <secret>
//		private_key <pem_file> [<kid>]
//		stale_after <duration>
//		on_stale warn|fail
//	}
//
// each once. With `feed`, `client_id` is required, and one of
// `client_secret` (client_secret_basic) or `private_key`
// (private_key_jwt). Without `feed` the block only sets `stale_after`
// and `on_stale` of the in-process revocation view of a `token_issuer`
// of the same Caddy (for a route whose issuer it serves), and
// `client_id` and the credentials are refused. What needs no
// placeholder is checked here, so errors carry the line.
func parseRevocations(d *caddyfile.Dispenser) (*RevocationsConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	rc := new(RevocationsConfig)
	start := d.Val()
	once := caddyargs.Once{}
	var feedOnly error // the first setting that needs a feed, at its line
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "client_id", "client_secret", "private_key":
			if feedOnly == nil {
				feedOnly = d.Errf("%s: %s is for a feed, and feed is not set (without feed, the block only sets stale_after and on_stale of the in-process view)", start, d.Val())
			}
		}
		switch d.Val() {
		case "feed":
			if err = caddyargs.One(d, once, &rc.Feed); err == nil && !strings.Contains(rc.Feed, "{") {
				if ferr := checkFeedURL(strings.TrimRight(rc.Feed, "/")); ferr != nil {
					err = d.Errf("%v", ferr)
				}
			}
		case "client_id":
			err = caddyargs.One(d, once, &rc.ClientID)
		case "client_secret":
			if rc.PrivateKey != "" {
				return nil, d.Errf("revocations: client_secret or private_key, not both")
			}
			err = caddyargs.One(d, once, &rc.ClientSecret)
		case "private_key":
			if rc.ClientSecret != "" {
				return nil, d.Errf("revocations: client_secret or private_key, not both")
			}
			if err = once.Check(d); err == nil {
				args := d.RemainingArgs()
				switch len(args) {
				case 1:
					rc.PrivateKey = args[0]
				case 2:
					rc.PrivateKey, rc.PrivateKeyID = args[0], args[1]
				default:
					err = d.ArgErr()
				}
			}
		case "stale_after":
			err = caddyargs.Duration(d, once, &rc.StaleAfter)
		case "on_stale":
			if err = caddyargs.One(d, once, &rc.OnStale); err == nil && rc.OnStale != OnStaleWarn && rc.OnStale != OnStaleFail {
				err = d.Errf("on_stale %q: want warn or fail", rc.OnStale)
			}
		default:
			return nil, caddyargs.Unknown(d)
		}
		if err != nil {
			return nil, err
		}
	}
	switch {
	case rc.Feed == "" && feedOnly != nil:
		return nil, feedOnly
	case rc.Feed == "":
		return rc, nil
	case rc.ClientID == "":
		return nil, d.Errf("%s: client_id is required", start)
	case rc.ClientSecret == "" && rc.PrivateKey == "":
		return nil, d.Errf("%s: client_secret or private_key is required", start)
	}
	return rc, nil
}
