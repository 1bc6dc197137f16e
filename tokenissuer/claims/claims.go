// Package claims computes custom token claims from CEL expressions.
package claims

import (
	"fmt"
	"reflect"
	"slices"

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
	// `scopes` (the granted scopes, a list of strings) and `server.id`,
	// `server.issuer`. A result of `null` leaves the claim out; CEL's
	// type checker needs `dyn` for that in a conditional:
	// `client.id == "reporting" ? dyn("internal") : null`.
	Value string `json:"value"`
	// Scopes, when set, include the claim only when at least one of them
	// is granted. Default: always included.
	Scopes []string `json:"scopes,omitempty"`
}

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
}

func (in Input) activation() map[string]any {
	return map[string]any{
		"client": map[string]any{"id": in.ClientID, "name": in.ClientName},
		"scopes": in.Scopes,
		"server": map[string]any{"id": in.ServerID, "issuer": in.Issuer},
	}
}

type compiled struct {
	name   string
	scopes []string
	prg    cel.Program
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
		ast, iss := env.Compile(c.Value)
		if iss != nil && iss.Err() != nil {
			return nil, fmt.Errorf("claim %q: %w", c.Name, iss.Err())
		}
		prg, err := env.Program(ast, cel.CostLimit(costLimit))
		if err != nil {
			return nil, fmt.Errorf("claim %q: %w", c.Name, err)
		}
		s.claims = append(s.claims, compiled{name: c.Name, scopes: c.Scopes, prg: prg})
	}
	return s, nil
}

// Empty reports whether there are no claims to compute.
func (s *Set) Empty() bool { return s == nil || len(s.claims) == 0 }

var jsonValueType = reflect.TypeOf(&structpb.Value{})

// Evaluate computes the claims for in and adds them to out.
func (s *Set) Evaluate(in Input, out map[string]any) error {
	if s.Empty() {
		return nil
	}
	act := in.activation()
	for _, c := range s.claims {
		if len(c.scopes) > 0 && !slices.ContainsFunc(c.scopes, func(x string) bool { return slices.Contains(in.Scopes, x) }) {
			continue
		}
		v, _, err := c.prg.Eval(act)
		if err != nil {
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
