package policy

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/configerr"
	"github.com/apiaccess/caddy-apiaccess/internal/duration"
)

// Sign-on policies decide how a user must prove who they are before a
// client (application) gets a sign-in: Okta's global session policy
// (OKTA_SIGN_ON) and app sign-in (authentication) policies
// (ACCESS_POLICY) in one model. Okta: "Policies" (Policy API,
// developer.okta.com/docs/api/openapi/okta-management/management/tags/policy),
// "Add an authentication policy rule"
// (help.okta.com/oie/en-us/Content/Topics/identity-engine/policies/add-app-sign-on-policy-rule.htm).

// Factor requirements of a sign-on rule: Okta's "User must authenticate
// with" (password, or password + another factor) and the possession
// constraint "Phishing resistant", met by FIDO2 (WebAuthn) only here
// (Okta: "Phishing-resistant authentication").
const (
	FactorNone              = "none"
	FactorAny               = "any"
	FactorPhishingResistant = "phishing_resistant"
)

// Access of a sign-on rule: Okta's "Access is: Allowed after successful
// authentication | Denied".
const (
	AccessAllow = "allow"
	AccessDeny  = "deny"
)

// Enrollment of a sign-on rule, for a user who has no factor the rule
// accepts: enroll one during sign-in (Okta: "If a user hasn't enrolled
// in an authenticator that is required by an app's authentication
// policy, they are prompted to enroll in it", "Authenticator enrollment
// policies") or be refused (an enrollment policy rule whose enrollment
// is denied).
const (
	EnrollAtSignIn = "at_sign_in"
	EnrollDeny     = "deny"
)

// Authenticators a sign-on rule's factor can be met with.
const (
	AuthenticatorTOTP     = "totp"
	AuthenticatorWebAuthn = "webauthn"
)

// DefaultAuthenticators are offered when none are configured.
var DefaultAuthenticators = []string{AuthenticatorTOTP, AuthenticatorWebAuthn}

// SignOnPolicy selects the clients its rules apply to.
type SignOnPolicy struct {
	// Name identifies the policy in logs. Required, unique.
	Name string `json:"name"`
	// Description is free text for people.
	Description string `json:"description,omitempty"`
	// Priority orders evaluation: lower numbers first. Policies of
	// equal priority keep their order in the configuration.
	Priority int `json:"priority,omitempty"`
	// Clients are the client IDs this policy covers; `["*"]` covers
	// every client. Required.
	Clients []string `json:"clients"`
	// Rules are evaluated in priority order; the first whose people
	// match decides. When none matches, the next policy covering the
	// client is evaluated. At least one is required.
	Rules []*SignOnRule `json:"rules"`
}

// SignOnRule says what a sign-in of the people it matches needs.
type SignOnRule struct {
	// Name identifies the rule in logs. Required, unique in its policy.
	Name string `json:"name"`
	// Priority orders evaluation within the policy: lower first.
	Priority int `json:"priority,omitempty"`
	// People limits the rule to some users (by id or login) and groups,
	// as in access rules; exclusions win. Default: everyone.
	People *People `json:"people,omitempty"`
	// Access is `allow` (default: after the sign-in this rule asks for)
	// or `deny`. A deny rule takes no factor, re-authentication or
	// enrollment setting.
	Access string `json:"access,omitempty"`
	// Factor is what the user proves beside the password: `none`
	// (default, the password only), `any` (also one of the configured
	// authenticators) or `phishing_resistant` (also WebAuthn, which must
	// be among the authenticators).
	Factor string `json:"factor,omitempty"`
	// Reauthenticate is the oldest an existing sign-in (SSO session)
	// may be to be accepted: older, the user signs in again (Okta's
	// "Re-authentication frequency: Re-authenticate after"). Default:
	// no bound.
	Reauthenticate duration.Duration `json:"reauthenticate_after,omitempty"`
	// ReauthenticateEverySignIn makes the user sign in again on every
	// sign-in request, whatever the session (Okta's "Re-authentication
	// frequency: Every sign-in attempt"). Not with reauthenticate_after.
	ReauthenticateEverySignIn bool `json:"reauthenticate_every_sign_in,omitempty"`
	// Enrollment is what happens to a user with no factor the rule
	// accepts: `at_sign_in` (default: they enroll one while signing in)
	// or `deny` (the sign-in is refused). Only for a rule with a factor.
	Enrollment string `json:"enrollment,omitempty"`
}

// SignOnRequest is what sign-on rules are matched against.
type SignOnRequest struct {
	ClientID string
	User     *User
}

// SignOnDecision is what the matching rule demands.
type SignOnDecision struct {
	// Policy and Rule name the match ("" when none matched).
	Policy, Rule string
	// Deny refuses the sign-in.
	Deny bool
	// Factor is FactorNone, FactorAny or FactorPhishingResistant.
	Factor string
	// MaxSessionAge bounds the age of the sign-in accepted; 0: none.
	MaxSessionAge time.Duration
	// EverySignIn asks for a fresh sign-in on every request.
	EverySignIn bool
	// EnrollAtSignIn lets a user without a suitable factor enroll one
	// during the sign-in; false with a factor: refuse them.
	EnrollAtSignIn bool
}

// SignOnKnown is what sign-on policies are checked against; a nil
// field is not checked.
type SignOnKnown struct {
	// Clients are the registered client ids.
	Clients map[string]bool
	// Groups are the directory's groups, when it can list them.
	Groups map[string]bool
	// Authenticators configured (CheckAuthenticators); nil: the default.
	Authenticators []string
}

// CheckAuthenticators refuses unknown or repeated authenticators.
func CheckAuthenticators(list []string) error {
	seen := map[string]bool{}
	for _, a := range list {
		if !slices.Contains(DefaultAuthenticators, a) {
			return configerr.Fieldf("authenticators", "unknown authenticator %q (known: %s, %s)", a, AuthenticatorTOTP, AuthenticatorWebAuthn)
		}
		if seen[a] {
			return configerr.Fieldf("authenticators", "authenticator %q given twice", a)
		}
		seen[a] = true
	}
	return nil
}

// Authenticators returns list, or the default when it is empty.
func Authenticators(list []string) []string {
	if len(list) == 0 {
		return slices.Clone(DefaultAuthenticators)
	}
	return slices.Clone(list)
}

// CompileSignOn checks sign-on policies: names present and unique,
// clients given and known, at least one rule per policy, values known,
// no factor settings on a deny rule, groups known, and WebAuthn
// configured for a phishing-resistant rule. It changes nothing.
func CompileSignOn(ps []*SignOnPolicy, known SignOnKnown) error {
	auth := Authenticators(known.Authenticators)
	seen := map[string]bool{}
	for _, p := range ps {
		if p == nil {
			return configerr.In("sign_on_policy", "", errors.New("empty policy"))
		}
		if err := p.check(known, auth); err != nil {
			return configerr.In("sign_on_policy", p.Name, err)
		}
		if seen[p.Name] {
			return configerr.In("sign_on_policy", p.Name, errors.New("defined twice"))
		}
		seen[p.Name] = true
	}
	return nil
}

func (p *SignOnPolicy) check(known SignOnKnown, auth []string) error {
	if p.Name == "" {
		return errors.New("name is required")
	}
	if err := checkList("clients", p.Clients); err != nil {
		return configerr.Field("clients", err)
	}
	for _, c := range p.Clients {
		if c != Any && known.Clients != nil && !known.Clients[c] {
			return configerr.Fieldf("clients", "unknown client %q", c)
		}
	}
	if len(p.Rules) == 0 {
		return errors.New("a sign-on policy needs at least one rule")
	}
	rules := map[string]bool{}
	for _, r := range p.Rules {
		if r == nil {
			return configerr.In("rule", "", errors.New("empty rule"))
		}
		if err := r.check(known, auth); err != nil {
			return configerr.In("rule", r.Name, err)
		}
		if rules[r.Name] {
			return configerr.In("rule", r.Name, errors.New("defined twice"))
		}
		rules[r.Name] = true
	}
	return nil
}

func (r *SignOnRule) check(known SignOnKnown, auth []string) error {
	if r.Name == "" {
		return errors.New("name is required")
	}
	if err := r.People.check(known.Groups); err != nil {
		return err
	}
	switch r.Access {
	case "", AccessAllow, AccessDeny:
	default:
		return configerr.Fieldf("access", "access %q: must be allow or deny", r.Access)
	}
	switch r.Factor {
	case "", FactorNone, FactorAny:
	case FactorPhishingResistant:
		if !slices.Contains(auth, AuthenticatorWebAuthn) {
			return configerr.Fieldf("factor", "factor phishing_resistant needs the webauthn authenticator, which is not among the authenticators %v", auth)
		}
	default:
		return configerr.Fieldf("factor", "factor %q: must be none, any or phishing_resistant", r.Factor)
	}
	switch r.Enrollment {
	case "", EnrollAtSignIn, EnrollDeny:
	default:
		return configerr.Fieldf("enrollment", "enrollment %q: must be at_sign_in or deny", r.Enrollment)
	}
	if r.Reauthenticate < 0 {
		return configerr.Fieldf("reauthenticate_after", "reauthenticate_after must not be negative")
	}
	if r.Reauthenticate > 0 && r.ReauthenticateEverySignIn {
		return configerr.Fieldf("reauthenticate_every_sign_in", "give reauthenticate_after or reauthenticate_every_sign_in, not both")
	}
	if r.Access == AccessDeny {
		for _, f := range []struct {
			field string
			set   bool
		}{
			{"factor", r.Factor != ""}, {"reauthenticate_after", r.Reauthenticate != 0},
			{"reauthenticate_every_sign_in", r.ReauthenticateEverySignIn}, {"enrollment", r.Enrollment != ""},
		} {
			if f.set {
				return configerr.Fieldf(f.field, "a rule with access deny takes no %s", f.field)
			}
		}
	}
	if r.Enrollment != "" && r.factor() == FactorNone {
		return configerr.Fieldf("enrollment", "enrollment applies only to a rule with a factor (any or phishing_resistant)")
	}
	return nil
}

// check refuses empty names and, when groups is known, unknown groups.
func (p *People) check(groups map[string]bool) error {
	if p == nil {
		return nil
	}
	for _, f := range []struct {
		field  string
		l      []string
		groups bool
	}{{"users", p.Users, false}, {"groups", p.Groups, true}, {"exclude_users", p.ExcludeUsers, false}, {"exclude_groups", p.ExcludeGroups, true}} {
		for _, g := range f.l {
			if g == "" {
				return configerr.Fieldf(f.field, "%s: empty value", f.field)
			}
			if f.groups && groups != nil && !groups[g] {
				return configerr.Field(f.field, fmt.Errorf("unknown group %q", g))
			}
		}
	}
	return nil
}

func (r *SignOnRule) factor() string {
	if r.Factor == "" {
		return FactorNone
	}
	return r.Factor
}

// EvaluateSignOn walks the policies by priority (equal priorities in
// the given order) and, in each covering the client, its rules by
// priority: the first rule whose people match decides. As for access
// policies, a covering policy none of whose rules match does not end
// evaluation (Okta's Policy API, "Policy evaluation": "If one or more of
// the conditions can't be met, then the next policy in the list is
// considered"). With no match, the decision is the password alone and
// ok is false. ps need not be sorted; it is not changed.
func EvaluateSignOn(ps []*SignOnPolicy, req SignOnRequest) (d SignOnDecision, ok bool) {
	for _, p := range byPriority(ps, func(p *SignOnPolicy) int { return p.Priority }) {
		if !covers(p.Clients, req.ClientID) {
			continue
		}
		for _, r := range byPriority(p.Rules, func(r *SignOnRule) int { return r.Priority }) {
			if (req.User == nil && !r.People.everyone()) || (req.User != nil && !r.People.includes(req.User)) {
				continue
			}
			return r.decision(p.Name), true
		}
	}
	return SignOnDecision{Factor: FactorNone}, false
}

func (r *SignOnRule) decision(policy string) SignOnDecision {
	d := SignOnDecision{Policy: policy, Rule: r.Name, Factor: FactorNone}
	if r.Access == AccessDeny {
		d.Deny = true
		return d
	}
	d.Factor = r.factor()
	d.MaxSessionAge = time.Duration(r.Reauthenticate)
	d.EverySignIn = r.ReauthenticateEverySignIn
	d.EnrollAtSignIn = d.Factor != FactorNone && r.Enrollment != EnrollDeny
	return d
}

// byPriority returns l stably sorted by priority, l itself when it is
// sorted already (the common case: no allocation).
func byPriority[T any](l []T, prio func(T) int) []T {
	cmpPrio := func(a, b T) int { return cmp.Compare(prio(a), prio(b)) }
	if slices.IsSortedFunc(l, cmpPrio) {
		return l
	}
	l = slices.Clone(l)
	slices.SortStableFunc(l, cmpPrio)
	return l
}
