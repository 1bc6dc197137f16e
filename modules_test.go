package apiaccess_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// The only project import: what `xcaddy build --with
	// github.com/apiaccess/caddy-apiaccess` compiles in.
	_ "github.com/apiaccess/caddy-apiaccess"
)

const modulePath = "github.com/apiaccess/caddy-apiaccess"

// projectModules is every Caddy module the project registers; a new one
// must be added here and to the package doc. .ci/xcaddy-smoke reads this
// list too.
var projectModules = []string{
	"admin.api.token_issuer",
	"http.handlers.require_token",
	"http.handlers.token_issuer",
	"token_issuer",
	"token_issuer.directory.file",
	"token_issuer.directory.static",
	"token_issuer.storage.embedded",
	"token_issuer.storage.postgres",
}

// TestRootPackageRegistersEveryModule is what an xcaddy build relies on:
// importing the module root alone registers every module of both halves.
func TestRootPackageRegistersEveryModule(t *testing.T) {
	for _, id := range projectModules {
		if _, err := caddy.GetModule(id); err != nil {
			t.Errorf("module %s not registered by the root package: %v", id, err)
		}
	}

	// And nothing of ours is registered that the list (and so this test
	// and the docs) does not know about.
	var ours []string
	for _, id := range caddy.Modules() {
		info, err := caddy.GetModule(id)
		if err != nil {
			t.Fatal(err)
		}
		typ := reflect.TypeOf(info.New())
		for typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		if p := typ.PkgPath(); p == modulePath || strings.HasPrefix(p, modulePath+"/") {
			ours = append(ours, id)
		}
	}
	slices.Sort(ours)
	if !slices.Equal(ours, projectModules) {
		t.Errorf("project modules registered:\n  %v\nwant:\n  %v", ours, projectModules)
	}
}

func TestRootPackageRegistersCommands(t *testing.T) {
	for _, name := range []string{"apiaccess-hash-password", "apiaccess-token-preview"} {
		if _, ok := caddycmd.Commands()[name]; !ok {
			t.Errorf("caddy command %s not registered by the root package", name)
		}
	}
}

// TestRootPackageRegistersCaddyfile adapts a Caddyfile that uses the
// global option and both directives without an `order`: the directives
// and their order are registered too.
func TestRootPackageRegistersCaddyfile(t *testing.T) {
	const caddyfile = `{
	token_issuer {
		base_url http://localhost:8080
	}
}
:8080 {
	token_issuer
}
:8081 {
	require_token {
		issuer http://localhost:8080/oauth2/default
		audience api://default
	}
	respond "ok"
}
`
	adapter := caddyconfig.GetAdapter("caddyfile")
	if adapter == nil {
		t.Fatal("no caddyfile adapter registered")
	}
	out, warn, err := adapter.Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	for _, w := range warn {
		t.Logf("adapt warning: %s", w.String())
	}
	var cfg struct {
		Apps map[string]json.RawMessage `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	if _, ok := cfg.Apps["token_issuer"]; !ok {
		t.Errorf("no token_issuer app in the adapted config: %s", out)
	}
	for _, h := range []string{`"handler":"token_issuer"`, `"handler":"require_token"`} {
		if !strings.Contains(string(cfg.Apps["http"]), h) {
			t.Errorf("adapted http app lacks %s: %s", h, cfg.Apps["http"])
		}
	}
}
