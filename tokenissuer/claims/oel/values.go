package oel

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
)

// Conversions between CEL values and the Java values Okta's functions
// take, following SpEL's type conversion (a number passed where a
// string is expected is converted to its text).

var errNull = errors.New("null")

// text returns v as a string parameter: null is errNull; numbers and
// booleans convert as SpEL converts them; lists and maps do not.
func text(v ref.Val) (string, error) {
	switch v := v.(type) {
	case types.String:
		return string(v), nil
	case types.Null:
		return "", errNull
	case types.Int, types.Uint, types.Double, types.Bool:
		return javaString(v), nil
	}
	return "", fmt.Errorf("expected a string, got %s", typeName(v))
}

func typeName(v ref.Val) string {
	switch v.(type) {
	case traits.Lister:
		return "an array"
	case traits.Mapper:
		return "an object"
	}
	return v.Type().TypeName()
}

// javaString is String.valueOf of v, as string concatenation writes it.
// A whole double prints without ".0": profile numbers come from JSON,
// where an integer attribute cannot be told from a double one.
func javaString(v ref.Val) string {
	switch v := v.(type) {
	case types.String:
		return string(v)
	case types.Null:
		return "null"
	case types.Bool:
		return strconv.FormatBool(bool(v))
	case types.Int:
		return strconv.FormatInt(int64(v), 10)
	case types.Uint:
		return strconv.FormatUint(uint64(v), 10)
	case types.Double:
		f := float64(v)
		if f == math.Trunc(f) && math.Abs(f) < 1e15 {
			return strconv.FormatInt(int64(f), 10)
		}
		return strconv.FormatFloat(f, 'g', -1, 64)
	case traits.Lister:
		var parts []string
		for it := v.Iterator(); it.HasNext() == types.True; {
			parts = append(parts, javaString(it.Next()))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return fmt.Sprint(v.Value())
}

// number returns v as a number: an int64 or a float64.
func number(v ref.Val) (any, error) {
	switch v := v.(type) {
	case types.Int:
		return int64(v), nil
	case types.Uint:
		if uint64(v) > math.MaxInt64 {
			return float64(v), nil
		}
		return int64(v), nil
	case types.Double:
		return float64(v), nil
	case types.Null:
		return nil, errNull
	}
	return nil, fmt.Errorf("expected a number, got %s", typeName(v))
}

// elems returns the elements of a list; null is an empty list.
func elems(v ref.Val) ([]ref.Val, error) {
	switch l := v.(type) {
	case types.Null:
		return nil, nil
	case traits.Lister:
		n, ok := l.Size().(types.Int)
		if !ok {
			return nil, errors.New("bad list")
		}
		out := make([]ref.Val, 0, int(n))
		for it := l.Iterator(); it.HasNext() == types.True; {
			out = append(out, it.Next())
		}
		return out, nil
	}
	return nil, fmt.Errorf("expected an array, got %s", typeName(v))
}

func newList(vs []ref.Val) ref.Val {
	if vs == nil {
		vs = []ref.Val{}
	}
	return types.NewRefValList(types.DefaultTypeAdapter, vs)
}

func stringList(ss []string) ref.Val {
	vs := make([]ref.Val, len(ss))
	for i, s := range ss {
		vs[i] = types.String(s)
	}
	return newList(vs)
}

// equal is Java's equals as SpEL compares: numbers by value.
func equal(a, b ref.Val) bool {
	return a.Equal(b) == types.True
}

func fail(name string, err error) ref.Val {
	return types.NewErr("%s: %v", name, err)
}
