package policy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func explainSet(t *testing.T) *Set {
	t.Helper()
	cc, pw, code := "client_credentials", "password", "authorization_code"
	set, err := NewSet([]*Policy{
		{Name: "Partners", Priority: 1, Clients: []string{"partner", "web"}, Rules: []*Rule{
			{Name: "Writers", Priority: 2, GrantTypes: []string{cc}, Scopes: []string{"read", "write"}},
			{Name: "Readers", Priority: 1, GrantTypes: []string{cc, pw}, Scopes: []string{"read"}},
		}},
		{Name: "Staff", Priority: 2, Clients: []string{"*"}, Rules: []*Rule{
			{Name: "Finance", Priority: 1, GrantTypes: []string{pw, code}, Scopes: []string{"*"},
				People: &People{Groups: []string{"finance"}, ExcludeUsers: []string{"mallory@example.com"}}},
			{Name: "Bob", Priority: 2, GrantTypes: []string{code}, Scopes: []string{"read", "openid"}, People: &People{Users: []string{"u-bob"}}},
			{Name: "No contractors", Priority: 3, GrantTypes: []string{code, cc}, Scopes: []string{"read", "openid"},
				People: &People{ExcludeGroups: []string{"contractors"}}},
		}},
		{Name: "Web only", Priority: 3, Clients: []string{"web"}, Rules: []*Rule{
			{Name: "Anything", GrantTypes: []string{code}, Scopes: []string{"*"}},
		}},
	}, map[string]bool{"read": true, "write": true, "openid": true, "admin": true}, []string{cc, pw, code})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

var (
	xAlice   = &User{ID: "u-alice", Login: "alice@example.com", Groups: []string{"staff", "finance"}}
	xBob     = &User{ID: "u-bob", Login: "bob@example.com"}
	xMallory = &User{ID: "u-mal", Login: "Mallory@Example.com", Groups: []string{"finance"}}
	xCarol   = &User{ID: "u-xCarol", Login: "xCarol@example.com", Groups: []string{"contractors"}}
)

// TestExplainRuleByRule: the verdict of each rule with its reasons, the
// policies in evaluation order, and what is after the decision marked
// as not evaluated.
func TestExplainRuleByRule(t *testing.T) {
	set := explainSet(t)

	// partner, client_credentials, read write: Partners' Readers (first
	// by priority) refuses write, Writers matches; Staff is not evaluated.
	x := set.Explain(Request{ClientID: "partner", GrantType: "client_credentials", Scopes: []string{"read", "write"}})
	if !x.Matched || x.Policy != "Partners" || x.Rule != "Writers" || x.Reason != "" {
		t.Fatalf("explanation %+v, want Partners/Writers", x)
	}
	if got := names(x); got != "Partners[Readers Writers] Staff[Finance Bob No contractors] Web only[]" {
		t.Errorf("order %q", got)
	}
	readers := x.Policies[0].Rules[0]
	if readers.Matched || !readers.Evaluated || !readers.GrantTypeListed || readers.ScopesAllowed || !slices.Equal(readers.ScopesNotAllowed, []string{"write"}) || !readers.PeopleIncluded {
		t.Errorf("Readers %+v, want grant listed, write not allowed", readers)
	}
	if w := x.Policies[0].Rules[1]; !w.Matched || !w.Evaluated || !w.ScopesAllowed || len(w.ScopesNotAllowed) != 0 {
		t.Errorf("Writers %+v, want matched", w)
	}
	staff := x.Policies[1]
	if !staff.CoversClient || staff.Evaluated || staff.Rules[0].Evaluated {
		t.Errorf("Staff %+v: covers the client, after the decision", staff)
	}
	if web := x.Policies[2]; web.CoversClient || web.Evaluated || len(web.Rules) != 0 {
		t.Errorf("Web only %+v: does not cover partner", web)
	}
	if !strings.Contains(staff.Rules[0].PeopleReason, "request has no user") || staff.Rules[0].PeopleIncluded {
		t.Errorf("Finance without a user: %+v", staff.Rules[0])
	}

	// web, authorization_code, Mallory: Partners has no code rule,
	// Finance excludes her by login, Bob does not include her, No
	// contractors does; Web only comes after.
	x = set.Explain(Request{ClientID: "web", GrantType: "authorization_code", Scopes: []string{"read"}, User: xMallory})
	if !x.Matched || x.Policy != "Staff" || x.Rule != "No contractors" {
		t.Fatalf("explanation %+v, want Staff/No contractors", x)
	}
	for _, r := range x.Policies[0].Rules {
		if r.GrantTypeListed || r.Matched {
			t.Errorf("Partners rule %+v lists authorization_code", r)
		}
	}
	fin, b, nc := x.Policies[1].Rules[0], x.Policies[1].Rules[1], x.Policies[1].Rules[2]
	if fin.PeopleIncluded || fin.PeopleReason != `excluded: the user is in exclude_users ("mallory@example.com")` {
		t.Errorf("Finance for Mallory: %+v", fin)
	}
	if b.PeopleIncluded || b.PeopleReason != "not included: the user is neither in users nor in any of groups" {
		t.Errorf("Bob for Mallory: %+v", b)
	}
	if !nc.Matched || !strings.HasPrefix(nc.PeopleReason, "everyone") {
		t.Errorf("No contractors for Mallory: %+v", nc)
	}
	if x.Policies[2].Evaluated || !x.Policies[2].CoversClient || x.Policies[2].Rules[0].Evaluated || !x.Policies[2].Rules[0].Matched {
		t.Errorf("Web only after the decision: %+v", x.Policies[2])
	}

	// Carol, a contractor, asking for admin through a client only Staff
	// covers: nothing matches, each rule says why.
	x = set.Explain(Request{ClientID: "other", GrantType: "authorization_code", Scopes: []string{"admin"}, User: xCarol})
	if x.Matched || x.Policy != "Staff" || x.Rule != "" || x.Reason != `no rule matched in the policies covering the client: "Staff"` {
		t.Fatalf("explanation %+v, want no match in Staff", x)
	}
	if x.Policies[0].CoversClient || !x.Policies[1].Evaluated || !x.Policies[2].Evaluated {
		t.Errorf("policies %+v: all evaluated without a match, Partners does not cover other", x.Policies)
	}
	nc = x.Policies[1].Rules[2]
	if nc.Matched || nc.ScopesAllowed || !slices.Equal(nc.ScopesNotAllowed, []string{"admin"}) || nc.PeopleIncluded ||
		nc.PeopleReason != `excluded: the user is in group "contractors" of exclude_groups` {
		t.Errorf("No contractors for Carol: %+v", nc)
	}
	if fin := x.Policies[1].Rules[0]; !fin.ScopesAllowed || fin.PeopleIncluded || !strings.HasPrefix(fin.PeopleReason, "not included") {
		t.Errorf("Finance for Carol: %+v", fin)
	}
	if b := x.Policies[1].Rules[1]; b.Matched || b.PeopleReason != "not included: the user is neither in users nor in any of groups" {
		t.Errorf("Bob for Carol: %+v", b)
	}
	if b := set.Explain(Request{ClientID: "other", GrantType: "authorization_code", Scopes: []string{"read"}, User: xBob}); b.Rule != "Bob" ||
		b.Policies[1].Rules[1].PeopleReason != `included: the user is in users ("u-bob")` {
		t.Errorf("Bob: %+v", b)
	}
	if a := set.Explain(Request{ClientID: "other", GrantType: "password", Scopes: []string{"admin"}, User: xAlice}); a.Rule != "Finance" ||
		a.Policies[1].Rules[0].PeopleReason != `included: the user is in group "finance" of groups` {
		t.Errorf("Alice: %+v", a)
	}

	// No policy covers the client.
	only, err := NewSet([]*Policy{{Name: "P", Clients: []string{"partner"}, Rules: []*Rule{{Name: "r", GrantTypes: []string{"password"}, Scopes: []string{"*"}}}}},
		nil, []string{"password"})
	if err != nil {
		t.Fatal(err)
	}
	x = only.Explain(Request{ClientID: "web", GrantType: "password", User: xAlice})
	if x.Matched || x.Policy != "" || x.Reason != "no policy covers the client" || len(x.Policies) != 1 || x.Policies[0].CoversClient || len(x.Policies[0].Rules) != 0 {
		t.Errorf("no covering policy: %+v", x)
	}
}

// names lists the policies and their listed rules.
func names(x Explanation) string {
	var parts []string
	for _, p := range x.Policies {
		var rs []string
		for _, r := range p.Rules {
			rs = append(rs, r.Rule)
		}
		parts = append(parts, p.Policy+"["+strings.Join(rs, " ")+"]")
	}
	return strings.Join(parts, " ")
}

// TestExplainAgreesWithEvaluate: for every combination of client, grant
// type, scopes and user, Explain's verdict (matched, policy, rule,
// reason) is Evaluate's, and the rule it reports as deciding is the
// only evaluated rule marked matched before it in order.
func TestExplainAgreesWithEvaluate(t *testing.T) {
	set := explainSet(t)
	clients := []string{"partner", "web", "other"}
	grants := []string{"client_credentials", "password", "authorization_code", "refresh_token"}
	scopeSets := [][]string{nil, {"read"}, {"write"}, {"read", "write"}, {"openid", "read"}, {"admin"}, {"openid"}}
	users := []*User{nil, xAlice, xBob, xMallory, xCarol, {ID: "u-x", Login: "x@example.com"}}
	n, matched := 0, 0
	for _, c := range clients {
		for _, g := range grants {
			for _, sc := range scopeSets {
				for _, u := range users {
					req := Request{ClientID: c, GrantType: g, Scopes: sc, User: u}
					m, ok, reason := set.Evaluate(req)
					x := set.Explain(req)
					label := fmt.Sprintf("%s %s %v %v", c, g, sc, u)
					if x.Matched != ok || x.Match != m || x.Reason != reason {
						t.Fatalf("%s: Explain %v %+v %q, Evaluate %v %+v %q", label, x.Matched, x.Match, x.Reason, ok, m, reason)
					}
					if ok {
						matched++
						if x.Policy != m.Policy.Name || x.Rule != m.Rule.Name {
							t.Fatalf("%s: names %s/%s", label, x.Policy, x.Rule)
						}
					}
					// The first evaluated matched rule is the decision.
					first := ""
					for _, p := range x.Policies {
						for _, r := range p.Rules {
							if first == "" && r.Evaluated && r.Matched {
								first = p.Policy + "/" + r.Rule
							}
							if r.Matched != (r.GrantTypeListed && r.ScopesAllowed && r.PeopleIncluded) {
								t.Fatalf("%s: %s/%s matched %v with conditions %+v", label, p.Policy, r.Rule, r.Matched, r)
							}
						}
					}
					if ok != (first != "") || (ok && first != m.Policy.Name+"/"+m.Rule.Name) {
						t.Fatalf("%s: first matched evaluated rule %q, Evaluate %+v", label, first, m)
					}
					n++
				}
			}
		}
	}
	if matched == 0 || matched == n {
		t.Fatalf("%d of %d cases matched: the cases do not exercise both outcomes", matched, n)
	}
}
