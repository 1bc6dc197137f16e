package caddymodule_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
	"github.com/apiaccess/caddy-apiaccess/internal/testkit/caddytester"

	_ "github.com/apiaccess/caddy-apiaccess/caddymodule"
)

// readAdaptFile splits a testdata/adapt/*.caddyfiletest into its
// Caddyfile and the expected JSON, separated by a line `----------`.
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

func adaptFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("testdata/adapt/*.caddyfiletest")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no test files")
	}
	return files
}

// TestCaddyfileAdapt adapts each testdata/adapt/*.caddyfiletest: a
// Caddyfile, a line `----------`, and the expected JSON.
func TestCaddyfileAdapt(t *testing.T) {
	for _, f := range adaptFiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, want := readAdaptFile(t, f)
			if !caddytest.CompareAdapt(t, f, cfg, "caddyfile", want) {
				t.Errorf("adapting %s: output differs from the expected JSON (diff above)", f)
			}
		})
	}
}

// TestCaddyfileAdaptProvisions checks that the adapted examples are
// configurations Caddy accepts (as `caddy validate` does, without
// starting anything), so the golden files show working syntax.
func TestCaddyfileAdaptProvisions(t *testing.T) {
	t.Setenv("INTROSPECT_SECRET", "s1")
	t.Setenv("REPORTS_INTROSPECT_SECRET", "s2")
	t.Setenv("DPOP_NONCE_SECRET", "a nonce secret of 32 bytes long!")
	t.Setenv("GATEWAY_FEED_SECRET", "s3")
	t.Setenv("GATEWAY_FEED_KEY_FILE", writeTestKeyPEM(t))
	for _, f := range adaptFiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, want := readAdaptFile(t, f)
			var c caddy.Config
			if err := json.Unmarshal([]byte(want), &c); err != nil {
				t.Fatal(err)
			}
			err := caddy.Validate(&c)
			if filepath.Base(f) == "revocations_local.caddyfiletest" {
				// Its route's issuer is a token_issuer app's of the same
				// Caddy, which this test binary does not have: provisioning
				// goes as far as noticing that.
				if err == nil || !strings.Contains(err.Error(), "no issuer of the route is served by a token_issuer app") {
					t.Fatalf("%s: %v, want the error naming the missing token_issuer", f, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("%s does not validate: %v", f, err)
			}
		})
	}
}

// TestCaddyfileErrors checks that bad Caddyfiles fail with an error that
// names the problem and its line.
func TestCaddyfileErrors(t *testing.T) {
	type errCase struct {
		name, body string // body goes inside `require_token { ... }`, from line 3
		want       []string
	}
	cases := []errCase{
		{
			name: "unknown subdirective",
			body: "audience api://default\nscope read",
			want: []string{`unknown subdirective "scope"`, "Caddyfile:4"},
		},
		{
			name: "unknown subdirective in issuer",
			body: "issuer https://id.example.com/oauth2/default {\naudiences api://default\n}",
			want: []string{`unknown subdirective "audiences"`, "Caddyfile:4"},
		},
		{
			name: "unknown subdirective in introspect",
			body: "introspect {\nclient_secrets s\n}",
			want: []string{`unknown subdirective "client_secrets"`, "Caddyfile:4"},
		},
		{
			name: "issuer without url",
			body: "issuer",
			want: []string{"wrong argument count", "Caddyfile:3"},
		},
		{
			name: "issuer block audience without values",
			body: "issuer https://id.example.com/oauth2/default {\naudience\n}",
			want: []string{"wrong argument count", "Caddyfile:4"},
		},
		{
			name: "log_decisions not a mode",
			body: "audience api://default\nlog_decisions rejected",
			want: []string{`log_decisions "rejected": want rejections, all or none`, "Caddyfile:4"},
		},
		{
			name: "log_decisions twice",
			body: "audience api://default\nlog_decisions all\nlog_decisions none",
			want: []string{"log_decisions", "Caddyfile:5"},
		},
		{
			name: "route_name too long",
			body: "route_name " + strings.Repeat("r", 129),
			want: []string{"route_name: at most 128 bytes of printable UTF-8", "Caddyfile:3"},
		},
		{
			name: "audience without values",
			body: "audience",
			want: []string{"wrong argument count", "Caddyfile:3"},
		},
		{
			name: "scopes without values",
			body: "scopes billing:read\nscopes",
			want: []string{"wrong argument count", "Caddyfile:4"},
		},
		{
			name: "any_scope without values",
			body: "any_scope",
			want: []string{"wrong argument count", "Caddyfile:3"},
		},
		{
			name: "claim without value",
			body: "claim tenant",
			want: []string{"wrong argument count", "Caddyfile:3"},
		},
		{
			name: "claim with two values",
			body: "claim tenant acme globex",
			want: []string{"wrong argument count", "Caddyfile:3"},
		},
		{
			name: "claim_regexp without pattern",
			body: "claim_regexp email",
			want: []string{"wrong argument count", "Caddyfile:3"},
		},
		{
			name: "forward_claim without header",
			body: "forward_claim sub",
			want: []string{"wrong argument count", "Caddyfile:3"},
		},
		{
			name: "forward_claim with two headers",
			body: "forward_claim sub X-User-Id X-Sub",
			want: []string{"wrong argument count", "Caddyfile:3"},
		},
		{
			name: "expression without argument",
			body: "expression",
			want: []string{"wrong argument count", "Caddyfile:3"},
		},
		{
			name: "expression not quoted",
			body: `expression "finance" in claims.groups`,
			want: []string{"wrong argument count", "backquotes", "Caddyfile:3"},
		},
		{
			name: "realm not quoted",
			body: "realm Billing API",
			want: []string{"wrong argument count", "Caddyfile:3"},
		},
		{
			name: "token_cookie without name",
			body: "token_cookie",
			want: []string{"wrong argument count", "Caddyfile:3"},
		},
		{
			name: "algorithms without values",
			body: "algorithms",
			want: []string{"wrong argument count", "Caddyfile:3"},
		},
		{
			name: "introspect with two endpoints",
			body: "introspect https://a.example.com/introspect https://b.example.com/introspect",
			want: []string{"wrong argument count", "Caddyfile:3"},
		},
		{
			name: "introspect client_id without value",
			body: "introspect {\nclient_id\n}",
			want: []string{"wrong argument count", "Caddyfile:4"},
		},
		{
			name: "duplicate issuer",
			body: "issuer https://id.example.com/oauth2/default\nissuer https://id.example.com/oauth2/default",
			want: []string{`issuer "https://id.example.com/oauth2/default" defined twice`, "Caddyfile:4"},
		},
		{
			name: "issuer audience inline and in block",
			body: "issuer https://id.example.com/oauth2/default api://a {\naudience api://b\n}",
			want: []string{"audience given both after the URL and in the block", "Caddyfile:4"},
		},
		{
			name: "duplicate in issuer block",
			body: "issuer https://id.example.com/oauth2/default {\njwks_uri https://a.example.com/keys\njwks_uri https://b.example.com/keys\n}",
			want: []string{`duplicate subdirective "jwks_uri"`, "Caddyfile:5"},
		},
		{
			name: "duplicate audience in issuer block",
			body: "issuer https://id.example.com/oauth2/default {\naudience api://a\naudience api://b\n}",
			want: []string{`duplicate subdirective "audience"`, "Caddyfile:5"},
		},
		{
			name: "duplicate in introspect block",
			body: "introspect {\ncache 5s\ncache 10s\n}",
			want: []string{`duplicate subdirective "cache"`, "Caddyfile:5"},
		},
		{
			name: "forward_claim header used twice",
			body: "forward_claim sub X-User\nforward_claim uid x_user",
			want: []string{"forward_claim uid: header x_user is already set by another forward_claim", "Caddyfile:4"},
		},
		{
			name: "bad clock_skew",
			body: "clock_skew soon",
			want: []string{`clock_skew "soon": not a duration; use a number and a unit (ns, us, ms, s, m, h, d), e.g. 90s, 15m, 7d`, "Caddyfile:3"},
		},
		{
			name: "negative clock_skew",
			body: "clock_skew -5s",
			want: []string{`clock_skew "-5s": must not be negative`, "Caddyfile:3"},
		},
		{
			name: "zero clock_skew",
			body: "clock_skew 0s",
			want: []string{`clock_skew "0s": zero would mean the default`, "Caddyfile:3"},
		},
		{
			name: "bad key_refresh",
			body: "issuer https://id.example.com/oauth2/default {\nkey_refresh often\n}",
			want: []string{`key_refresh "often": not a duration`, "Caddyfile:4"},
		},
		{
			name: "zero min_refresh",
			body: "issuer https://id.example.com/oauth2/default {\nmin_refresh 0\n}",
			want: []string{`min_refresh "0": zero would mean the default`, "Caddyfile:4"},
		},
		{
			name: "bad introspect cache",
			body: "introspect {\ncache forever\n}",
			want: []string{`cache "forever": not a duration`, "Caddyfile:4"},
		},
		{
			name: "bad introspect negative_cache",
			body: "introspect {\nnegative_cache never\n}",
			want: []string{`negative_cache "never": not a duration`, "Caddyfile:4"},
		},
		{
			name: "zero introspect negative_cache",
			body: "introspect {\nnegative_cache 0s\n}",
			want: []string{`negative_cache "0s": give a positive duration, or off`, "Caddyfile:4"},
		},
		{
			name: "negative_cache with two arguments",
			body: "introspect {\nnegative_cache off 5s\n}",
			want: []string{"wrong argument count", "Caddyfile:4"},
		},
		{
			name: "duplicate negative_cache",
			body: "introspect {\nnegative_cache 5s\nnegative_cache off\n}",
			want: []string{`duplicate subdirective "negative_cache"`, "Caddyfile:5"},
		},
		{
			name: "bad cache_size",
			body: "cache_size many",
			want: []string{`cache_size "many": not an integer`, "Caddyfile:3"},
		},
		{
			name: "zero cache_size",
			body: "cache_size 0",
			want: []string{"cache_size 0: must be a positive number of entries, or -1", "Caddyfile:3"},
		},
		{
			name: "cache_size below -1",
			body: "cache_size -2",
			want: []string{"cache_size -2: must be a positive number", "Caddyfile:3"},
		},
		{
			name: "bad max_token_size",
			body: "max_token_size 8k",
			want: []string{`max_token_size "8k": not an integer`, "Caddyfile:3"},
		},
		{
			name: "dpop not a mode",
			body: "audience api://default\ndpop optional",
			want: []string{`dpop "optional": want required, allowed or off`, "Caddyfile:4"},
		},
		{
			name: "dpop without mode",
			body: "dpop",
			want: []string{"wrong argument count", "Caddyfile:3"},
		},
		{
			name: "dpop_origin with a path",
			body: "audience api://default\ndpop_origin https://api.example.com/v1",
			want: []string{`dpop_origin "https://api.example.com/v1": want an origin`, "Caddyfile:4"},
		},
		{
			name: "dpop_algorithms HS256",
			body: "dpop_algorithms ES256 HS256",
			want: []string{`dpop_algorithms: dpop: algorithm "HS256" is not allowed`, "Caddyfile:3"},
		},
		{
			name: "dpop_nonce_secret too short",
			body: "dpop_nonce_secret hunter2",
			want: []string{"dpop_nonce_secret: at least 16 bytes", "Caddyfile:3"},
		},
		{
			name: "zero dpop_nonce_period",
			body: "dpop_nonce_period 0s",
			want: []string{`dpop_nonce_period "0s": zero would mean the default`, "Caddyfile:3"},
		},
		{
			name: "zero dpop_replay_cache_size",
			body: "dpop_replay_cache_size 0",
			want: []string{"dpop_replay_cache_size 0: must be a positive number of entries", "Caddyfile:3"},
		},
		{
			name: "zero max_token_size",
			body: "max_token_size 0",
			want: []string{"max_token_size 0: must be a positive number of bytes", "Caddyfile:3"},
		},
	}
	// Each singular subdirective, given twice, fails at its second line.
	for _, sub := range []string{
		"audience api://default",
		"expression `true`",
		"token_cookie access_token",
		"token_query access_token",
		"clock_skew 30s",
		"algorithms RS256",
		"max_token_size 4096",
		"cache_size 100",
		"realm api",
		"dpop allowed",
		"dpop_origin https://api.example.com",
		"dpop_algorithms ES256",
		"dpop_nonce_secret {env.DPOP_NONCE_SECRET}",
		"dpop_nonce_period 5m",
		"dpop_replay_cache_size 1000",
		"introspect {\nclient_id c\n}",
	} {
		name, _, _ := strings.Cut(sub, " ")
		cases = append(cases, errCase{
			name: "duplicate " + name,
			body: sub + "\n" + sub,
			// sub spans lines 3 to 3+n; its repeat starts on the next.
			want: []string{`duplicate subdirective "` + name + `"`, "Caddyfile:" + strconv.Itoa(4+strings.Count(sub, "\n"))},
		})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := "api.example.com {\n\trequire_token {\n" + tc.body + "\n\t}\n}\n"
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

// TestCaddyfileDirectiveErrors checks the arguments of the directive
// itself.
func TestCaddyfileDirectiveErrors(t *testing.T) {
	for _, tc := range []struct {
		name, site string // site goes inside the site block, from line 2
		want       []string
	}{
		{
			name: "no issuer",
			site: "require_token {\naudience api://default\n}",
			want: []string{"at least one issuer is required", "Caddyfile:4"},
		},
		{
			name: "bad regexp",
			site: "require_token https://a.example.com api://a {\nclaim_regexp team `[a-z`\n}",
			want: []string{"claim team: error parsing regexp", "Caddyfile:3"},
		},
		{
			name: "regexp escaping its anchors",
			site: "require_token https://a.example.com api://a {\nclaim_regexp team `)|(.*`\n}",
			want: []string{"claim team: error parsing regexp", "Caddyfile:3"},
		},
		{
			name: "bad expression",
			site: "require_token https://a.example.com api://a {\nexpression `\"finance\" in claims.groups &&`\n}",
			want: []string{"expression:", "Caddyfile:3"},
		},
		{
			name: "expression not boolean",
			site: "require_token https://a.example.com api://a {\nexpression `\"finance\"`\n}",
			want: []string{"expression must be boolean", "Caddyfile:3"},
		},
		{
			name: "inline issuer repeated",
			site: "require_token https://a.example.com {\nissuer https://a.example.com api://a\n}",
			want: []string{`issuer "https://a.example.com" defined twice`, "Caddyfile:3"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := "api.example.com {\n" + tc.site + "\n}\n"
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

// TestCaddyfileLoadErrors loads Caddyfiles that parse but that the
// handler refuses when provisioned, through a running Caddy's admin
// API, as `caddy reload` would. The admin API answers in JSON, so
// quotes in the expected messages are escaped.
func TestCaddyfileLoadErrors(t *testing.T) {
	t.Setenv("EMPTY_SECRET", "")
	t.Setenv("SHORT_SECRET", "short")
	for _, tc := range []struct{ name, handler, want string }{
		{
			name:    "missing audience",
			handler: "require_token https://id.example.com/oauth2/default",
			want:    "issuer https://id.example.com/oauth2/default: an audience is required",
		},
		{
			name:    "missing audience of second issuer",
			handler: "require_token {\n\t\tissuer https://id.example.com/oauth2/default api://default\n\t\tissuer https://id.example.com/oauth2/partners\n\t}",
			want:    "issuer https://id.example.com/oauth2/partners: an audience is required",
		},
		{
			name:    "HS256",
			handler: "require_token https://id.example.com/oauth2/default {\n\t\taudience api://default\n\t\talgorithms RS256 HS256\n\t}",
			want:    `issuer https://id.example.com/oauth2/default: algorithm \"HS256\" is not allowed`,
		},
		{
			name:    "HS256 for one issuer",
			handler: "require_token {\n\t\tissuer https://id.example.com/oauth2/default api://default\n\t\tissuer https://login.example.org api://login {\n\t\t\talgorithms HS256\n\t\t}\n\t}",
			want:    `issuer https://login.example.org: algorithm \"HS256\" is not allowed`,
		},
		{
			name:    "introspection with two issuers",
			handler: "require_token https://id.example.com/oauth2/default {\n\t\tissuer https://login.example.org\n\t\taudience api://default\n\t\tintrospect {\n\t\t\tclient_id gw\n\t\t\tclient_secret s\n\t\t}\n\t}",
			want:    "introspection needs exactly one issuer",
		},
		{
			name:    "introspection without secret",
			handler: "require_token https://id.example.com/oauth2/default {\n\t\taudience api://default\n\t\tintrospect {\n\t\t\tclient_id gw\n\t\t\tclient_secret {env.EMPTY_SECRET}\n\t\t}\n\t}",
			want:    "introspection client_secret",
		},
		{
			name:    "decisions logged without an issuer",
			handler: "require_token https://id.example.com/oauth2/default {\n\t\taudience api://default\n\t\tlog_decisions all\n\t}",
			want:    "log_decisions all: there is no token_issuer app in this Caddy",
		},
		{
			name:    "dpop nonce secret too short",
			handler: "require_token https://id.example.com/oauth2/default {\n\t\taudience api://default\n\t\tdpop_nonce_secret {env.SHORT_SECRET}\n\t}",
			want:    "dpop_nonce_secret: at least 16 bytes",
		},
		{
			name:    "invalid forward header",
			handler: "require_token https://id.example.com/oauth2/default {\n\t\taudience api://default\n\t\tforward_claim sub \"X User\"\n\t}",
			want:    `forward_claim sub: invalid header name \"X User\"`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := "{\n\tadmin " + caddytester.AdminAddr() + "\n\thttp_port " + gwPort + "\n\thttps_port " + testkit.ProcessPortString("gateway-https") + "\n\tgrace_period 1ns\n\tskip_install_trust\n}\n\n" +
				"http://localhost:" + gwPort + " {\n\t" + tc.handler + "\n\trespond \"ok\"\n}\n"
			// A config that loaded would replace the running one and
			// AssertLoadError would then panic on a nil error; check
			// offline first that it fails.
			js, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
			if err != nil {
				t.Fatalf("adapting:\n%s\n%v", cfg, err)
			}
			var c caddy.Config
			if err := json.Unmarshal(js, &c); err != nil {
				t.Fatal(err)
			}
			if err := caddy.Validate(&c); err == nil {
				t.Fatalf("config validates:\n%s", cfg)
			}
			caddytester.AssertLoadError(t, cfg, "caddyfile", tc.want)
		})
	}
}
