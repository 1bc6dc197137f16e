package policy

import (
	"slices"
	"strconv"
	"strings"
)

// Explanation is a rule-by-rule account of an evaluation, for a token
// preview (Okta's Admin Console "Token Preview" tab of an authorization
// server, "Test your authorization server configuration"): every policy
// in evaluation order, whether it covers the client, and for each of its
// rules which condition held and which did not.
type Explanation struct {
	// Matched: a rule decided; Policy and Rule name it.
	Matched bool `json:"matched"`
	// Policy is the deciding policy; without a match, the first policy
	// covering the client (as Evaluate's Match.Policy), or empty.
	Policy string `json:"policy,omitempty"`
	// Rule is the deciding rule; empty without a match.
	Rule string `json:"rule,omitempty"`
	// Reason is Evaluate's reason when nothing matched.
	Reason string `json:"reason,omitempty"`
	// Policies in evaluation order.
	Policies []PolicyVerdict `json:"policies"`
	// Match is what Evaluate returns for the same request.
	Match Match `json:"-"`
}

// PolicyVerdict is one policy of an Explanation.
type PolicyVerdict struct {
	Policy   string `json:"policy"`
	Priority int    `json:"priority"`
	// CoversClient: the client is in the policy's clients (or `*`). A
	// policy that does not is skipped; its rules are not listed.
	CoversClient bool `json:"covers_client"`
	// Evaluated is false for the policies after the deciding one: Okta
	// stops at the first match, they are listed for completeness.
	Evaluated bool `json:"evaluated"`
	// Rules of a covering policy, in evaluation order.
	Rules []RuleVerdict `json:"rules,omitempty"`
}

// RuleVerdict is one rule of a covering policy.
type RuleVerdict struct {
	Rule     string `json:"rule"`
	Priority int    `json:"priority"`
	// Matched: every condition holds. Only the first matching rule of
	// the first policy with one decides (Explanation.Rule).
	Matched bool `json:"matched"`
	// Evaluated is false for rules after the deciding one.
	Evaluated bool `json:"evaluated"`
	// GrantTypeListed: the request's grant type is in the rule's.
	GrantTypeListed bool `json:"grant_type_listed"`
	// ScopesAllowed: every requested scope is allowed by the rule;
	// ScopesNotAllowed lists those that are not.
	ScopesAllowed    bool     `json:"scopes_allowed"`
	ScopesNotAllowed []string `json:"scopes_not_allowed,omitempty"`
	// PeopleIncluded: the user (or the absence of one) passes the rule's
	// people condition; PeopleReason says why or why not.
	PeopleIncluded bool   `json:"people_included"`
	PeopleReason   string `json:"people_reason"`
}

// Explain evaluates req as Evaluate does, with the same per-rule checks
// (Rule.check), and reports every policy and rule. Its Match, Matched
// and Reason are always Evaluate's results for req.
func (s *Set) Explain(req Request) Explanation {
	var (
		x        Explanation
		covering []string
	)
	x.Policies = make([]PolicyVerdict, 0, len(s.policies))
	for _, p := range s.policies {
		evaluated := !x.Matched
		pv := PolicyVerdict{Policy: p.Name, Priority: p.Priority, CoversClient: covers(p.Clients, req.ClientID), Evaluated: evaluated}
		if pv.CoversClient {
			for _, r := range p.Rules {
				c := r.check(req, true)
				rv := RuleVerdict{Rule: r.Name, Priority: r.Priority, Evaluated: !x.Matched, Matched: c.ok(),
					GrantTypeListed: c.grant, ScopesAllowed: len(c.notAllowed) == 0, ScopesNotAllowed: c.notAllowed,
					PeopleIncluded: c.people, PeopleReason: c.peopleWhy}
				if rv.Matched && !x.Matched {
					x.Matched, x.Match = true, Match{Policy: p, Rule: r}
				}
				pv.Rules = append(pv.Rules, rv)
			}
			// A covering policy none of whose rules matched: evaluation
			// goes on (Evaluate keeps the first one).
			if evaluated && !x.Matched {
				if x.Match.Policy == nil {
					x.Match.Policy = p
				}
				covering = append(covering, strconv.Quote(p.Name))
			}
		}
		x.Policies = append(x.Policies, pv)
	}
	if x.Match.Policy != nil {
		x.Policy = x.Match.Policy.Name
	}
	if x.Matched {
		x.Rule = x.Match.Rule.Name
	} else {
		x.Reason = noMatchReason(covering)
	}
	return x
}

// ruleCheck is the outcome of a rule's conditions for one request.
type ruleCheck struct {
	grant      bool
	notAllowed []string // requested scopes the rule does not allow
	people     bool
	peopleWhy  string // only when asked for
}

func (c ruleCheck) ok() bool { return c.grant && len(c.notAllowed) == 0 && c.people }

// check judges the rule's conditions for req: grant type listed, every
// requested scope allowed, people included. It is the one test of a
// rule, for Evaluate (through match) and Explain; why asks for the
// people reason in words.
func (r *Rule) check(req Request, why bool) ruleCheck {
	c := ruleCheck{grant: slices.Contains(r.GrantTypes, req.GrantType), notAllowed: notAllowed(r.Scopes, req.Scopes)}
	c.people, c.peopleWhy = r.People.judge(req.User, why)
	return c
}

// notAllowed lists the requested scopes that ruleScopes does not allow
// (nil when all are, always for `*`).
func notAllowed(ruleScopes, requested []string) []string {
	if len(ruleScopes) == 1 && ruleScopes[0] == Any {
		return nil
	}
	var out []string
	for _, s := range requested {
		if !slices.Contains(ruleScopes, s) {
			out = append(out, s)
		}
	}
	return out
}

// judge reports whether the user u (nil: a flow without a user) passes
// the people condition: a rule naming users or groups never matches
// without a user; exclusions win over inclusions. why asks for the
// reason in words (else it is empty).
func (p *People) judge(u *User, why bool) (bool, string) {
	say := func(ok bool, parts ...string) (bool, string) {
		if !why {
			return ok, ""
		}
		return ok, strings.Join(parts, "")
	}
	if u == nil {
		if p.everyone() {
			return say(true, "everyone: the rule names no users or groups (the request has no user)")
		}
		return say(false, "the rule is limited to some users or groups, and the request has no user")
	}
	if p == nil {
		return say(true, "everyone: the rule has no people condition")
	}
	for _, x := range p.ExcludeUsers {
		if x == u.ID || strings.EqualFold(x, u.Login) {
			return say(false, "excluded: the user is in exclude_users (", strconv.Quote(x), ")")
		}
	}
	for _, g := range p.ExcludeGroups {
		if slices.Contains(u.Groups, g) {
			return say(false, "excluded: the user is in group ", strconv.Quote(g), " of exclude_groups")
		}
	}
	if p.everyone() {
		return say(true, "everyone: the rule names no users or groups, and the user is not excluded")
	}
	for _, x := range p.Users {
		if x == u.ID || strings.EqualFold(x, u.Login) {
			return say(true, "included: the user is in users (", strconv.Quote(x), ")")
		}
	}
	for _, g := range p.Groups {
		if slices.Contains(u.Groups, g) {
			return say(true, "included: the user is in group ", strconv.Quote(g), " of groups")
		}
	}
	return say(false, "not included: the user is neither in users nor in any of groups")
}
