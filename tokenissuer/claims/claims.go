// Package claims computes custom token claims from CEL expressions.
package claims

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/apiaccess/caddy-apiaccess/internal/configerr"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/claims/oel"
)

// Claim is one custom claim of an authorization server.
type Claim struct {
	// Name of the claim in the token. Registered and Okta-reserved names
	// (iss, sub, aud, exp, iat, nbf, jti, ver, cid, uid, scp, auth_time,
	// scope, client_id) are refused, and in access tokens also act,
	// may_act, cnf and amr (claims of the token itself).
	Name string `json:"name"`
	// Value is a CEL expression over typed variables: `client.id`,
	// `client.name`, `server.id`, `server.issuer` (strings), `scopes`
	// (the granted scopes, list(string)), and `user.id`, `user.login`
	// (strings), `user.groups` (list(string)), `user.profile.NAME`
	// (`profile` is a map(string, dyn): attributes are not declared). A
	// field that does not exist, such as `client.nosuch`, fails at load.
	// cel-go's string extensions (`lowerAscii`, `split`, `join`, `trim`,
	// ...) are available. A result of `null` leaves the claim out; the
	// type checker needs `dyn` for that in a conditional:
	// `client.id == "reporting" ? dyn(client.name) : null`. An
	// expression that reads `user` is left out in flows without a user.
	// One that fails at run time (a profile attribute the user lacks, a
	// failed conversion, the cost limit) leaves its claim out of that
	// token and is logged as a warning; the token is still issued.
	Value string `json:"value,omitempty"`
	// Language of Value: `cel` (the default) or `okta`, Okta Expression
	// Language (`user.firstName + " " + user.lastName`,
	// `String.substringBefore(user.login, "@")`, `Groups.startsWith("OKTA",
	// "eng-", 10)`, `Arrays.contains(access.scope, "admin")`,
	// `app.clientId`). An Okta expression is translated to CEL and
	// checked at load like a CEL one; an unknown or unsupported function
	// or variable, a wrong number of arguments or an unknown attribute
	// fails the load. In it, a profile attribute the user lacks is null,
	// as in Okta, and a null result leaves the claim out.
	Language string `json:"language,omitempty"`
	// Scopes, when set, include the claim only when at least one of them
	// is granted. Default: always included.
	Scopes []string `json:"scopes,omitempty"`
	// Token is `access_token` (default) or `id_token`.
	Token string `json:"token,omitempty"`
	// Groups, instead of Value, makes this a groups claim: the user's
	// groups that pass the filter, as an array (omitted without a user).
	Groups *GroupsFilter `json:"groups,omitempty"`
	// Disabled keeps the claim in the configuration, checked at load as
	// any other, but never evaluated: it is in no token and no userinfo
	// answer. Okta's claim `status` INACTIVE ("Disable claim" in its
	// admin console), for testing or debugging. Default: false (ACTIVE).
	Disabled bool `json:"disabled,omitempty"`
	// AlwaysIncludeInToken, for an `id_token` claim, is Okta's
	// `alwaysIncludeInToken` (Authorization Servers API, claim object):
	// true ("Always") puts the claim in the ID token and in the userinfo
	// answer; false ("Userinfo / ID Token request") leaves it out of an
	// ID token issued together with an access token, so the client reads
	// it from userinfo with that access token. This issuer returns ID
	// tokens only beside an access token (response_type `code`, the token
	// endpoint), so with false the claim is found only at userinfo.
	// Default: true, the value Okta's API examples and claims created
	// through its API carry (its admin console preselects false). An
	// access-token claim is always included (Okta: "Always TRUE for
	// access token claims"); false there is refused at load.
	AlwaysIncludeInToken *bool `json:"always_include_in_token,omitempty"`
}

// GroupsFilter selects group names for a groups claim.
type GroupsFilter struct {
	// Type is `starts_with`, `equals`, `contains` or `regex` (the whole
	// name must match).
	Type string `json:"type"`
	// Value the names are compared with.
	Value string `json:"value,omitempty"`
}

// Languages of claim values.
const (
	CEL  = "cel"
	Okta = "okta"
)

// Token kinds a claim goes into (Claim.Token), and what EvaluateFor and
// HasToken compute: AccessToken the access token's claims, IDToken
// those of an ID token issued beside an access token (the ID-token
// claims with AlwaysIncludeInToken), Userinfo those of the userinfo
// answer (every ID-token claim; Okta returns custom ID-token claims
// from userinfo).
const (
	AccessToken = "access_token"
	IDToken     = "id_token"
	Userinfo    = "userinfo"
)

// Reserved claim names that configuration may not set.
var Reserved = []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "ver", "cid", "uid", "scp", "auth_time", "scope", "client_id"}

// ReservedAccess are the further names an access-token claim may not
// have: the rest of the access token's own claims (authserver's
// accessClaims; a test there keeps the lists in step) and RFC 8693's
// act and may_act. A custom claim is written after the token's own, so
// one of these names would be a second JSON member that most parsers
// read instead of the first: a configured `act` would forge the
// token-exchange actor chain.
var ReservedAccess = []string{"act", "may_act", "cnf", "amr"}

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

// The variables as CEL sees them: declared types, so that a field that
// does not exist (`client.nosuch`) fails when the claim is compiled.
type celClient struct {
	ID   string `cel:"id"`
	Name string `cel:"name"`
}

type celServer struct {
	ID     string `cel:"id"`
	Issuer string `cel:"issuer"`
}

// celUser's profile is a google.protobuf.Struct, CEL's map(string, dyn):
// attributes differ between directories, so they are not declared.
type celUser struct {
	ID      string           `cel:"id"`
	Login   string           `cel:"login"`
	Profile *structpb.Struct `cel:"profile"`
	Groups  []string         `cel:"groups"`
}

// activation returns the variables; user is absent without a user.
func (in Input) activation() (map[string]any, error) {
	scopes := in.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	act := map[string]any{
		"client": &celClient{ID: in.ClientID, Name: in.ClientName},
		"scopes": scopes,
		"server": &celServer{ID: in.ServerID, Issuer: in.Issuer},
	}
	if in.User != nil {
		groups := in.User.Groups
		if groups == nil {
			groups = []string{}
		}
		profile, err := structpb.NewStruct(in.User.Profile)
		if err != nil {
			return nil, fmt.Errorf("user profile: %w", err)
		}
		act["user"] = &celUser{ID: in.User.ID, Login: in.User.Login, Profile: profile, Groups: groups}
	}
	return act, nil
}

type compiled struct {
	name   string
	token  string
	scopes []string
	prg    cel.Program
	groups func(string) bool
	// user: the expression reads the variable user, so in a flow without
	// a user the claim is left out without evaluating it.
	user bool
	// disabled and always are Claim.Disabled and AlwaysIncludeInToken.
	disabled, always bool
}

// Set is a compiled list of claims.
type Set struct {
	claims []compiled
}

var env = func() *cel.Env {
	e, err := cel.NewEnv(
		ext.NativeTypes(reflect.TypeOf(celClient{}), reflect.TypeOf(celServer{}), reflect.TypeOf(celUser{}), ext.ParseStructTags(true)),
		ext.Strings(),
		oel.Library(),
		cel.Variable("client", cel.ObjectType("claims.celClient")),
		cel.Variable("scopes", cel.ListType(cel.StringType)),
		cel.Variable("server", cel.ObjectType("claims.celServer")),
		cel.Variable("user", cel.ObjectType("claims.celUser")),
	)
	if err != nil {
		panic(err)
	}
	return e
}()

// readsUser reports whether the checked expression refers to the
// variable user.
func readsUser(ast *cel.Ast) bool {
	for _, ref := range ast.NativeRep().ReferenceMap() {
		if ref.Name == "user" {
			return true
		}
	}
	return false
}

// Compile checks and compiles claims. knownScope reports whether a scope
// name exists, so a condition on an unknown scope fails at load.
func Compile(list []*Claim, knownScope func(string) bool) (*Set, error) {
	s := &Set{}
	seen := map[string]bool{}
	for _, c := range list {
		if err := compileOne(s, c, seen, knownScope); err != nil {
			return nil, configerr.In("claim", c.Name, err)
		}
	}
	return s, nil
}

// compileOne checks c and adds it to s.
func compileOne(s *Set, c *Claim, seen map[string]bool, knownScope func(string) bool) error {
	if c.Name == "" {
		return errors.New("name is required")
	}
	if slices.Contains(Reserved, c.Name) {
		return fmt.Errorf("the name is reserved (reserved: %s)", strings.Join(Reserved, ", "))
	}
	if seen[c.Name] {
		return errors.New("defined twice")
	}
	seen[c.Name] = true
	for _, sc := range c.Scopes {
		if !knownScope(sc) {
			return configerr.Fieldf("scopes", "unknown scope %q", sc)
		}
	}
	cc := compiled{name: c.Name, scopes: c.Scopes, token: c.Token}
	switch c.Token {
	case "":
		cc.token = AccessToken
	case AccessToken, IDToken:
	default:
		return configerr.Fieldf("token", "token must be access_token or id_token")
	}
	if cc.token == AccessToken && slices.Contains(ReservedAccess, c.Name) {
		return fmt.Errorf("the name is reserved in access tokens (reserved: %s)", strings.Join(slices.Concat(Reserved, ReservedAccess), ", "))
	}
	if err := cc.options(c); err != nil {
		return err
	}
	if c.Groups != nil {
		if c.Value != "" {
			return errors.New("use value or groups, not both")
		}
		if c.Language != "" {
			return configerr.Fieldf("language", "a groups claim has no expression, so no language")
		}
		f, err := groupFilter(c.Groups)
		if err != nil {
			return err
		}
		cc.groups = f
		s.claims = append(s.claims, cc)
		return nil
	}
	prg, user, err := compileExpr(c.Language, c.Value)
	if err != nil {
		return err
	}
	cc.prg, cc.user = prg, user
	s.claims = append(s.claims, cc)
	return nil
}

// compileExpr compiles a claim value in its language; user reports
// whether it reads the variable user.
func compileExpr(language, value string) (prg cel.Program, user bool, err error) {
	src := value
	switch language {
	case "", CEL:
	case Okta:
		if src, err = oel.Translate(value); err != nil {
			return nil, false, fmt.Errorf("the Okta expression is not supported: %w", err)
		}
	default:
		return nil, false, configerr.Fieldf("language", "language must be cel or okta")
	}
	ast, iss := env.Compile(src)
	if iss != nil && iss.Err() != nil {
		if language == Okta {
			// The translation refuses what it cannot name; what is left
			// is a type error in the CEL it wrote.
			return nil, false, fmt.Errorf("the Okta expression does not type-check: %w", iss.Err())
		}
		return nil, false, fmt.Errorf("the CEL expression does not compile: %w", iss.Err())
	}
	if prg, err = env.Program(ast, cel.CostLimit(costLimit)); err != nil {
		return nil, false, err
	}
	return prg, readsUser(ast), nil
}

// Empty reports whether there are no claims to compute.
func (s *Set) Empty() bool { return s == nil || len(s.claims) == 0 }

var jsonValueType = reflect.TypeOf(&structpb.Value{})

// Failure is a claim left out because its expression failed at run
// time, for the caller to log. Err names no value of the token.
type Failure struct {
	Claim string
	Err   error
}

// Evaluate computes the access-token claims for in and adds them to out.
func (s *Set) Evaluate(in Input, out map[string]any) []Failure {
	return s.EvaluateFor(AccessToken, in, out)
}

// EvaluateFor computes the claims of one token kind (AccessToken,
// IDToken or Userinfo; disabled claims never). A claim whose
// expression fails at run time (a profile attribute the user lacks, a
// conversion that fails, the cost limit) is left out and reported in
// the failures; it never fails the token. A `null` result leaves the
// claim out too, and so does, silently, an expression that reads `user`
// in a flow without a user.
func (s *Set) EvaluateFor(token string, in Input, out map[string]any) []Failure {
	if s.Empty() {
		return nil
	}
	var (
		act    map[string]any
		actErr error
		failed []Failure
	)
	for _, c := range s.claims {
		if !c.goesInto(token) {
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
		if c.user && in.User == nil {
			continue
		}
		if act == nil && actErr == nil {
			act, actErr = in.activation()
		}
		if actErr != nil {
			failed = append(failed, Failure{c.name, actErr})
			continue
		}
		v, _, err := c.prg.Eval(act)
		if err != nil {
			failed = append(failed, Failure{c.name, err})
			continue
		}
		if v == types.NullValue {
			continue
		}
		nv, err := v.ConvertToNative(jsonValueType)
		if err != nil {
			failed = append(failed, Failure{c.name, fmt.Errorf("the value is not JSON: %w", err)})
			continue
		}
		out[c.name] = nv.(*structpb.Value).AsInterface()
	}
	return failed
}

// HasToken reports whether any claim goes into the token kind
// (AccessToken, IDToken or Userinfo).
func (s *Set) HasToken(token string) bool {
	if s == nil {
		return false
	}
	for _, c := range s.claims {
		if c.goesInto(token) {
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
