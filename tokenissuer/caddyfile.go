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
//		directory file <path>
//		directory static {
//			user <login> {
//				id <id>
//				password_hash <hash>
//				status active|suspended|locked
//				profile <attribute> <value>
//				groups <group...>
//			}
//		}
//		templates_dir <dir>
//		trusted_origins <origin...>
//		password_checks {
//			concurrency <n>
//			memory <size>
//			queue <n>
//			wait <duration>
//		}
//		org {
//			signing_alg <alg>
//		}
//		client <client_id> {
//			name <name>
//			secret <secret>
//			secret_hash <bcrypt_hash>
//			auth_method client_secret_basic|client_secret_post|private_key_jwt|none
//			grant_types <grant_type...>
//			jwks <jwk_set_json>
//			jwks_uri <url>
//			redirect_uris <uri...>
//			post_logout_redirect_uris <uri...>
//			refresh_token_rotation rotate|static
//			refresh_token_leeway <duration>
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
//				token access_token|id_token
//			}
//			claim <name> groups starts_with|equals|contains|regex <value> {
//				scopes <scope...>
//				token access_token|id_token
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
//					refresh_token_lifetime <duration>
//					refresh_token_idle <duration>
//					people {
//						users <id_or_login...>
//						groups <group...>
//						exclude_users <id_or_login...>
//						exclude_groups <group...>
//					}
//				}
//			}
//		}
//	}
//
// Storage defaults to `embedded`; its path may also be given as
// `storage embedded { path <path> }`, and other `token_issuer.storage.*`
// modules parse their own tokens after `storage <name>`. Likewise the
// users file of `directory file <path>` may be given as
// `directory file { path <path> }`, and other `token_issuer.directory.*`
// modules parse their own tokens after `directory <name>`; without
// `directory`, no user can sign in. `client`, `authorization_server`,
// `scope`, `claim`, `policy` and `rule` repeat; the blocks of `client`,
// `authorization_server`, `scope` and `claim` are optional. `jwks` takes
// the JWK set as one token, usually in backquotes.
//
// A claim whose second argument is the word `groups` is a groups claim:
// the user's groups that pass the filter (`regex` must match the whole
// name), as an array, instead of the result of a CEL expression. No
// expression is lost to this form: CEL knows no variable `groups` (the
// user's groups are `user.groups`). `people` limits a rule to users
// named by id or login and to members of groups; the exclusions win,
// and with exclusions only, everyone else is included.
//
// Durations accept Caddy's units, including `d`; a zero or negative
// `refresh_token_leeway`, `refresh_token_lifetime` or
// `refresh_token_idle`, which the JSON would read as the default, is
// refused. Values outside the allowed ranges, unknown names (such as an
// auth method, a rotation mode, a claim's token or a groups filter type)
// and bad redirect URIs are reported when the app is provisioned.
// Placeholders are resolved then too, except in `templates_dir`, which
// is used as given.
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
		case "templates_dir":
			err = singleArg(d, once, &app.TemplatesDir)
		case "trusted_origins":
			err = listArg(d, once, &app.TrustedOrigins)
		case "password_checks":
			if err = once.check(d); err == nil {
				app.PasswordChecks, err = parsePasswordChecks(d)
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
		case "redirect_uris":
			err = redirectURIsArg(d, once, &c.RedirectURIs)
		case "post_logout_redirect_uris":
			err = redirectURIsArg(d, once, &c.PostLogoutRedirectURIs)
		case "refresh_token_rotation":
			err = singleArg(d, once, &c.RefreshTokenRotation)
		case "refresh_token_leeway":
			err = positiveDurationArg(d, once, &c.RefreshTokenLeeway)
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

// parseClaim parses `claim <name> <cel_expression> [{...}]` or
// `claim <name> groups <type> <value> [{...}]` at the `claim` token.
func parseClaim(d *caddyfile.Dispenser, names onceSet) (*claims.Claim, error) {
	c := new(claims.Claim)
	switch args := d.RemainingArgs(); {
	case len(args) == 4 && args[1] == "groups":
		c.Name, c.Groups = args[0], &claims.GroupsFilter{Type: args[2], Value: args[3]}
	case len(args) == 2 && args[1] != "groups":
		c.Name, c.Value = args[0], args[1]
	default:
		return nil, d.ArgErr()
	}
	if names[c.Name] {
		return nil, d.Errf("claim %q defined twice", c.Name)
	}
	names[c.Name] = true
	once := onceSet{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "scopes":
			err = listArg(d, once, &c.Scopes)
		case "token":
			err = singleArg(d, once, &c.Token)
		default:
			return nil, d.Errf("unknown subdirective %q", d.Val())
		}
		if err != nil {
			return nil, err
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
		case "refresh_token_lifetime":
			err = positiveDurationArg(d, once, &r.RefreshTokenLifetime)
		case "refresh_token_idle":
			err = positiveDurationArg(d, once, &r.RefreshTokenIdle)
		case "people":
			if err = once.check(d); err == nil {
				r.People, err = parsePeople(d)
			}
		default:
			return nil, d.Errf("unknown subdirective %q", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

// parsePeople parses the block of `people` at the `people` token.
func parsePeople(d *caddyfile.Dispenser) (*policy.People, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	p := new(policy.People)
	once := onceSet{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "users":
			err = listArg(d, once, &p.Users)
		case "groups":
			err = listArg(d, once, &p.Groups)
		case "exclude_users":
			err = listArg(d, once, &p.ExcludeUsers)
		case "exclude_groups":
			err = listArg(d, once, &p.ExcludeGroups)
		default:
			return nil, d.Errf("unknown subdirective %q", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	return p, nil
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

// redirectURIsArg is listArg for redirect URIs, checked here too so
// that `caddy validate` names the file and line.
func redirectURIsArg(d *caddyfile.Dispenser, once onceSet, dst *[]string) error {
	name := d.Val()
	if err := listArg(d, once, dst); err != nil {
		return err
	}
	for _, u := range *dst {
		if err := clientauth.CheckRedirectURI(u); err != nil {
			return d.Errf("%s: %q %v", name, u, err)
		}
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

// positiveDurationArg is durationArg for the durations whose zero the
// JSON reads as the default: zero and negative values are refused, so
// that a Caddyfile never means something other than it says.
func positiveDurationArg[T ~int64](d *caddyfile.Dispenser, once onceSet, dst *T) error {
	name := d.Val()
	if err := durationArg(d, once, dst); err != nil {
		return err
	}
	switch {
	case *dst < 0:
		return d.Errf("%s %q: must not be negative", name, d.Val())
	case *dst == 0:
		return d.Errf("%s %q: zero would mean the default; give a positive duration", name, d.Val())
	}
	return nil
}
