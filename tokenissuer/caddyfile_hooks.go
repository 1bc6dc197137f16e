package tokenissuer

import (
	"fmt"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/apiaccess/caddy-apiaccess/internal/caddyargs"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/inlinehook"
)

// parseInlineHook parses, at the `inline_hook` token of the global
// option,
//
//	inline_hook <name> {
//		url <url>
//		authorization <secret>
//		auth_header <header>
//		header <name> <value>
//		timeout <duration>
//	}
//
// Okta's token inline hook, which access-policy rules name with their
// own `inline_hook <name>`. `url` is required and must be https (http
// only for a loopback host); `authorization` is sent in the
// `Authorization` header (or `auth_header`), normally a placeholder
// such as `{env.HOOK_SECRET}`; `header` repeats; `timeout` is at most
// 3s, Okta's, which is also the default.
func parseInlineHook(d *caddyfile.Dispenser, names caddyargs.Names, root at) (*inlinehook.Config, error) {
	h := new(inlinehook.Config)
	if err := caddyargs.Name(d, names, &h.Name); err != nil {
		return nil, err
	}
	here := root.in(d, "inline_hook", h.Name)
	once := caddyargs.Once{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		field := d.Val()
		if field == "header" {
			field = "headers"
		}
		here.mark(d, field)
		switch d.Val() {
		case "url":
			err = caddyargs.One(d, once, &h.URL)
		case "authorization":
			err = caddyargs.One(d, once, &h.Authorization)
		case "auth_header":
			err = caddyargs.One(d, once, &h.AuthHeader)
		case "timeout":
			err = caddyargs.Duration(d, once, &h.Timeout)
		case "header":
			var args []string
			if args = d.RemainingArgs(); len(args) != 2 {
				return nil, d.ArgErr()
			}
			if h.Headers == nil {
				h.Headers = map[string]string{}
			}
			if _, dup := h.Headers[args[0]]; dup {
				return nil, d.Errf("header %q given twice", args[0])
			}
			h.Headers[args[0]] = args[1]
		default:
			return nil, caddyargs.Unknown(d)
		}
		if err != nil {
			return nil, err
		}
	}
	return h, nil
}

// resolveHooks replaces the placeholders of the hooks' url,
// authorization and header values.
func resolveHooks(hooks []*inlinehook.Config, resolve func(what, s string) (string, error)) error {
	for _, h := range hooks {
		if h == nil {
			continue
		}
		var err error
		if h.URL, err = resolve("inline_hook "+h.Name+" url", h.URL); err != nil {
			return err
		}
		if h.Authorization, err = resolve("inline_hook "+h.Name+" authorization", h.Authorization); err != nil {
			return err
		}
		for k, v := range h.Headers {
			if h.Headers[k], err = resolve(fmt.Sprintf("inline_hook %s header %s", h.Name, k), v); err != nil {
				return err
			}
		}
	}
	return nil
}

// hooksToCheck are copies of hooks for the adapter's checks: a url
// holding a placeholder is checked at provision, once resolved.
func hooksToCheck(hooks []*inlinehook.Config) []*inlinehook.Config {
	out := make([]*inlinehook.Config, 0, len(hooks))
	for _, h := range hooks {
		if h == nil {
			continue
		}
		c := *h
		if strings.Contains(c.URL, "{") {
			c.URL = "https://inline-hook.invalid/"
		}
		out = append(out, &c)
	}
	return out
}
