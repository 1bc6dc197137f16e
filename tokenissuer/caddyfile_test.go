package tokenissuer_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer"
)

func init() {
	caddy.RegisterModule(mockStorage{})
}

// mockStorage stands in for a storage module with its own Caddyfile
// syntax (as the postgres module has), to show the `storage`
// subdirective hands it its tokens.
type mockStorage struct {
	DSN string `json:"dsn,omitempty"`
}

func (mockStorage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "token_issuer.storage.caddyfile_mock",
		New: func() caddy.Module { return new(mockStorage) },
	}
}

// UnmarshalCaddyfile parses `caddyfile_mock <dsn>`.
func (m *mockStorage) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // module name
	if !d.Args(&m.DSN) || d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(0) {
		return d.Errf("unknown subdirective %q", d.Val())
	}
	return nil
}

// TestCaddyfileAdapt adapts each testdata/adapt/*.caddyfiletest: a
// Caddyfile, a line `----------`, and the expected JSON.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/adapt/*.caddyfiletest")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no test files")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, want := readAdaptFile(t, f)
			if !caddytest.CompareAdapt(t, f, cfg, "caddyfile", want) {
				t.Errorf("adapting %s: output differs from the expected JSON (diff above)", f)
			}
		})
	}
}

// readAdaptFile splits a .caddyfiletest into the Caddyfile and the
// expected JSON.
func readAdaptFile(t *testing.T, f string) (cfg, want string) {
	t.Helper()
	data, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	cfg, want, ok := strings.Cut(string(data), "----------")
	if !ok {
		t.Fatal("no ---------- separator")
	}
	return strings.TrimSpace(cfg) + "\n", strings.TrimSpace(want)
}

// TestCaddyfileAdaptUsersProvisions checks that the users example, once
// adapted, is a configuration Caddy accepts (as `caddy validate` does,
// without starting anything): its directory file is read, its clients,
// claims and rules compile, and its templates_dir (the built-in pages,
// relative to the package directory the test runs in) parses.
func TestCaddyfileAdaptUsersProvisions(t *testing.T) {
	users := filepath.Join(t.TempDir(), "users.json")
	const data = `{"users": [{"id": "00u-alice", "login": "alice@example.com",
		"password_hash": "$2a$10$FVHb5JAK6m.EdJ3ra0xXcu7GnMO9YdDQyodAkOVfGj3D7JQ/ETcuO",
		"groups": ["finance", "admin-ops"], "profile": {"department": "Finance"}}]}`
	if err := os.WriteFile(users, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("APIACCESS_TEST_USERS", users)
	_, want := readAdaptFile(t, "testdata/adapt/users.caddyfiletest")
	var c caddy.Config
	if err := json.Unmarshal([]byte(want), &c); err != nil {
		t.Fatal(err)
	}
	if err := caddy.Validate(&c); err != nil {
		t.Fatalf("users.caddyfiletest does not validate: %v", err)
	}
}

// TestCaddyfileCheckErrors: every check the app makes when it is
// provisioned already runs while the Caddyfile is adapted, so `caddy
// adapt` and `caddy validate` report the mistake at the line of the
// offending value; the same configuration as JSON (adapted with those
// checks left to Provision) is refused by Provision with the same words.
func TestCaddyfileCheckErrors(t *testing.T) {
	const (
		rule   = "authorization_server default {\nscope read\npolicy p {\nclients *\nrule r {\ngrant_types client_credentials\nscopes *\n" // rule body from line 11
		client = "client svc {\nsecret s\n}\n"                                                                                             // lines 4-6
	)
	for _, tc := range []struct {
		name, body string // body goes inside `token_issuer { ... }` after base_url, from line 4
		want       string
		line       int
	}{
		{"access token lifetime too short", rule + "access_token_lifetime 1m\n}\n}\n}", `rule "r": access_token_lifetime 1m0s is outside 5m0s..24h0m0s`, 11},
		{"access token lifetime too long", rule + "access_token_lifetime 2d\n}\n}\n}", "access_token_lifetime 48h0m0s is outside", 11},
		{"refresh_token_idle over the lifetime", rule + "refresh_token_lifetime 1h\nrefresh_token_idle 2h\n}\n}\n}", "refresh_token_idle 2h0m0s must be between", 12},
		{"unknown scope in rule", "authorization_server default {\nscope read\npolicy p {\nclients *\nrule r {\ngrant_types client_credentials\nscopes read write\n}\n}\n}", `rule "r": unknown scope "write"`, 10},
		{"rule for an unsupported grant type", "authorization_server default {\npolicy p {\nclients *\nrule r {\ngrant_types implicit\nscopes *\n}\n}\n}", `grant type "implicit" is not supported`, 8},
		{"unknown client in policy", client + "authorization_server default {\npolicy p {\nclients svc nosuch\n}\n}", `policy "p": unknown client "nosuch"`, 9},
		{"unknown scope in claim condition", "authorization_server default {\nscope read\nclaim tier `\"a\"` {\nscopes read write\n}\n}", `claim "tier": unknown scope "write"`, 7},
		{"reserved claim name", "authorization_server default {\nclaim sub `\"a\"`\n}", `claim "sub": the name is reserved`, 5},
		{"CEL that does not compile", "authorization_server default {\nclaim tier `client.id ==`\n}", `claim "tier": the CEL expression does not compile`, 5},
		{"CEL with an unknown field", "authorization_server default {\nscope read\nclaim team `client.nosuch.field`\n}", "undefined field 'nosuch'", 6},
		{"Okta expression with an unknown function", "authorization_server default {\nclaim tier okta `String.nosuch(user.login)`\n}", `claim "tier": the Okta expression is not supported: at character 1: unknown function String.nosuch`, 5},
		{"Okta expression with a wrong arity", "authorization_server default {\nscope read\nclaim tier okta `String.substringBefore(user.login)` {\nscopes read\n}\n}", "String.substringBefore takes 2 arguments, not 1", 6},
		{"Okta expression with an unknown attribute", "authorization_server default {\nclaim tier okta `app.nosuch`\n}", "unknown attribute app.nosuch", 5},
		{"Okta subject with an unknown function", "authorization_server default {\nscope read\nsubject okta `user.nosuch(1)`\n}", "subject: the Okta expression is not supported", 6},
		{"unknown groups filter type", "authorization_server default {\nclaim teams groups prefix fin\n}", "groups filter type must be starts_with, equals, contains or regex", 5},
		{"unknown claim token", "authorization_server default {\nclaim teams groups equals fin {\ntoken both\n}\n}", "token must be access_token or id_token", 6},
		{"bad consent", "authorization_server default {\nscope read {\nconsent maybe\n}\n}", `scope "read": consent must be implicit or required`, 6},
		{"bad server signing_alg", "authorization_server default {\nsigning_alg HS256\n}", `authorization server "default": unsupported signing algorithm "HS256"`, 5},
		{"bad org signing_alg", "org {\nsigning_alg PS256\n}", `unsupported signing algorithm "PS256"`, 5},
		{"bad server id", "authorization_server v1", `authorization server id "v1" is reserved`, 4},
		{"unknown auth method", "client svc {\nsecret s\nauth_method basic\n}", `client "svc": unsupported token_endpoint_auth_method "basic"`, 6},
		{"secret and secret_hash", "client svc {\nsecret s\nsecret_hash $2a$10$FVHb5JAK6m.EdJ3ra0xXcu7GnMO9YdDQyodAkOVfGj3D7JQ/ETcuO\n}", "exactly one of client_secret and client_secret_hash", 4},
		{"unknown refresh_token_rotation", "client spa {\nauth_method none\ngrant_types authorization_code\nrefresh_token_rotation sometimes\n}", `client "spa": refresh_token_rotation must be rotate or static`, 7},
		{"refresh_token_leeway over the maximum", "client spa {\nauth_method none\ngrant_types authorization_code\nrefresh_token_leeway 2m\n}", `client "spa": refresh_token_leeway must be between`, 7},
		{"public client with client_credentials", "client spa {\nauth_method none\ngrant_types client_credentials\n}", "a public client cannot use client_credentials", 6},
		{"unknown Okta API scope", "client gw {\nsecret s\nokta_api_scopes ssf.read okta.users.manage\n}", `client "gw": unknown Okta API scope "okta.users.manage"`, 6},
		{"Okta API scopes without client_credentials", "client gw {\nsecret s\ngrant_types authorization_code\nredirect_uris https://a.test/cb\nokta_api_scopes ssf.read\n}", `okta_api_scopes are granted by client_credentials`, 8},
		{"key_rotation_interval too short", "key_rotation_interval 30m", "key_rotation_interval must be at least 1h0m0s", 4},
		{"maintenance_interval too long", "maintenance_interval 2h", "maintenance_interval must be at most 15m0s", 4},
		{"key_encryption_secret too short", "key_encryption_secret short", "key_encryption_secret must be at least 32 bytes", 4},
		{"trusted origin with a path", "trusted_origins https://app.example.com/spa", `trusted origin "https://app.example.com/spa" must be scheme://host[:port]`, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := "{\n\ttoken_issuer {\nbase_url https://id.example.com\n" + tc.body + "\n\t}\n}\n"
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
			at := "Caddyfile:" + strconv.Itoa(tc.line)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasSuffix(err.Error(), ", at "+at) {
				t.Errorf("adapt: got %v, want an error containing %q at %s", err, tc.want, at)
			}

			tokenissuer.SkipProvisionChecks(true)
			out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
			tokenissuer.SkipProvisionChecks(false)
			if err != nil {
				t.Fatalf("adapting without the checks: %v", err)
			}
			var c caddy.Config
			if err := json.Unmarshal(out, &c); err != nil {
				t.Fatal(err)
			}
			if err := caddy.Validate(&c); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("JSON: got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestCaddyfileCheckPlaceholders: values holding placeholders are
// checked when Caddy resolves them, not while adapting, and a valid
// configuration adapts with them.
func TestCaddyfileCheckPlaceholders(t *testing.T) {
	cfg := "{\n\ttoken_issuer {\nbase_url {env.APIACCESS_BASE}\nkey_encryption_secret {env.APIACCESS_KEY}\nclient svc {\nsecret {env.SVC_SECRET}\n}\nauthorization_server default {\nscope read\npolicy p {\nclients svc\nrule r {\ngrant_types client_credentials\nscopes read\n}\n}\n}\n\t}\n}\n"
	if _, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil); err != nil {
		t.Fatalf("adapt: %v", err)
	}
}

// TestCaddyfileErrors checks that bad Caddyfiles fail with an error that
// names the problem and its line.
func TestCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body string // body goes inside `token_issuer { ... }`, from line 3
		want       []string
	}{
		{
			name: "unknown subdirective",
			body: "base_url https://id.example.com\nbase_uri https://id.example.com",
			want: []string{`unknown subdirective "base_uri"`, "Caddyfile:4"},
		},
		{
			name: "unknown subdirective in scope",
			body: "authorization_server default {\nscope read {\ndefualt\n}\n}",
			want: []string{`unknown subdirective "defualt"`, "Caddyfile:5"},
		},
		{
			name: "base_url without argument",
			body: "base_url",
			want: []string{"wrong argument count", "Caddyfile:3"},
		},
		{
			name: "base_url with two arguments",
			body: "base_url https://a.example.com https://b.example.com",
			want: []string{"wrong argument count", "Caddyfile:3"},
		},
		{
			name: "redirect URI over http to a public host",
			body: "client spa {\nauth_method none\nredirect_uris https://app.example.com/cb http://app.example.com/cb\n}",
			want: []string{`redirect_uris: "http://app.example.com/cb" uses http for a host that is not loopback`, "Caddyfile:5"},
		},
		{
			name: "post-logout redirect URI with a fragment",
			body: "client spa {\nauth_method none\npost_logout_redirect_uris https://app.example.com/bye#x\n}",
			want: []string{`post_logout_redirect_uris: "https://app.example.com/bye#x" must not have a fragment`, "Caddyfile:5"},
		},
		{
			name: "password_checks memory not a size",
			body: "password_checks {\nmemory lots\n}",
			want: []string{`memory "lots": not a size`, "Caddyfile:4"},
		},
		{
			name: "password_checks memory too small",
			body: "password_checks {\nmemory 64KiB\n}",
			want: []string{"must be at least 1MiB", "Caddyfile:4"},
		},
		{
			name: "password_checks zero concurrency",
			body: "password_checks {\nconcurrency 0\n}",
			want: []string{"concurrency 0: must be at least 1", "Caddyfile:4"},
		},
		{
			name: "password_checks zero wait",
			body: "password_checks {\nwait 0s\n}",
			want: []string{"zero would mean the default", "Caddyfile:4"},
		},
		{
			name: "password_checks unknown subdirective",
			body: "password_checks {\nthreads 4\n}",
			want: []string{`unknown subdirective "threads"`, "Caddyfile:4"},
		},
		{
			name: "password_checks twice",
			body: "password_checks {\nqueue 4\n}\npassword_checks {\nqueue 8\n}",
			want: []string{`duplicate subdirective "password_checks"`, "Caddyfile:6"},
		},
		{
			name: "trusted_origins without origins",
			body: "trusted_origins",
			want: []string{"wrong argument count", "Caddyfile:3"},
		},
		{
			name: "static directory with an unknown user field",
			body: "directory static {\nuser alice@example.com {\npassword secret\n}\n}",
			want: []string{`unknown subdirective "password"`, "Caddyfile:5"},
		},
		{
			name: "client without id",
			body: "client {\nsecret s\n}",
			want: []string{"wrong argument count", "Caddyfile:3"},
		},
		{
			name: "claim without expression",
			body: "authorization_server default {\nclaim tier\n}",
			want: []string{"wrong argument count", "Caddyfile:4"},
		},
		{
			name: "clients without ids",
			body: "authorization_server default {\npolicy p {\nclients\n}\n}",
			want: []string{"wrong argument count", "Caddyfile:5"},
		},
		{
			name: "storage without module",
			body: "storage",
			want: []string{"wrong argument count", "Caddyfile:3"},
		},
		{
			name: "duplicate base_url",
			body: "base_url https://a.example.com\nbase_url https://b.example.com",
			want: []string{`duplicate subdirective "base_url"`, "Caddyfile:4"},
		},
		{
			name: "duplicate audience",
			body: "authorization_server default {\naudience a\naudience b\n}",
			want: []string{`duplicate subdirective "audience"`, "Caddyfile:5"},
		},
		{
			name: "duplicate storage",
			body: "storage embedded\nstorage embedded /tmp/x.db",
			want: []string{`duplicate subdirective "storage"`, "Caddyfile:4"},
		},
		{
			name: "embedded path given twice",
			body: "storage embedded /a.db {\npath /b.db\n}",
			want: []string{`duplicate subdirective "path"`, "Caddyfile:4"},
		},
		{
			name: "duplicate client id",
			body: "client reporting {\nsecret a\n}\nclient reporting {\nsecret b\n}",
			want: []string{`client "reporting" defined twice`, "Caddyfile:6"},
		},
		{
			name: "duplicate authorization server id",
			body: "authorization_server default\nauthorization_server default",
			want: []string{`authorization_server "default" defined twice`, "Caddyfile:4"},
		},
		{
			name: "duplicate scope",
			body: "authorization_server default {\nscope read\nscope read\n}",
			want: []string{`scope "read" defined twice`, "Caddyfile:5"},
		},
		{
			name: "duplicate claim",
			body: "authorization_server default {\nclaim tier `\"a\"`\nclaim tier `\"b\"`\n}",
			want: []string{`claim "tier" defined twice`, "Caddyfile:5"},
		},
		{
			name: "duplicate policy",
			body: "authorization_server default {\npolicy p {\nclients *\n}\npolicy p {\nclients *\n}\n}",
			want: []string{`policy "p" defined twice`, "Caddyfile:7"},
		},
		{
			name: "duplicate rule",
			body: "authorization_server default {\npolicy p {\nrule r\nrule r\n}\n}",
			want: []string{`rule "r" defined twice`, "Caddyfile:6"},
		},
		{
			name: "bad duration",
			body: "key_rotation_interval 90days",
			want: []string{`key_rotation_interval "90days": not a duration; use a number and a unit (ns, us, ms, s, m, h, d), e.g. 90s, 15m, 7d`, "Caddyfile:3"},
		},
		{
			name: "bad access_token_lifetime",
			body: "authorization_server default {\npolicy p {\nrule r {\naccess_token_lifetime soon\n}\n}\n}",
			want: []string{`access_token_lifetime "soon": not a duration`, "Caddyfile:6"},
		},
		{
			name: "bad priority",
			body: "authorization_server default {\npolicy p {\npriority first\n}\n}",
			want: []string{`priority "first": not an integer`, "Caddyfile:5"},
		},
		{
			name: "default with argument",
			body: "authorization_server default {\nscope read {\ndefault true\n}\n}",
			want: []string{"wrong argument count", "Caddyfile:5"},
		},
		{
			name: "publish with argument",
			body: "authorization_server default {\nscope read {\npublish yes\n}\n}",
			want: []string{"wrong argument count", "Caddyfile:5"},
		},
		{
			name: "jwks not JSON",
			body: "client partner {\njwks {keys:[]}\n}",
			want: []string{"jwks is not valid JSON", "Caddyfile:4"},
		},
		{
			name: "unknown storage module",
			body: "storage nosuch",
			want: []string{"token_issuer.storage.nosuch", "Caddyfile:3"},
		},
		{
			name: "storage module error",
			body: "storage caddyfile_mock",
			want: []string{"wrong argument count", "Caddyfile:3"},
		},
		{
			name: "templates_dir without argument",
			body: "templates_dir",
			want: []string{"wrong argument count", "Caddyfile:3"},
		},
		{
			name: "duplicate templates_dir",
			body: "templates_dir /a\ntemplates_dir /b",
			want: []string{`duplicate subdirective "templates_dir"`, "Caddyfile:4"},
		},
		{
			name: "directory without source",
			body: "directory",
			want: []string{"wrong argument count", "Caddyfile:3"},
		},
		{
			name: "unknown directory source",
			body: "directory ldap",
			want: []string{"token_issuer.directory.ldap", "Caddyfile:3"},
		},
		{
			name: "directory file without path",
			body: "directory file",
			want: []string{"directory file: a path is required", "Caddyfile:3"},
		},
		{
			name: "directory file path given twice",
			body: "directory file /a.json {\npath /b.json\n}",
			want: []string{`duplicate subdirective "path"`, "Caddyfile:4"},
		},
		{
			name: "duplicate directory",
			body: "directory file /a.json\ndirectory file /b.json",
			want: []string{`duplicate subdirective "directory"`, "Caddyfile:4"},
		},
		{
			name: "redirect_uris without values",
			body: "client spa {\nredirect_uris\n}",
			want: []string{"wrong argument count", "Caddyfile:4"},
		},
		{
			name: "duplicate redirect_uris",
			body: "client spa {\nredirect_uris https://a.example.com/cb\nredirect_uris https://b.example.com/cb\n}",
			want: []string{`duplicate subdirective "redirect_uris"`, "Caddyfile:5"},
		},
		{
			name: "duplicate post_logout_redirect_uris",
			body: "client spa {\npost_logout_redirect_uris https://a.example.com\npost_logout_redirect_uris https://b.example.com\n}",
			want: []string{`duplicate subdirective "post_logout_redirect_uris"`, "Caddyfile:5"},
		},
		{
			name: "refresh_token_rotation with two arguments",
			body: "client spa {\nrefresh_token_rotation rotate static\n}",
			want: []string{"wrong argument count", "Caddyfile:4"},
		},
		{
			name: "bad refresh_token_leeway",
			body: "client spa {\nrefresh_token_leeway soon\n}",
			want: []string{`refresh_token_leeway "soon"`, "Caddyfile:4"},
		},
		{
			name: "zero refresh_token_leeway",
			body: "client spa {\nrefresh_token_leeway 0s\n}",
			want: []string{`refresh_token_leeway "0s": zero would mean the default`, "Caddyfile:4"},
		},
		{
			name: "negative refresh_token_leeway",
			body: "client spa {\nrefresh_token_leeway -5s\n}",
			want: []string{`refresh_token_leeway "-5s": must not be negative`, "Caddyfile:4"},
		},
		{
			name: "duplicate refresh_token_leeway",
			body: "client spa {\nrefresh_token_leeway 5s\nrefresh_token_leeway 10s\n}",
			want: []string{`duplicate subdirective "refresh_token_leeway"`, "Caddyfile:5"},
		},
		{
			name: "bad refresh_token_lifetime",
			body: "authorization_server default {\npolicy p {\nrule r {\nrefresh_token_lifetime forever\n}\n}\n}",
			want: []string{`refresh_token_lifetime "forever"`, "Caddyfile:6"},
		},
		{
			name: "zero refresh_token_lifetime",
			body: "authorization_server default {\npolicy p {\nrule r {\nrefresh_token_lifetime 0\n}\n}\n}",
			want: []string{`refresh_token_lifetime "0": zero would mean the default`, "Caddyfile:6"},
		},
		{
			name: "zero refresh_token_idle",
			body: "authorization_server default {\npolicy p {\nrule r {\nrefresh_token_idle 0d\n}\n}\n}",
			want: []string{`refresh_token_idle "0d": zero would mean the default`, "Caddyfile:6"},
		},
		{
			name: "duplicate refresh_token_idle",
			body: "authorization_server default {\npolicy p {\nrule r {\nrefresh_token_idle 1d\nrefresh_token_idle 2d\n}\n}\n}",
			want: []string{`duplicate subdirective "refresh_token_idle"`, "Caddyfile:7"},
		},
		{
			name: "unknown subdirective in people",
			body: "authorization_server default {\npolicy p {\nrule r {\npeople {\ninclude_users alice\n}\n}\n}\n}",
			want: []string{`unknown subdirective "include_users"`, "Caddyfile:7"},
		},
		{
			name: "people with arguments",
			body: "authorization_server default {\npolicy p {\nrule r {\npeople alice bob\n}\n}\n}",
			want: []string{"wrong argument count", "Caddyfile:6"},
		},
		{
			name: "people groups without values",
			body: "authorization_server default {\npolicy p {\nrule r {\npeople {\ngroups\n}\n}\n}\n}",
			want: []string{"wrong argument count", "Caddyfile:7"},
		},
		{
			name: "duplicate exclude_users",
			body: "authorization_server default {\npolicy p {\nrule r {\npeople {\nexclude_users a\nexclude_users b\n}\n}\n}\n}",
			want: []string{`duplicate subdirective "exclude_users"`, "Caddyfile:8"},
		},
		{
			name: "duplicate people",
			body: "authorization_server default {\npolicy p {\nrule r {\npeople {\nusers a\n}\npeople {\nusers b\n}\n}\n}\n}",
			want: []string{`duplicate subdirective "people"`, "Caddyfile:9"},
		},
		{
			name: "groups claim without value",
			body: "authorization_server default {\nclaim teams groups starts_with\n}",
			want: []string{"wrong argument count", "Caddyfile:4"},
		},
		{
			name: "groups claim without filter",
			body: "authorization_server default {\nclaim teams groups\n}",
			want: []string{"wrong argument count", "Caddyfile:4"},
		},
		{
			name: "groups claim with extra argument",
			body: "authorization_server default {\nclaim teams groups equals fin ops\n}",
			want: []string{"wrong argument count", "Caddyfile:4"},
		},
		{
			name: "claim with unquoted expression",
			body: "authorization_server default {\nclaim tier client.id == \"x\"\n}",
			want: []string{"wrong argument count", "Caddyfile:4"},
		},
		{
			name: "duplicate groups claim",
			body: "authorization_server default {\nclaim teams user.groups\nclaim teams groups equals fin\n}",
			want: []string{`claim "teams" defined twice`, "Caddyfile:5"},
		},
		{
			name: "duplicate token in claim",
			body: "authorization_server default {\nclaim teams groups equals fin {\ntoken id_token\ntoken access_token\n}\n}",
			want: []string{`duplicate subdirective "token"`, "Caddyfile:6"},
		},
		{
			name: "unknown subdirective in claim",
			body: "authorization_server default {\nclaim teams groups equals fin {\ntokens id_token\n}\n}",
			want: []string{`unknown subdirective "tokens"`, "Caddyfile:5"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := "{\n\ttoken_issuer {\n" + tc.body + "\n\t}\n}\n"
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
			if err == nil {
				t.Fatalf("no error for:\n%s", cfg)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestCaddyfileHandlerErrors checks the site directive refuses
// configuration: it belongs in the global option.
func TestCaddyfileHandlerErrors(t *testing.T) {
	for _, tc := range []struct{ name, site, want string }{
		{"argument", "token_issuer /oauth2/* extra", "Caddyfile:2"},
		{"block", "token_issuer {\nbase_url https://id.example.com\n}", "takes no block"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := "localhost:9080 {\n" + tc.site + "\n}\n"
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
			if err == nil {
				t.Fatalf("no error for:\n%s", cfg)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

// TestCaddyfileGlobalOptionOnce checks the global option cannot be
// given twice.
func TestCaddyfileGlobalOptionOnce(t *testing.T) {
	cfg := "{\n\ttoken_issuer {\n\t\tbase_url https://a.example.com\n\t}\n\ttoken_issuer {\n\t\tbase_url https://b.example.com\n\t}\n}\n"
	_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
	if err == nil || !strings.Contains(err.Error(), "only once") || !strings.Contains(err.Error(), "Caddyfile:5") {
		t.Fatalf("got %v, want an error about line 5 saying only once", err)
	}
}
