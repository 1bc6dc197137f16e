package claims

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

var known = map[string]bool{"read": true, "write": true, "admin": true}

func isKnown(s string) bool { return known[s] }

func compile(t *testing.T, cs ...*Claim) *Set {
	t.Helper()
	s, err := Compile(cs, isKnown)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return s
}

var input = Input{
	ClientID:   "reporting",
	ClientName: "Reporting service",
	Scopes:     []string{"read", "write"},
	ServerID:   "default",
	Issuer:     "https://id.example.com/oauth2/default",
}

func eval(t *testing.T, s *Set, in Input) map[string]any {
	t.Helper()
	out := map[string]any{}
	if failed := s.Evaluate(in, out); failed != nil {
		t.Fatalf("Evaluate: %v", failed)
	}
	return out
}

// failedClaims runs Evaluate and returns the names of the claims left
// out for a run-time failure, with the claims computed.
func failedClaims(s *Set, in Input) (names []string, out map[string]any) {
	out = map[string]any{}
	for _, f := range s.Evaluate(in, out) {
		if f.Err == nil {
			panic("failure without a cause")
		}
		names = append(names, f.Claim)
	}
	return names, out
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name   string
		claims []*Claim
		want   string
	}{
		{"no name", []*Claim{{Value: `"x"`}}, "name is required"},
		{"reserved sub", []*Claim{{Name: "sub", Value: `"x"`}}, `"sub": the name is reserved`},
		{"reserved scp", []*Claim{{Name: "scp", Value: `["x"]`}}, `"scp": the name is reserved`},
		{"reserved iss", []*Claim{{Name: "iss", Value: `"x"`}}, `"iss": the name is reserved`},
		{"reserved act", []*Claim{{Name: "act", Value: `{"sub": "forged"}`}}, `"act": the name is reserved in access tokens`},
		{"reserved cnf", []*Claim{{Name: "cnf", Value: `{"jkt": "x"}`, Token: AccessToken}}, `"cnf": the name is reserved in access tokens`},
		{"duplicate", []*Claim{{Name: "team", Value: `"a"`}, {Name: "team", Value: `"b"`}}, `"team": defined twice`},
		{"syntax", []*Claim{{Name: "team", Value: `client.id ==`}}, `claim "team"`},
		{"unbalanced", []*Claim{{Name: "team", Value: `("a"`}}, `claim "team"`},
		{"type error", []*Claim{{Name: "team", Value: `scopes + 1`}}, `claim "team"`},
		{"type error in comparison", []*Claim{{Name: "n", Value: `scopes.size() > "a"`}}, `claim "n"`},
		{"undeclared variable", []*Claim{{Name: "team", Value: `account.login`}}, `claim "team"`},
		{"empty expression", []*Claim{{Name: "team", Value: ``}}, `claim "team"`},
		{"unknown scope in condition", []*Claim{{Name: "team", Value: `"a"`, Scopes: []string{"read", "delete"}}}, `unknown scope "delete"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Compile(tc.claims, isKnown)
			if err == nil {
				t.Fatalf("Compile succeeded (%v), want an error containing %q", s, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestCompileRefusesEveryReservedName(t *testing.T) {
	for _, n := range []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "ver", "cid", "uid", "scp", "auth_time", "scope", "client_id"} {
		if _, err := Compile([]*Claim{{Name: n, Value: `"x"`}}, isKnown); err == nil {
			t.Errorf("claim named %q compiled; it would overwrite a token claim", n)
		}
	}
}

func TestEmpty(t *testing.T) {
	var nilSet *Set
	if !nilSet.Empty() {
		t.Error("nil set not Empty")
	}
	if err := nilSet.Evaluate(input, map[string]any{}); len(err) != 0 {
		t.Errorf("Evaluate on nil set: %v", err)
	}
	if !compile(t).Empty() {
		t.Error("set of no claims not Empty")
	}
	if compile(t, &Claim{Name: "a", Value: `1`}).Empty() {
		t.Error("set of one claim is Empty")
	}
}

func TestEvaluateValueTypes(t *testing.T) {
	s := compile(t,
		&Claim{Name: "str", Value: `client.id == "reporting" ? "internal" : "partner"`},
		&Claim{Name: "name", Value: `client.name`},
		&Claim{Name: "srv", Value: `server.id + " " + server.issuer`},
		&Claim{Name: "int", Value: `40 + 2`},
		&Claim{Name: "neg", Value: `-7`},
		&Claim{Name: "dbl", Value: `1.5`},
		&Claim{Name: "uint", Value: `3u`},
		&Claim{Name: "bool", Value: `"write" in scopes`},
		&Claim{Name: "falsy", Value: `"admin" in scopes`},
		&Claim{Name: "list", Value: `["a", 1, true]`},
		&Claim{Name: "scopes_copy", Value: `scopes`},
		&Claim{Name: "count", Value: `size(scopes)`},
		&Claim{Name: "mapped", Value: `scopes.map(s, "api:" + s)`},
		&Claim{Name: "map", Value: `{"team": "bi", "level": 2, "tags": ["x"], "nested": {"ok": true}}`},
		&Claim{Name: "empty_list", Value: `[]`},
		&Claim{Name: "empty_string", Value: `""`},
	)
	got := eval(t, s, input)
	want := map[string]any{
		"str":          "internal",
		"name":         "Reporting service",
		"srv":          "default https://id.example.com/oauth2/default",
		"int":          float64(42),
		"neg":          float64(-7),
		"dbl":          1.5,
		"uint":         float64(3),
		"bool":         true,
		"falsy":        false,
		"list":         []any{"a", float64(1), true},
		"scopes_copy":  []any{"read", "write"},
		"count":        float64(2),
		"mapped":       []any{"api:read", "api:write"},
		"map":          map[string]any{"team": "bi", "level": float64(2), "tags": []any{"x"}, "nested": map[string]any{"ok": true}},
		"empty_list":   []any{},
		"empty_string": "",
	}
	for k, w := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("claim %s missing", k)
		} else if !reflect.DeepEqual(g, w) {
			t.Errorf("claim %s = %#v, want %#v", k, g, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d claims, want %d: %v", len(got), len(want), got)
	}

	other := input
	other.ClientID = "acme"
	if got := eval(t, s, other)["str"]; got != "partner" {
		t.Errorf("str for another client = %v, want partner", got)
	}
}

func TestEvaluateKeepsOtherClaims(t *testing.T) {
	s := compile(t, &Claim{Name: "team", Value: `"bi"`})
	out := map[string]any{"sub": "reporting", "scp": []string{"read"}}
	if failed := s.Evaluate(input, out); failed != nil {
		t.Fatal(failed)
	}
	if out["sub"] != "reporting" || out["team"] != "bi" || len(out) != 3 {
		t.Fatalf("out = %v", out)
	}
}

func TestNullOmitsClaim(t *testing.T) {
	s := compile(t,
		&Claim{Name: "always_null", Value: `null`},
		&Claim{Name: "maybe", Value: `client.id == "reporting" ? dyn(client.name) : null`}, // typed string: dyn for null
		&Claim{Name: "maybe_literal", Value: `"write" in scopes ? dyn("w") : null`},
	)
	got := eval(t, s, input)
	if _, ok := got["always_null"]; ok {
		t.Errorf("null claim present: %v", got)
	}
	if got["maybe"] != "Reporting service" || got["maybe_literal"] != "w" {
		t.Errorf("maybe = %v, maybe_literal = %v; want the values", got["maybe"], got["maybe_literal"])
	}
	other := input
	other.ClientID, other.Scopes = "acme", []string{"read"}
	if got := eval(t, s, other); len(got) != 0 {
		t.Errorf("claims evaluating to null were included: %v", got)
	}
}

func TestScopeCondition(t *testing.T) {
	s := compile(t,
		&Claim{Name: "admin_only", Value: `"x"`, Scopes: []string{"admin"}},
		&Claim{Name: "read_or_admin", Value: `"y"`, Scopes: []string{"admin", "read"}},
		&Claim{Name: "always", Value: `"z"`},
	)
	got := eval(t, s, input) // read, write
	if _, ok := got["admin_only"]; ok {
		t.Error("claim conditioned on admin included without admin granted")
	}
	if got["read_or_admin"] != "y" {
		t.Error("claim conditioned on admin or read missing with read granted")
	}
	if got["always"] != "z" {
		t.Error("unconditional claim missing")
	}
	in := input
	in.Scopes = []string{"admin"}
	got = eval(t, s, in)
	if got["admin_only"] != "x" || got["read_or_admin"] != "y" {
		t.Errorf("with admin granted: %v", got)
	}
	in.Scopes = nil
	got = eval(t, s, in)
	if len(got) != 1 || got["always"] != "z" {
		t.Errorf("with no scopes granted: %v", got)
	}
}

func TestConditionSkipsEvaluation(t *testing.T) {
	// A claim whose condition is not met is not evaluated at all, so a
	// failing expression behind it cannot break issuance.
	s := compile(t, &Claim{Name: "x", Value: `10 / (size(scopes) - 2)`, Scopes: []string{"admin"}})
	if got := eval(t, s, input); len(got) != 0 {
		t.Fatalf("got %v", got)
	}
}

// TestRuntimeFailureLeavesClaimOut: an expression that fails at run
// time leaves only its claim out and is reported by name; the other
// claims and the token stand.
func TestRuntimeFailureLeavesClaimOut(t *testing.T) {
	s := compile(t,
		&Claim{Name: "fine", Value: `"ok"`},
		&Claim{Name: "div", Value: `10 / (size(scopes) - 2)`},
		&Claim{Name: "dept", Value: `user.profile.department`},
		&Claim{Name: "num", Value: `int(user.profile.level)`},
	)
	in := input
	in.User = &User{ID: "u1", Login: "bob@example.com", Profile: map[string]any{"level": "high"}}
	names, out := failedClaims(s, in)
	if !reflect.DeepEqual(names, []string{"div", "dept", "num"}) {
		t.Fatalf("failed claims %v, want div, dept, num", names)
	}
	if len(out) != 1 || out["fine"] != "ok" {
		t.Fatalf("claims %v, want only fine", out)
	}
}

func TestNonJSONValueIsLeftOut(t *testing.T) {
	for _, v := range []string{`type(1)`, `{1: 2}`} {
		s := compile(t, &Claim{Name: "t", Value: v})
		names, out := failedClaims(s, input)
		if !reflect.DeepEqual(names, []string{"t"}) || !strings.Contains(fmt.Sprint(s.Evaluate(input, map[string]any{})), "not JSON") {
			t.Fatalf("%s as claim value: failed %v, want t, not JSON", v, names)
		}
		if _, ok := out["t"]; ok {
			t.Fatalf("%s: failed claim was still set", v)
		}
	}
}

func TestCostLimit(t *testing.T) {
	// A runaway expression is stopped rather than stalling issuance.
	s := compile(t, &Claim{Name: "big", Value: `[1,2,3,4,5,6,7,8,9,10].map(a, [1,2,3,4,5,6,7,8,9,10].map(b, [1,2,3,4,5,6,7,8,9,10].map(c, [1,2,3,4,5,6,7,8,9,10].map(d, [1,2,3,4,5,6,7,8,9,10].map(e, a+b+c+d+e)))))`})
	failed := s.Evaluate(input, map[string]any{})
	if len(failed) != 1 || failed[0].Claim != "big" || !strings.Contains(failed[0].Err.Error(), "cost") {
		t.Fatalf("expression of ~100k operations: %v, want a cost-limit failure of big", failed)
	}
}

// TestTypedVariables: the variables have declared types, so a field
// that does not exist fails at load instead of at every token request.
func TestTypedVariables(t *testing.T) {
	for expr, diag := range map[string]string{
		`client.nosuch.field`:         "undefined field 'nosuch'",
		`client.nosuch`:               "undefined field 'nosuch'",
		`server.audience`:             "undefined field 'audience'",
		`user.email`:                  "undefined field 'email'",
		`user.groups + 1`:             "no matching overload",
		`client.id.size() + 1 == "a"`: "no matching overload",
	} {
		_, err := Compile([]*Claim{{Name: "c", Value: expr}}, isKnown)
		if err == nil || !strings.Contains(err.Error(), `claim "c": the CEL expression does not compile`) || !strings.Contains(err.Error(), diag) {
			t.Errorf("%s: err = %v, want %q", expr, err, diag)
		}
	}
	// Profile attributes are not declared: any name compiles.
	compile(t, &Claim{Name: "c", Value: `user.profile.anything.deep`})
}

// TestStringExtensions: claims have cel-go's string library.
func TestStringExtensions(t *testing.T) {
	s := compile(t,
		&Claim{Name: "lower", Value: `client.name.lowerAscii()`},
		&Claim{Name: "parts", Value: `server.issuer.split("/")[2]`},
		&Claim{Name: "joined", Value: `scopes.join(",")`},
		&Claim{Name: "trimmed", Value: `"  x ".trim()`},
	)
	got := eval(t, s, input)
	want := map[string]any{"lower": "reporting service", "parts": "id.example.com", "joined": "read,write", "trimmed": "x"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestUserClaims: expressions over the user, missing profile attributes
// omitted, groups claims with each filter, and the token kind.
func TestUserClaims(t *testing.T) {
	s := compile(t,
		&Claim{Name: "email", Value: `user.profile.email`},
		&Claim{Name: "phone", Value: `user.profile.phone`},
		&Claim{Name: "login", Value: `user.login`, Token: IDToken},
		&Claim{Name: "fin", Groups: &GroupsFilter{Type: "starts_with", Value: "fin"}},
		&Claim{Name: "exact", Groups: &GroupsFilter{Type: "equals", Value: "staff"}},
		&Claim{Name: "has_ops", Groups: &GroupsFilter{Type: "contains", Value: "ops"}},
		&Claim{Name: "re", Groups: &GroupsFilter{Type: "regex", Value: "fin|staff"}},
	)
	in := input
	in.User = &User{ID: "u1", Login: "alice@example.com", Profile: map[string]any{"email": "alice@example.com"}, Groups: []string{"finance", "staff", "devops", "fin"}}
	// The user lacks phone: that claim is left out, and reported.
	names, out := failedClaims(s, in)
	if !reflect.DeepEqual(names, []string{"phone"}) {
		t.Fatalf("failed claims %v, want phone", names)
	}
	want := map[string]any{"email": "alice@example.com", "fin": []string{"finance", "fin"}, "exact": []string{"staff"}, "has_ops": []string{"devops"}, "re": []string{"staff", "fin"}}
	if len(out) != len(want) {
		t.Fatalf("claims %v, want %v", out, want)
	}
	for k, v := range want {
		if fmt.Sprint(out[k]) != fmt.Sprint(v) {
			t.Errorf("%s = %v, want %v", k, out[k], v)
		}
	}
	id := map[string]any{}
	if err := s.EvaluateFor(IDToken, in, id); len(err) != 0 || id["login"] != "alice@example.com" || len(id) != 1 {
		t.Fatalf("id token claims %v %v", id, err)
	}
	// Without a user, user claims are simply absent, and no failure.
	out = map[string]any{}
	if err := s.Evaluate(input, out); len(err) != 0 || len(out) != 0 {
		t.Fatalf("no user: %v %v", out, err)
	}
	for _, bad := range []*Claim{
		{Name: "x", Groups: &GroupsFilter{Type: "suffix", Value: "a"}},
		{Name: "x", Groups: &GroupsFilter{Type: "regex", Value: "("}},
		{Name: "x", Value: `"a"`, Groups: &GroupsFilter{Type: "equals", Value: "a"}},
		{Name: "x", Value: `"a"`, Token: "refresh_token"},
	} {
		if _, err := Compile([]*Claim{bad}, func(string) bool { return true }); err == nil {
			t.Errorf("%+v compiled", bad)
		}
	}
}

// TestHasToken: the issuer evaluates claims for a token kind only when
// some claim goes into it (issue.go, idtoken.go), so HasToken must see
// each claim's token, the default being the access token.
func TestHasToken(t *testing.T) {
	var none *Set
	if none.HasToken(AccessToken) || compile(t).HasToken(AccessToken) {
		t.Error("a set without claims reports claims for the access token")
	}
	access := compile(t, &Claim{Name: "team", Value: `"bi"`})
	if !access.HasToken(AccessToken) || access.HasToken(IDToken) {
		t.Errorf("a claim without token: access %v id %v, want true false", access.HasToken(AccessToken), access.HasToken(IDToken))
	}
	// The ID-token claim comes after an access-token one: every claim is looked at.
	both := compile(t, &Claim{Name: "team", Value: `"bi"`}, &Claim{Name: "login", Value: `user.login`, Token: IDToken})
	if !both.HasToken(IDToken) || !both.HasToken(AccessToken) {
		t.Error("a set with an access-token and an ID-token claim misses one")
	}
	id := compile(t, &Claim{Name: "login", Value: `user.login`, Token: IDToken})
	if id.HasToken(AccessToken) || !id.HasToken(IDToken) {
		t.Errorf("an id_token claim: access %v id %v, want false true", id.HasToken(AccessToken), id.HasToken(IDToken))
	}
}

// TestCompileErrorExplains: a refused expression's error names the
// claim and carries CEL's diagnosis, so the operator sees what to fix.
func TestCompileErrorExplains(t *testing.T) {
	for expr, diag := range map[string]string{
		`client.id ==`:        "Syntax error",
		``:                    "Syntax error",
		`scopes + 1`:          "found no matching overload for '_+_'",
		`account.login`:       "undeclared reference to 'account'",
		`scopes.size() > "a"`: "found no matching overload",
	} {
		_, err := Compile([]*Claim{{Name: "team", Value: expr}}, isKnown)
		if err == nil || !strings.Contains(err.Error(), `claim "team"`) || !strings.Contains(err.Error(), diag) {
			t.Errorf("%q: err = %v, want the claim name and %q", expr, err, diag)
		}
	}
}

// TestUserGroupsExpression: `user.groups` is the user's groups as a
// list, an empty list for a user without groups.
func TestUserGroupsExpression(t *testing.T) {
	s := compile(t,
		&Claim{Name: "groups", Value: `user.groups`},
		&Claim{Name: "finance", Value: `"finance" in user.groups`},
		&Claim{Name: "n", Value: `size(user.groups)`},
	)
	in := input
	in.User = &User{ID: "u1", Login: "alice@example.com", Groups: []string{"staff", "finance"}}
	got := eval(t, s, in)
	if !reflect.DeepEqual(got, map[string]any{"groups": []any{"staff", "finance"}, "finance": true, "n": float64(2)}) {
		t.Errorf("user with groups: %v", got)
	}
	in.User = &User{ID: "u2", Login: "bob@example.com"}
	got = eval(t, s, in)
	if !reflect.DeepEqual(got, map[string]any{"groups": []any{}, "finance": false, "n": float64(0)}) {
		t.Errorf("user without groups: %v", got)
	}
}
