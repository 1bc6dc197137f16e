package validator_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/apiaccess/caddy-apiaccess/caddymodule/validator"
)

func mustRegexp(t *testing.T, name, pattern string) validator.ClaimCondition {
	t.Helper()
	c, err := validator.NewClaimRegexp(name, pattern)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClaimConditions(t *testing.T) {
	eq := func(name, value string) validator.ClaimCondition {
		return validator.ClaimCondition{Name: name, Value: value}
	}
	type tc struct {
		name   string
		cond   func(t *testing.T) validator.ClaimCondition
		claims map[string]any // merged into stdClaims
		ok     bool
		bug    string
	}
	cases := []tc{
		{"string equal", func(*testing.T) validator.ClaimCondition { return eq("dept", "billing") }, nil, true, ""},
		{"string differs in case", func(*testing.T) validator.ClaimCondition { return eq("dept", "Billing") }, nil, false, ""},
		{"string prefix", func(*testing.T) validator.ClaimCondition { return eq("dept", "bill") }, nil, false, ""},
		{"string superstring", func(*testing.T) validator.ClaimCondition { return eq("dept", "billing") }, m{"dept": "billing2"}, false, ""},
		{"number 5 vs \"5\"", func(*testing.T) validator.ClaimCondition { return eq("level", "5") }, nil, true, ""},
		{"number 5.0 vs \"5\"", func(*testing.T) validator.ClaimCondition { return eq("level", "5") }, m{"level": 5.0}, true, ""},
		{"number 5 vs \"5.0\"", func(*testing.T) validator.ClaimCondition { return eq("level", "5.0") }, nil, true, ""},
		{"number 5 vs \"6\"", func(*testing.T) validator.ClaimCondition { return eq("level", "6") }, nil, false, ""},
		{"number vs non-number", func(*testing.T) validator.ClaimCondition { return eq("level", "five") }, nil, false, ""},
		{"string \"5.0\" vs \"5\" compares as strings", func(*testing.T) validator.ClaimCondition { return eq("level", "5") }, m{"level": "5.0"}, false, ""},
		{"large integer ids differ", func(*testing.T) validator.ClaimCondition { return eq("tenant_id", "9007199254740993") },
			m{"tenant_id": int64(9007199254740992)}, false,
			"ClaimCondition compares numbers as float64: distinct integers above 2^53 (e.g. snowflake tenant ids) are considered equal"},
		{"snowflake ids differ", func(*testing.T) validator.ClaimCondition { return eq("tenant_id", "1234567890123456789") },
			m{"tenant_id": int64(1234567890123456700)}, false,
			"ClaimCondition compares numbers as float64: distinct integers above 2^53 (e.g. snowflake tenant ids) are considered equal"},
		{"large integer equal", func(*testing.T) validator.ClaimCondition { return eq("tenant_id", "1234567890123456789") },
			m{"tenant_id": int64(1234567890123456789)}, true, ""},
		{"bool true", func(*testing.T) validator.ClaimCondition { return eq("admin", "true") }, nil, true, ""},
		{"bool true vs \"false\"", func(*testing.T) validator.ClaimCondition { return eq("admin", "false") }, nil, false, ""},
		{"bool vs \"1\"", func(*testing.T) validator.ClaimCondition { return eq("admin", "1") }, nil, false, ""},
		{"bool vs \"True\"", func(*testing.T) validator.ClaimCondition { return eq("admin", "True") }, nil, false, ""},
		{"array membership", func(*testing.T) validator.ClaimCondition { return eq("groups", "billing") }, nil, true, ""},
		{"array without it", func(*testing.T) validator.ClaimCondition { return eq("groups", "ops") }, nil, false, ""},
		{"array of numbers", func(*testing.T) validator.ClaimCondition { return eq("groups", "7") }, m{"groups": []any{1, 7.0}}, true, ""},
		{"nested array not flattened", func(*testing.T) validator.ClaimCondition { return eq("groups", "billing") }, m{"groups": []any{[]string{"billing"}}}, false, ""},
		{"empty array", func(*testing.T) validator.ClaimCondition { return eq("groups", "") }, m{"groups": []string{}}, false, ""},
		{"missing claim", func(*testing.T) validator.ClaimCondition { return eq("nope", "") }, nil, false, ""},
		{"null claim", func(*testing.T) validator.ClaimCondition { return eq("dept", "null") }, m{"dept": json.RawMessage("null")}, false, ""},
		{"object claim", func(*testing.T) validator.ClaimCondition { return eq("dept", "billing") }, m{"dept": m{"billing": true}}, false, ""},
		{"regexp exact", func(t *testing.T) validator.ClaimCondition { return mustRegexp(t, "dept", "billing") }, nil, true, ""},
		{"regexp must not match not-billing", func(t *testing.T) validator.ClaimCondition { return mustRegexp(t, "dept", "billing") }, m{"dept": "not-billing"}, false, ""},
		{"regexp must not match billing-x", func(t *testing.T) validator.ClaimCondition { return mustRegexp(t, "dept", "billing") }, m{"dept": "billing-x"}, false, ""},
		{"regexp alternation stays anchored", func(t *testing.T) validator.ClaimCondition { return mustRegexp(t, "dept", "ops|billing") }, m{"dept": "devops"}, false, ""},
		{"regexp alternation stays anchored (right)", func(t *testing.T) validator.ClaimCondition { return mustRegexp(t, "dept", "billing|ops") }, m{"dept": "billing-x"}, false, ""},
		{"regexp with its own anchors", func(t *testing.T) validator.ClaimCondition { return mustRegexp(t, "dept", "^bill.*$") }, nil, true, ""},
		{"regexp multiline does not escape anchors", func(t *testing.T) validator.ClaimCondition { return mustRegexp(t, "dept", "billing") }, m{"dept": "billing\nevil"}, false, ""},
		{"regexp on array element", func(t *testing.T) validator.ClaimCondition { return mustRegexp(t, "groups", "bill.*") }, nil, true, ""},
		{"regexp on number", func(t *testing.T) validator.ClaimCondition { return mustRegexp(t, "level", `\d`) }, nil, true, ""},
		{"regexp on bool", func(t *testing.T) validator.ClaimCondition { return mustRegexp(t, "admin", "true") }, nil, true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := baseConfig(newClock())
			cfg.Claims = []validator.ClaimCondition{c.cond(t)}
			res, f := validate(t, validator.New(cfg), good(t, c.claims), nil)
			if c.ok {
				wantOK(t, res, f)
			} else {
				wantForbidden(t, f, validator.ReasonClaimMismatch)
				if f.Subject != "user1" || f.Issuer != issURL {
					t.Fatalf("failure %+v", f)
				}
			}
		})
	}
}

func TestClaimConditionsAllMustHold(t *testing.T) {
	cfg := baseConfig(newClock())
	cfg.Claims = []validator.ClaimCondition{{Name: "dept", Value: "billing"}, {Name: "admin", Value: "true"}}
	v := validator.New(cfg)
	res, f := validate(t, v, good(t), nil)
	wantOK(t, res, f)
	_, f = validate(t, v, good(t, m{"admin": false}), nil)
	wantForbidden(t, f, validator.ReasonClaimMismatch)
}

func TestNewClaimRegexpError(t *testing.T) {
	if _, err := validator.NewClaimRegexp("dept", "("); err == nil || !strings.Contains(err.Error(), "dept") {
		t.Fatalf("err %v", err)
	}
}

// TestClaimRegexpCannotEscapeAnchors: a pattern that is not a valid
// regexp by itself must not be able to close the anchoring group early.
func TestClaimRegexpCannotEscapeAnchors(t *testing.T) {
	if c, err := validator.NewClaimRegexp("dept", ")|(.*"); err == nil {
		cfg := baseConfig(newClock())
		cfg.Claims = []validator.ClaimCondition{c}
		if _, f := validate(t, validator.New(cfg), good(t, m{"dept": "anything"}), nil); f == nil {
			t.Fatalf("a pattern escaped the anchors")
		}
	}
}

func mustExpr(t *testing.T, src string) *validator.Expression {
	t.Helper()
	e, err := validator.CompileExpression(src)
	if err != nil {
		t.Fatalf("compile %q: %v", src, err)
	}
	return e
}

func TestExpression(t *testing.T) {
	get := httptest.NewRequest(http.MethodGet, "https://api.example.com/v1/invoices?x=1", nil)
	get.Header.Set("X-Tenant", "acme")
	post := httptest.NewRequest(http.MethodPost, "https://api.example.com/v1/invoices", nil)
	cases := []struct {
		name string
		src  string
		mods map[string]any
		r    *http.Request
		ok   bool
	}{
		{"true", `claims.sub == "user1"`, nil, get, true},
		{"false", `claims.sub == "admin"`, nil, get, false},
		{"group membership", `"billing" in claims.groups`, nil, get, true},
		{"group missing", `"finance" in claims.groups`, nil, get, false},
		{"number as double", `claims.level >= 5.0 && claims.level < 5.5`, nil, get, true},
		{"bool", `claims.admin`, nil, get, true},
		{"request method true", `request.method == "GET" && request.path == "/v1/invoices"`, nil, get, true},
		{"request method false", `request.method == "GET"`, nil, post, false},
		{"request host", `request.host == "api.example.com"`, nil, get, true},
		{"request header (lower-case names)", `request.headers["x-tenant"][0] == "acme"`, nil, get, true},
		{"runtime error: missing claim", `claims.nope == "x"`, nil, get, false},
		{"runtime error: missing header", `request.headers["x-none"][0] == "x"`, nil, get, false},
		{"runtime error: no request", `request.method == "GET"`, nil, nil, false},
		{"runtime error: type", `claims.sub > 3.0`, nil, get, false},
		{"not a boolean at run time", `claims.sub`, nil, get, false},
		{"nested claims", `claims.ext.org == "acme"`, m{"ext": m{"org": "acme"}}, get, true},
		{"nested number", `claims.ext.n[1] == 2.0`, m{"ext": m{"n": []int{1, 2}}}, get, true},
		{"error swallowed by ||", `claims.nope == "x" || true`, nil, get, true},
		// README: a route that demands a second factor from user tokens
		// (the issuer's access tokens carry amr, RFC 8176 values).
		{"amr has mfa", `"mfa" in claims.amr`, m{"amr": []string{"pwd", "otp", "mfa"}}, get, true},
		{"amr without mfa", `"mfa" in claims.amr`, m{"amr": []string{"pwd"}}, get, false},
		{"no amr (client credentials)", `"mfa" in claims.amr`, nil, get, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := baseConfig(newClock())
			cfg.Expression = mustExpr(t, c.src)
			res, f := validate(t, validator.New(cfg), good(t, c.mods), c.r)
			if c.ok {
				wantOK(t, res, f)
			} else {
				wantForbidden(t, f, validator.ReasonExpressionFalse)
			}
		})
	}
}

// TestExpressionCostLimit: a quadratic expression over a large claim
// stops at the cost limit (refused) instead of running unbounded.
func TestExpressionCostLimit(t *testing.T) {
	big := make([]int, 1000)
	for i := range big {
		big[i] = i
	}
	cfg := baseConfig(newClock())
	cfg.MaxTokenSize = 1 << 20
	cfg.Expression = mustExpr(t, `claims.big.all(x, claims.big.all(y, x != y || x == y))`)
	_, f := validate(t, validator.New(cfg), good(t, m{"big": big}), nil)
	wantForbidden(t, f, validator.ReasonExpressionFalse)
}

func TestCompileExpressionErrors(t *testing.T) {
	for _, src := range []string{
		``,
		`claims.sub ==`,
		`1 + 2`,
		`"string"`,
		`undeclared == 1`,
	} {
		if _, err := validator.CompileExpression(src); err == nil {
			t.Errorf("%q compiled", src)
		}
	}
	// A syntax error is reported as such, with CEL's explanation, not
	// as a type problem of what failed to compile.
	_, err := validator.CompileExpression(`claims.sub ==`)
	if err == nil || !strings.Contains(err.Error(), "Syntax error") || strings.Contains(err.Error(), "must be boolean") {
		t.Errorf("syntax error reported as %v", err)
	}
	_, err = validator.CompileExpression(`1 + 2`)
	if err == nil || !strings.Contains(err.Error(), "must be boolean, not int") {
		t.Errorf("non-boolean expression reported as %v", err)
	}
}

// TestExpressionAfterVerification: an expression never runs on, and so
// never rescues, a token that fails verification.
func TestExpressionAfterVerification(t *testing.T) {
	cfg := baseConfig(newClock())
	cfg.Expression = mustExpr(t, `true`)
	_, f := validate(t, validator.New(cfg), mint(t, jwa.RS256, getKeys().attacker, "rsa1", stdClaims()), nil)
	wantInvalid(t, f, validator.ReasonBadSignature)
}
