package validator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
)

// Expression is a compiled CEL condition over the token's claims and
// the request:
//
//	claims   map(string, dyn)  the token's claims (numbers as doubles)
//	request  map(string, dyn)  method, host, path, and headers as a map
//	                           of lower-case name to list of values
//
// Example: `"finance" in claims.groups && request.method == "GET"`.
type Expression struct {
	prg cel.Program
}

var celEnv = func() *cel.Env {
	e, err := cel.NewEnv(
		cel.Variable("claims", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("request", cel.MapType(cel.StringType, cel.DynType)),
	)
	if err != nil {
		panic(err)
	}
	return e
}()

// CompileExpression checks that src is a valid boolean CEL expression.
func CompileExpression(src string) (*Expression, error) {
	ast, iss := celEnv.Compile(src)
	if iss != nil && iss.Err() != nil {
		return nil, fmt.Errorf("expression: %w", iss.Err())
	}
	if ast.OutputType() != cel.BoolType && ast.OutputType() != cel.DynType {
		return nil, fmt.Errorf("expression must be boolean, not %s", ast.OutputType())
	}
	prg, err := celEnv.Program(ast, cel.CostLimit(100_000))
	if err != nil {
		return nil, fmt.Errorf("expression: %w", err)
	}
	return &Expression{prg: prg}, nil
}

func (e *Expression) eval(claims map[string]any, r *http.Request) (bool, error) {
	req := map[string]any{}
	if r != nil {
		h := make(map[string]any, len(r.Header))
		for k, v := range r.Header {
			h[strings.ToLower(k)] = v
		}
		req = map[string]any{"method": r.Method, "host": r.Host, "path": r.URL.Path, "headers": h}
	}
	out, _, err := e.prg.Eval(map[string]any{"claims": celClaims(claims), "request": req})
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("expression returned %s, not a boolean", out.Type())
	}
	return bool(b), nil
}

// celClaims converts json.Number to float64, which CEL understands.
func celClaims(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = celValue(v)
	}
	return out
}

func celValue(v any) any {
	switch x := v.(type) {
	case json.Number:
		f, _ := x.Float64()
		return f
	case map[string]any:
		return celClaims(x)
	case []any:
		out := make([]any, len(x))
		for i, y := range x {
			out[i] = celValue(y)
		}
		return out
	}
	return v
}
