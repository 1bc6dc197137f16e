package deprule

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/apiaccess/caddy-apiaccess"

// pureCores are the packages that hold the token checks, key sets,
// policy evaluation, claims, keys and grants: Caddy glue sits on top of
// them, never inside.
var pureCores = []string{
	"caddymodule/validator",
	"caddymodule/keyset",
	"tokenissuer/policy",
	"tokenissuer/claims",
	"tokenissuer/keys",
	"tokenissuer/authserver", // the grants and endpoints
	"tokenissuer/oauth",
	"tokenissuer/clientauth",
	"internal/dpop",       // DPoP proofs, for both halves
	"internal/jsonstrict", // JOSE JSON, for both halves
	"internal/gatewaylog",
	"internal/ssf", // the revocation feed's SETs and poll protocol
}

// listed is one package of `go list -json`; test variants have
// ImportPaths such as "p [p.test]".
type listed struct {
	ImportPath string
	Imports    []string
	Error      *struct{ Err string }
}

// goList runs go list -json with args and returns the packages by
// ImportPath.
func goList(t *testing.T, args ...string) map[string]*listed {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-e", "-json=ImportPath,Imports,Error"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	pkgs := map[string]*listed{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(listed)
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p.Error != nil {
			t.Errorf("go list: %s: %s", p.ImportPath, p.Error.Err)
		}
		pkgs[p.ImportPath] = p
	}
	return pkgs
}

// base is a package's path without its test variant, external-test or
// test-main suffix: "m/p_test [m/p.test]" -> "m/p".
func base(importPath string) string {
	p, _, _ := strings.Cut(importPath, " [")
	p = strings.TrimSuffix(p, ".test")
	return strings.TrimSuffix(p, "_test")
}

func within(importPath, dir string) bool {
	p := base(importPath)
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// chain is the shortest import chain from root to a package that bad
// accepts, or nil.
func chain(pkgs map[string]*listed, root string, bad func(string) bool) []string {
	parent := map[string]string{root: ""}
	queue := []string{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p != root && bad(p) {
			var c []string
			for q := p; q != ""; q = parent[q] {
				c = append([]string{q}, c...)
			}
			return c
		}
		if pkgs[p] == nil {
			continue
		}
		for _, imp := range pkgs[p].Imports {
			if _, seen := parent[imp]; !seen {
				parent[imp] = p
				queue = append(queue, imp)
			}
		}
	}
	return nil
}

// TestHalvesDoNotImportEachOther: no package of either half, nor any of
// their tests, imports the other half, directly or through another
// package. Tests that need both halves belong in e2e/.
func TestHalvesDoNotImportEachOther(t *testing.T) {
	pkgs := goList(t, "-deps", "-test", module+"/caddymodule/...", module+"/tokenissuer/...")
	for _, halves := range [][2]string{{"caddymodule", "tokenissuer"}, {"tokenissuer", "caddymodule"}} {
		from, to := module+"/"+halves[0], module+"/"+halves[1]
		roots := 0
		reported := map[string]bool{}
		for path := range pkgs {
			if !within(path, from) {
				continue
			}
			roots++
			c := chain(pkgs, path, func(p string) bool { return within(p, to) })
			if c != nil && !reported[base(path)] {
				reported[base(path)] = true
				t.Errorf("%s imports %s:\n\t%s", base(path), halves[1], strings.Join(c, "\n\t-> "))
			}
		}
		if roots == 0 {
			t.Fatalf("go list found no package under %s", from)
		}
	}
}

// TestPureCoresDoNotImportCaddy: the cores build without Caddy, so
// they can be tested and reused without a Caddy process.
func TestPureCoresDoNotImportCaddy(t *testing.T) {
	var args []string
	for _, c := range pureCores {
		args = append(args, module+"/"+c)
	}
	pkgs := goList(t, append([]string{"-deps"}, args...)...)
	for _, root := range args {
		if pkgs[root] == nil {
			t.Errorf("core package %s not found", root)
			continue
		}
		c := chain(pkgs, root, func(p string) bool { return strings.HasPrefix(p, "github.com/caddyserver/caddy/") })
		if c != nil {
			t.Errorf("%s imports Caddy:\n\t%s", root, strings.Join(c, "\n\t-> "))
		}
	}
}
