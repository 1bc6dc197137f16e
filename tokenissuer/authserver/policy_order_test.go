package authserver

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/bcrypt"

	"github.com/apiaccess/caddy-apiaccess/internal/duration"
	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
)

// newPolicyEnv is a flowEnv whose server "default" has the given
// policies and scopes read, write and pay; alice (u1) is in group
// staff, mallory (u2) in staff and contractors.
func newPolicyEnv(t *testing.T, policies []*policy.Policy) *flowEnv {
	t.Helper()
	hash, _ := bcrypt.GenerateFromPassword([]byte(alicePassword), bcrypt.MinCost)
	users, _ := json.Marshal(map[string]any{"users": []map[string]any{
		{"id": "u1", "login": "alice@example.com", "password_hash": string(hash), "groups": []string{"staff"}},
		{"id": "u2", "login": "mallory@example.com", "groups": []string{"staff", "contractors"}}}})
	dir, err := directory.ParseFile(users)
	if err != nil {
		t.Fatal(err)
	}
	c := testkit.NewClock(time.Now())
	core, logs := observer.New(zap.InfoLevel)
	iss, err := New(Options{
		BaseURL: "https://id.example.com", Directory: dir, Now: c.Now, OrgSigningAlg: "ES256", Logger: zap.New(core),
		Servers: map[string]*ServerConfig{"default": {
			SigningAlg: "ES256",
			Scopes:     []*Scope{{Name: "read", Default: true}, {Name: "write"}, {Name: "pay"}},
			Policies:   policies,
		}},
		Clients: []*clientauth.Client{
			{ID: "web", Name: "Web App", Secret: "web-secret", GrantTypes: []string{GrantAuthorizationCode}, RedirectURIs: []string{webCB}},
			{ID: "svc", Secret: "svc-secret"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &flowEnv{t: t, iss: iss, st: startIssuer(t, iss, nil), clock: c, logs: logs, core: core}
}

// Policy and rule builders for the table.
func pol(name string, prio int, clients []string, rules ...*policy.Rule) *policy.Policy {
	return &policy.Policy{Name: name, Priority: prio, Clients: clients, Rules: rules}
}

func rule(name string, lifetime time.Duration, grants, scopes []string, people *policy.People) *policy.Rule {
	return &policy.Rule{Name: name, GrantTypes: grants, Scopes: scopes, People: people, AccessTokenLifetime: duration.Duration(lifetime)}
}

var (
	ccGrants   = []string{GrantClientCredentials}
	codeGrants = []string{GrantAuthorizationCode}
	anyScope   = []string{policy.Any}
	onlySvc    = []string{"svc"}
	onlyWeb    = []string{"web"}
	anyClient  = []string{policy.Any}
)

// TestPolicyOrderAtTokenEndpoint runs Okta's evaluation order through
// the token endpoint: policies by priority, in each covering policy its
// rules by priority, the first rule whose grant type, people and scopes
// all match decides; a covering policy with no matching rule does not
// end evaluation ("evaluation will continue to the next Access
// Policy/Rule ... until a matching policy is found"). When nothing
// matches: access_denied "Policy evaluation failed for this request,
// please check the policy configurations." and Okta's
// no_matching_policy reason in the event, with why for people.
func TestPolicyOrderAtTokenEndpoint(t *testing.T) {
	type request struct {
		user   string // "" for client_credentials as onlySvc, else a code for web
		scopes string
	}
	for _, tc := range []struct {
		name     string
		policies []*policy.Policy
		req      request
		// policy and rule that decide, and the token's lifetime; policy
		// "" means access_denied, with detail in the event's detail.
		policy, rule string
		lifetime     time.Duration
		detail       string
	}{
		{name: "client in two policies: the first by priority decides",
			policies: []*policy.Policy{pol("Everyone", 2, anyClient, rule("any", 20*time.Minute, ccGrants, anyScope, nil)),
				pol("Services", 1, onlySvc, rule("svc", 10*time.Minute, ccGrants, anyScope, nil))},
			req: request{scopes: "read"}, policy: "Services", rule: "svc", lifetime: 10 * time.Minute},
		{name: "client in two policies: equal priority keeps configuration order",
			policies: []*policy.Policy{pol("Everyone", 0, anyClient, rule("any", 20*time.Minute, ccGrants, anyScope, nil)),
				pol("Services", 0, onlySvc, rule("svc", 10*time.Minute, ccGrants, anyScope, nil))},
			req: request{scopes: "read"}, policy: "Everyone", rule: "any", lifetime: 20 * time.Minute},
		{name: "first has no rule for the grant",
			policies: []*policy.Policy{pol("Browser apps", 1, anyClient, rule("code only", 10*time.Minute, codeGrants, anyScope, nil)),
				pol("Machines", 2, onlySvc, rule("cc", 30*time.Minute, ccGrants, anyScope, nil))},
			req: request{scopes: "read"}, policy: "Machines", rule: "cc", lifetime: 30 * time.Minute},
		{name: "first has no rule for a scope",
			policies: []*policy.Policy{pol("Readers", 1, onlySvc, rule("read", 10*time.Minute, ccGrants, []string{"read"}, nil)),
				pol("Writers", 2, onlySvc, rule("read write", 30*time.Minute, ccGrants, []string{"read", "write"}, nil))},
			req: request{scopes: "read write"}, policy: "Writers", rule: "read write", lifetime: 30 * time.Minute},
		{name: "first has a rule for the scope (control)",
			policies: []*policy.Policy{pol("Readers", 1, onlySvc, rule("read", 10*time.Minute, ccGrants, []string{"read"}, nil)),
				pol("Writers", 2, onlySvc, rule("read write", 30*time.Minute, ccGrants, []string{"read", "write"}, nil))},
			req: request{scopes: "read"}, policy: "Readers", rule: "read", lifetime: 10 * time.Minute},
		{name: "first has no rules at all",
			policies: []*policy.Policy{pol("Empty", 1, onlySvc), pol("Machines", 2, onlySvc, rule("cc", 30*time.Minute, ccGrants, anyScope, nil))},
			req:      request{scopes: "read"}, policy: "Machines", rule: "cc", lifetime: 30 * time.Minute},
		{name: "a later rule of the first policy before the next policy",
			policies: []*policy.Policy{pol("Services", 1, onlySvc, rule("write", 10*time.Minute, ccGrants, []string{"write"}, nil),
				rule("read", 15*time.Minute, ccGrants, []string{"read"}, nil)),
				pol("Everyone", 2, anyClient, rule("any", 30*time.Minute, ccGrants, anyScope, nil))},
			req: request{scopes: "read"}, policy: "Services", rule: "read", lifetime: 15 * time.Minute},
		{name: "a rule naming people never matches client_credentials",
			policies: []*policy.Policy{pol("Staff", 1, onlySvc, rule("staff", 10*time.Minute, ccGrants, anyScope, &policy.People{Groups: []string{"staff"}})),
				pol("Machines", 2, onlySvc, rule("cc", 30*time.Minute, ccGrants, anyScope, nil))},
			req: request{scopes: "read"}, policy: "Machines", rule: "cc", lifetime: 30 * time.Minute},
		{name: "user excluded by login in the first",
			policies: []*policy.Policy{pol("Main", 1, onlyWeb, rule("not mallory", 10*time.Minute, codeGrants, anyScope, &policy.People{ExcludeUsers: []string{"MALLORY@example.com"}})),
				pol("Fallback", 2, onlyWeb, rule("everyone", 30*time.Minute, codeGrants, anyScope, nil))},
			req: request{user: "u2", scopes: "read"}, policy: "Fallback", rule: "everyone", lifetime: 30 * time.Minute},
		{name: "user not excluded in the first (control)",
			policies: []*policy.Policy{pol("Main", 1, onlyWeb, rule("not mallory", 10*time.Minute, codeGrants, anyScope, &policy.People{ExcludeUsers: []string{"MALLORY@example.com"}})),
				pol("Fallback", 2, onlyWeb, rule("everyone", 30*time.Minute, codeGrants, anyScope, nil))},
			req: request{user: "u1", scopes: "read"}, policy: "Main", rule: "not mallory", lifetime: 10 * time.Minute},
		{name: "user excluded by group in the first, though included by another group",
			policies: []*policy.Policy{pol("Staff", 1, onlyWeb, rule("staff", 10*time.Minute, codeGrants, anyScope,
				&policy.People{Groups: []string{"staff"}, ExcludeGroups: []string{"contractors"}})),
				pol("Fallback", 2, onlyWeb, rule("everyone", 30*time.Minute, codeGrants, anyScope, nil))},
			req: request{user: "u2", scopes: "read"}, policy: "Fallback", rule: "everyone", lifetime: 30 * time.Minute},
		{name: "user excluded everywhere",
			policies: []*policy.Policy{pol("Staff", 1, onlyWeb, rule("staff", 10*time.Minute, codeGrants, anyScope,
				&policy.People{Groups: []string{"staff"}, ExcludeGroups: []string{"contractors"}})),
				pol("Others", 2, onlyWeb, rule("u1 only", 30*time.Minute, codeGrants, anyScope, &policy.People{Users: []string{"u1"}}))},
			req: request{user: "u2", scopes: "read"}, detail: `no rule matched in the policies covering the client: "Staff", "Others"`},
		{name: "nothing matches: no rule for the scope or the grant",
			policies: []*policy.Policy{pol("Readers", 1, onlySvc, rule("read", 10*time.Minute, ccGrants, []string{"read"}, nil)),
				pol("Browser apps", 2, anyClient, rule("code", 30*time.Minute, codeGrants, anyScope, nil))},
			req: request{scopes: "pay"}, detail: `no rule matched in the policies covering the client: "Readers", "Browser apps"`},
		{name: "nothing matches: no policy covers the client",
			policies: []*policy.Policy{pol("Web only", 1, onlyWeb, rule("any", 10*time.Minute, ccGrants, anyScope, nil))},
			req:      request{scopes: "read"}, detail: "no policy covers the client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newPolicyEnv(t, tc.policies)
			var status int
			var body map[string]any
			client := "svc"
			if tc.req.user == "" {
				status, body = e.post(tokenEP, "svc", url.Values{"grant_type": {"client_credentials"}, "scope": {tc.req.scopes}})
			} else {
				client = "web"
				status, body = e.redeem("web", e.codeFor(tc.req.user, "web", webCB, "", strings.Fields(tc.req.scopes)...), webCB, "")
			}
			if tc.policy == "" {
				if status != http.StatusBadRequest || body["error"] != "access_denied" || body["error_description"] != oauth.ErrAccessDenied.Description {
					t.Fatalf("want access_denied, got %d %v", status, body)
				}
				ev := e.event(EventTokenDenied)
				if ev["outcome"] != "FAILURE" || ev["error"] != "access_denied" || ev["reason"] != policy.NoMatchingPolicy ||
					ev["detail"] != tc.detail || ev["client_id"] != client {
					t.Fatalf("denied event: %v", ev)
				}
				return
			}
			if status != http.StatusOK || body["expires_in"] != tc.lifetime.Seconds() {
				t.Fatalf("want a token of %s, got %d %v", tc.lifetime, status, body)
			}
			if ev := e.event(EventTokenGrant); ev["policy"] != tc.policy || ev["rule"] != tc.rule {
				t.Fatalf("decided by %v/%v, want %s/%s", ev["policy"], ev["rule"], tc.policy, tc.rule)
			}
		})
	}
}

// TestNoMatchingPolicyAtAuthorize: a signed-in user whom no policy lets
// in is sent back with access_denied, and the authorize event carries
// no_matching_policy, the policy tried and why.
func TestNoMatchingPolicyAtAuthorize(t *testing.T) {
	e := newPolicyEnv(t, []*policy.Policy{pol("Main", 1, onlyWeb, rule("not mallory", 10*time.Minute, codeGrants, anyScope,
		&policy.People{ExcludeUsers: []string{"u2"}}))})
	q := url.Values{"client_id": {"web"}, "response_type": {"code"}, "scope": {"read"}, "state": {"st"}, "redirect_uri": {webCB}}
	w := e.browse(http.MethodGet, "/oauth2/default/v1/authorize?"+q.Encode(), nil, e.session("u2"))
	loc, err := url.Parse(w.Header().Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), webCB+"?") || loc.Query().Get("error") != "access_denied" ||
		loc.Query().Get("error_description") != oauth.ErrAccessDenied.Description || loc.Query().Get("state") != "st" {
		t.Fatalf("authorize: %d %q", w.Code, w.Header().Get("Location"))
	}
	ev := e.event(EventAuthorize)
	if ev["reason"] != policy.NoMatchingPolicy || ev["detail"] != `no rule matched in the policies covering the client: "Main"` ||
		ev["policy"] != "Main" || ev["user_id"] != "u2" || ev["client_id"] != "web" || ev["error"] != "access_denied" {
		t.Fatalf("authorize event: %v", ev)
	}
	// alice is let in: the same request goes on to the code.
	w = e.browse(http.MethodGet, "/oauth2/default/v1/authorize?"+q.Encode(), nil, e.session("u1"))
	if loc := w.Header().Get("Location"); !strings.Contains(loc, "code=") {
		t.Fatalf("alice: %d %q", w.Code, loc)
	}
}
