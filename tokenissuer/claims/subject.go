package claims

import (
	"errors"
	"fmt"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
)

// SubjectExpr computes the `sub` of access tokens issued for a user, as
// Okta's custom authorization servers let their `sub` claim be mapped
// (Okta's default is `(appuser != null) ? appuser.userName :
// app.clientId`; here the default is the user's login).
type SubjectExpr struct {
	// Language of Value: `cel` (default) or `okta`, as for a claim.
	Language string `json:"language,omitempty"`
	// Value is the expression, over the same variables as claims; it
	// must give a non-empty string. At run time any other result keeps
	// the user's login and is logged as a warning.
	Value string `json:"value"`
}

// Subject is a compiled SubjectExpr.
type Subject struct {
	prg cel.Program
}

// CompileSubject checks and compiles e; nil gives nil.
func CompileSubject(e *SubjectExpr) (*Subject, error) {
	if e == nil {
		return nil, nil
	}
	if e.Value == "" {
		return nil, errors.New("subject: value is required")
	}
	prg, _, err := compileExpr(e.Language, e.Value)
	if err != nil {
		return nil, fmt.Errorf("subject: %w", err)
	}
	return &Subject{prg}, nil
}

// Evaluate computes the subject for in, which has a user. The error
// names no value of the token.
func (s *Subject) Evaluate(in Input) (string, error) {
	act, err := in.activation()
	if err != nil {
		return "", err
	}
	v, _, err := s.prg.Eval(act)
	if err != nil {
		return "", err
	}
	str, ok := v.(types.String)
	if !ok {
		return "", fmt.Errorf("the subject expression gave %s, not a string", v.Type().TypeName())
	}
	if str == "" {
		return "", errors.New("the subject expression gave an empty string")
	}
	return string(str), nil
}
