package tokenissuer

import (
	"encoding/json"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/authserver"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/claims"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/embedded"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("token_issuer", parseGlobalOption)
	httpcaddyfile.RegisterHandlerDirective("token_issuer", parseHandler)
	httpcaddyfile.RegisterDirectiveOrder("token_issuer", httpcaddyfile.Before, "basic_auth")
}

// parseGlobalOption sets up the `token_issuer` app from the global
// option of the same name. Syntax:
//
//	token_issuer {
//		base_url <url>
//		key_encryption_secret <secret>
//		key_rotation_interval <duration>
//		maintenance_interval <duration>
//		storage embedded [<path>]
//		org {
//			signing_alg <alg>
//		}
//		client <client_id> {
//			name <name>
//			secret <secret>
//			secret_hash <bcrypt_hash>
//			auth_method client_secret_basic|client_secret_post|private_key_jwt
//			grant_types <grant_type...>
//			jwks <jwk_set_json>
//			jwks_uri <url>
//		}
//		authorization_server <id> {
//			name <name>
//			description <text>
//			audience <audience>
//			signing_alg <alg>
//			scope <name> {
//				description <text>
//				default
//				consent implicit|required
//				publish
//			}
//			claim <name> <cel_expression> {
//				scopes <scope...>
//			}
//			policy <name> {
//				description <text>
//				priority <int>
//				clients *|<client_id...>
//				rule <name> {
//					priority <int>
//					grant_types <grant_type...>
//					scopes *|<scope...>
//					access_token_lifetime <duration>
//				}
//			}
//		}
//	}
//
// Storage defaults to `embedded`; its path may also be given as
// `storage embedded { path <path> }`, and other `token_issuer.storage.*`
// modules parse their own tokens after `storage <name>`. `client`,
// `authorization_server`, `scope`, `claim`, `policy` and `rule` repeat;
// the blocks of `client`, `authorization_server`, `scope` and `claim`
// are optional. `jwks` takes the JWK set as one token, usually in
// backquotes. Durations accept Caddy's units, including `d`.
// Placeholders are resolved when the app is provisioned.
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	d.Next() // consume option name
	if existing != nil {
		return nil, d.Err("token_issuer may be given only once")
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	app := new(App)
	once, clientIDs := onceSet{}, onceSet{}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "base_url":
			err = singleArg(d, once, &app.BaseURL)
		case "key_encryption_secret":
			err = singleArg(d, once, &app.KeyEncryptionSecret)
		case "key_rotation_interval":
			err = durationArg(d, once, &app.KeyRotationInterval)
		case "maintenance_interval":
			err = durationArg(d, once, &app.MaintenanceInterval)
		case "storage":
			if err = once.check(d); err == nil {
				app.StorageRaw, err = parseStorage(d)
			}
		case "directory":
			if err = once.check(d); err == nil {
				app.DirectoryRaw, err = parseDirectory(d)
			}
		case "org":
			if err = once.check(d); err == nil {
				app.Org, err = parseOrg(d)
			}
		case "client":
			var c *clientauth.Client
			if c, err = parseClient(d, clientIDs); err == nil {
				app.Clients = append(app.Clients, c)
			}
		case "authorization_server":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			id := d.Val()
			if _, dup := app.AuthorizationServers[id]; dup {
				return nil, d.Errf("authorization_server %q defined twice", id)
			}
			var s *authserver.ServerConfig
			if s, err = parseAuthServer(d); err == nil {
				if app.AuthorizationServers == nil {
					app.AuthorizationServers = map[string]*authserver.ServerConfig{}
				}
				app.AuthorizationServers[id] = s
			}
		default:
			return nil, d.Errf("unknown subdirective %q", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	return httpcaddyfile.App{
		Name:  "token_issuer",
		Value: caddyconfig.JSON(app, nil),
	}, nil
}

// parseStorage parses `storage <module> ...` at the `storage` token.
func parseStorage(d *caddyfile.Dispenser) (json.RawMessage, error) {
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	name := d.Val()
	if name != "embedded" {
		unm, err := caddyfile.UnmarshalModule(d, "token_issuer.storage."+name)
		if err != nil {
			return nil, err
		}
		return caddyconfig.JSONModuleObject(unm, "module", name, nil), nil
	}
	// The embedded module has no Caddyfile unmarshaler of its own.
	m := new(embedded.Module)
	once := onceSet{}
	if d.NextArg() {
		m.Path = d.Val()
		once["path"] = true
		if d.NextArg() {
			return nil, d.ArgErr()
		}
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "path":
			if err := singleArg(d, once, &m.Path); err != nil {
				return nil, err
			}
		default:
			return nil, d.Errf("unknown subdirective %q", d.Val())
		}
	}
	return caddyconfig.JSONModuleObject(m, "module", name, nil), nil
}

// parseDirectory parses `directory <source> ...`; the source module
// (`token_issuer.directory.<source>`) parses the rest.
func parseDirectory(d *caddyfile.Dispenser) (json.RawMessage, error) {
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	name := d.Val()
	unm, err := caddyfile.UnmarshalModule(d, "token_issuer.directory."+name)
	if err != nil {
		return nil, err
	}
	return caddyconfig.JSONModuleObject(unm, "source", name, nil), nil
}

// parseOrg parses the `org` block.
func parseOrg(d *caddyfile.Dispenser) (*OrgConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	o := new(OrgConfig)
	once := onceSet{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "signing_alg":
			if err := singleArg(d, once, &o.SigningAlg); err != nil {
				return nil, err
			}
		default:
			return nil, d.Errf("unknown subdirective %q", d.Val())
		}
	}
	return o, nil
}

// parseClient parses `client <client_id> [{...}]` at the `client` token.
func parseClient(d *caddyfile.Dispenser, ids onceSet) (*clientauth.Client, error) {
	c := new(clientauth.Client)
	if err := nameArg(d, ids, &c.ID); err != nil {
		return nil, err
	}
	once := onceSet{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "name":
			err = singleArg(d, once, &c.Name)
		case "secret":
			err = singleArg(d, once, &c.Secret)
		case "secret_hash":
			err = singleArg(d, once, &c.SecretHash)
		case "auth_method":
			err = singleArg(d, once, &c.AuthMethod)
		case "grant_types":
			err = listArg(d, once, &c.GrantTypes)
		case "jwks_uri":
			err = singleArg(d, once, &c.JWKSURI)
		case "jwks":
			var s string
			if err = singleArg(d, once, &s); err == nil {
				if !json.Valid([]byte(s)) {
					return nil, d.Errf("jwks is not valid JSON (quote it with backquotes)")
				}
				c.JWKS = json.RawMessage(s)
			}
		default:
			return nil, d.Errf("unknown subdirective %q", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	return c, nil
}

// parseAuthServer parses the optional block of `authorization_server <id>`.
func parseAuthServer(d *caddyfile.Dispenser) (*authserver.ServerConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	s := new(authserver.ServerConfig)
	once := onceSet{}
	names := map[string]onceSet{"scope": {}, "claim": {}, "policy": {}}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "name":
			err = singleArg(d, once, &s.Name)
		case "description":
			err = singleArg(d, once, &s.Description)
		case "audience":
			err = singleArg(d, once, &s.Audience)
		case "signing_alg":
			err = singleArg(d, once, &s.SigningAlg)
		case "scope":
			var sc *authserver.Scope
			if sc, err = parseScope(d, names["scope"]); err == nil {
				s.Scopes = append(s.Scopes, sc)
			}
		case "claim":
			var c *claims.Claim
			if c, err = parseClaim(d, names["claim"]); err == nil {
				s.Claims = append(s.Claims, c)
			}
		case "policy":
			var p *policy.Policy
			if p, err = parsePolicy(d, names["policy"]); err == nil {
				s.Policies = append(s.Policies, p)
			}
		default:
			return nil, d.Errf("unknown subdirective %q", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

// parseScope parses `scope <name> [{...}]` at the `scope` token.
func parseScope(d *caddyfile.Dispenser, names onceSet) (*authserver.Scope, error) {
	sc := new(authserver.Scope)
	if err := nameArg(d, names, &sc.Name); err != nil {
		return nil, err
	}
	once := onceSet{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "description":
			err = singleArg(d, once, &sc.Description)
		case "default":
			err = flag(d, once, &sc.Default)
		case "consent":
			err = singleArg(d, once, &sc.Consent)
		case "publish":
			err = flag(d, once, &sc.Publish)
		default:
			return nil, d.Errf("unknown subdirective %q", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	return sc, nil
}

// parseClaim parses `claim <name> <cel_expression> [{...}]` at the
// `claim` token.
func parseClaim(d *caddyfile.Dispenser, names onceSet) (*claims.Claim, error) {
	c := new(claims.Claim)
	if !d.Args(&c.Name, &c.Value) || d.NextArg() {
		return nil, d.ArgErr()
	}
	if names[c.Name] {
		return nil, d.Errf("claim %q defined twice", c.Name)
	}
	names[c.Name] = true
	once := onceSet{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "scopes":
			if err := listArg(d, once, &c.Scopes); err != nil {
				return nil, err
			}
		default:
			return nil, d.Errf("unknown subdirective %q", d.Val())
		}
	}
	return c, nil
}

// parsePolicy parses `policy <name> {...}` at the `policy` token.
func parsePolicy(d *caddyfile.Dispenser, names onceSet) (*policy.Policy, error) {
	p := new(policy.Policy)
	if err := nameArg(d, names, &p.Name); err != nil {
		return nil, err
	}
	once, rules := onceSet{}, onceSet{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "description":
			err = singleArg(d, once, &p.Description)
		case "priority":
			err = intArg(d, once, &p.Priority)
		case "clients":
			err = listArg(d, once, &p.Clients)
		case "rule":
			var r *policy.Rule
			if r, err = parseRule(d, rules); err == nil {
				p.Rules = append(p.Rules, r)
			}
		default:
			return nil, d.Errf("unknown subdirective %q", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	return p, nil
}

// parseRule parses `rule <name> {...}` at the `rule` token.
func parseRule(d *caddyfile.Dispenser, names onceSet) (*policy.Rule, error) {
	r := new(policy.Rule)
	if err := nameArg(d, names, &r.Name); err != nil {
		return nil, err
	}
	once := onceSet{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "priority":
			err = intArg(d, once, &r.Priority)
		case "grant_types":
			err = listArg(d, once, &r.GrantTypes)
		case "scopes":
			err = listArg(d, once, &r.Scopes)
		case "access_token_lifetime":
			err = durationArg(d, once, &r.AccessTokenLifetime)
		default:
			return nil, d.Errf("unknown subdirective %q", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

// parseHandler sets up the `token_issuer` handler. Syntax:
//
//	token_issuer [<matcher>]
//
// It takes no arguments: the global option of the same name configures
// the issuer, and the directive serves its endpoints.
func parseHandler(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	h.Next() // consume directive name
	if h.NextArg() {
		return nil, h.ArgErr()
	}
	if h.NextBlock(0) {
		return nil, h.Err("token_issuer takes no block; configure it in the token_issuer global option")
	}
	return new(Handler), nil
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

// nameArg reads the single name argument of a repeatable block such as
// `scope <name>`, refusing a name already used in names.
func nameArg(d *caddyfile.Dispenser, names onceSet, dst *string) error {
	kind := d.Val()
	if !d.Args(dst) || d.NextArg() {
		return d.ArgErr()
	}
	if names[*dst] {
		return d.Errf("%s %q defined twice", kind, *dst)
	}
	names[*dst] = true
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

// flag sets a boolean subdirective that takes no arguments.
func flag(d *caddyfile.Dispenser, once onceSet, dst *bool) error {
	if err := once.check(d); err != nil {
		return err
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	*dst = true
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
// accepts days (`d`), into a caddy.Duration or policy.Duration.
func durationArg[T ~int64](d *caddyfile.Dispenser, once onceSet, dst *T) error {
	name := d.Val()
	var s string
	if err := singleArg(d, once, &s); err != nil {
		return err
	}
	v, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("%s %q: %v", name, s, err)
	}
	*dst = T(v)
	return nil
}
