package caddymodule

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/apiaccess/caddy-apiaccess/caddymodule/validator"
	"github.com/apiaccess/caddy-apiaccess/internal/caddyargs"
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
//		log_decisions rejections|all|none
//		route_name <name>
//		dpop required|allowed|off
//		dpop_origin <origin>
//		dpop_algorithms <alg...>
//		dpop_nonce_secret <secret>
//		dpop_nonce_period <duration>
//		dpop_replay_cache_size <entries>
//		introspect [<endpoint>] {
//			client_id <client_id>
//			client_secret <secret>
//			cache <duration>
//			negative_cache <duration>|off
//		}
//		revocations {
//			feed <url>
//			client_id <client_id>
//			client_secret <secret>
//			private_key <pem_file> [<kid>]
//			stale_after <duration>
//			on_stale warn|fail
//		}
//	}
//
// The issuer URL given as an argument (with its audiences) is the first
// issuer; `issuer` adds more and repeats, and its block is optional. An issuer's
// audiences go either after its URL or in its block, not both. `scopes`
// and `any_scope` append when repeated; `claim`, `claim_regexp` and
// `forward_claim` repeat; every other subdirective may be given once per
// block. `expression` takes the CEL expression as one token, usually in
// backquotes. Durations take Go's units and `d` (days), as in 7d or 1d12h; a zero
// `clock_skew`, `key_refresh` or `min_refresh`, which the JSON would
// read as the default, is refused. `cache_size -1` disables the cache
// of verified tokens. Missing issuers or audiences, bad patterns,
// expressions and algorithms are reported when the handler is
// provisioned; placeholders such as `{env.NAME}` are resolved then too.
// `negative_cache off` keeps no introspection refusals. `log_decisions`
// and `route_name` say what the route records in the System Log of the
// `token_issuer` app of the same Caddy. The `dpop` subdirectives are
// described at parseDPoP, `revocations` at parseRevocations.
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	h.Next() // consume directive name
	rt := new(RequireToken)
	urls := caddyargs.Names{}
	if h.NextArg() {
		if err := urls.Add(h.Dispenser, "issuer", h.Val()); err != nil {
			return nil, err
		}
		rt.Issuers = append(rt.Issuers, &IssuerConfig{URL: h.Val(), Audience: h.RemainingArgs()})
	}
	once, headers := caddyargs.Once{}, map[string]bool{}
	for h.NextBlock(0) {
		var err error
		switch h.Val() {
		case "issuer":
			var ic *IssuerConfig
			if ic, err = parseIssuer(h.Dispenser, urls); err == nil {
				rt.Issuers = append(rt.Issuers, ic)
			}
		case "audience":
			err = caddyargs.List(h.Dispenser, once, &rt.Audience)
		case "scopes":
			err = caddyargs.Append(h.Dispenser, &rt.Scopes)
		case "any_scope":
			err = caddyargs.Append(h.Dispenser, &rt.AnyScope)
		case "claim":
			c := new(ClaimConfig)
			if err = caddyargs.Two(h.Dispenser, &c.Name, &c.Value); err == nil {
				rt.Claims = append(rt.Claims, c)
			}
		case "claim_regexp":
			c := new(ClaimConfig)
			if err = caddyargs.Two(h.Dispenser, &c.Name, &c.Regexp); err == nil {
				// Checked here too, so the error carries the line.
				if _, rerr := validator.NewClaimRegexp(c.Name, c.Regexp); rerr != nil {
					err = h.Errf("claim_regexp: %v", rerr)
				}
				rt.Claims = append(rt.Claims, c)
			}
		case "expression":
			if err = caddyargs.Expression(h.Dispenser, once, &rt.Expression); err == nil {
				if _, cerr := validator.CompileExpression(rt.Expression); cerr != nil {
					err = h.Errf("%v", cerr)
				}
			}
		case "token_cookie":
			err = caddyargs.One(h.Dispenser, once, &rt.TokenCookie)
		case "token_query":
			err = caddyargs.One(h.Dispenser, once, &rt.TokenQuery)
		case "clock_skew":
			err = caddyargs.Duration(h.Dispenser, once, &rt.ClockSkew)
		case "algorithms":
			err = caddyargs.List(h.Dispenser, once, &rt.Algorithms)
		case "max_token_size":
			if err = caddyargs.Int(h.Dispenser, once, &rt.MaxTokenSize); err == nil && rt.MaxTokenSize <= 0 {
				err = h.Errf("max_token_size %d: must be a positive number of bytes", rt.MaxTokenSize)
			}
		case "forward_claim":
			f := new(ForwardClaim)
			if err = caddyargs.Two(h.Dispenser, &f.Claim, &f.Header); err == nil {
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
			if err = caddyargs.Int(h.Dispenser, once, &rt.CacheSize); err == nil && (rt.CacheSize < -1 || rt.CacheSize == 0) {
				err = h.Errf("cache_size %d: must be a positive number of entries, or -1 to disable the cache", rt.CacheSize)
			}
		case "realm":
			err = caddyargs.One(h.Dispenser, once, &rt.Realm)
		case "log_decisions":
			if err = caddyargs.One(h.Dispenser, once, &rt.LogDecisions); err == nil {
				switch rt.LogDecisions {
				case LogRejections, LogAll, LogNone:
				default:
					err = h.Errf("log_decisions %q: want rejections, all or none", rt.LogDecisions)
				}
			}
		case "route_name":
			if err = caddyargs.One(h.Dispenser, once, &rt.RouteName); err == nil && !validRouteName(rt.RouteName) {
				err = h.Errf("route_name: at most 128 bytes of printable UTF-8")
			}
		case "introspect":
			if err = once.Check(h.Dispenser); err == nil {
				rt.Introspection, err = parseIntrospect(h.Dispenser)
			}
		case "revocations":
			if err = once.Check(h.Dispenser); err == nil {
				rt.Revocations, err = parseRevocations(h.Dispenser)
			}
		default:
			var ok bool
			if ok, err = parseDPoP(h.Dispenser, once, rt); !ok {
				return nil, caddyargs.Unknown(h.Dispenser)
			}
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
func parseIssuer(d *caddyfile.Dispenser, urls caddyargs.Names) (*IssuerConfig, error) {
	ic := new(IssuerConfig)
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	ic.URL = d.Val()
	if err := urls.Add(d, "issuer", ic.URL); err != nil {
		return nil, err
	}
	ic.Audience = d.RemainingArgs()
	inline := len(ic.Audience) > 0
	once := caddyargs.Once{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "audience":
			if inline {
				return nil, d.Errf("issuer %s: audience given both after the URL and in the block", ic.URL)
			}
			err = caddyargs.List(d, once, &ic.Audience)
		case "algorithms":
			err = caddyargs.List(d, once, &ic.Algorithms)
		case "jwks_uri":
			err = caddyargs.One(d, once, &ic.JWKSURI)
		case "key_refresh":
			err = caddyargs.Duration(d, once, &ic.KeyRefresh)
		case "min_refresh":
			err = caddyargs.Duration(d, once, &ic.MinRefresh)
		default:
			return nil, caddyargs.Unknown(d)
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
	once := caddyargs.Once{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "client_id":
			err = caddyargs.One(d, once, &in.ClientID)
		case "client_secret":
			err = caddyargs.One(d, once, &in.ClientSecret)
		case "cache":
			err = caddyargs.DurationOrZero(d, once, &in.Cache)
		case "negative_cache":
			err = caddyargs.DurationOrOff(d, once, &in.NegativeCache)
		default:
			return nil, caddyargs.Unknown(d)
		}
		if err != nil {
			return nil, err
		}
	}
	return in, nil
}
