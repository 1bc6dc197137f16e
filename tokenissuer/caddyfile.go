package tokenissuer

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/apiaccess/caddy-apiaccess/internal/caddyargs"
	"github.com/apiaccess/caddy-apiaccess/internal/configerr"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/authserver"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/claims"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/inlinehook"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
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
//		api_token <token>
//		password_checks {
//			concurrency <n>
//			memory <size>
//			queue <n>
//			wait <duration>
//		}
//		org {
//			signing_alg <alg>
//		}
//		authenticators totp|webauthn...
//		inline_hook <name> {
//			url <url>
//			authorization <secret>
//			auth_header <header>
//			header <name> <value>
//			timeout <duration>
//		}
//		sign_on_policy <name> {
//			description <text>
//			priority <int>
//			clients *|<client_id...>
//			rule <name> {
//				priority <int>
//				users <id_or_login...>
//				groups <group...>
//				exclude_users <id_or_login...>
//				exclude_groups <group...>
//				access allow|deny
//				factor none|any|phishing_resistant
//				reauthenticate_after <duration>
//				reauthenticate_every_sign_in
//				enrollment at_sign_in|deny
//			}
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
//			dpop_bound_access_tokens
//			require_pushed_authorization_requests
//			okta_api_scopes <scope...>
//		}
//		authorization_server <id> {
//			name <name>
//			description <text>
//			audience <audience>
//			signing_alg <alg>
//			subject [cel|okta] <expression>
//			scope <name> {
//				description <text>
//				default
//				consent implicit|required
//				publish
//			}
//			claim <name> [cel|okta] <expression> {
//				scopes <scope...>
//				token access_token|id_token
//				always_include_in_token true|false
//				disabled
//			}
//			claim <name> groups starts_with|equals|contains|regex <value> {
//				scopes <scope...>
//				token access_token|id_token
//				always_include_in_token true|false
//				disabled
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
//					inline_hook <name>
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
// `storage embedded { path <path> }`, beside the System Log's
// `log_retention` and `log_max_events`. Every `token_issuer.storage.*`
// module parses its own tokens after `storage <name>`. Likewise the
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
// `inline_hook` repeats: each is an Okta token inline hook (see
// parseInlineHook), which a rule runs by naming it in its own
// `inline_hook <name>`; a name no hook has is refused at the rule's
// line.
//
// `sign_on_policy` and its `rule` repeat. A sign-on rule's people
// conditions are given on its own lines, or in a `people` block as in an
// access rule (not both).
//
// `api_token` repeats, one Okta API token (`Authorization: SSWS
// <token>`, for the System Log API at `/api/v1/logs`) each, normally a
// placeholder such as `{env.OKTA_API_TOKEN}`; a literal token shorter
// than 20 characters is refused at its line.
//
// Durations take Go's units and `d` (days), as in 90d or 1d12h; zero
// and negative durations, which the JSON would read as the default, are
// refused. Every check the app makes when it is provisioned also runs
// here, so `caddy adapt` and `caddy validate` report a value out of
// range, an unknown name (a client or scope in a policy, an auth
// method, a claim's token, a groups filter type), a reserved claim
// name, a CEL expression that does not compile and a bad redirect URI
// at the line that gives it. Placeholders are resolved at provision
// (values that hold one are checked then), except in `templates_dir`,
// which is used as given.
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	d.Next() // consume option name
	if existing != nil {
		return nil, d.Err("token_issuer may be given only once")
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	app := new(App)
	root := at{places: new(caddyargs.Places)}
	root.mark(d, "")
	once, clientIDs, signOnNames, hookNames := caddyargs.Once{}, caddyargs.Names{}, caddyargs.Names{}, caddyargs.Names{}
	for d.NextBlock(0) {
		var err error
		root.mark(d, d.Val())
		switch d.Val() {
		case "base_url":
			err = caddyargs.One(d, once, &app.BaseURL)
		case "key_encryption_secret":
			err = caddyargs.One(d, once, &app.KeyEncryptionSecret)
		case "key_rotation_interval":
			err = caddyargs.Duration(d, once, &app.KeyRotationInterval)
		case "maintenance_interval":
			err = caddyargs.Duration(d, once, &app.MaintenanceInterval)
		case "storage":
			if err = once.Check(d); err == nil {
				app.StorageRaw, err = parseStorage(d)
			}
		case "directory":
			if err = once.Check(d); err == nil {
				app.DirectoryRaw, err = parseDirectory(d)
			}
		case "templates_dir":
			err = caddyargs.One(d, once, &app.TemplatesDir)
		case "trusted_origins":
			err = caddyargs.List(d, once, &app.TrustedOrigins)
		case "api_token":
			err = parseAPIToken(d, app)
		case "password_checks":
			if err = once.Check(d); err == nil {
				app.PasswordChecks, err = parsePasswordChecks(d)
			}
		case "org":
			if err = once.Check(d); err == nil {
				app.Org, err = parseOrg(d, root)
			}
		case "authenticators":
			err = caddyargs.List(d, once, &app.Authenticators)
		case "sign_on_policy":
			var p *policy.SignOnPolicy
			if p, err = parseSignOnPolicy(d, signOnNames, root); err == nil {
				app.SignOnPolicies = append(app.SignOnPolicies, p)
			}
		case "inline_hook":
			var h *inlinehook.Config
			if h, err = parseInlineHook(d, hookNames, root); err == nil {
				app.InlineHooks = append(app.InlineHooks, h)
			}
		case "client":
			var c *clientauth.Client
			if c, err = parseClient(d, clientIDs, root); err == nil {
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
			if err := authserver.ValidID(id); err != nil && !skipProvisionChecks {
				return nil, d.WrapErr(err)
			}
			var s *authserver.ServerConfig
			if s, err = parseAuthServer(d, root.in(d, "authorization_server", id)); err == nil {
				if app.AuthorizationServers == nil {
					app.AuthorizationServers = map[string]*authserver.ServerConfig{}
				}
				app.AuthorizationServers[id] = s
			}
		default:
			return nil, caddyargs.Unknown(d)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := checkParsed(app); err != nil && !skipProvisionChecks {
		return nil, root.places.Wrap(err)
	}
	return httpcaddyfile.App{
		Name:  "token_issuer",
		Value: caddyconfig.JSON(app, nil),
	}, nil
}

// skipProvisionChecks lets tests adapt a Caddyfile that the checks
// refuse, to see Provision refuse the JSON alike.
var skipProvisionChecks bool

// at is where the parser is, as the checks name it (the item path of
// configerr), to record the token of each item and field given.
type at struct {
	places *caddyargs.Places
	path   []configerr.Item
}

// in enters the item kind name, whose keyword is at the cursor.
func (a at) in(d *caddyfile.Dispenser, kind, name string) at {
	inner := at{a.places, append(slices.Clip(a.path), configerr.Item{Kind: kind, Name: name})}
	inner.mark(d, "")
	return inner
}

// mark records the cursor as where field (the item itself when empty)
// was given.
func (a at) mark(d *caddyfile.Dispenser, field string) { a.places.Mark(d, a.path, field) }

// parseAPIToken parses `api_token <token>`; the error never repeats the
// token.
func parseAPIToken(d *caddyfile.Dispenser, app *App) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	tok := d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	if !strings.Contains(tok, "{") && len(tok) < authserver.MinAPITokenLength && !skipProvisionChecks {
		return d.Errf("api_token must be at least %d characters", authserver.MinAPITokenLength)
	}
	if slices.Contains(app.APITokens, tok) {
		return d.Err("api_token given twice")
	}
	app.APITokens = append(app.APITokens, tok)
	return nil
}

// parseStorage parses `storage <module> ...` at the `storage` token.
func parseStorage(d *caddyfile.Dispenser) (json.RawMessage, error) {
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	name := d.Val()
	unm, err := caddyfile.UnmarshalModule(d, "token_issuer.storage."+name)
	if err != nil {
		return nil, err
	}
	return caddyconfig.JSONModuleObject(unm, "module", name, nil), nil
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
func parseOrg(d *caddyfile.Dispenser, root at) (*OrgConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	o := new(OrgConfig)
	once := caddyargs.Once{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "signing_alg":
			root.mark(d, "signing_alg") // the org server's errors have no item
			if err := caddyargs.One(d, once, &o.SigningAlg); err != nil {
				return nil, err
			}
		default:
			return nil, caddyargs.Unknown(d)
		}
	}
	return o, nil
}

// parseClient parses `client <client_id> [{...}]` at the `client` token.
func parseClient(d *caddyfile.Dispenser, ids caddyargs.Names, root at) (*clientauth.Client, error) {
	c := new(clientauth.Client)
	if err := caddyargs.Name(d, ids, &c.ID); err != nil {
		return nil, err
	}
	here := root.in(d, "client", c.ID)
	once := caddyargs.Once{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		here.mark(d, clientFields[d.Val()])
		switch d.Val() {
		case "name":
			err = caddyargs.One(d, once, &c.Name)
		case "secret":
			err = caddyargs.One(d, once, &c.Secret)
		case "secret_hash":
			err = caddyargs.One(d, once, &c.SecretHash)
		case "auth_method":
			err = caddyargs.One(d, once, &c.AuthMethod)
		case "grant_types":
			err = caddyargs.List(d, once, &c.GrantTypes)
		case "jwks_uri":
			err = caddyargs.One(d, once, &c.JWKSURI)
		case "redirect_uris":
			err = redirectURIsArg(d, once, &c.RedirectURIs)
		case "post_logout_redirect_uris":
			err = redirectURIsArg(d, once, &c.PostLogoutRedirectURIs)
		case "refresh_token_rotation":
			err = caddyargs.One(d, once, &c.RefreshTokenRotation)
		case "refresh_token_leeway":
			err = caddyargs.Duration(d, once, &c.RefreshTokenLeeway)
		case "dpop_bound_access_tokens":
			err = caddyargs.Flag(d, once, &c.DPoPBoundAccessTokens)
		case "require_pushed_authorization_requests":
			err = caddyargs.Flag(d, once, &c.RequirePushedAuthorizationRequests)
		case "okta_api_scopes":
			err = caddyargs.List(d, once, &c.OktaAPIScopes)
		case "jwks":
			var s string
			if err = caddyargs.One(d, once, &s); err == nil {
				if !json.Valid([]byte(s)) {
					return nil, d.Errf("jwks is not valid JSON (quote it with backquotes)")
				}
				c.JWKS = json.RawMessage(s)
			}
		default:
			return nil, caddyargs.Unknown(d)
		}
		if err != nil {
			return nil, err
		}
	}
	return c, nil
}

// clientFields are the JSON names of the client subdirectives, as
// clientauth's errors name them.
var clientFields = map[string]string{
	"name": "name", "secret": "client_secret", "secret_hash": "client_secret_hash",
	"auth_method": "token_endpoint_auth_method", "grant_types": "grant_types",
	"jwks": "jwks", "jwks_uri": "jwks_uri", "redirect_uris": "redirect_uris",
	"post_logout_redirect_uris": "post_logout_redirect_uris",
	"refresh_token_rotation":    "refresh_token_rotation", "refresh_token_leeway": "refresh_token_leeway",
	"dpop_bound_access_tokens": "dpop_bound_access_tokens", "okta_api_scopes": "okta_api_scopes",
	"require_pushed_authorization_requests": "require_pushed_authorization_requests",
}

// parseAuthServer parses the optional block of `authorization_server <id>`.
func parseAuthServer(d *caddyfile.Dispenser, here at) (*authserver.ServerConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	s := new(authserver.ServerConfig)
	once := caddyargs.Once{}
	names := map[string]caddyargs.Names{"scope": {}, "claim": {}, "policy": {}}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		here.mark(d, d.Val())
		switch d.Val() {
		case "name":
			err = caddyargs.One(d, once, &s.Name)
		case "description":
			err = caddyargs.One(d, once, &s.Description)
		case "audience":
			err = caddyargs.One(d, once, &s.Audience)
		case "signing_alg":
			err = caddyargs.One(d, once, &s.SigningAlg)
		case "scope":
			var sc *authserver.Scope
			if sc, err = parseScope(d, names["scope"], here); err == nil {
				s.Scopes = append(s.Scopes, sc)
			}
		case "subject":
			if err = once.Check(d); err == nil {
				s.Subject, err = parseSubject(d)
			}
		case "claim":
			var c *claims.Claim
			if c, err = parseClaim(d, names["claim"], here); err == nil {
				s.Claims = append(s.Claims, c)
			}
		case "policy":
			var p *policy.Policy
			if p, err = parsePolicy(d, names["policy"], here); err == nil {
				s.Policies = append(s.Policies, p)
			}
		default:
			return nil, caddyargs.Unknown(d)
		}
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

// parseScope parses `scope <name> [{...}]` at the `scope` token.
func parseScope(d *caddyfile.Dispenser, names caddyargs.Names, server at) (*authserver.Scope, error) {
	sc := new(authserver.Scope)
	if err := caddyargs.Name(d, names, &sc.Name); err != nil {
		return nil, err
	}
	here := server.in(d, "scope", sc.Name)
	once := caddyargs.Once{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		here.mark(d, d.Val())
		switch d.Val() {
		case "description":
			err = caddyargs.One(d, once, &sc.Description)
		case "default":
			err = caddyargs.Flag(d, once, &sc.Default)
		case "consent":
			err = caddyargs.One(d, once, &sc.Consent)
		case "publish":
			err = caddyargs.Flag(d, once, &sc.Publish)
		default:
			return nil, caddyargs.Unknown(d)
		}
		if err != nil {
			return nil, err
		}
	}
	return sc, nil
}

// parseClaim parses `claim <name> [cel|okta] <expression> [{...}]` or
// `claim <name> groups <type> <value> [{...}]` at the `claim` token.
// The word before the expression names its language: `cel` (the
// default, also when the word is left out) or `okta`, Okta Expression
// Language, as in
//
//	claim full_name okta `user.firstName + " " + user.lastName`
//
// Either is checked while adapting, with errors at the claim's line.
func parseClaim(d *caddyfile.Dispenser, names caddyargs.Names, server at) (*claims.Claim, error) {
	c := new(claims.Claim)
	switch args := d.RemainingArgs(); {
	case len(args) == 4 && args[1] == "groups":
		c.Name, c.Groups = args[0], &claims.GroupsFilter{Type: args[2], Value: args[3]}
	case len(args) == 2 && args[1] != "groups":
		c.Name, c.Value = args[0], args[1]
	case len(args) == 3 && (args[1] == claims.Okta || args[1] == claims.CEL):
		c.Name, c.Language, c.Value = args[0], args[1], args[2]
	case len(args) > 2 && args[1] != "groups":
		return nil, caddyargs.BackquoteErr(d, "claim "+args[0])
	default:
		return nil, d.ArgErr()
	}
	if err := names.Add(d, "claim", c.Name); err != nil {
		return nil, err
	}
	here := server.in(d, "claim", c.Name)
	once := caddyargs.Once{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		here.mark(d, d.Val())
		switch d.Val() {
		case "scopes":
			err = caddyargs.List(d, once, &c.Scopes)
		case "token":
			err = caddyargs.One(d, once, &c.Token)
		case "disabled":
			err = caddyargs.Flag(d, once, &c.Disabled)
		case "always_include_in_token":
			err = parseTrueFalse(d, once, &c.AlwaysIncludeInToken)
		default:
			return nil, caddyargs.Unknown(d)
		}
		if err != nil {
			return nil, err
		}
	}
	return c, nil
}

// parseTrueFalse reads a subdirective whose one argument is `true` or
// `false`, for a setting whose default is neither given.
func parseTrueFalse(d *caddyfile.Dispenser, once caddyargs.Once, dst **bool) error {
	name := d.Val()
	var v string
	if err := caddyargs.One(d, once, &v); err != nil {
		return err
	}
	if v != "true" && v != "false" {
		return d.Errf("%s %q: must be true or false", name, v)
	}
	b := v == "true"
	*dst = &b
	return nil
}

// parseSubject parses `subject [cel|okta] <expression>` at the `subject`
// token: the `sub` of access tokens issued for a user, in the language
// named as for a claim (default cel).
func parseSubject(d *caddyfile.Dispenser) (*claims.SubjectExpr, error) {
	e := new(claims.SubjectExpr)
	switch args := d.RemainingArgs(); {
	case len(args) == 1:
		e.Value = args[0]
	case len(args) == 2 && (args[0] == claims.Okta || args[0] == claims.CEL):
		e.Language, e.Value = args[0], args[1]
	case len(args) > 1:
		return nil, caddyargs.BackquoteErr(d, "subject")
	default:
		return nil, d.ArgErr()
	}
	return e, nil
}

// parsePolicy parses `policy <name> {...}` at the `policy` token.
func parsePolicy(d *caddyfile.Dispenser, names caddyargs.Names, server at) (*policy.Policy, error) {
	p := new(policy.Policy)
	if err := caddyargs.Name(d, names, &p.Name); err != nil {
		return nil, err
	}
	here := server.in(d, "policy", p.Name)
	once, rules := caddyargs.Once{}, caddyargs.Names{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		here.mark(d, d.Val())
		switch d.Val() {
		case "description":
			err = caddyargs.One(d, once, &p.Description)
		case "priority":
			err = caddyargs.Int(d, once, &p.Priority)
		case "clients":
			err = caddyargs.List(d, once, &p.Clients)
		case "rule":
			var r *policy.Rule
			if r, err = parseRule(d, rules, here); err == nil {
				p.Rules = append(p.Rules, r)
			}
		default:
			return nil, caddyargs.Unknown(d)
		}
		if err != nil {
			return nil, err
		}
	}
	return p, nil
}

// parseRule parses `rule <name> {...}` at the `rule` token.
func parseRule(d *caddyfile.Dispenser, names caddyargs.Names, pol at) (*policy.Rule, error) {
	r := new(policy.Rule)
	if err := caddyargs.Name(d, names, &r.Name); err != nil {
		return nil, err
	}
	here := pol.in(d, "rule", r.Name)
	once := caddyargs.Once{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		here.mark(d, d.Val())
		switch d.Val() {
		case "priority":
			err = caddyargs.Int(d, once, &r.Priority)
		case "grant_types":
			err = caddyargs.List(d, once, &r.GrantTypes)
		case "scopes":
			err = caddyargs.List(d, once, &r.Scopes)
		case "access_token_lifetime":
			err = caddyargs.Duration(d, once, &r.AccessTokenLifetime)
		case "refresh_token_lifetime":
			err = caddyargs.Duration(d, once, &r.RefreshTokenLifetime)
		case "refresh_token_idle":
			err = caddyargs.Duration(d, once, &r.RefreshTokenIdle)
		case "people":
			if err = once.Check(d); err == nil {
				r.People, err = parsePeople(d)
			}
		case "inline_hook":
			err = caddyargs.One(d, once, &r.InlineHook)
		default:
			return nil, caddyargs.Unknown(d)
		}
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

// parsePeople parses the block of `people` at the `people` token.
func parsePeople(d *caddyfile.Dispenser) (*policy.People, error) {
	p := new(policy.People)
	if err := parsePeopleBlock(d, p, nil); err != nil {
		return nil, err
	}
	return p, nil
}

// parsePeopleBlock reads a `people` block's lines into p, calling mark
// (when set) at each line so that later errors name it.
func parsePeopleBlock(d *caddyfile.Dispenser, p *policy.People, mark func()) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	once := caddyargs.Once{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if mark != nil {
			mark()
		}
		ok, err := peopleLine(d, once, p)
		if !ok {
			return caddyargs.Unknown(d)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// parseSignOnPolicy parses `sign_on_policy <name> {...}` at its token.
func parseSignOnPolicy(d *caddyfile.Dispenser, names caddyargs.Names, root at) (*policy.SignOnPolicy, error) {
	p := new(policy.SignOnPolicy)
	if err := caddyargs.Name(d, names, &p.Name); err != nil {
		return nil, err
	}
	here := root.in(d, "sign_on_policy", p.Name)
	once, rules := caddyargs.Once{}, caddyargs.Names{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		here.mark(d, d.Val())
		switch d.Val() {
		case "description":
			err = caddyargs.One(d, once, &p.Description)
		case "priority":
			err = caddyargs.Int(d, once, &p.Priority)
		case "clients":
			err = caddyargs.List(d, once, &p.Clients)
		case "rule":
			var r *policy.SignOnRule
			if r, err = parseSignOnRule(d, rules, here); err == nil {
				p.Rules = append(p.Rules, r)
			}
		default:
			return nil, caddyargs.Unknown(d)
		}
		if err != nil {
			return nil, err
		}
	}
	return p, nil
}

// parseSignOnRule parses `rule <name> {...}` of a sign-on policy.
func parseSignOnRule(d *caddyfile.Dispenser, names caddyargs.Names, pol at) (*policy.SignOnRule, error) {
	r := new(policy.SignOnRule)
	if err := caddyargs.Name(d, names, &r.Name); err != nil {
		return nil, err
	}
	here := pol.in(d, "rule", r.Name)
	once, people := caddyargs.Once{}, new(policy.People)
	form := "" // "lines" or "block": how the people conditions were given
	setForm := func(f string) error {
		if form != "" && form != f {
			return d.Err("give a rule's people conditions either in a people block or as users/groups/exclude_users/exclude_groups lines, not both")
		}
		form = f
		return nil
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		here.mark(d, d.Val())
		switch d.Val() {
		case "priority":
			err = caddyargs.Int(d, once, &r.Priority)
		case "access":
			err = caddyargs.One(d, once, &r.Access)
		case "factor":
			err = caddyargs.One(d, once, &r.Factor)
		case "reauthenticate_after":
			err = caddyargs.Duration(d, once, &r.Reauthenticate)
		case "reauthenticate_every_sign_in":
			err = caddyargs.Flag(d, once, &r.ReauthenticateEverySignIn)
		case "enrollment":
			err = caddyargs.One(d, once, &r.Enrollment)
		case "people":
			if err = setForm("block"); err == nil {
				err = parseSignOnPeople(d, once, people, here)
			}
		default:
			var ok bool
			if ok, err = peopleLine(d, once, people); !ok {
				return nil, caddyargs.Unknown(d)
			}
			if err == nil {
				err = setForm("lines")
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if form != "" {
		r.People = people
	}
	return r, nil
}

// parseSignOnPeople parses the `people` block of a sign-on rule, marking
// each line for the checks' errors (unknown group).
func parseSignOnPeople(d *caddyfile.Dispenser, once caddyargs.Once, p *policy.People, rule at) error {
	if err := once.Check(d); err != nil {
		return err
	}
	return parsePeopleBlock(d, p, func() { rule.mark(d, d.Val()) })
}

// peopleLine reads users, groups, exclude_users or exclude_groups into
// p; ok is false for any other subdirective.
func peopleLine(d *caddyfile.Dispenser, once caddyargs.Once, p *policy.People) (ok bool, err error) {
	dst := map[string]*[]string{"users": &p.Users, "groups": &p.Groups, "exclude_users": &p.ExcludeUsers, "exclude_groups": &p.ExcludeGroups}[d.Val()]
	if dst == nil {
		return false, nil
	}
	return true, caddyargs.List(d, once, dst)
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

// redirectURIsArg is caddyargs.List for redirect URIs, checked here
// too so that the error points at the line.
func redirectURIsArg(d *caddyfile.Dispenser, once caddyargs.Once, dst *[]string) error {
	name := d.Val()
	if err := caddyargs.List(d, once, dst); err != nil {
		return err
	}
	for _, u := range *dst {
		if err := clientauth.CheckRedirectURI(u); err != nil {
			return d.Errf("%s: %q %v", name, u, err)
		}
	}
	return nil
}
