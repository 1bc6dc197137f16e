package claims

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/claims/oel"
)

// oktaInput is the user, app and scopes Okta's examples are evaluated
// for.
var oktaInput = Input{
	ClientID:   "0oa1reporting",
	ClientName: "Reporting service",
	Scopes:     []string{"openid", "profile", "read"},
	ServerID:   "default",
	Issuer:     "https://id.example.com/oauth2/default",
	User: &User{
		ID:    "00u1alice",
		Login: "alice.smith@example.com",
		Profile: map[string]any{
			"firstName":      "Alice",
			"lastName":       "Smith",
			"email":          "Alice.Smith@Example.com",
			"department":     "Engineering",
			"employeeNumber": "1234",
			"costCenter":     12.6,
			"countryCode":    "US",
			"subjectCn":      "CN=Alice Smith,OU=Engineering,O=Example Corp,C=US",
		},
		Groups: []string{"Everyone", "eng-backend", "eng-frontend", "OKTA-admins", "finance-eastern-region"},
	},
}

func evalOkta(t *testing.T, expr string, in Input) (any, bool) {
	t.Helper()
	s, err := Compile([]*Claim{{Name: "c", Language: Okta, Value: expr}}, isKnown)
	if err != nil {
		t.Fatalf("%s: Compile: %v", expr, err)
	}
	out := map[string]any{}
	if failed := s.Evaluate(in, out); failed != nil {
		t.Fatalf("%s: Evaluate: %v", expr, failed[0].Err)
	}
	v, ok := out["c"]
	return v, ok
}

// TestOktaDocumentedExamples evaluates the examples of Okta's own pages
// and the values those pages give (for literal inputs), or the values
// they must produce for oktaInput.
func TestOktaDocumentedExamples(t *testing.T) {
	oel.Now = func() time.Time { return time.Date(2015, 7, 31, 17, 18, 37, 979_000_000, time.UTC) }
	defer func() { oel.Now = time.Now }()
	tests := []struct {
		expr string
		want any // nil: the claim is left out (null)
	}{
		// Okta support, "Use the Okta Expression Language for String
		// Manipulation" (its table of functions, inputs and outputs).
		{`String.append("This is", " a test")`, "This is a test"},
		{`String.join(",", "This", "is", "a", "test")`, "This,is,a,test"},
		{`String.join("", "This", "is", "a", "test")`, "Thisisatest"},
		{`String.len("This")`, 4.0},
		{`String.removeSpaces("This is a test")`, "Thisisatest"},
		{`String.replace("This is a test", "is", "at")`, "That at a test"},
		{`String.replaceFirst("This is a test", "is", "at")`, "That is a test"},
		{`String.stringContains("This is a test", "test")`, true},
		{`String.stringContains("This is a test", "doesn'tExist")`, false},
		{`String.stringSwitch("This is a test", "default", "key1", "value1")`, "default"},
		{`String.stringSwitch("This is a test", "default", "test", "value1")`, "value1"},
		{`String.stringSwitch("First match wins", "default", "absent", "value1", "wins", "value2", "match", "value3")`, "value2"},
		{`String.stringSwitch("Substrings count", "default", "ring", "value1")`, "value1"},

		// Okta developer docs, "Okta Expression Language overview",
		// String, Array, Conversion and Time functions.
		{`String.substring("This is a test", 2, 9)`, "is is a"},
		{`String.substringAfter("abc@okta.com", "@")`, "okta.com"},
		{`String.substringBefore("abc@okta.com", "@")`, "abc"},
		{`String.toUpperCase("This")`, "THIS"},
		{`String.toLowerCase("ThiS")`, "this"},
		{`Arrays.add({10, 20, 30}, 40)`, []any{10.0, 20.0, 30.0, 40.0}},
		{`Arrays.remove({10, 20, 30}, 20)`, []any{10.0, 30.0}},
		{`Arrays.clear({10, 20, 30})`, []any{}},
		{`Arrays.get({0, 1, 2}, 0)`, 0.0},
		{`Arrays.flatten(10, {20, 30}, 40)`, []any{10.0, 20.0, 30.0, 40.0}},
		{`Arrays.contains({10, 20, 30}, 10)`, true},
		{`Arrays.contains({10, 20, 30}, 50)`, false},
		{`Arrays.size({10, 20, 30})`, 3.0},
		{`Arrays.size(NULL)`, 0.0},
		{`Arrays.isEmpty({10, 20})`, false},
		{`Arrays.isEmpty(NULL)`, true},
		{`Arrays.toCsvString({"This", "is", " a ", "test"})`, "This,is, a ,test"},
		{`Convert.toInt("1234")`, 1234.0},
		{`Convert.toInt(123.4)`, 123.0},
		{`Convert.toInt(123.6)`, 124.0},
		{`Convert.toNum("3.14")`, 3.14},
		{`Time.now()`, "2015-07-31T17:18:37.979Z"},
		{`Time.now("EST")`, "2015-07-31T13:18:37.979-04:00"},

		// The same page, "Reference user attributes" and the
		// concatenation and conditional examples.
		{`user.firstName + " " + user.lastName`, "Alice Smith"},
		{`user.profile.firstName + " " + user.profile.lastName`, "Alice Smith"},
		{`user.login`, "alice.smith@example.com"},
		{`user.getInternalProperty("id")`, "00u1alice"},
		{`user.id`, "00u1alice"},
		{`user.countryCode == "US" ? "domestic" : "international"`, "domestic"},
		{`user.nosuch == null ? "unset" : user.nosuch`, "unset"},
		{`user.nosuch`, nil},
		{`user.costCenter > 10 AND user.department == "Engineering"`, true},
		{`user.costCenter > 100 OR !(user.department != "Engineering")`, true},
		{`user.employeeNumber ?: "none"`, "1234"},
		{`user.nosuch ?: "none"`, "none"},
		{`Convert.toInt(user.costCenter)`, 13.0},
		{`Convert.toInt(user.employeeNumber) + 1`, 1235.0},
		{`'it''s ' + user.firstName`, "it's Alice"},

		// Okta help, "Expressions and examples" (smart card IdP), with
		// user for idpuser.
		{`String.substringBefore(user.email, "@")`, "Alice.Smith"},
		{`String.substring(user.subjectCn, String.len(user.subjectCn)-20, String.len(user.subjectCn))`, ",O=Example Corp,C=US"},
		{`String.toLowerCase(String.substringBefore(user.email, "@"))`, "alice.smith"},
		{`String.stringContains(user.email, "@") ? String.substringBefore(user.email, "@") : user.email`, "Alice.Smith"},

		// Okta developer docs, "Customize tokens returned from Okta with a
		// dynamic allow list" and "... static allow list" (Groups and
		// isMemberOf functions), and the support article "Limitations of
		// Group Functions - Dynamic Allowlists".
		{`Groups.startsWith("OKTA", "eng-", 10)`, []any{"eng-backend", "eng-frontend"}},
		{`Groups.startsWith("OKTA", "eng-", 1)`, []any{"eng-backend"}},
		{`Groups.contains("OKTA", "eastern", 100)`, []any{"finance-eastern-region"}},
		{`Groups.endsWith("OKTA", "-region", 50)`, []any{"finance-eastern-region"}},
		{`Groups.startsWith("OKTA", "nomatch", 10)`, []any{}},
		{`isMemberOfGroupName("Everyone")`, true},
		{`isMemberOfGroupName("Sales")`, false},
		{`isMemberOfGroupNameStartsWith("OKTA")`, true},
		{`isMemberOfGroupNameContains("front")`, true},
		{`isMemberOfAnyGroup("Sales", "eng-backend")`, true},
		{`isMemberOfAnyGroup("Sales", "Marketing")`, false},
		{`user.isMemberOf({'group.id': {'Sales', 'eng-frontend'}})`, true},
		{`user.isMemberOf({'group.profile.name': 'finance', 'operator': 'STARTS_WITH'})`, true},
		{`user.isMemberOf({'group.profile.name': 'finance'})`, false},

		// The support article "How to Write a Groups Claim Expression that
		// Will Match Against Two Differently Named Groups".
		{`Arrays.isEmpty(Arrays.toCsvString(Groups.startsWith("OKTA","eng-",100))) ?
			Arrays.isEmpty(Arrays.toCsvString(Groups.startsWith("OKTA","OKTA-",100))) ? {} : Groups.startsWith("OKTA","OKTA-",100) :
			Arrays.isEmpty(Arrays.toCsvString(Groups.startsWith("OKTA","OKTA-",100))) ? Groups.startsWith("OKTA","eng-",100) :
			Arrays.flatten(Groups.startsWith("OKTA","OKTA-",100),Groups.startsWith("OKTA","eng-",100))`,
			[]any{"OKTA-admins", "eng-backend", "eng-frontend"}},

		// app (the client): Okta's Authorization Server Claims API shows
		// the default sub claim `(appuser != null) ? appuser.userName :
		// app.clientId`; access.scope is the granted scopes.
		{`Arrays.contains(access.scope, "profile") ? "with profile" : "without"`, "with profile"},
		{`Arrays.size(access.scope)`, 3.0},
		{`app.clientId`, "0oa1reporting"},
		{`app.name`, "Reporting service"},
		{`app.clientId == "0oa1reporting" ? user.department : null`, "Engineering"},

		// Nulls, per Apache Commons StringUtils which Okta's String
		// functions follow.
		{`String.toUpperCase(user.nosuch)`, nil},
		{`String.len(user.nosuch)`, 0.0},
		{`String.stringContains(user.nosuch, "x")`, false},
		{`String.substringBefore("abc", "x")`, "abc"},
		{`String.substringAfter("abc", "x")`, ""},
		{`String.substring("abc", -2, 10)`, "bc"},
		{`String.substring("abc", 2, 1)`, ""},
		{`user.firstName + user.nosuch`, "Alicenull"},
	}
	for _, tt := range tests {
		got, ok := evalOkta(t, tt.expr, oktaInput)
		if tt.want == nil {
			if ok {
				t.Errorf("%s = %#v, want the claim left out", tt.expr, got)
			}
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s = %#v, want %#v", tt.expr, got, tt.want)
		}
	}
}

// TestOktaLoadErrors: what the project cannot evaluate fails at load
// with a message naming it.
func TestOktaLoadErrors(t *testing.T) {
	tests := []struct{ expr, want string }{
		{`String.nosuch("a")`, "unknown function String.nosuch"},
		{`nosuch(1)`, "unknown function nosuch"},
		{`String.substringBefore(user.login)`, "String.substringBefore takes 2 arguments, not 1"},
		{`String.len("a", "b")`, "String.len takes 1 argument, not 2"},
		{`String.stringSwitch("a", "d", "k")`, "the last key has no value"},
		{`Time.now("Mars/Olympus")`, `unknown time zone "Mars/Olympus"`},
		{`Groups.startsWith("active_directory", "x", 10)`, `must be "OKTA"`},
		{`Groups.startsWith("OKTA", "x", 101)`, "between 1 and 100"},
		{`app.nosuch`, "unknown attribute app.nosuch"},
		{`access.claims`, "unknown attribute access.claims"},
		{`user.address.city`, "unknown attribute user.address.city"},
		{`user`, "user alone is not a value"},
		{`idpuser.subjectCn`, "idpuser is not supported"},
		{`org.name`, "org is not supported"},
		{`user.getLinkedObject("manager")`, "user.getLinkedObject is not supported"},
		{`getFilteredGroups({"00g1"}, "group.name", 40)`, "getFilteredGroups is not supported"},
		{`user.getInternalProperty("status")`, `supports only "id"`},
		{`user.isMemberOf({'group.type': 'OKTA_GROUP'})`, `does not support "group.type"`},
		{`user.isMemberOf({'group.profile.name': 'eng', 'operator': String.toUpperCase('exact')})`, "must be 'EXACT' or 'STARTS_WITH'"},
		{`user.isMemberOf({'group.profile.name': 'eng', 'operator': app.name})`, "must be 'EXACT' or 'STARTS_WITH'"},
		{`user.login.toLowerCase()`, "methods such as .toLowerCase() are not supported"},
		{`foo.bar`, "unknown variable foo"},
		{`user.login +`, "unexpected end"},
		{`"abc`, "unterminated string"},
		{`access.scope[0]`, "indexing with [] is not supported"},
		{`1 < 2 < 3`, "comparisons do not chain"},
		{``, "empty"},
	}
	for _, tt := range tests {
		_, err := Compile([]*Claim{{Name: "c", Language: Okta, Value: tt.expr}}, isKnown)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err = %v, want %q", tt.expr, err, tt.want)
		}
	}
	_, err := Compile([]*Claim{{Name: "c", Language: "spel", Value: `"x"`}}, isKnown)
	if err == nil || !strings.Contains(err.Error(), "language must be cel or okta") {
		t.Errorf("language spel: err = %v", err)
	}
	_, err = Compile([]*Claim{{Name: "c", Language: Okta, Groups: &GroupsFilter{Type: "equals", Value: "x"}}}, isKnown)
	if err == nil || !strings.Contains(err.Error(), "no language") {
		t.Errorf("groups with language: err = %v", err)
	}
}

// TestOktaRunTimeFailures: a failure at run time (Okta fails the token)
// leaves the claim out and reports it; a user expression is left out
// without a user.
func TestOktaRunTimeFailures(t *testing.T) {
	for _, expr := range []string{
		`Convert.toInt("12.5")`,
		`Convert.toInt(user.nosuch)`,
		`Convert.toNum("abc")`,
		`1 / 0`,
		`String.len({1})`,
		`Arrays.get({1}, 3)`,
		`Groups.startsWith("OKTA", "x", Convert.toInt("0"))`,
		`user.login > 3`,
		// CEL charges custom functions one unit, so results are bounded
		// instead: eight nested tenfold replaces would build gigabytes.
		`String.replace(String.replace(String.replace(String.replace(String.replace(String.replace(String.replace(String.replace(user.login, "a", "aaaaaaaaaa"), "a", "aaaaaaaaaa"), "a", "aaaaaaaaaa"), "a", "aaaaaaaaaa"), "a", "aaaaaaaaaa"), "a", "aaaaaaaaaa"), "a", "aaaaaaaaaa"), "a", "aaaaaaaaaa")`,
	} {
		s, err := Compile([]*Claim{{Name: "c", Language: Okta, Value: expr}}, isKnown)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		names, out := failedClaims(s, oktaInput)
		if len(names) != 1 || len(out) != 0 {
			t.Errorf("%s: failures %v, out %v; want the claim left out and reported", expr, names, out)
		}
	}
	noUser := oktaInput
	noUser.User = nil
	if v, ok := evalOkta(t, `isMemberOfGroupName("Everyone")`, noUser); ok {
		t.Errorf("without a user: %v, want the claim left out", v)
	}
	if v, _ := evalOkta(t, `app.clientId + ":" + Arrays.toCsvString(access.scope)`, noUser); v != "0oa1reporting:openid,profile,read" {
		t.Errorf("without a user: %v", v)
	}
}

// TestSubject: a subject expression in either language gives a
// non-empty string or an error (the caller keeps the login).
func TestSubject(t *testing.T) {
	for _, tc := range []struct {
		e    SubjectExpr
		want string
	}{
		{SubjectExpr{Language: Okta, Value: `String.substringBefore(user.login, "@")`}, "alice.smith"},
		{SubjectExpr{Value: `user.id`}, "00u1alice"},
		{SubjectExpr{Language: Okta, Value: `user.employeeNumber`}, "1234"},
	} {
		s, err := CompileSubject(&tc.e)
		if err != nil {
			t.Fatalf("%v: %v", tc.e, err)
		}
		if got, err := s.Evaluate(oktaInput); err != nil || got != tc.want {
			t.Errorf("%v = %q, %v; want %q", tc.e, got, err, tc.want)
		}
	}
	for _, v := range []string{`user.nosuch`, `""`, `Convert.toInt(user.employeeNumber)`} {
		s, err := CompileSubject(&SubjectExpr{Language: Okta, Value: v})
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if got, err := s.Evaluate(oktaInput); err == nil {
			t.Errorf("%s = %q, want an error", v, got)
		}
	}
	if _, err := CompileSubject(&SubjectExpr{Language: Okta, Value: `String.nosuch()`}); err == nil || !strings.Contains(err.Error(), "subject: the Okta expression is not supported") {
		t.Errorf("bad subject: %v", err)
	}
	if s, err := CompileSubject(nil); s != nil || err != nil {
		t.Errorf("nil: %v %v", s, err)
	}
}
