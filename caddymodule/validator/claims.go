package validator

import (
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
)

// ClaimCondition requires a top-level claim to equal a value, or to
// match a regular expression. For an array claim, one element must.
type ClaimCondition struct {
	Name string
	// Value to compare with: strings compare exactly, numbers by value
	// ("5" matches 5 and 5.0), booleans as "true"/"false".
	Value string
	// Regexp, when set, replaces Value; it must match the whole value.
	Regexp *regexp.Regexp
}

// NewClaimRegexp compiles pattern anchored at both ends, so "billing"
// never matches "not-billing" by accident.
func NewClaimRegexp(name, pattern string) (ClaimCondition, error) {
	// Compiled alone first, so a pattern like `)|(.*` cannot close the
	// anchoring group and match everything.
	if _, err := regexp.Compile(pattern); err != nil {
		return ClaimCondition{}, fmt.Errorf("claim %s: %w", name, err)
	}
	re, err := regexp.Compile(`^(?:` + pattern + `)$`)
	if err != nil {
		return ClaimCondition{}, fmt.Errorf("claim %s: %w", name, err)
	}
	return ClaimCondition{Name: name, Regexp: re}, nil
}

func (c *ClaimCondition) holds(claims map[string]any) bool {
	v, ok := claims[c.Name]
	if !ok {
		return false
	}
	if arr, ok := v.([]any); ok {
		for _, x := range arr {
			if c.matches(x) {
				return true
			}
		}
		return false
	}
	return c.matches(v)
}

func (c *ClaimCondition) matches(v any) bool {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case bool:
		s = strconv.FormatBool(x)
	case json.Number:
		if c.Regexp != nil {
			s = x.String()
			break
		}
		// Exact rational comparison: large integer ids (tenants,
		// snowflakes) must not collide through float64 rounding.
		a, ok1 := new(big.Rat).SetString(x.String())
		b, ok2 := new(big.Rat).SetString(c.Value)
		return ok1 && ok2 && a.Cmp(b) == 0
	default:
		return false
	}
	if c.Regexp != nil {
		return c.Regexp.MatchString(s)
	}
	return s == c.Value
}
