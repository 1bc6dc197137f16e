package tokenissuer_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"

	_ "github.com/apiaccess/caddy-apiaccess/tokenissuer"
)

func init() {
	caddy.RegisterModule(mockStorage{})
}

// mockStorage stands in for a storage module with its own Caddyfile
// syntax (such as a future postgres module), to show the `storage`
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
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			cfg, want, ok := strings.Cut(string(data), "----------")
			if !ok {
				t.Fatal("no ---------- separator")
			}
			cfg, want = strings.TrimSpace(cfg)+"\n", strings.TrimSpace(want)
			if !caddytest.CompareAdapt(t, f, cfg, "caddyfile", want) {
				t.Errorf("adapting %s: output differs from the expected JSON (diff above)", f)
			}
		})
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
			want: []string{`key_rotation_interval "90days"`, "Caddyfile:3"},
		},
		{
			name: "bad access_token_lifetime",
			body: "authorization_server default {\npolicy p {\nrule r {\naccess_token_lifetime soon\n}\n}\n}",
			want: []string{`access_token_lifetime "soon"`, "Caddyfile:6"},
		},
		{
			name: "bad priority",
			body: "authorization_server default {\npolicy p {\npriority first\n}\n}",
			want: []string{`priority "first" is not an integer`, "Caddyfile:5"},
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
