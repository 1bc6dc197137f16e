package oel

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// The CEL variables the translation reads, as the claims package
// declares them: user (id, login, profile, groups), client (id, name),
// scopes.

// Translate turns an Okta expression into CEL source over the claims
// variables and Library's functions. It refuses at once what the
// project cannot evaluate (an unknown or unsupported function or
// variable, a wrong number of arguments); the CEL type checker then
// checks the rest.
func Translate(src string) (string, error) {
	if strings.TrimSpace(src) == "" {
		return "", errAt(0, "the expression is empty")
	}
	n, err := parse(src)
	if err != nil {
		return "", err
	}
	return emit(n)
}

// fn is one Okta function: its argument counts and how it is written in
// CEL. max -1 is variadic.
type fn struct {
	min, max int
	// cel is the Library function it calls; user, when set, is passed
	// first (user.groups for group functions).
	cel  string
	user string
	// variadic arguments from index from on are passed as one list.
	variadic bool
	from     int
	check    func(c *call) error
}

// funcs are the supported Okta functions, by their Okta name (Okta
// developer docs, "Okta Expression Language overview", Functions).
var funcs = map[string]fn{
	"String.append":          {min: 2, max: 2, cel: "okta.String.append"},
	"String.join":            {min: 1, max: -1, cel: "okta.String.join", variadic: true, from: 1},
	"String.len":             {min: 1, max: 1, cel: "okta.String.len"},
	"String.removeSpaces":    {min: 1, max: 1, cel: "okta.String.removeSpaces"},
	"String.replace":         {min: 3, max: 3, cel: "okta.String.replace"},
	"String.replaceFirst":    {min: 3, max: 3, cel: "okta.String.replaceFirst"},
	"String.stringContains":  {min: 2, max: 2, cel: "okta.String.stringContains"},
	"String.stringSwitch":    {min: 2, max: -1, cel: "okta.String.stringSwitch", variadic: true, from: 2, check: checkSwitch},
	"String.substring":       {min: 3, max: 3, cel: "okta.String.substring"},
	"String.substringAfter":  {min: 2, max: 2, cel: "okta.String.substringAfter"},
	"String.substringBefore": {min: 2, max: 2, cel: "okta.String.substringBefore"},
	"String.toLowerCase":     {min: 1, max: 1, cel: "okta.String.toLowerCase"},
	"String.toUpperCase":     {min: 1, max: 1, cel: "okta.String.toUpperCase"},
	"String.startsWith":      {min: 2, max: 2, cel: "okta.String.startsWith"},
	"String.endsWith":        {min: 2, max: 2, cel: "okta.String.endsWith"},

	"Arrays.add":         {min: 2, max: 2, cel: "okta.Arrays.add"},
	"Arrays.remove":      {min: 2, max: 2, cel: "okta.Arrays.remove"},
	"Arrays.clear":       {min: 1, max: 1, cel: "okta.Arrays.clear"},
	"Arrays.get":         {min: 2, max: 2, cel: "okta.Arrays.get"},
	"Arrays.flatten":     {min: 0, max: -1, cel: "okta.Arrays.flatten", variadic: true},
	"Arrays.contains":    {min: 2, max: 2, cel: "okta.Arrays.contains"},
	"Arrays.size":        {min: 1, max: 1, cel: "okta.Arrays.size"},
	"Arrays.isEmpty":     {min: 1, max: 1, cel: "okta.Arrays.isEmpty"},
	"Arrays.toCsvString": {min: 1, max: 1, cel: "okta.Arrays.toCsvString"},

	"Convert.toInt": {min: 1, max: 1, cel: "okta.Convert.toInt"},
	"Convert.toNum": {min: 1, max: 1, cel: "okta.Convert.toNum"},

	"Time.now": {min: 0, max: 1, cel: "okta.Time.now", check: checkTimeNow},

	"Groups.startsWith": {min: 3, max: 3, cel: "okta.Groups.startsWith", user: "user.groups", check: checkGroups},
	"Groups.contains":   {min: 3, max: 3, cel: "okta.Groups.contains", user: "user.groups", check: checkGroups},
	"Groups.endsWith":   {min: 3, max: 3, cel: "okta.Groups.endsWith", user: "user.groups", check: checkGroups},

	// Groups are identified by name in this project's directory, so a
	// group id is its name.
	"isMemberOfGroupName":           {min: 1, max: 1, cel: "okta.isMemberOfGroupName", user: "user.groups"},
	"isMemberOfGroup":               {min: 1, max: 1, cel: "okta.isMemberOfGroupName", user: "user.groups"},
	"isMemberOfGroupNameStartsWith": {min: 1, max: 1, cel: "okta.isMemberOfGroupNameStartsWith", user: "user.groups"},
	"isMemberOfGroupNameContains":   {min: 1, max: 1, cel: "okta.isMemberOfGroupNameContains", user: "user.groups"},
	"isMemberOfAnyGroup":            {min: 1, max: -1, cel: "okta.isMemberOfAnyGroup", user: "user.groups", variadic: true},
}

// unsupported are Okta functions and variables that exist in Okta but
// have no meaning here, with the reason given at load.
var unsupported = map[string]string{
	"idpuser":                   "identity-provider user profiles do not exist here",
	"appuser":                   "app user profiles do not exist here",
	"org":                       "org properties do not exist here",
	"session":                   "session properties are not available to claims here",
	"device":                    "device properties are not available here",
	"security":                  "security context is not available here",
	"user.getLinkedObject":      "linked objects do not exist here",
	"user.getGroups":            "user.getGroups is not supported; use Groups.startsWith, Groups.contains or Groups.endsWith",
	"getFilteredGroups":         "getFilteredGroups is not supported; use Groups.startsWith, Groups.contains or Groups.endsWith",
	"isMemberOfGroupNameRegex":  "Java regular expressions are not supported",
	"hasDirectoryUser":          "directory (AD/LDAP) users do not exist here",
	"hasWorkdayUser":            "Workday users do not exist here",
	"findDirectoryUser":         "directory (AD/LDAP) users do not exist here",
	"findWorkdayUser":           "Workday users do not exist here",
	"getManagerUser":            "managers do not exist here",
	"getManagerAppUser":         "managers do not exist here",
	"getAssistantUser":          "assistants do not exist here",
	"getAssistantAppUser":       "assistants do not exist here",
	"Groups.getGroups":          "group filters other than startsWith, contains and endsWith are not supported",
	"Time.fromWindowsToIso8601": "Time conversions are not supported",
	"Time.fromUnixToIso8601":    "Time conversions are not supported",
	"Time.fromStringToIso8601":  "Time conversions are not supported",
	"Time.fromIso8601ToWindows": "Time conversions are not supported",
	"Time.fromIso8601ToUnix":    "Time conversions are not supported",
	"Time.fromIso8601ToString":  "Time conversions are not supported",
	"Iso3166Convert.toAlpha2":   "country-code conversions are not supported",
	"Iso3166Convert.toAlpha3":   "country-code conversions are not supported",
	"Iso3166Convert.toNumeric":  "country-code conversions are not supported",
	"Iso3166Convert.toName":     "country-code conversions are not supported",
}

func checkSwitch(c *call) error {
	if (len(c.args)-2)%2 != 0 {
		return errAt(c.at, "String.stringSwitch takes the input, a default, then key-value pairs: the last key has no value")
	}
	return nil
}

func checkTimeNow(c *call) error {
	if len(c.args) == 1 {
		if l, ok := c.args[0].(*lit); ok {
			s, ok := l.val.(string)
			if !ok {
				return errAt(l.at, "Time.now takes a time zone name")
			}
			if _, err := time.LoadLocation(zoneName(s)); err != nil {
				return errAt(l.at, "unknown time zone %q", s)
			}
		}
	}
	return nil
}

// checkGroups checks Groups.* arguments given as literals: only Okta
// groups exist here, and Okta's limit is 1 to 100 ("Add a Groups claim
// with a dynamic allow list").
func checkGroups(c *call) error {
	if l, ok := c.args[0].(*lit); ok {
		if s, _ := l.val.(string); s != "OKTA" {
			return errAt(l.at, "only Okta groups exist here: the first argument of Groups.%s must be \"OKTA\"", c.name)
		}
	}
	if l, ok := c.args[2].(*lit); ok {
		n, isInt := l.val.(int64)
		if !isInt || n < 1 || n > 100 {
			return errAt(l.at, "the limit of Groups.%s must be between 1 and 100", c.name)
		}
	}
	return nil
}

// zoneName maps Java's short zone ids that Okta's examples use to IANA
// names time.LoadLocation knows.
func zoneName(s string) string {
	switch s {
	case "EST":
		return "America/New_York"
	case "PST":
		return "America/Los_Angeles"
	case "CST":
		return "America/Chicago"
	case "MST":
		return "America/Denver"
	}
	return s
}

func emit(n node) (string, error) {
	switch n := n.(type) {
	case *lit:
		return emitLit(n.val), nil
	case *ident:
		return variable(n)
	case *member:
		return variable(n)
	case *call:
		return emitCall(n)
	case *list:
		parts := make([]string, len(n.elems))
		for i, e := range n.elems {
			s, err := emit(e)
			if err != nil {
				return "", err
			}
			parts[i] = "dyn(" + s + ")"
		}
		return "[" + strings.Join(parts, ", ") + "]", nil
	case *dict:
		return "", errAt(n.at, "a map literal is allowed only as the argument of user.isMemberOf")
	case *unary:
		x, err := emit(n.x)
		if err != nil {
			return "", err
		}
		if n.op == "!" {
			return "!dyn(" + x + ")", nil
		}
		return "okta.neg(" + x + ")", nil
	case *binary:
		l, err := emit(n.l)
		if err != nil {
			return "", err
		}
		r, err := emit(n.r)
		if err != nil {
			return "", err
		}
		switch n.op {
		case "+":
			return "okta.add(" + l + ", " + r + ")", nil
		case "-":
			return "okta.sub(" + l + ", " + r + ")", nil
		case "*":
			return "okta.mul(" + l + ", " + r + ")", nil
		case "/":
			return "okta.div(" + l + ", " + r + ")", nil
		case "%":
			return "okta.mod(" + l + ", " + r + ")", nil
		}
		return "(dyn(" + l + ") " + n.op + " dyn(" + r + "))", nil
	case *cond:
		a, err := emit(n.a)
		if err != nil {
			return "", err
		}
		b, err := emit(n.b)
		if err != nil {
			return "", err
		}
		if n.c == nil {
			return "okta.elvis(" + a + ", " + b + ")", nil
		}
		c, err := emit(n.c)
		if err != nil {
			return "", err
		}
		return "(dyn(" + c + ") ? dyn(" + a + ") : dyn(" + b + "))", nil
	}
	return "", errAt(n.pos(), "unsupported expression")
}

func emitLit(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(v)
	case string:
		return strconv.Quote(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return "double(\"" + strconv.FormatFloat(v, 'g', -1, 64) + "\")"
		}
		s := strconv.FormatFloat(v, 'g', -1, 64)
		if !strings.ContainsAny(s, ".eE") {
			s += ".0"
		}
		return s
	}
	panic(fmt.Sprintf("oel: literal of type %T", v))
}

// path returns the dotted name of a chain of idents and members, or ""
// if n is not one.
func path(n node) string {
	switch n := n.(type) {
	case *ident:
		return n.name
	case *member:
		if p := path(n.x); p != "" {
			return p + "." + n.name
		}
	}
	return ""
}

// user attributes that are the user's own fields, not profile
// attributes.
var userFields = map[string]string{"id": "user.id", "login": "user.login"}

// app attributes: the client the token is for.
var appFields = map[string]string{"id": "client.id", "clientId": "client.id", "name": "client.name", "label": "client.name"}

// variable translates a variable reference: user.ATTR,
// user.profile.ATTR, app.ATTR, access.scope.
func variable(n node) (string, error) {
	p := path(n)
	if p == "" {
		return "", errAt(n.pos(), "only attributes of variables can be read here")
	}
	parts := strings.Split(p, ".")
	root := parts[0]
	if why, ok := unsupported[root]; ok && why != "" {
		return "", errAt(n.pos(), "%s is not supported: %s", root, why)
	}
	switch root {
	case "user":
		switch {
		case len(parts) == 1:
			return "", errAt(n.pos(), "user alone is not a value: read an attribute, such as user.login")
		case len(parts) == 2 && parts[1] == "profile":
			return "", errAt(n.pos(), "user.profile alone is not a value: read an attribute, such as user.profile.email")
		case len(parts) == 2:
			if f, ok := userFields[parts[1]]; ok {
				return f, nil
			}
			return profile(parts[1]), nil
		case len(parts) == 3 && parts[1] == "profile":
			if parts[2] == "login" {
				return "user.login", nil
			}
			return profile(parts[2]), nil
		}
		return "", errAt(n.pos(), "unknown attribute %s: profile attributes have no attributes", p)
	case "app":
		if len(parts) == 2 {
			if f, ok := appFields[parts[1]]; ok {
				return f, nil
			}
		}
		return "", errAt(n.pos(), "unknown attribute %s (app has id, clientId, name and label)", p)
	case "access":
		if p == "access.scope" {
			return "scopes", nil
		}
		return "", errAt(n.pos(), "unknown attribute %s (access has scope)", p)
	}
	return "", errAt(n.pos(), "unknown variable %s (the variables are user, app and access)", root)
}

func profile(attr string) string {
	return "okta.attr(user.profile, " + strconv.Quote(attr) + ")"
}

func emitCall(c *call) (string, error) {
	name := c.name
	if c.x != nil {
		p := path(c.x)
		if p == "" {
			return "", errAt(c.at, "methods such as .%s() are not supported; use the String and Arrays functions", c.name)
		}
		name = p + "." + c.name
	}
	if why, ok := unsupported[name]; ok && why != "" {
		return "", errAt(c.at, "%s is not supported: %s", name, why)
	}
	switch name {
	case "user.isMemberOf":
		return emitIsMemberOf(c)
	case "user.getInternalProperty":
		if len(c.args) != 1 {
			return "", errAt(c.at, "user.getInternalProperty takes 1 argument, not %d", len(c.args))
		}
		if l, ok := c.args[0].(*lit); ok && l.val == "id" {
			return "user.id", nil
		}
		return "", errAt(c.at, "user.getInternalProperty supports only \"id\"")
	}
	f, ok := funcs[name]
	if !ok && c.x != nil {
		switch strings.SplitN(name, ".", 2)[0] {
		case "user", "app", "access":
			return "", errAt(c.at, "methods such as .%s() are not supported; use the String and Arrays functions", c.name)
		}
	}
	if !ok {
		root := strings.SplitN(name, ".", 2)[0]
		if why, ok := unsupported[root]; ok && why != "" {
			return "", errAt(c.at, "%s is not supported: %s", root, why)
		}
		return "", errAt(c.at, "unknown function %s", name)
	}
	if len(c.args) < f.min || f.max >= 0 && len(c.args) > f.max {
		return "", errAt(c.at, "%s takes %s, not %d", name, arity(f), len(c.args))
	}
	if f.check != nil {
		if err := f.check(&call{c.at, c.x, c.name, c.args}); err != nil {
			return "", err
		}
	}
	var args []string
	if f.user != "" {
		args = append(args, f.user)
	}
	var rest []string
	for i, a := range c.args {
		s, err := emit(a)
		if err != nil {
			return "", err
		}
		if f.variadic && i >= f.from {
			rest = append(rest, "dyn("+s+")")
		} else {
			args = append(args, s)
		}
	}
	if f.variadic {
		args = append(args, "["+strings.Join(rest, ", ")+"]")
	}
	if name == "Time.now" && len(args) == 0 {
		return f.cel + "()", nil
	}
	return f.cel + "(" + strings.Join(args, ", ") + ")", nil
}

func arity(f fn) string {
	switch {
	case f.max < 0:
		return fmt.Sprintf("at least %d argument%s", f.min, plural(f.min))
	case f.min == f.max:
		return fmt.Sprintf("%d argument%s", f.min, plural(f.min))
	}
	return fmt.Sprintf("%d to %d arguments", f.min, f.max)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// emitIsMemberOf translates user.isMemberOf({'group.id': {...}}) and
// user.isMemberOf({'group.profile.name': ..., 'operator': 'EXACT' |
// 'STARTS_WITH'}) (Okta Identity Engine's "Group functions").
func emitIsMemberOf(c *call) (string, error) {
	if len(c.args) != 1 {
		return "", errAt(c.at, "user.isMemberOf takes 1 argument, not %d", len(c.args))
	}
	d, ok := c.args[0].(*dict)
	if !ok {
		return "", errAt(c.args[0].pos(), "user.isMemberOf takes a map, such as {'group.id': {'00g1'}}")
	}
	op, match := "EXACT", ""
	for i, k := range d.keys {
		switch k {
		case "group.id", "group.profile.name":
			if match != "" {
				return "", errAt(d.vals[i].pos(), "user.isMemberOf takes one of group.id and group.profile.name")
			}
			match = k
		case "operator":
			var s string
			if l, ok := d.vals[i].(*lit); ok {
				s, _ = l.val.(string)
			}
			if s != "EXACT" && s != "STARTS_WITH" {
				return "", errAt(d.vals[i].pos(), "the operator of user.isMemberOf must be 'EXACT' or 'STARTS_WITH'")
			}
			op = s
		default:
			return "", errAt(d.at, "user.isMemberOf does not support %q (supported: group.id, group.profile.name, operator)", k)
		}
	}
	if match == "" {
		return "", errAt(d.at, "user.isMemberOf needs group.id or group.profile.name")
	}
	var vals string
	for i, k := range d.keys {
		if k == match {
			s, err := emit(d.vals[i])
			if err != nil {
				return "", err
			}
			vals = s
		}
	}
	if match == "group.id" && op != "EXACT" {
		return "", errAt(d.at, "user.isMemberOf compares group.id exactly; STARTS_WITH is for group.profile.name")
	}
	return "okta.isMemberOf(user.groups, " + vals + ", " + strconv.Quote(op) + ")", nil
}
