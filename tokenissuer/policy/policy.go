// Package policy evaluates an authorization server's access policies
// and rules (DESIGN.md "Scopes, claims, policies, rules").
package policy

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/configerr"
	"github.com/apiaccess/caddy-apiaccess/internal/duration"
)

// Any, alone in a list, matches every client or every scope.
const Any = "*"

// NoMatchingPolicy is the reason Okta's System Log gives when no policy
// and rule match a request (Okta's support article "Tokens not issued
// with lifetime configured in access rule for custom authorization
// server"); the client is told access_denied "Policy evaluation failed
// for this request, please check the policy configurations."
const NoMatchingPolicy = "no_matching_policy"

// Lifetime bounds of access tokens (Okta: 5 minutes to 1 day).
const (
	MinAccessTokenLifetime     = 5 * time.Minute
	MaxAccessTokenLifetime     = 24 * time.Hour
	DefaultAccessTokenLifetime = time.Hour
)

// Policy selects which clients its rules apply to.
type Policy struct {
	// Name identifies the policy in logs and token previews. Required.
	Name string `json:"name"`
	// Description is free text for people.
	Description string `json:"description,omitempty"`
	// Priority orders evaluation: lower numbers first. Policies with
	// equal priority keep their order in the configuration.
	Priority int `json:"priority,omitempty"`
	// Clients are the client IDs this policy covers; `["*"]` covers all
	// clients. A policy that does not cover the client is skipped; a
	// client may be covered by several. Required: an empty list is a
	// configuration error.
	Clients []string `json:"clients"`
	// Rules are evaluated in priority order; the first whose conditions
	// all match decides. When none matches (or there are none), the
	// next policy covering the client is evaluated, as in Okta.
	Rules []*Rule `json:"rules,omitempty"`
}

// Rule grants scopes under conditions, with token lifetimes.
type Rule struct {
	// Name identifies the rule in logs and token previews. Required.
	Name string `json:"name"`
	// Priority orders evaluation within the policy: lower first.
	Priority int `json:"priority,omitempty"`
	// GrantTypes this rule applies to, e.g. `client_credentials`.
	// Required.
	GrantTypes []string `json:"grant_types"`
	// Scopes the rule allows; `["*"]` allows any scope of the
	// authorization server. The rule matches only when every requested
	// scope is allowed. Required.
	Scopes []string `json:"scopes"`
	// AccessTokenLifetime of tokens issued under this rule, between 5m
	// and 24h. Default: 1h.
	AccessTokenLifetime duration.Duration `json:"access_token_lifetime,omitempty"`
	// People limits the rule to some users in flows with a user. Default:
	// everyone. A rule that names users or groups never matches a
	// request without a user (client_credentials).
	People *People `json:"people,omitempty"`
	// RefreshTokenLifetime bounds a refresh token family from its first
	// issue. Default: 90d.
	RefreshTokenLifetime duration.Duration `json:"refresh_token_lifetime,omitempty"`
	// RefreshTokenIdle is how long a refresh token stays usable unused.
	// Default: 7d. Must not exceed the lifetime.
	RefreshTokenIdle duration.Duration `json:"refresh_token_idle,omitempty"`
	// InlineHook names the token inline hook (one of the issuer's
	// `inline_hooks`) that runs before tokens are minted under this
	// rule, as Okta's rule action "Use this inline hook"; one hook per
	// rule. A name no hook has is a configuration error. Default: none.
	InlineHook string `json:"inline_hook,omitempty"`
}

// People selects users by id or login, and by group.
type People struct {
	// Users included, by id or login.
	Users []string `json:"users,omitempty"`
	// Groups whose members are included.
	Groups []string `json:"groups,omitempty"`
	// ExcludeUsers and ExcludeGroups win over the inclusions.
	ExcludeUsers  []string `json:"exclude_users,omitempty"`
	ExcludeGroups []string `json:"exclude_groups,omitempty"`
}

// everyone reports whether p includes every user (only exclusions set).
func (p *People) everyone() bool { return p == nil || (len(p.Users) == 0 && len(p.Groups) == 0) }

// includes reports whether the user u matches.
func (p *People) includes(u *User) bool {
	ok, _ := p.judge(u, false)
	return ok
}

// User is what rules know of a user.
type User struct {
	ID, Login string
	Groups    []string
}

// Refresh-token defaults and bounds.
const (
	DefaultRefreshLifetime = 90 * 24 * time.Hour
	DefaultRefreshIdle     = 7 * 24 * time.Hour
	MinRefreshIdle         = 10 * time.Minute
)

// RefreshLifetime and RefreshIdle return the rule's values with defaults.
func (r *Rule) RefreshLifetime() time.Duration {
	if r.RefreshTokenLifetime == 0 {
		return DefaultRefreshLifetime
	}
	return time.Duration(r.RefreshTokenLifetime)
}

// RefreshIdle returns the idle window with its default.
func (r *Rule) RefreshIdle() time.Duration {
	if r.RefreshTokenIdle == 0 {
		return min(DefaultRefreshIdle, r.RefreshLifetime())
	}
	return time.Duration(r.RefreshTokenIdle)
}

// Lifetime returns the rule's access-token lifetime with its default.
func (r *Rule) Lifetime() time.Duration {
	if r.AccessTokenLifetime == 0 {
		return DefaultAccessTokenLifetime
	}
	return time.Duration(r.AccessTokenLifetime)
}

// Request is what a rule is matched against.
type Request struct {
	ClientID  string
	GrantType string
	Scopes    []string
	// User is nil in flows without one (client_credentials).
	User *User
}

// Match is the decision: which policy and rule apply.
type Match struct {
	Policy *Policy
	Rule   *Rule
}

// Set is an authorization server's policies, sorted for evaluation.
type Set struct {
	policies []*Policy
}

// NewSet validates policies against the server's scopes and grant types
// and sorts them and their rules by priority (stable).
func NewSet(policies []*Policy, scopes map[string]bool, grantTypes []string) (*Set, error) {
	seen := map[string]bool{}
	for _, p := range policies {
		if p.Name == "" {
			return nil, configerr.In("policy", "", errors.New("name is required"))
		}
		if seen[p.Name] {
			return nil, configerr.In("policy", p.Name, errors.New("defined twice"))
		}
		seen[p.Name] = true
		if err := checkList("clients", p.Clients); err != nil {
			return nil, configerr.In("policy", p.Name, configerr.Field("clients", err))
		}
		rules := map[string]bool{}
		for _, r := range p.Rules {
			if err := r.validate(scopes, grantTypes); err != nil {
				return nil, configerr.In("policy", p.Name, configerr.In("rule", r.Name, err))
			}
			if rules[r.Name] {
				return nil, configerr.In("policy", p.Name, configerr.In("rule", r.Name, errors.New("defined twice")))
			}
			rules[r.Name] = true
		}
		slices.SortStableFunc(p.Rules, func(a, b *Rule) int { return cmp.Compare(a.Priority, b.Priority) })
	}
	sorted := slices.Clone(policies)
	slices.SortStableFunc(sorted, func(a, b *Policy) int { return cmp.Compare(a.Priority, b.Priority) })
	return &Set{policies: sorted}, nil
}

func (r *Rule) validate(scopes map[string]bool, grantTypes []string) error {
	if r.Name == "" {
		return errors.New("name is required")
	}
	if len(r.GrantTypes) == 0 {
		return configerr.Fieldf("grant_types", "grant_types is required")
	}
	for _, g := range r.GrantTypes {
		if !slices.Contains(grantTypes, g) {
			return configerr.Fieldf("grant_types", "grant type %q is not supported (supported: %v); the rule could never match", g, grantTypes)
		}
	}
	if err := checkList("scopes", r.Scopes); err != nil {
		return configerr.Field("scopes", err)
	}
	for _, s := range r.Scopes {
		if s != Any && !scopes[s] {
			return configerr.Fieldf("scopes", "unknown scope %q", s)
		}
	}
	if lt := r.Lifetime(); lt < MinAccessTokenLifetime || lt > MaxAccessTokenLifetime {
		return configerr.Fieldf("access_token_lifetime", "access_token_lifetime %s is outside %s..%s", lt, MinAccessTokenLifetime, MaxAccessTokenLifetime)
	}
	if r.RefreshTokenLifetime < 0 {
		return configerr.Fieldf("refresh_token_lifetime", "refresh token durations must be positive")
	}
	if r.RefreshTokenIdle < 0 {
		return configerr.Fieldf("refresh_token_idle", "refresh token durations must be positive")
	}
	if idle := r.RefreshIdle(); idle < MinRefreshIdle || idle > r.RefreshLifetime() {
		return configerr.Fieldf("refresh_token_idle", "refresh_token_idle %s must be between %s and the refresh_token_lifetime %s", idle, MinRefreshIdle, r.RefreshLifetime())
	}
	return nil
}

// checkList requires a non-empty list in which "*" appears only alone.
func checkList(field string, l []string) error {
	if len(l) == 0 {
		return fmt.Errorf("%s is required (use \"*\" for all)", field)
	}
	if slices.Contains(l, Any) && len(l) > 1 {
		return fmt.Errorf("%s: \"*\" must stand alone", field)
	}
	for _, v := range l {
		if v == "" {
			return fmt.Errorf("%s: empty value", field)
		}
	}
	return nil
}

// Policies returns the policies in evaluation order.
func (s *Set) Policies() []*Policy { return s.policies }

// Evaluate walks the policies by priority and, in each one covering
// the client, its rules by priority; the first rule whose conditions all
// match decides. As in Okta, a covering policy none of whose rules match
// does not end evaluation ("evaluation will continue to the next Access
// Policy/Rule ... until a matching policy is found"). ok is false when
// nothing matched; m.Policy is then the first covering policy (nil when
// none covers the client) and reason says why, for the log.
func (s *Set) Evaluate(req Request) (m Match, ok bool, reason string) {
	var covering []string
	for _, p := range s.policies {
		if !covers(p.Clients, req.ClientID) {
			continue
		}
		if r := p.match(req); r != nil {
			return Match{Policy: p, Rule: r}, true, ""
		}
		if m.Policy == nil {
			m.Policy = p
		}
		covering = append(covering, strconv.Quote(p.Name))
	}
	return m, false, noMatchReason(covering)
}

// noMatchReason is Evaluate's reason when nothing matched, given the
// quoted names of the policies covering the client.
func noMatchReason(covering []string) string {
	if len(covering) == 0 {
		return "no policy covers the client"
	}
	return "no rule matched in the policies covering the client: " + strings.Join(covering, ", ")
}

// match returns the first rule of p whose conditions all hold for req
// (Rule.check, which Explain reports).
func (p *Policy) match(req Request) *Rule {
	for _, r := range p.Rules {
		if r.check(req, false).ok() {
			return r
		}
	}
	return nil
}

func covers(list []string, v string) bool {
	return (len(list) == 1 && list[0] == Any) || slices.Contains(list, v)
}
