package caddymodule

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/apiaccess/caddy-apiaccess/caddymodule/validator"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("require_token", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("require_token", httpcaddyfile.After, "basic_auth")
}

// parseCaddyfile sets up the `require_token` handler. Syntax:
//
//	require_token [<matcher>] [<issuer_url> [<audience...>]] {
//		issuer <url> [<audience...>] {
//			audience <audience...>
//			algorithms <alg...>
//			jwks_uri <url>
//			key_refresh <duration>
//			min_refresh <duration>
//		}
//		audience <audience...>
//		scopes <scope...>
//		any_scope <scope...>
//		claim <name> <value>
//		claim_regexp <name> <pattern>
//		expression <cel_expression>
//		token_cookie <name>
//		token_query <name>
//		clock_skew <duration>
//		algorithms <alg...>
//		max_token_size <bytes>
//		forward_claim <claim> <header>
//		cache_size <entries>|-1
//		realm <realm>
//		introspect [<endpoint>] {
//			client_id <client_id>
//			client_secret <secret>
//			cache <duration>
//			negative_cache <duration>|off
//		}
//	}
//
// The issuer URL given as an argument (with its audiences) is the first
// issuer; `issuer` adds more and repeats, and its block is optional. An issuer's
// audiences go either after its URL or in its block, not both. `scopes`
// and `any_scope` append when repeated; `claim`, `claim_regexp` and
// `forward_claim` repeat; every other subdirective may be given once per
// block. `expression` takes the CEL expression as one token, usually in
// backquotes. Durations accept Caddy's units, including `d`; a zero
// `clock_skew`, `key_refresh` or `min_refresh`, which the JSON would
// read as the default, is refused. `cache_size -1` disables the cache
// of verified tokens. Missing issuers or audiences, bad patterns,
// expressions and algorithms are reported when the handler is
// provisioned; placeholders such as `{env.NAME}` are resolved then too.
// `negative_cache off` keeps no introspection refusals.
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	h.Next() // consume directive name
	rt := new(RequireToken)
	urls := onceSet{}
	if h.NextArg() {
		if err := urls.add(h.Dispenser, "issuer", h.Val()); err != nil {
			return nil, err
		}
		rt.Issuers = append(rt.Issuers, &IssuerConfig{URL: h.Val(), Audience: h.RemainingArgs()})
	}
	once, headers := onceSet{}, onceSet{}
	for h.NextBlock(0) {
		var err error
		switch h.Val() {
		case "issuer":
			var ic *IssuerConfig
			if ic, err = parseIssuer(h.Dispenser, urls); err == nil {
				rt.Issuers = append(rt.Issuers, ic)
			}
		case "audience":
			err = listArg(h.Dispenser, once, &rt.Audience)
		case "scopes":
			err = appendArgs(h.Dispenser, &rt.Scopes)
		case "any_scope":
			err = appendArgs(h.Dispenser, &rt.AnyScope)
		case "claim":
			c := new(ClaimConfig)
			if err = twoArgs(h.Dispenser, &c.Name, &c.Value); err == nil {
				rt.Claims = append(rt.Claims, c)
			}
		case "claim_regexp":
			c := new(ClaimConfig)
			if err = twoArgs(h.Dispenser, &c.Name, &c.Regexp); err == nil {
				// Checked here too, so the error carries the line.
				if _, rerr := validator.NewClaimRegexp(c.Name, c.Regexp); rerr != nil {
					err = h.Errf("claim_regexp: %v", rerr)
				}
				rt.Claims = append(rt.Claims, c)
			}
		case "expression":
			if err = expressionArg(h.Dispenser, once, &rt.Expression); err == nil {
				if _, cerr := validator.CompileExpression(rt.Expression); cerr != nil {
					err = h.Errf("%v", cerr)
				}
			}
		case "token_cookie":
			err = singleArg(h.Dispenser, once, &rt.TokenCookie)
		case "token_query":
			err = singleArg(h.Dispenser, once, &rt.TokenQuery)
		case "clock_skew":
			err = durationArg(h.Dispenser, once, &rt.ClockSkew, false)
		case "algorithms":
			err = listArg(h.Dispenser, once, &rt.Algorithms)
		case "max_token_size":
			if err = intArg(h.Dispenser, once, &rt.MaxTokenSize); err == nil && rt.MaxTokenSize <= 0 {
				err = h.Errf("max_token_size %d: must be a positive number of bytes", rt.MaxTokenSize)
			}
		case "forward_claim":
			f := new(ForwardClaim)
			if err = twoArgs(h.Dispenser, &f.Claim, &f.Header); err == nil {
				// Two claims in one header would leave its value to the
				// order of the list and to which claims a token carries.
				if n := normalize(f.Header); headers[n] {
					err = h.Errf("forward_claim %s: header %s is already set by another forward_claim", f.Claim, f.Header)
				} else {
					headers[n] = true
					rt.ForwardClaims = append(rt.ForwardClaims, f)
				}
			}
		case "cache_size":
			if err = intArg(h.Dispenser, once, &rt.CacheSize); err == nil && (rt.CacheSize < -1 || rt.CacheSize == 0) {
				err = h.Errf("cache_size %d: must be a positive number of entries, or -1 to disable the cache", rt.CacheSize)
			}
		case "realm":
			err = singleArg(h.Dispenser, once, &rt.Realm)
		case "introspect":
			if err = once.check(h.Dispenser); err == nil {
				rt.Introspection, err = parseIntrospect(h.Dispenser)
			}
		default:
			return nil, h.Errf("unknown subdirective %q", h.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	if len(rt.Issuers) == 0 {
		return nil, h.Errf("require_token: at least one issuer is required (an issuer URL after the directive, or issuer <url>)")
	}
	return rt, nil
}

// parseIssuer parses `issuer <url> [<audience...>] [{...}]` at the
// `issuer` token, refusing a URL already in urls.
func parseIssuer(d *caddyfile.Dispenser, urls onceSet) (*IssuerConfig, error) {
	ic := new(IssuerConfig)
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	ic.URL = d.Val()
	if err := urls.add(d, "issuer", ic.URL); err != nil {
		return nil, err
	}
	ic.Audience = d.RemainingArgs()
	inline := len(ic.Audience) > 0
	once := onceSet{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "audience":
			if inline {
				return nil, d.Errf("issuer %s: audience given both after the URL and in the block", ic.URL)
			}
			err = listArg(d, once, &ic.Audience)
		case "algorithms":
			err = listArg(d, once, &ic.Algorithms)
		case "jwks_uri":
			err = singleArg(d, once, &ic.JWKSURI)
		case "key_refresh":
			err = durationArg(d, once, &ic.KeyRefresh, false)
		case "min_refresh":
			err = durationArg(d, once, &ic.MinRefresh, false)
		default:
			return nil, d.Errf("unknown subdirective %q", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	return ic, nil
}

// parseIntrospect parses `introspect [<endpoint>] [{...}]` at the
// `introspect` token.
func parseIntrospect(d *caddyfile.Dispenser) (*IntrospectionConfig, error) {
	in := new(IntrospectionConfig)
	if d.NextArg() {
		in.Endpoint = d.Val()
		if d.NextArg() {
			return nil, d.ArgErr()
		}
	}
	once := onceSet{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "client_id":
			err = singleArg(d, once, &in.ClientID)
		case "client_secret":
			err = singleArg(d, once, &in.ClientSecret)
		case "cache":
			err = durationArg(d, once, &in.Cache, true)
		case "negative_cache":
			err = durationOrOff(d, once, &in.NegativeCache)
		default:
			return nil, d.Errf("unknown subdirective %q", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	return in, nil
}

// onceSet records the names given in one block, to refuse repeats.
type onceSet map[string]bool

// check refuses the subdirective at the cursor if it was given before.
func (s onceSet) check(d *caddyfile.Dispenser) error {
	if s[d.Val()] {
		return d.Errf("duplicate subdirective %q", d.Val())
	}
	s[d.Val()] = true
	return nil
}

// add records name, refusing it if it was recorded before.
func (s onceSet) add(d *caddyfile.Dispenser, kind, name string) error {
	if s[name] {
		return d.Errf("%s %q given twice", kind, name)
	}
	s[name] = true
	return nil
}

// singleArg reads the one argument of a subdirective given once.
func singleArg(d *caddyfile.Dispenser, once onceSet, dst *string) error {
	if err := once.check(d); err != nil {
		return err
	}
	if !d.Args(dst) || d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// expressionArg reads the CEL expression, which must be one token.
func expressionArg(d *caddyfile.Dispenser, once onceSet, dst *string) error {
	if err := once.check(d); err != nil {
		return err
	}
	if !d.Args(dst) {
		return d.ArgErr()
	}
	if d.NextArg() {
		return d.Errf("wrong argument count: expression takes one token; wrap the CEL expression in backquotes")
	}
	return nil
}

// twoArgs reads the exactly two arguments of a repeatable subdirective.
func twoArgs(d *caddyfile.Dispenser, a, b *string) error {
	if !d.Args(a, b) || d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// listArg reads the one or more arguments of a subdirective given once.
func listArg(d *caddyfile.Dispenser, once onceSet, dst *[]string) error {
	if err := once.check(d); err != nil {
		return err
	}
	*dst = d.RemainingArgs()
	if len(*dst) == 0 {
		return d.ArgErr()
	}
	return nil
}

// appendArgs adds the one or more arguments of a repeatable list
// subdirective to dst.
func appendArgs(d *caddyfile.Dispenser, dst *[]string) error {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return d.ArgErr()
	}
	*dst = append(*dst, args...)
	return nil
}

// intArg reads an integer argument.
func intArg(d *caddyfile.Dispenser, once onceSet, dst *int) error {
	name := d.Val()
	var s string
	if err := singleArg(d, once, &s); err != nil {
		return err
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return d.Errf("%s %q is not an integer", name, s)
	}
	*dst = n
	return nil
}

// durationArg reads a duration with caddy.ParseDuration, which also
// accepts days (`d`). It refuses negative durations, and zero unless
// zeroOK: in the JSON, zero means the default.
func durationArg(d *caddyfile.Dispenser, once onceSet, dst *caddy.Duration, zeroOK bool) error {
	name := d.Val()
	var s string
	if err := singleArg(d, once, &s); err != nil {
		return err
	}
	v, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("%s %q: %v", name, s, err)
	}
	switch {
	case v < 0:
		return d.Errf("%s %q: must not be negative", name, s)
	case v == 0 && !zeroOK:
		return d.Errf("%s %q: zero would mean the default; give a positive duration", name, s)
	}
	*dst = caddy.Duration(v)
	return nil
}

// durationOrOff reads a positive duration, or `off`, stored as -1 (in
// the JSON, zero means the default and a negative value off).
func durationOrOff(d *caddyfile.Dispenser, once onceSet, dst *caddy.Duration) error {
	name := d.Val()
	var s string
	if err := singleArg(d, once, &s); err != nil {
		return err
	}
	if s == "off" {
		*dst = -1
		return nil
	}
	v, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("%s %q: %v", name, s, err)
	}
	if v <= 0 {
		return d.Errf("%s %q: give a positive duration, or off", name, s)
	}
	*dst = caddy.Duration(v)
	return nil
}
