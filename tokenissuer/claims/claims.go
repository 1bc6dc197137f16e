// Package claims computes custom token claims from CEL expressions.
package claims

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"google.golang.org/protobuf/types/known/structpb"
)

// Claim is one custom claim of an authorization server.
type Claim struct {
	// Name of the claim in the token. Registered and Okta-reserved names
	// (iss, sub, aud, exp, iat, nbf, jti, ver, cid, uid, scp, auth_time)
	// are refused.
	Name string `json:"name"`
	// Value is a CEL expression. Variables: `client.id`, `client.name`,
	// `scopes` (the granted scopes, a list of strings), `server.id`,
	// `server.issuer`, and `user.id`, `user.login`, `user.profile.NAME`,
	// `user.groups` (empty in flows without a user). A result of `null` leaves the claim out; CEL's
	// type checker needs `dyn` for that in a conditional:
	// `client.id == "reporting" ? dyn("internal") : null`.
	Value string `json:"value,omitempty"`
	// Scopes, when set, include the claim only when at least one of them
	// is granted. Default: always included.
	Scopes []string `json:"scopes,omitempty"`
	// Token is `access_token` (default) or `id_token`.
	Token string `json:"token,omitempty"`
	// Groups, instead of Value, makes this a groups claim: the user's
	// groups that pass the filter, as an array (omitted without a user).
	Groups *GroupsFilter `json:"groups,omitempty"`
}

// GroupsFilter selects group names for a groups claim.
type GroupsFilter struct {
	// Type is `starts_with`, `equals`, `contains` or `regex` (the whole
	// name must match).
	Type string `json:"type"`
	// Value the names are compared with.
	Value string `json:"value,omitempty"`
}

// Token kinds a claim goes into.
const (
	AccessToken = "access_token"
	IDToken     = "id_token"
)

// Reserved claim names that configuration may not set.
var Reserved = []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "ver", "cid", "uid", "scp", "auth_time", "scope", "client_id"}

// costLimit bounds the work of one expression evaluation, so a careless
// expression cannot stall token issuance.
const costLimit = 100_000

// Input is what expressions see.
type Input struct {
	ClientID, ClientName string
	Scopes               []string
	ServerID, Issuer     string
	// User is nil in flows without one.
	User *User
}

// User is what expressions see of a user as `user`: `user.id`,
// `user.login`, `user.profile` (a map), `user.groups` (a list).
type User struct {
	ID, Login string
	Profile   map[string]any
	Groups    []string
}

func (in Input) activation() map[string]any {
	user := map[string]any{}
	if in.User != nil {
		groups := in.User.Groups
		if groups == nil {
			groups = []string{}
		}
		profile := in.User.Profile
		if profile == nil {
			profile = map[string]any{}
		}
		user = map[string]any{"id": in.User.ID, "login": in.User.Login, "profile": profile, "groups": groups}
	}
	return map[string]any{
		"client": map[string]any{"id": in.ClientID, "name": in.ClientName},
		"scopes": in.Scopes,
		"server": map[string]any{"id": in.ServerID, "issuer": in.Issuer},
		"user":   user,
	}
}

type compiled struct {
	name   string
	token  string
	scopes []string
	prg    cel.Program
	groups func(string) bool
	// user: the expression reads user attributes, so a missing one
	// (an unset profile field, or no user at all) omits the claim.
	user bool
}

// Set is a compiled list of claims.
type Set struct {
	claims []compiled
}

var env = func() *cel.Env {
	e, err := cel.NewEnv(
		cel.Variable("client", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("scopes", cel.ListType(cel.StringType)),
		cel.Variable("server", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("user", cel.MapType(cel.StringType, cel.DynType)),
	)
	if err != nil {
		panic(err)
	}
	return e
}()

// Compile checks and compiles claims. knownScope reports whether a scope
// name exists, so a condition on an unknown scope fails at load.
func Compile(list []*Claim, knownScope func(string) bool) (*Set, error) {
	s := &Set{}
	seen := map[string]bool{}
	for _, c := range list {
		if c.Name == "" {
			return nil, fmt.Errorf("claim: name is required")
		}
		if slices.Contains(Reserved, c.Name) {
			return nil, fmt.Errorf("claim %q: the name is reserved", c.Name)
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("claim %q: defined twice", c.Name)
		}
		seen[c.Name] = true
		for _, sc := range c.Scopes {
			if !knownScope(sc) {
				return nil, fmt.Errorf("claim %q: unknown scope %q", c.Name, sc)
			}
		}
		cc := compiled{name: c.Name, scopes: c.Scopes, token: c.Token}
		switch c.Token {
		case "":
			cc.token = AccessToken
		case AccessToken, IDToken:
		default:
			return nil, fmt.Errorf("claim %q: token must be access_token or id_token", c.Name)
		}
		if c.Groups != nil {
			if c.Value != "" {
				return nil, fmt.Errorf("claim %q: use value or groups, not both", c.Name)
			}
			f, err := groupFilter(c.Groups)
			if err != nil {
				return nil, fmt.Errorf("claim %q: %w", c.Name, err)
			}
			cc.groups = f
			s.claims = append(s.claims, cc)
			continue
		}
		ast, iss := env.Compile(c.Value)
		if iss != nil && iss.Err() != nil {
			return nil, fmt.Errorf("claim %q: %w", c.Name, iss.Err())
		}
		prg, err := env.Program(ast, cel.CostLimit(costLimit))
		if err != nil {
			return nil, fmt.Errorf("claim %q: %w", c.Name, err)
		}
		cc.prg, cc.user = prg, strings.Contains(c.Value, "user")
		s.claims = append(s.claims, cc)
	}
	return s, nil
}

// Empty reports whether there are no claims to compute.
func (s *Set) Empty() bool { return s == nil || len(s.claims) == 0 }

var jsonValueType = reflect.TypeOf(&structpb.Value{})

// Evaluate computes the access-token claims for in and adds them to out.
func (s *Set) Evaluate(in Input, out map[string]any) error {
	return s.EvaluateFor(AccessToken, in, out)
}

// EvaluateFor computes the claims of one token kind. In an expression
// that reads `user`, a missing key (a profile attribute the user lacks,
// or any user attribute in a flow without a user) leaves the claim out,
// like a null result; any other evaluation error fails.
func (s *Set) EvaluateFor(token string, in Input, out map[string]any) error {
	if s.Empty() {
		return nil
	}
	var act map[string]any
	for _, c := range s.claims {
		if c.token != token {
			continue
		}
		if len(c.scopes) > 0 && !slices.ContainsFunc(c.scopes, func(x string) bool { return slices.Contains(in.Scopes, x) }) {
			continue
		}
		if c.groups != nil {
			if in.User == nil {
				continue
			}
			matched := []string{}
			for _, g := range in.User.Groups {
				if c.groups(g) {
					matched = append(matched, g)
				}
			}
			out[c.name] = matched
			continue
		}
		if act == nil {
			act = in.activation()
		}
		v, _, err := c.prg.Eval(act)
		if err != nil {
			if c.user && strings.Contains(err.Error(), "no such key") {
				continue
			}
			return fmt.Errorf("claim %q: %w", c.name, err)
		}
		if v == types.NullValue {
			continue
		}
		nv, err := v.ConvertToNative(jsonValueType)
		if err != nil {
			return fmt.Errorf("claim %q: value is not JSON: %w", c.name, err)
		}
		out[c.name] = nv.(*structpb.Value).AsInterface()
	}
	return nil
}

// HasToken reports whether any claim goes into the token kind.
func (s *Set) HasToken(token string) bool {
	if s == nil {
		return false
	}
	for _, c := range s.claims {
		if c.token == token {
			return true
		}
	}
	return false
}

func groupFilter(f *GroupsFilter) (func(string) bool, error) {
	switch f.Type {
	case "starts_with":
		return func(g string) bool { return strings.HasPrefix(g, f.Value) }, nil
	case "equals":
		return func(g string) bool { return g == f.Value }, nil
	case "contains":
		return func(g string) bool { return strings.Contains(g, f.Value) }, nil
	case "regex":
		if _, err := regexp.Compile(f.Value); err != nil {
			return nil, err
		}
		re := regexp.MustCompile(`^(?:` + f.Value + `)$`)
		return re.MatchString, nil
	}
	return nil, fmt.Errorf("groups filter type must be starts_with, equals, contains or regex")
}
