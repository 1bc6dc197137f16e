package oel

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
)

// Now is the clock of Time.now; tests replace it.
var Now = time.Now

// Library declares the CEL functions Translate's output calls, all
// named okta.*. Semantics follow Okta's Expression Language reference
// (Okta developer docs, "Okta Expression Language overview") and, where
// it is silent, Apache Commons StringUtils, which Okta's String
// functions mirror: a null string gives null (or false, or 0) rather
// than an error; indexes out of range are clamped.
func Library() cel.EnvOption {
	var opts []cel.EnvOption
	add := func(name string, argc int, result *cel.Type, impl func(args ...ref.Val) ref.Val) {
		params := make([]*cel.Type, argc)
		for i := range params {
			params[i] = cel.DynType
		}
		id := strings.ReplaceAll(name, ".", "_") + "_" + strconv.Itoa(argc)
		bounded := func(args ...ref.Val) ref.Val { return bound(name, impl(args...)) }
		opts = append(opts, cel.Function(name, cel.Overload(id, params, result, cel.FunctionBinding(bounded))))
	}
	str := func(name string, argc int, result *cel.Type, f func(s []string, null []bool) (ref.Val, error)) {
		add(name, argc, result, func(args ...ref.Val) ref.Val {
			ss, nulls := make([]string, len(args)), make([]bool, len(args))
			for i, a := range args {
				s, err := text(a)
				if errors.Is(err, errNull) {
					nulls[i] = true
				} else if err != nil {
					return fail(name, err)
				}
				ss[i] = s
			}
			v, err := f(ss, nulls)
			if err != nil {
				return fail(name, err)
			}
			return v
		})
	}
	nullOr := func(null bool, s string) ref.Val {
		if null {
			return types.NullValue
		}
		return types.String(s)
	}

	// Variables and operators.
	add("okta.attr", 2, cel.DynType, func(a ...ref.Val) ref.Val {
		m, ok := a[0].(traits.Mapper)
		if !ok {
			return types.NullValue
		}
		if v, found := m.Find(a[1]); found {
			return v
		}
		return types.NullValue
	})
	add("okta.add", 2, cel.DynType, plus)
	for _, op := range []string{"sub", "mul", "div", "mod"} {
		add("okta."+op, 2, cel.DynType, func(a ...ref.Val) ref.Val { return arith(op, a[0], a[1]) })
	}
	add("okta.neg", 1, cel.DynType, func(a ...ref.Val) ref.Val { return arith("sub", types.Int(0), a[0]) })
	add("okta.elvis", 2, cel.DynType, func(a ...ref.Val) ref.Val {
		// SpEL's Elvis operator takes the right side for null and "".
		if a[0] == types.NullValue || a[0] == types.String("") {
			return a[1]
		}
		return a[0]
	})

	// String functions.
	str("okta.String.append", 2, cel.DynType, func(s []string, _ []bool) (ref.Val, error) {
		return types.String(s[0] + s[1]), nil
	})
	add("okta.String.join", 2, cel.StringType, func(a ...ref.Val) ref.Val {
		sep, err := text(a[0])
		if err != nil && !errors.Is(err, errNull) {
			return fail("String.join", err)
		}
		items, _ := elems(a[1])
		var parts []string
		for _, it := range flatten(items) {
			if it == types.NullValue {
				parts = append(parts, "")
				continue
			}
			s, err := text(it)
			if err != nil {
				return fail("String.join", err)
			}
			parts = append(parts, s)
		}
		return types.String(strings.Join(parts, sep))
	})
	str("okta.String.len", 1, cel.IntType, func(s []string, _ []bool) (ref.Val, error) {
		return types.Int(len([]rune(s[0]))), nil
	})
	str("okta.String.removeSpaces", 1, cel.DynType, func(s []string, null []bool) (ref.Val, error) {
		return nullOr(null[0], strings.Map(func(r rune) rune {
			if unicode.IsSpace(r) {
				return -1
			}
			return r
		}, s[0])), nil
	})
	str("okta.String.replace", 3, cel.DynType, func(s []string, null []bool) (ref.Val, error) {
		if null[0] || s[1] == "" || null[1] || null[2] {
			return nullOr(null[0], s[0]), nil
		}
		return types.String(strings.ReplaceAll(s[0], s[1], s[2])), nil
	})
	str("okta.String.replaceFirst", 3, cel.DynType, func(s []string, null []bool) (ref.Val, error) {
		if null[0] || s[1] == "" || null[1] || null[2] {
			return nullOr(null[0], s[0]), nil
		}
		return types.String(strings.Replace(s[0], s[1], s[2], 1)), nil
	})
	str("okta.String.stringContains", 2, cel.BoolType, func(s []string, null []bool) (ref.Val, error) {
		return types.Bool(!null[0] && !null[1] && strings.Contains(s[0], s[1])), nil
	})
	str("okta.String.startsWith", 2, cel.BoolType, func(s []string, null []bool) (ref.Val, error) {
		return types.Bool(!null[0] && !null[1] && strings.HasPrefix(s[0], s[1])), nil
	})
	str("okta.String.endsWith", 2, cel.BoolType, func(s []string, null []bool) (ref.Val, error) {
		return types.Bool(!null[0] && !null[1] && strings.HasSuffix(s[0], s[1])), nil
	})
	add("okta.String.stringSwitch", 3, cel.DynType, func(a ...ref.Val) ref.Val {
		// The value of the first key (in the order given) that the
		// input contains, else the default.
		pairs, err := elems(a[2])
		if err != nil || len(pairs)%2 != 0 {
			return fail("String.stringSwitch", errors.New("the key-value pairs are not pairs"))
		}
		in, err := text(a[0])
		if err != nil && !errors.Is(err, errNull) {
			return fail("String.stringSwitch", err)
		}
		if err == nil {
			for i := 0; i < len(pairs); i += 2 {
				k, err := text(pairs[i])
				if err != nil && !errors.Is(err, errNull) {
					return fail("String.stringSwitch", err)
				}
				if err == nil && strings.Contains(in, k) {
					return pairs[i+1]
				}
			}
		}
		return a[1]
	})
	add("okta.String.substring", 3, cel.DynType, func(a ...ref.Val) ref.Val {
		s, err := text(a[0])
		if errors.Is(err, errNull) {
			return types.NullValue
		} else if err != nil {
			return fail("String.substring", err)
		}
		start, err1 := index(a[1])
		end, err2 := index(a[2])
		if err := errors.Join(err1, err2); err != nil {
			return fail("String.substring", err)
		}
		return types.String(substring(s, start, end))
	})
	str("okta.String.substringAfter", 2, cel.DynType, func(s []string, null []bool) (ref.Val, error) {
		switch {
		case null[0]:
			return types.NullValue, nil
		case null[1]:
			return types.String(""), nil
		}
		if _, after, found := strings.Cut(s[0], s[1]); found {
			return types.String(after), nil
		}
		return types.String(""), nil
	})
	str("okta.String.substringBefore", 2, cel.DynType, func(s []string, null []bool) (ref.Val, error) {
		if null[0] || null[1] {
			return nullOr(null[0], s[0]), nil
		}
		before, _, _ := strings.Cut(s[0], s[1])
		return types.String(before), nil
	})
	str("okta.String.toLowerCase", 1, cel.DynType, func(s []string, null []bool) (ref.Val, error) {
		return nullOr(null[0], strings.ToLower(s[0])), nil
	})
	str("okta.String.toUpperCase", 1, cel.DynType, func(s []string, null []bool) (ref.Val, error) {
		return nullOr(null[0], strings.ToUpper(s[0])), nil
	})

	// Array functions: null is an empty array.
	arr := func(name string, argc int, result *cel.Type, f func(l []ref.Val, a []ref.Val) (ref.Val, error)) {
		add(name, argc, result, func(a ...ref.Val) ref.Val {
			l, err := elems(a[0])
			if err != nil {
				return fail(strings.TrimPrefix(name, "okta."), err)
			}
			v, err := f(l, a)
			if err != nil {
				return fail(strings.TrimPrefix(name, "okta."), err)
			}
			return v
		})
	}
	arr("okta.Arrays.add", 2, cel.DynType, func(l, a []ref.Val) (ref.Val, error) {
		return newList(append(append([]ref.Val{}, l...), a[1])), nil
	})
	arr("okta.Arrays.remove", 2, cel.DynType, func(l, a []ref.Val) (ref.Val, error) {
		out := []ref.Val{}
		removed := false
		for _, x := range l {
			if !removed && equal(x, a[1]) {
				removed = true // Java's List.remove(Object): the first one
				continue
			}
			out = append(out, x)
		}
		return newList(out), nil
	})
	arr("okta.Arrays.clear", 1, cel.DynType, func(_, _ []ref.Val) (ref.Val, error) { return newList(nil), nil })
	arr("okta.Arrays.get", 2, cel.DynType, func(l, a []ref.Val) (ref.Val, error) {
		i, err := index(a[1])
		if err != nil {
			return nil, err
		}
		if i < 0 || i >= len(l) {
			return nil, fmt.Errorf("index %d out of range for %d elements", i, len(l))
		}
		return l[i], nil
	})
	arr("okta.Arrays.contains", 2, cel.BoolType, func(l, a []ref.Val) (ref.Val, error) {
		for _, x := range l {
			if equal(x, a[1]) {
				return types.True, nil
			}
		}
		return types.False, nil
	})
	arr("okta.Arrays.size", 1, cel.IntType, func(l, _ []ref.Val) (ref.Val, error) { return types.Int(len(l)), nil })
	add("okta.Arrays.isEmpty", 1, cel.BoolType, func(a ...ref.Val) ref.Val {
		// Okta's support articles test Arrays.isEmpty(Arrays.toCsvString(...)):
		// an empty string is empty too.
		if s, ok := a[0].(types.String); ok {
			return types.Bool(s == "")
		}
		l, err := elems(a[0])
		if err != nil {
			return fail("Arrays.isEmpty", err)
		}
		return types.Bool(len(l) == 0)
	})
	add("okta.Arrays.flatten", 1, cel.DynType, func(a ...ref.Val) ref.Val {
		l, _ := elems(a[0])
		return newList(flatten(l))
	})
	add("okta.Arrays.toCsvString", 1, cel.DynType, func(a ...ref.Val) ref.Val {
		if a[0] == types.NullValue {
			return types.NullValue
		}
		l, err := elems(a[0])
		if err != nil {
			return fail("Arrays.toCsvString", err)
		}
		parts := make([]string, len(l))
		for i, x := range l {
			parts[i] = javaString(x)
		}
		return types.String(strings.Join(parts, ","))
	})

	// Conversion functions.
	add("okta.Convert.toInt", 1, cel.IntType, func(a ...ref.Val) ref.Val { return toInt(a[0]) })
	add("okta.Convert.toNum", 1, cel.DoubleType, func(a ...ref.Val) ref.Val {
		switch v := a[0].(type) {
		case types.String:
			f, err := strconv.ParseFloat(strings.TrimSpace(string(v)), 64)
			if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
				return fail("Convert.toNum", fmt.Errorf("%q is not a number", string(v)))
			}
			return types.Double(f)
		}
		n, err := number(a[0])
		if err != nil {
			return fail("Convert.toNum", err)
		}
		if i, ok := n.(int64); ok {
			return types.Double(i)
		}
		return types.Double(n.(float64))
	})

	// Time.now: ISO 8601 with milliseconds, in UTC or the zone given.
	opts = append(opts, cel.Function("okta.Time.now",
		cel.Overload("okta_Time_now_0", nil, cel.StringType, cel.FunctionBinding(func(...ref.Val) ref.Val {
			return types.String(Now().UTC().Format("2006-01-02T15:04:05.000Z07:00"))
		})),
		cel.Overload("okta_Time_now_1", []*cel.Type{cel.DynType}, cel.StringType, cel.UnaryBinding(func(z ref.Val) ref.Val {
			name, err := text(z)
			if err != nil {
				return fail("Time.now", err)
			}
			loc, err := time.LoadLocation(zoneName(name))
			if err != nil {
				return fail("Time.now", fmt.Errorf("unknown time zone %q", name))
			}
			return types.String(Now().In(loc).Format("2006-01-02T15:04:05.000Z07:00"))
		}))))

	// Group functions, over the user's group names (the first argument,
	// which the translation adds).
	for name, match := range map[string]func(g, p string) bool{
		"startsWith": strings.HasPrefix, "contains": strings.Contains, "endsWith": strings.HasSuffix,
	} {
		add("okta.Groups."+name, 4, cel.DynType, func(a ...ref.Val) ref.Val {
			return groupsMatching("Groups."+name, a, match)
		})
	}
	groupTest := func(name string, match func(g, p string) bool) {
		add(name, 2, cel.BoolType, func(a ...ref.Val) ref.Val {
			p, err := text(a[1])
			if errors.Is(err, errNull) {
				return types.False
			} else if err != nil {
				return fail(strings.TrimPrefix(name, "okta."), err)
			}
			gs, _ := elems(a[0])
			for _, g := range gs {
				if s, ok := g.(types.String); ok && match(string(s), p) {
					return types.True
				}
			}
			return types.False
		})
	}
	groupTest("okta.isMemberOfGroupName", func(g, p string) bool { return g == p })
	groupTest("okta.isMemberOfGroupNameStartsWith", strings.HasPrefix)
	groupTest("okta.isMemberOfGroupNameContains", strings.Contains)
	add("okta.isMemberOfAnyGroup", 2, cel.BoolType, func(a ...ref.Val) ref.Val {
		want, err := elems(a[1])
		if err != nil {
			return fail("isMemberOfAnyGroup", err)
		}
		return memberOfAny(a[0], flatten(want), func(g, p string) bool { return g == p })
	})
	add("okta.isMemberOf", 3, cel.BoolType, func(a ...ref.Val) ref.Val {
		var want []ref.Val
		if _, ok := a[1].(traits.Lister); ok {
			want, _ = elems(a[1])
		} else {
			want = []ref.Val{a[1]}
		}
		match := func(g, p string) bool { return g == p }
		if a[2] == types.String("STARTS_WITH") {
			match = strings.HasPrefix
		}
		return memberOfAny(a[0], want, match)
	})
	return cel.Lib(library(opts))
}

type library []cel.EnvOption

func (l library) CompileOptions() []cel.EnvOption     { return l }
func (l library) ProgramOptions() []cel.ProgramOption { return nil }

func memberOfAny(groups ref.Val, want []ref.Val, match func(g, p string) bool) ref.Val {
	gs, _ := elems(groups)
	for _, w := range want {
		p, err := text(w)
		if err != nil {
			continue
		}
		for _, g := range gs {
			if s, ok := g.(types.String); ok && match(string(s), p) {
				return types.True
			}
		}
	}
	return types.False
}

// groupsMatching is Groups.startsWith/contains/endsWith(app, pattern,
// limit): the names of the user's groups that match, at most limit
// (1 to 100, Okta's "Add a Groups claim with a dynamic allow list").
// Only "OKTA" groups exist here; another app has none.
func groupsMatching(name string, a []ref.Val, match func(g, p string) bool) ref.Val {
	app, err := text(a[1])
	if err != nil {
		return fail(name, fmt.Errorf("app: %w", err))
	}
	p, err := text(a[2])
	if err != nil {
		return fail(name, fmt.Errorf("pattern: %w", err))
	}
	limit, err := index(a[3])
	if err != nil || limit < 1 || limit > 100 {
		return fail(name, errors.New("the limit must be between 1 and 100"))
	}
	out := []string{}
	if app != "OKTA" {
		return stringList(out)
	}
	gs, _ := elems(a[0])
	for _, g := range gs {
		if s, ok := g.(types.String); ok && match(string(s), p) && len(out) < limit {
			out = append(out, string(s))
		}
	}
	return stringList(out)
}

// flatten expands nested arrays and drops nulls (Arrays.flatten).
func flatten(l []ref.Val) []ref.Val {
	out := []ref.Val{}
	for _, x := range l {
		if x == types.NullValue {
			continue
		}
		if _, ok := x.(traits.Lister); ok {
			inner, _ := elems(x)
			out = append(out, flatten(inner)...)
			continue
		}
		out = append(out, x)
	}
	return out
}

// index returns v as an int index: a whole number.
func index(v ref.Val) (int, error) {
	n, err := number(v)
	if err != nil {
		return 0, err
	}
	switch n := n.(type) {
	case int64:
		if n > math.MaxInt32 || n < math.MinInt32 {
			return 0, errors.New("index out of range")
		}
		return int(n), nil
	case float64:
		if n != math.Trunc(n) || n > math.MaxInt32 || n < math.MinInt32 {
			return 0, fmt.Errorf("%v is not a whole number", n)
		}
		return int(n), nil
	}
	return 0, errors.New("not a number")
}

// substring is StringUtils.substring: negative indexes count from the
// end, out-of-range ones are clamped, start past end is "". Indexes
// count characters.
func substring(s string, start, end int) string {
	rs := []rune(s)
	if end < 0 {
		end += len(rs)
	}
	if start < 0 {
		start += len(rs)
	}
	end, start = min(end, len(rs)), max(start, 0)
	if start > end {
		return ""
	}
	return string(rs[start:end])
}

// toInt is Convert.toInt: a string must hold a whole number; a number
// is rounded half up (Java's Math.round); the result fits Java's int.
func toInt(v ref.Val) ref.Val {
	var f float64
	switch x := v.(type) {
	case types.String:
		i, err := strconv.ParseInt(string(x), 10, 32)
		if err != nil {
			return fail("Convert.toInt", fmt.Errorf("%q is not a whole number", string(x)))
		}
		return types.Int(i)
	case types.Int:
		f = float64(x)
	case types.Uint:
		f = float64(x)
	case types.Double:
		f = math.Floor(float64(x) + 0.5)
	default:
		return fail("Convert.toInt", fmt.Errorf("expected a string or a number, got %s", typeName(v)))
	}
	if math.IsNaN(f) || f > math.MaxInt32 || f < math.MinInt32 {
		return fail("Convert.toInt", errors.New("out of the range of an int"))
	}
	return types.Int(int64(f))
}

// plus is SpEL's +: string concatenation when either side is a string
// (null reads "null", as in Java), else numeric addition.
func plus(a ...ref.Val) ref.Val {
	_, ls := a[0].(types.String)
	_, rs := a[1].(types.String)
	if ls || rs {
		return types.String(javaString(a[0]) + javaString(a[1]))
	}
	return arith("add", a[0], a[1])
}

// arith is SpEL's arithmetic: int with int stays int (Java's long here;
// overflow is an error), anything with a double is a double; integer
// division truncates and division by zero is an error.
func arith(op string, x, y ref.Val) ref.Val {
	a, err1 := number(x)
	b, err2 := number(y)
	if err := errors.Join(err1, err2); err != nil {
		return types.NewErr("%s: %v", op, err)
	}
	ai, aInt := a.(int64)
	bi, bInt := b.(int64)
	if aInt && bInt {
		var r int64
		switch op {
		case "add":
			r = ai + bi
			if (r > ai) != (bi > 0) {
				return types.NewErr("integer overflow")
			}
		case "sub":
			r = ai - bi
			if (r < ai) != (bi > 0) {
				return types.NewErr("integer overflow")
			}
		case "mul":
			if ai != 0 && bi != 0 {
				r = ai * bi
				if r/bi != ai || ai == -1 && bi == math.MinInt64 || bi == -1 && ai == math.MinInt64 {
					return types.NewErr("integer overflow")
				}
			}
		case "div", "mod":
			if bi == 0 {
				return types.NewErr("division by zero")
			}
			if ai == math.MinInt64 && bi == -1 {
				return types.NewErr("integer overflow")
			}
			if op == "div" {
				r = ai / bi
			} else {
				r = ai % bi
			}
		}
		return types.Int(r)
	}
	af, bf := toFloat(a), toFloat(b)
	var r float64
	switch op {
	case "add":
		r = af + bf
	case "sub":
		r = af - bf
	case "mul":
		r = af * bf
	case "div":
		r = af / bf
	case "mod":
		r = math.Mod(af, bf)
	}
	if math.IsInf(r, 0) || math.IsNaN(r) {
		return types.NewErr("%s: the result is not a finite number", op)
	}
	return types.Double(r)
}

func toFloat(n any) float64 {
	if i, ok := n.(int64); ok {
		return float64(i)
	}
	return n.(float64)
}

// CEL charges a custom function one unit whatever it builds, so the
// cost limit cannot bound these: each result is bounded instead, and
// nesting cannot grow a value past about ten times the bound.
const (
	maxResultBytes = 64 << 10
	maxResultItems = 10_000
)

// bound turns a result over the bounds into an error (the claim is then
// left out, as for any failing expression).
func bound(name string, v ref.Val) ref.Val {
	switch x := v.(type) {
	case types.String:
		if len(x) > maxResultBytes {
			return types.NewErr("%s: result longer than %d bytes", name, maxResultBytes)
		}
	case traits.Lister:
		if n, ok := x.Size().(types.Int); ok && n > maxResultItems {
			return types.NewErr("%s: result longer than %d items", name, maxResultItems)
		}
	}
	return v
}
