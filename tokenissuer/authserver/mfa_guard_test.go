package authserver

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/apiaccess/caddy-apiaccess/internal/duration"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
)

// TestMFAPasswordNeverEnrollsBesideAFactor: a user who has a factor is
// never offered enrollment after the password alone (acr phr asks for a
// key she lacks): she is refused, and pointed to the settings page.
func TestMFAPasswordNeverEnrollsBesideAFactor(t *testing.T) {
	e := newMFAEnv(t, embeddedStore(t), 1)
	en, _ := e.nodes[0].factors.EnrollTOTP(t.Context(), "00u1alice", "alice@example.com")
	if err := e.nodes[0].factors.ActivateTOTP(t.Context(), "00u1alice", en.FactorID, e.code(en.Secret)); err != nil {
		t.Fatal(err)
	}
	p, _ := e.openFor(0, "web", url.Values{"acr_values": {acrPhr}})
	r := e.signIn(p, "alice@example.com", alicePass, "")
	if r.status != http.StatusForbidden || strings.Contains(r.body, `data-webauthn="create"`) || strings.Contains(r.body, "totp_secret") || r.session() {
		t.Fatalf("phr for a user with only TOTP: %d %.300s", r.status, r.body)
	}
	if !strings.Contains(r.body, "account settings") {
		t.Fatalf("the refusal does not say where to add a key: %.300s", r.body)
	}
}

// TestMFAStepUpNeverEnrollsWithTheSessionAlone: a session of a password
// sign-in reaching a client whose rule asks for a factor the user has
// not set up gets the password page first, then the enrollment: a
// session cookie alone never adds a factor.
func TestMFAStepUpNeverEnrollsWithTheSessionAlone(t *testing.T) {
	e := newMFAEnv(t, embeddedStore(t), 1)
	p, _ := e.openFor(0, "web", nil)
	r := e.signIn(p, "alice@example.com", alicePass, "")
	sess := sessionCookieOf(t, r)
	p, r = e.openFor(0, "admin", nil, sess)
	if r.status != 200 || !strings.Contains(r.body, `name="password"`) || strings.Contains(r.body, "totp_secret") {
		t.Fatalf("step-up to an enrollment: want the password page: %d %.300s", r.status, r.body)
	}
	if r = e.signIn(p, "alice@example.com", alicePass, ""); r.status != 200 || !strings.Contains(r.body, "totp_secret") {
		t.Fatalf("after the password: %d %.300s", r.status, r.body)
	}
}

// TestMFAAcrKeepsEnrollmentDeny: acr_values cannot turn on enrollment a
// matched rule refuses.
func TestMFAAcrKeepsEnrollmentDeny(t *testing.T) {
	users := []*directory.User{{ID: "00u1alice", Login: "alice@example.com", PasswordHash: testBcryptCost(t, alicePass, bcrypt.MinCost), Groups: []string{"admins"}}}
	e := &mfaEnv{signInEnv: newSignInEnv(t, embeddedStore(t), 1, users, func(o *Options) {
		o.SignOnPolicies = []*policy.SignOnPolicy{{Name: "p", Clients: []string{"*"}, Rules: []*policy.SignOnRule{
			{Name: "r", People: &policy.People{Groups: []string{"admins"}}, Factor: policy.FactorAny, Enrollment: policy.EnrollDeny}}}}
	})}
	for _, acr := range []string{"", acr2FAAny, acrPhr} {
		extra := url.Values{}
		if acr != "" {
			extra.Set("acr_values", acr)
		}
		p, _ := e.openFor(0, "web", extra)
		if r := e.signIn(p, "alice@example.com", alicePass, ""); r.status != http.StatusForbidden || strings.Contains(r.body, "totp_secret") {
			t.Fatalf("acr %q under enrollment deny: %d %.200s", acr, r.status, r.body)
		}
	}
}

// TestMFAPagesAllowTheClientInFormAction: the factor page's answer may
// redirect to the client, so its CSP form-action names the client's
// origin (browsers stop a form's redirect to an origin it lacks).
func TestMFAPagesAllowTheClientInFormAction(t *testing.T) {
	e := newMFAEnv(t, embeddedStore(t), 1)
	p, _ := e.openFor(0, "admin", nil)
	req, _ := http.NewRequest(http.MethodPost, e.urls[0]+"/oauth2/v1/signin", strings.NewReader(url.Values{
		"txn": {p.txn}, "csrf": {p.csrf}, "username": {"alice@example.com"}, "password": {alicePass}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range p.cookies {
		req.AddCookie(c)
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "form-action 'self' https://app.test") || !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "img-src data:") {
		t.Fatalf("enrollment page CSP %q", csp)
	}
}

// TestMFASignInsKeepTheAddressCount: signing in with a factor again and
// again from one address (an office behind one NAT) never locks it.
func TestMFASignInsKeepTheAddressCount(t *testing.T) {
	e := newMFAEnv(t, embeddedStore(t), 1)
	en, _ := e.nodes[0].factors.EnrollTOTP(t.Context(), "00u1alice", "alice@example.com")
	if err := e.nodes[0].factors.ActivateTOTP(t.Context(), "00u1alice", en.FactorID, e.code(en.Secret)); err != nil {
		t.Fatal(err)
	}
	for n := range maxAddrFailures + 5 {
		e.clock.Advance(30 * time.Second)
		p, _ := e.openFor(0, "admin", nil)
		p = next(t, p, e.signIn(p, "alice@example.com", alicePass, ""))
		if r := e.factor(p, "totp", e.code(en.Secret)); r.code() == "" {
			t.Fatalf("MFA sign-in %d from one address: %d", n+1, r.status)
		}
	}
}

// TestSignOnDenyOfADevice: a deny rule for the device's client refuses
// the device (its poll says access_denied), not a redirect to nowhere.
func TestSignOnDenyOfADevice(t *testing.T) {
	e := newFlowEnvWith(t, "https://id.example.com", func(o *Options) {
		o.SignOnPolicies = []*policy.SignOnPolicy{{Name: "no-tv", Clients: []string{"tv"}, Rules: []*policy.SignOnRule{{Name: "all", Access: policy.AccessDeny}}}}
	}, nil)
	da := e.deviceAuthorize()
	w := e.browse(http.MethodGet, strings.TrimPrefix(da.complete, "https://id.example.com"), nil, e.session("u1"))
	if w.Code != 200 || w.Header().Get("Location") != "" {
		t.Fatalf("denied device: %d %q", w.Code, w.Header().Get("Location"))
	}
	if b := e.poll(da); b["error"] != "access_denied" {
		t.Fatalf("denied device's poll: %v", b)
	}
}

// TestSignOnReauthentication: a rule's reauthenticate_after sends a
// session older than it to the password page, a younger one through;
// reauthenticate_every_sign_in asks every time.
func TestSignOnReauthentication(t *testing.T) {
	users := []*directory.User{{ID: "00u1alice", Login: "alice@example.com", PasswordHash: testBcryptCost(t, alicePass, bcrypt.MinCost)}}
	clock := newMFAEnvClock()
	e := &mfaEnv{clock: clock, signInEnv: newSignInEnv(t, embeddedStore(t), 1, users, func(o *Options) {
		o.Now = clock.Now
		o.Clients = append(o.Clients, &clientauth.Client{ID: "admin", Secret: "admin-secret", GrantTypes: []string{GrantAuthorizationCode}, RedirectURIs: []string{redirectURI}})
		o.SignOnPolicies = []*policy.SignOnPolicy{
			{Name: "web", Priority: 1, Clients: []string{"web"}, Rules: []*policy.SignOnRule{{Name: "hourly", Reauthenticate: duration.Duration(time.Hour)}}},
			{Name: "admin", Priority: 2, Clients: []string{"admin"}, Rules: []*policy.SignOnRule{{Name: "always", ReauthenticateEverySignIn: true}}},
		}
	})}
	p, _ := e.openFor(0, "web", nil)
	r := e.signIn(p, "alice@example.com", alicePass, "")
	sess := sessionCookieOf(t, r)
	e.clock.Advance(30 * time.Minute)
	if _, r := e.openFor(0, "web", nil, sess); !strings.Contains(r.location, "code=") {
		t.Fatalf("a 30-minute session under a 1h rule: %d %q", r.status, r.location)
	}
	if _, r := e.openFor(0, "admin", nil, sess); r.status != 200 || !strings.Contains(r.body, `name="password"`) {
		t.Fatalf("every sign-in: want the password page: %d %q", r.status, r.location)
	}
	e.clock.Advance(31 * time.Minute)
	if _, r := e.openFor(0, "web", nil, sess); r.status != 200 || !strings.Contains(r.body, `name="password"`) {
		t.Fatalf("a 61-minute session under a 1h rule: want the password page: %d %q", r.status, r.location)
	}
}
