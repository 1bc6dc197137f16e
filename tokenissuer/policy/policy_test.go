package policy

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/duration"
)

var (
	scopes = map[string]bool{"read": true, "write": true, "admin": true}
	grants = []string{"client_credentials", "authorization_code"}
)

func rule(name string, prio int, scopes ...string) *Rule {
	return &Rule{Name: name, Priority: prio, GrantTypes: []string{"client_credentials"}, Scopes: scopes}
}

func mustSet(t *testing.T, ps ...*Policy) *Set {
	t.Helper()
	s, err := NewSet(ps, scopes, grants)
	if err != nil {
		t.Fatalf("NewSet: %v", err)
	}
	return s
}

func TestNewSetValidation(t *testing.T) {
	okRule := func() *Rule { return rule("r", 0, "read") }
	tests := []struct {
		name     string
		policies []*Policy
		want     string // substring of the error
	}{
		{"policy without name", []*Policy{{Clients: []string{"*"}}}, "name is required"},
		{"duplicate policy", []*Policy{{Name: "p", Clients: []string{"*"}}, {Name: "p", Clients: []string{"a"}}}, `"p": defined twice`},
		{"no clients", []*Policy{{Name: "p"}}, "clients is required"},
		{"empty clients", []*Policy{{Name: "p", Clients: []string{}}}, "clients is required"},
		{"star not alone in clients", []*Policy{{Name: "p", Clients: []string{"*", "a"}}}, `"*" must stand alone`},
		{"empty client id", []*Policy{{Name: "p", Clients: []string{"a", ""}}}, "empty value"},
		{"rule without name", []*Policy{{Name: "p", Clients: []string{"*"}, Rules: []*Rule{{GrantTypes: []string{"client_credentials"}, Scopes: []string{"read"}}}}}, `rule "": name is required`},
		{"duplicate rule", []*Policy{{Name: "p", Clients: []string{"*"}, Rules: []*Rule{okRule(), okRule()}}}, `policy "p": rule "r": defined twice`},
		{"no grant types", []*Policy{{Name: "p", Clients: []string{"*"}, Rules: []*Rule{{Name: "r", Scopes: []string{"read"}}}}}, "grant_types is required"},
		{"unsupported grant", []*Policy{{Name: "p", Clients: []string{"*"}, Rules: []*Rule{{Name: "r", GrantTypes: []string{"password"}, Scopes: []string{"read"}}}}}, `grant type "password" is not supported`},
		{"no scopes", []*Policy{{Name: "p", Clients: []string{"*"}, Rules: []*Rule{{Name: "r", GrantTypes: []string{"client_credentials"}}}}}, "scopes is required"},
		{"star not alone in scopes", []*Policy{{Name: "p", Clients: []string{"*"}, Rules: []*Rule{rule("r", 0, "read", "*")}}}, `"*" must stand alone`},
		{"unknown scope", []*Policy{{Name: "p", Clients: []string{"*"}, Rules: []*Rule{rule("r", 0, "read", "delete")}}}, `unknown scope "delete"`},
		{"lifetime too short", []*Policy{{Name: "p", Clients: []string{"*"}, Rules: []*Rule{{Name: "r", GrantTypes: []string{"client_credentials"}, Scopes: []string{"read"}, AccessTokenLifetime: duration.Duration(5*time.Minute - time.Second)}}}}, "outside"},
		{"lifetime too long", []*Policy{{Name: "p", Clients: []string{"*"}, Rules: []*Rule{{Name: "r", GrantTypes: []string{"client_credentials"}, Scopes: []string{"read"}, AccessTokenLifetime: duration.Duration(24*time.Hour + time.Second)}}}}, "outside"},
		{"negative lifetime", []*Policy{{Name: "p", Clients: []string{"*"}, Rules: []*Rule{{Name: "r", GrantTypes: []string{"client_credentials"}, Scopes: []string{"read"}, AccessTokenLifetime: duration.Duration(-time.Hour)}}}}, "outside"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewSet(tc.policies, scopes, grants)
			if err == nil {
				t.Fatalf("NewSet succeeded, want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewSet error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestNewSetErrorNamesPolicy(t *testing.T) {
	_, err := NewSet([]*Policy{{Name: "billing", Clients: []string{"*"}, Rules: []*Rule{rule("ops", 0, "nope")}}}, scopes, grants)
	if err == nil || !strings.Contains(err.Error(), `"billing"`) || !strings.Contains(err.Error(), `"ops"`) {
		t.Fatalf("error %v should name the policy and the rule", err)
	}
}

func TestNewSetAccepts(t *testing.T) {
	ps := []*Policy{
		{Name: "all", Clients: []string{"*"}, Rules: []*Rule{
			rule("star", 0, "*"),
			{Name: "min", GrantTypes: grants, Scopes: []string{"read"}, AccessTokenLifetime: duration.Duration(MinAccessTokenLifetime)},
			{Name: "max", GrantTypes: grants, Scopes: []string{"read"}, AccessTokenLifetime: duration.Duration(MaxAccessTokenLifetime)},
		}},
		{Name: "norules", Clients: []string{"a", "b"}},
	}
	s := mustSet(t, ps...)
	if len(s.Policies()) != 2 {
		t.Fatalf("Policies() = %d", len(s.Policies()))
	}
	// Rule names may repeat across policies.
	mustSet(t, &Policy{Name: "x", Clients: []string{"*"}, Rules: []*Rule{rule("r", 0, "read")}},
		&Policy{Name: "y", Clients: []string{"*"}, Rules: []*Rule{rule("r", 0, "read")}})
	// No policies at all is a valid (deny-all) configuration.
	if _, ok, _ := mustSet(t).Evaluate(Request{ClientID: "a", GrantType: "client_credentials"}); ok {
		t.Fatal("an empty policy set granted a request")
	}
}

func TestLifetimeDefault(t *testing.T) {
	r := &Rule{}
	if r.Lifetime() != DefaultAccessTokenLifetime || DefaultAccessTokenLifetime != time.Hour {
		t.Fatalf("default lifetime = %v, want 1h", r.Lifetime())
	}
	r.AccessTokenLifetime = duration.Duration(30 * time.Minute)
	if r.Lifetime() != 30*time.Minute {
		t.Fatalf("Lifetime = %v, want 30m", r.Lifetime())
	}
}

func evaluate(t *testing.T, s *Set, req Request) (policy, rule string, ok bool) {
	t.Helper()
	m, ok, reason := s.Evaluate(req)
	if !ok && reason == "" {
		t.Error("a failed evaluation gave no reason")
	}
	if m.Policy != nil {
		policy = m.Policy.Name
	}
	if m.Rule != nil {
		rule = m.Rule.Name
	}
	if ok != (m.Rule != nil) {
		t.Errorf("ok = %v but rule = %v", ok, m.Rule)
	}
	return policy, rule, ok
}

func cc(client string, scopes ...string) Request {
	return Request{ClientID: client, GrantType: "client_credentials", Scopes: scopes}
}

func TestEvaluatePolicyPriority(t *testing.T) {
	s := mustSet(t,
		&Policy{Name: "catch-all", Priority: 10, Clients: []string{"*"}, Rules: []*Rule{rule("any", 0, "*")}},
		&Policy{Name: "billing", Priority: 1, Clients: []string{"billing", "reports"}, Rules: []*Rule{rule("read-only", 0, "read")}},
	)
	if p, r, ok := evaluate(t, s, cc("billing", "read")); !ok || p != "billing" || r != "read-only" {
		t.Fatalf("billing read: %s/%s %v; want billing/read-only (lower priority first)", p, r, ok)
	}
	if p, r, ok := evaluate(t, s, cc("other", "write")); !ok || p != "catch-all" || r != "any" {
		t.Fatalf("other client: %s/%s %v; want catch-all/any", p, r, ok)
	}
	if got := s.Policies(); got[0].Name != "billing" || got[1].Name != "catch-all" {
		t.Fatalf("Policies() order = %s, %s", got[0].Name, got[1].Name)
	}
}

// TestEvaluateContinuesPastPolicyWithoutMatchingRule: Okta evaluates
// policies and their rules in priority order until a policy covering
// the client has a rule whose conditions all match; a covering policy
// none of whose rules match does not end evaluation (DESIGN.md; Okta
// support, "Tokens not issued with lifetime configured in access rule":
// "evaluation will continue to the next Access Policy/Rule").
func TestEvaluateContinuesPastPolicyWithoutMatchingRule(t *testing.T) {
	s := mustSet(t,
		&Policy{Name: "billing", Priority: 1, Clients: []string{"billing"}, Rules: []*Rule{rule("read-only", 0, "read")}},
		&Policy{Name: "other", Priority: 2, Clients: []string{"reports"}, Rules: []*Rule{rule("everything", 0, "*")}},
		&Policy{Name: "writers", Priority: 3, Clients: []string{"*"}, Rules: []*Rule{rule("write", 0, "write")}},
		&Policy{Name: "catch-all", Priority: 4, Clients: []string{"*"}, Rules: []*Rule{rule("any", 0, "*")}},
	)
	// The first covering policy's rule matches: it decides, although a
	// later one would match too.
	if p, r, ok := evaluate(t, s, cc("billing", "read")); !ok || p != "billing" || r != "read-only" {
		t.Fatalf("billing read: %s/%s %v, want billing/read-only", p, r, ok)
	}
	// No rule of billing matches: evaluation goes on, skipping the policy
	// that does not cover the client, to the first rule that matches.
	if p, r, ok := evaluate(t, s, cc("billing", "write")); !ok || p != "writers" || r != "write" {
		t.Fatalf("billing write: %s/%s %v, want writers/write", p, r, ok)
	}
	if p, r, ok := evaluate(t, s, cc("billing", "admin")); !ok || p != "catch-all" || r != "any" {
		t.Fatalf("billing admin: %s/%s %v, want catch-all/any", p, r, ok)
	}
	// A policy without rules does not end evaluation either.
	s = mustSet(t,
		&Policy{Name: "empty", Priority: 1, Clients: []string{"x"}},
		&Policy{Name: "catch-all", Priority: 2, Clients: []string{"*"}, Rules: []*Rule{rule("read", 0, "read")}},
	)
	if p, r, ok := evaluate(t, s, cc("x", "read")); !ok || p != "catch-all" || r != "read" {
		t.Fatalf("client of a rule-less policy: %s/%s %v, want catch-all/read", p, r, ok)
	}
	// Nothing matches in any covering policy: denied, and the decision
	// names the covering policies (the first as the policy), not others.
	m, ok, reason := s.Evaluate(cc("x", "write"))
	if ok || m.Rule != nil || m.Policy == nil || m.Policy.Name != "empty" {
		t.Fatalf("nothing matching: %+v %v, want denied with policy empty", m, ok)
	}
	if !strings.Contains(reason, `"empty"`) || !strings.Contains(reason, `"catch-all"`) {
		t.Errorf("reason %q should name both covering policies", reason)
	}
	s = mustSet(t,
		&Policy{Name: "mine", Priority: 1, Clients: []string{"x"}, Rules: []*Rule{rule("read", 0, "read")}},
		&Policy{Name: "theirs", Priority: 2, Clients: []string{"y"}, Rules: []*Rule{rule("any", 0, "*")}},
	)
	if _, _, reason := s.Evaluate(cc("x", "write")); !strings.Contains(reason, `"mine"`) || strings.Contains(reason, `"theirs"`) {
		t.Errorf("reason %q should name the covering policy only", reason)
	}
}

func TestEvaluateNoPolicyCoversClient(t *testing.T) {
	s := mustSet(t, &Policy{Name: "p", Clients: []string{"a"}, Rules: []*Rule{rule("r", 0, "*")}})
	m, ok, reason := s.Evaluate(cc("b", "read"))
	if ok || m.Policy != nil || m.Rule != nil {
		t.Fatalf("uncovered client matched %+v", m)
	}
	if reason == "" {
		t.Fatal("no reason")
	}
	// Client ids match exactly.
	for _, id := range []string{"A", "a ", "", "*"} {
		if _, _, ok := evaluate(t, s, cc(id, "read")); ok {
			t.Errorf("client %q matched a policy for \"a\"", id)
		}
	}
}

func TestEvaluateRulePriority(t *testing.T) {
	s := mustSet(t, &Policy{Name: "p", Clients: []string{"*"}, Rules: []*Rule{
		rule("broad", 5, "*"),
		rule("narrow", 1, "read"),
		rule("tie-second", 3, "read", "write"),
		rule("tie-third", 3, "read", "write"),
	}})
	if _, r, _ := evaluate(t, s, cc("c", "read")); r != "narrow" {
		t.Fatalf("read matched %q, want narrow (priority 1)", r)
	}
	if _, r, _ := evaluate(t, s, cc("c", "read", "write")); r != "tie-second" {
		t.Fatalf("read write matched %q, want tie-second (first of equal priority in configuration order)", r)
	}
	if _, r, _ := evaluate(t, s, cc("c", "admin")); r != "broad" {
		t.Fatalf("admin matched %q, want broad", r)
	}
}

func TestEvaluatePolicyTieIsStable(t *testing.T) {
	// Enough entries that an unstable sort would reorder them.
	var ps []*Policy
	var rules []*Rule
	var names []string
	for i := range 40 {
		n := fmt.Sprintf("p%02d", i)
		names = append(names, n)
		ps = append(ps, &Policy{Name: n, Priority: 7 - i%2, Clients: []string{"*"}, Rules: []*Rule{rule("r", 0, "*")}})
		rules = append(rules, rule(fmt.Sprintf("r%02d", i), 3-i%2, "*"))
	}
	s := mustSet(t, ps...)
	var want []string
	for _, odd := range []int{1, 0} {
		for i, n := range names {
			if i%2 == odd {
				want = append(want, n)
			}
		}
	}
	for i, p := range s.Policies() {
		if p.Name != want[i] {
			t.Fatalf("equal-priority policies reordered: position %d is %s, want %s", i, p.Name, want[i])
		}
	}
	if p, _, _ := evaluate(t, s, cc("c", "read")); p != "p01" {
		t.Fatalf("matched %s, want p01 (first of the lowest priority)", p)
	}

	s = mustSet(t, &Policy{Name: "p", Clients: []string{"*"}, Rules: rules})
	got := s.Policies()[0].Rules
	for i, r := range got {
		wantName := fmt.Sprintf("r%02d", 2*i+1)
		if i >= 20 {
			wantName = fmt.Sprintf("r%02d", 2*(i-20))
		}
		if r.Name != wantName {
			t.Fatalf("equal-priority rules reordered: position %d is %s, want %s", i, r.Name, wantName)
		}
	}
	if _, r, _ := evaluate(t, s, cc("c", "read")); r != "r01" {
		t.Fatalf("matched rule %s, want r01", r)
	}
}

func TestEvaluateScopeSubset(t *testing.T) {
	s := mustSet(t, &Policy{Name: "p", Clients: []string{"*"}, Rules: []*Rule{rule("r", 0, "read", "write")}})
	for _, req := range [][]string{{"read"}, {"write"}, {"read", "write"}, {"write", "read"}} {
		if _, _, ok := evaluate(t, s, cc("c", req...)); !ok {
			t.Errorf("request %v denied by a rule allowing read write", req)
		}
	}
	for _, req := range [][]string{{"admin"}, {"read", "admin"}, {"READ"}, {"rea"}} {
		if _, _, ok := evaluate(t, s, cc("c", req...)); ok {
			t.Errorf("request %v granted by a rule allowing only read write", req)
		}
	}
	s = mustSet(t, &Policy{Name: "p", Clients: []string{"*"}, Rules: []*Rule{rule("r", 0, "read")}})
	if _, _, ok := evaluate(t, s, cc("c", "read", "write")); ok {
		t.Fatal(`request "read write" granted by a rule allowing only "read"`)
	}
}

func TestEvaluateStarScopes(t *testing.T) {
	s := mustSet(t, &Policy{Name: "p", Clients: []string{"*"}, Rules: []*Rule{rule("r", 0, "*")}})
	if _, _, ok := evaluate(t, s, cc("c", "read", "write", "admin")); !ok {
		t.Fatal(`rule with scopes "*" denied a request`)
	}
}

func TestEvaluateGrantType(t *testing.T) {
	s := mustSet(t, &Policy{Name: "p", Clients: []string{"*"}, Rules: []*Rule{
		{Name: "code-only", GrantTypes: []string{"authorization_code"}, Scopes: []string{"*"}},
	}})
	if p, r, ok := evaluate(t, s, cc("c", "read")); ok {
		t.Fatalf("client_credentials matched %s/%s, a rule for authorization_code only", p, r)
	}
	if _, _, ok := evaluate(t, s, Request{ClientID: "c", GrantType: "authorization_code", Scopes: []string{"read"}}); !ok {
		t.Fatal("authorization_code denied")
	}
	// A later rule for the right grant type is found.
	s = mustSet(t, &Policy{Name: "p", Clients: []string{"*"}, Rules: []*Rule{
		{Name: "code", Priority: 1, GrantTypes: []string{"authorization_code"}, Scopes: []string{"*"}},
		{Name: "cc", Priority: 2, GrantTypes: []string{"client_credentials"}, Scopes: []string{"read"}},
	}})
	if _, r, ok := evaluate(t, s, cc("c", "read")); !ok || r != "cc" {
		t.Fatalf("matched %q %v, want cc", r, ok)
	}
}

// TestRuleDurationsJSON: rule durations arrive as strings, in days too
// (Okta's unit for refresh tokens); internal/duration tests the syntax.
func TestRuleDurationsJSON(t *testing.T) {
	var r Rule
	if err := json.Unmarshal([]byte(`{"name":"r","grant_types":["client_credentials"],"scopes":["read"],"access_token_lifetime":"15m"}`), &r); err != nil {
		t.Fatal(err)
	}
	if r.Lifetime() != 15*time.Minute {
		t.Fatalf("rule lifetime from JSON = %v", r.Lifetime())
	}
	if err := json.Unmarshal([]byte(`{"refresh_token_lifetime":"30d","refresh_token_idle":"1d"}`), &r); err != nil {
		t.Fatal(err)
	}
	if r.RefreshLifetime() != 30*24*time.Hour || r.RefreshIdle() != 24*time.Hour {
		t.Fatalf("rule from JSON: lifetime %v idle %v, want 720h 24h", r.RefreshLifetime(), r.RefreshIdle())
	}
}
