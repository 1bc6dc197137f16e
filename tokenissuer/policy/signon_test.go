package policy

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/configerr"
	"github.com/apiaccess/caddy-apiaccess/internal/duration"
)

var (
	alice   = &User{ID: "00u-alice", Login: "alice@example.com", Groups: []string{"admins", "staff"}}
	bob     = &User{ID: "00u-bob", Login: "bob@example.com", Groups: []string{"staff"}}
	carol   = &User{ID: "00u-carol", Login: "carol@example.com", Groups: []string{"contractors", "staff"}}
	mallory = &User{ID: "00u-mallory", Login: "Mallory@Example.com", Groups: []string{"admins", "contractors"}}
)

// signOnPolicies is the configuration every evaluation case runs on,
// deliberately listed out of priority order.
func signOnPolicies() []*SignOnPolicy {
	return []*SignOnPolicy{
		{Name: "default", Priority: 10, Clients: []string{"*"}, Rules: []*SignOnRule{
			{Name: "everyone", Factor: FactorNone},
		}},
		{Name: "admin-console", Priority: 1, Clients: []string{"admin-console", "ops-cli"}, Rules: []*SignOnRule{
			// Listed before deny-contractors but of lower precedence.
			{Name: "admins-mfa", Priority: 2, People: &People{Groups: []string{"admins"}},
				Factor: FactorPhishingResistant, Reauthenticate: duration.Duration(12 * time.Hour)},
			{Name: "deny-contractors", Priority: 1, People: &People{Groups: []string{"contractors"}}, Access: AccessDeny},
			{Name: "bob-every-time", Priority: 3, People: &People{Users: []string{"bob@example.com"}},
				Factor: FactorAny, ReauthenticateEverySignIn: true, Enrollment: EnrollDeny},
			// Nobody else matches in this policy: evaluation goes on.
		}},
		// Same priority as "staff-a", listed first: it goes first.
		{Name: "staff-first", Priority: 5, Clients: []string{"portal"}, Rules: []*SignOnRule{
			{Name: "staff-any", People: &People{Groups: []string{"staff"}, ExcludeUsers: []string{"00u-bob"}}, Factor: FactorAny},
		}},
		{Name: "staff-a", Priority: 5, Clients: []string{"portal"}, Rules: []*SignOnRule{
			{Name: "all-staff", People: &People{Groups: []string{"staff"}}, Factor: FactorNone, Reauthenticate: duration.Duration(time.Hour)},
		}},
	}
}

// TestEvaluateSignOn is the per-rule table: which policy and rule
// decide, and what the decision demands.
func TestEvaluateSignOn(t *testing.T) {
	none := SignOnDecision{Policy: "default", Rule: "everyone", Factor: FactorNone}
	for _, tc := range []struct {
		name   string
		client string
		user   *User
		want   SignOnDecision
	}{
		{"policy priority beats config order; rule by group", "admin-console", alice,
			SignOnDecision{Policy: "admin-console", Rule: "admins-mfa", Factor: FactorPhishingResistant, MaxSessionAge: 12 * time.Hour, EnrollAtSignIn: true}},
		{"second client of the policy", "ops-cli", alice,
			SignOnDecision{Policy: "admin-console", Rule: "admins-mfa", Factor: FactorPhishingResistant, MaxSessionAge: 12 * time.Hour, EnrollAtSignIn: true}},
		{"rule priority beats config order: deny first", "admin-console", mallory,
			SignOnDecision{Policy: "admin-console", Rule: "deny-contractors", Deny: true, Factor: FactorNone}},
		{"deny for a contractor", "admin-console", carol,
			SignOnDecision{Policy: "admin-console", Rule: "deny-contractors", Deny: true, Factor: FactorNone}},
		{"user by login; every sign-in; enrollment denied", "admin-console", bob,
			SignOnDecision{Policy: "admin-console", Rule: "bob-every-time", Factor: FactorAny, EverySignIn: true}},
		{"login compared in any case", "admin-console", &User{ID: "x", Login: "BOB@example.com"},
			SignOnDecision{Policy: "admin-console", Rule: "bob-every-time", Factor: FactorAny, EverySignIn: true}},
		{"no rule of the covering policy matches: next policy", "admin-console", &User{ID: "00u-dave", Login: "dave@example.com", Groups: []string{"staff"}}, none},
		{"client not covered by the stricter policy", "reporting", alice, none},
		{"equal priority keeps config order", "portal", carol,
			SignOnDecision{Policy: "staff-first", Rule: "staff-any", Factor: FactorAny, EnrollAtSignIn: true}},
		{"excluded user falls to the next policy of equal priority", "portal", bob,
			SignOnDecision{Policy: "staff-a", Rule: "all-staff", Factor: FactorNone, MaxSessionAge: time.Hour}},
		{"no user: people rules skipped", "admin-console", nil, none},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := EvaluateSignOn(signOnPolicies(), SignOnRequest{ClientID: tc.client, User: tc.user})
			if !ok || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v (ok %v), want %+v", got, ok, tc.want)
			}
		})
	}
}

// TestEvaluateSignOnNoMatch: without policies, or with none covering
// the client or matching the user, the decision is today's: the
// password alone, ok false.
func TestEvaluateSignOnNoMatch(t *testing.T) {
	want := SignOnDecision{Factor: FactorNone}
	onlyAdmins := []*SignOnPolicy{{Name: "p", Clients: []string{"admin-console"}, Rules: []*SignOnRule{
		{Name: "r", People: &People{Groups: []string{"admins"}, ExcludeGroups: []string{"contractors"}}, Factor: FactorAny},
	}}}
	for _, tc := range []struct {
		name string
		ps   []*SignOnPolicy
		req  SignOnRequest
	}{
		{"no policy", nil, SignOnRequest{ClientID: "c", User: alice}},
		{"empty list", []*SignOnPolicy{}, SignOnRequest{ClientID: "c", User: alice}},
		{"client not covered", onlyAdmins, SignOnRequest{ClientID: "other", User: alice}},
		{"user not included", onlyAdmins, SignOnRequest{ClientID: "admin-console", User: bob}},
		{"exclusion wins over inclusion", onlyAdmins, SignOnRequest{ClientID: "admin-console", User: mallory}},
	} {
		d, ok := EvaluateSignOn(tc.ps, tc.req)
		if ok || d != want {
			t.Errorf("%s: got %+v (ok %v), want %+v, false", tc.name, d, ok, want)
		}
	}
}

// TestEvaluateSignOnLeavesConfig: evaluation sorts a copy; the
// configuration keeps its order (it is also the JSON the app shows).
func TestEvaluateSignOnLeavesConfig(t *testing.T) {
	ps := signOnPolicies()
	EvaluateSignOn(ps, SignOnRequest{ClientID: "admin-console", User: alice})
	if ps[0].Name != "default" || ps[1].Rules[0].Name != "admins-mfa" {
		t.Errorf("configuration reordered: %s, %s", ps[0].Name, ps[1].Rules[0].Name)
	}
}

func TestCompileSignOnAccepts(t *testing.T) {
	known := SignOnKnown{Clients: map[string]bool{"admin-console": true, "ops-cli": true, "portal": true},
		Groups: map[string]bool{"admins": true, "staff": true, "contractors": true}}
	if err := CompileSignOn(signOnPolicies(), known); err != nil {
		t.Fatal(err)
	}
	if err := CompileSignOn(nil, SignOnKnown{}); err != nil {
		t.Fatal(err)
	}
	// Nothing known: clients and groups are not checked.
	if err := CompileSignOn(signOnPolicies(), SignOnKnown{}); err != nil {
		t.Fatal(err)
	}
}

func TestCompileSignOnErrors(t *testing.T) {
	pol := func(rules ...*SignOnRule) []*SignOnPolicy {
		return []*SignOnPolicy{{Name: "p", Clients: []string{"*"}, Rules: rules}}
	}
	ok := func() *SignOnRule { return &SignOnRule{Name: "r"} }
	known := SignOnKnown{Clients: map[string]bool{"app": true}, Groups: map[string]bool{"admins": true}}
	for _, tc := range []struct {
		name  string
		ps    []*SignOnPolicy
		auth  []string
		want  string // the whole message
		field string // configerr field
	}{
		{"policy without name", []*SignOnPolicy{{Clients: []string{"*"}, Rules: []*SignOnRule{ok()}}}, nil, `sign on policy "": name is required`, ""},
		{"duplicate policy", append(pol(ok()), pol(ok())...), nil, `sign on policy "p": defined twice`, ""},
		{"no clients", []*SignOnPolicy{{Name: "p", Rules: []*SignOnRule{ok()}}}, nil, `sign on policy "p": clients is required (use "*" for all)`, "clients"},
		{"star not alone", []*SignOnPolicy{{Name: "p", Clients: []string{"*", "app"}, Rules: []*SignOnRule{ok()}}}, nil, `sign on policy "p": clients: "*" must stand alone`, "clients"},
		{"unknown client", []*SignOnPolicy{{Name: "p", Clients: []string{"app", "nosuch"}, Rules: []*SignOnRule{ok()}}}, nil, `sign on policy "p": unknown client "nosuch"`, "clients"},
		{"no rules", pol(), nil, `sign on policy "p": a sign-on policy needs at least one rule`, ""},
		{"rule without name", pol(&SignOnRule{}), nil, `sign on policy "p": rule "": name is required`, ""},
		{"duplicate rule", pol(ok(), ok()), nil, `sign on policy "p": rule "r": defined twice`, ""},
		{"unknown group", pol(&SignOnRule{Name: "r", People: &People{Groups: []string{"admins", "admin"}}}), nil, `sign on policy "p": rule "r": unknown group "admin"`, "groups"},
		{"unknown excluded group", pol(&SignOnRule{Name: "r", People: &People{ExcludeGroups: []string{"nosuch"}}}), nil, `sign on policy "p": rule "r": unknown group "nosuch"`, "exclude_groups"},
		{"empty user", pol(&SignOnRule{Name: "r", People: &People{Users: []string{""}}}), nil, `sign on policy "p": rule "r": users: empty value`, "users"},
		{"unknown access", pol(&SignOnRule{Name: "r", Access: "allowed"}), nil, `sign on policy "p": rule "r": access "allowed": must be allow or deny`, "access"},
		{"unknown factor", pol(&SignOnRule{Name: "r", Factor: "sms"}), nil, `sign on policy "p": rule "r": factor "sms": must be none, any or phishing_resistant`, "factor"},
		{"unknown enrollment", pol(&SignOnRule{Name: "r", Factor: FactorAny, Enrollment: "later"}), nil, `sign on policy "p": rule "r": enrollment "later": must be at_sign_in or deny`, "enrollment"},
		{"negative reauthenticate_after", pol(&SignOnRule{Name: "r", Reauthenticate: duration.Duration(-time.Hour)}), nil, `sign on policy "p": rule "r": reauthenticate_after must not be negative`, "reauthenticate_after"},
		{"both re-authentication settings", pol(&SignOnRule{Name: "r", Reauthenticate: duration.Duration(time.Hour), ReauthenticateEverySignIn: true}), nil,
			`sign on policy "p": rule "r": give reauthenticate_after or reauthenticate_every_sign_in, not both`, "reauthenticate_every_sign_in"},
		{"deny with a factor", pol(&SignOnRule{Name: "r", Access: AccessDeny, Factor: FactorAny}), nil, `sign on policy "p": rule "r": a rule with access deny takes no factor`, "factor"},
		{"deny with factor none", pol(&SignOnRule{Name: "r", Access: AccessDeny, Factor: FactorNone}), nil, `sign on policy "p": rule "r": a rule with access deny takes no factor`, "factor"},
		{"deny with reauthenticate_after", pol(&SignOnRule{Name: "r", Access: AccessDeny, Reauthenticate: duration.Duration(time.Hour)}), nil, `sign on policy "p": rule "r": a rule with access deny takes no reauthenticate_after`, "reauthenticate_after"},
		{"deny with every sign-in", pol(&SignOnRule{Name: "r", Access: AccessDeny, ReauthenticateEverySignIn: true}), nil, `sign on policy "p": rule "r": a rule with access deny takes no reauthenticate_every_sign_in`, "reauthenticate_every_sign_in"},
		{"deny with enrollment", pol(&SignOnRule{Name: "r", Access: AccessDeny, Enrollment: EnrollDeny}), nil, `sign on policy "p": rule "r": a rule with access deny takes no enrollment`, "enrollment"},
		{"enrollment without a factor", pol(&SignOnRule{Name: "r", Enrollment: EnrollAtSignIn}), nil, `sign on policy "p": rule "r": enrollment applies only to a rule with a factor (any or phishing_resistant)`, "enrollment"},
		{"phishing resistant without webauthn", pol(&SignOnRule{Name: "r", Factor: FactorPhishingResistant}), []string{AuthenticatorTOTP},
			`sign on policy "p": rule "r": factor phishing_resistant needs the webauthn authenticator, which is not among the authenticators [totp]`, "factor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := known
			k.Authenticators = tc.auth
			err := CompileSignOn(tc.ps, k)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			var ce *configerr.Error
			if !errors.As(err, &ce) || ce.Field != tc.field || ce.Items[0].Kind != "sign_on_policy" {
				t.Errorf("configerr %+v: want field %q inside sign_on_policy", ce, tc.field)
			}
		})
	}
}

func TestAuthenticators(t *testing.T) {
	for _, tc := range []struct {
		list []string
		want string // "" for no error
	}{
		{nil, ""},
		{[]string{"totp"}, ""},
		{[]string{"webauthn", "totp"}, ""},
		{[]string{"sms"}, `unknown authenticator "sms" (known: totp, webauthn)`},
		{[]string{"totp", "totp"}, `authenticator "totp" given twice`},
	} {
		err := CheckAuthenticators(tc.list)
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want %q", tc.list, err, tc.want)
		}
	}
	if got := Authenticators(nil); !reflect.DeepEqual(got, []string{"totp", "webauthn"}) {
		t.Errorf("default %v", got)
	}
	if got := Authenticators([]string{"webauthn"}); !reflect.DeepEqual(got, []string{"webauthn"}) {
		t.Errorf("given %v", got)
	}
}
