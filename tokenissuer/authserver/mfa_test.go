package authserver

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"golang.org/x/crypto/bcrypt"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// mfaEnv is a sign-in environment with sign-on policies: client
// "admin" asks admins for a second factor (enrolled at sign-in), denies
// contractors; client "web" asks nobody; a fake clock drives TOTP steps.
type mfaEnv struct {
	*signInEnv
	clock *testkit.Clock
}

func newMFAEnv(t *testing.T, st store.Store, nodes int) *mfaEnv {
	t.Helper()
	users := []*directory.User{
		{ID: "00u1alice", Login: "alice@example.com", PasswordHash: testBcryptCost(t, alicePass, bcrypt.MinCost), Groups: []string{"admins"}},
		{ID: "00u3carol", Login: "carol@example.com", PasswordHash: testBcryptCost(t, alicePass, bcrypt.MinCost), Groups: []string{"contractors"}},
		{ID: "00u4dave", Login: "dave@example.com", PasswordHash: testBcryptCost(t, alicePass, bcrypt.MinCost)},
	}
	clock := newMFAEnvClock()
	e := newSignInEnv(t, st, nodes, users, func(o *Options) {
		o.Now = clock.Now
		o.Clients = append(o.Clients, &clientauth.Client{ID: "admin", Name: "Admin console", Secret: "admin-secret",
			GrantTypes: []string{GrantAuthorizationCode, GrantPassword}, RedirectURIs: []string{redirectURI}})
		o.SignOnPolicies = []*policy.SignOnPolicy{{Name: "admin-mfa", Priority: 1, Clients: []string{"admin"}, Rules: []*policy.SignOnRule{
			{Name: "deny-contractors", Priority: 1, People: &policy.People{Groups: []string{"contractors"}}, Access: policy.AccessDeny},
			{Name: "mfa", Priority: 2, People: &policy.People{Groups: []string{"admins"}}, Factor: policy.FactorAny, Enrollment: policy.EnrollAtSignIn},
		}}}
	})
	return &mfaEnv{signInEnv: e, clock: clock}
}

// openFor starts an authorization of client at node with extra
// parameters and returns its sign-in page (or, with a session cookie
// that satisfies it, the answer).
func (e *mfaEnv) openFor(node int, client string, extra url.Values, cookies ...*http.Cookie) (pending, result) {
	e.t.Helper()
	q := url.Values{"client_id": {client}, "response_type": {"code"}, "redirect_uri": {redirectURI}, "scope": {"openid orders:read"},
		"state": {"s"}, "nonce": {"n"}, "code_challenge": {pkceS256}, "code_challenge_method": {"S256"}}
	for k, v := range extra {
		q[k] = v
	}
	req, _ := http.NewRequest(http.MethodGet, e.urls[node]+"/oauth2/default/v1/authorize?"+q.Encode(), nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	body := readBody(resp)
	r := result{status: resp.StatusCode, location: resp.Header.Get("Location"), body: body, cookies: resp.Cookies()}
	p := pending{node: node, cookies: mergeCookies(cookies, resp.Cookies())}
	if strings.Contains(body, `name="txn"`) {
		p.txn, p.csrf = formField(e.t, body, "txn"), formField(e.t, body, "csrf")
	}
	return p, r
}

// next is the page after r, posted with p's cookies and r's.
func next(t *testing.T, p pending, r result) pending {
	t.Helper()
	n := pending{node: p.node, cookies: mergeCookies(p.cookies, r.cookies)}
	if strings.Contains(r.body, `name="txn"`) {
		n.txn, n.csrf = formField(t, r.body, "txn"), formField(t, r.body, "csrf")
	}
	return n
}

// factor posts the factor step.
func (e *mfaEnv) factor(p pending, method, code string) result {
	e.t.Helper()
	return e.post(p, factorPath, url.Values{"method": {method}, "code": {code}}, "")
}

// code is the TOTP code of secret now.
func (e *mfaEnv) code(secret string) string {
	e.t.Helper()
	c, err := totp.GenerateCode(secret, e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// redeem exchanges an authorization code for tokens at node.
func (e *mfaEnv) redeem(node int, client, secret, code string) map[string]any {
	e.t.Helper()
	// RFC 7636 appendix B's verifier of pkceS256.
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}, "code_verifier": {"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"}}
	req, _ := http.NewRequest(http.MethodPost, e.urls[node]+"/oauth2/default/v1/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(client, secret)
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	var out map[string]any
	_ = json.Unmarshal([]byte(readBody(resp)), &out)
	if resp.StatusCode != 200 {
		e.t.Fatalf("redeem: %d %v", resp.StatusCode, out)
	}
	return out
}

// claimsOf reads a JWS payload (the token was just issued by us).
func claimsOf(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func amrOfClaims(m map[string]any) []string {
	var out []string
	for _, v := range m["amr"].([]any) {
		out = append(out, v.(string))
	}
	slices.Sort(out)
	return out
}

// sessionCookieOf is the session cookie an answer set.
func sessionCookieOf(t *testing.T, r result) *http.Cookie {
	t.Helper()
	for _, c := range r.cookies {
		if c.Name == sessionCookie && c.Value != "" {
			return c
		}
	}
	t.Fatalf("no session cookie in the answer (%d %s)", r.status, between(r.body, "<main>", "</main>"))
	return nil
}

// TestMFAEnrollAndSignIn walks a user through a policy that requires a
// second factor: enrollment at sign-in (TOTP, confirmed by a code),
// recovery codes shown once, the code and tokens carrying amr and acr;
// then, on another node and browser, sign-in with a code, a wrong and a
// replayed code refused, a recovery code once; the password grant
// refused; a contractor denied.
func TestMFAEnrollAndSignIn(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   func(*testing.T) store.Store
	}{{"embedded", embeddedStore}, {"postgres", postgresStore}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newMFAEnv(t, tc.st(t), 2)

			// Password, then enrollment (no session yet).
			p, _ := e.openFor(0, "admin", nil)
			r := e.signIn(p, "alice@example.com", alicePass, "")
			if r.status != 200 || r.session() || !strings.Contains(r.body, `id="totp_secret"`) || !strings.Contains(r.body, `src="data:image/png;base64,`) ||
				!strings.Contains(r.body, `href="otpauth://totp/`) {
				t.Fatalf("after the password: %d session %v: %.400s", r.status, r.session(), r.body)
			}
			secret := between(r.body, `<code id="totp_secret">`, "</code>")
			p = next(t, p, r)
			r = e.factor(p, "enroll_totp", "000000")
			if r.status != http.StatusUnauthorized || r.session() || !strings.Contains(r.body, msgBadCode) {
				t.Fatalf("wrong enrollment code: %d %v", r.status, r.session())
			}
			// A wrong code shows the same secret again, under a new step:
			// the old one is used up.
			if again := between(r.body, `<code id="totp_secret">`, "</code>"); again != secret {
				t.Fatal("a wrong enrollment code changed the secret the user scanned")
			}
			if old := e.factor(p, "enroll_totp", e.code(secret)); old.status != http.StatusBadRequest {
				t.Fatalf("the used-up step posted again: %d", old.status)
			}
			p = next(t, p, r)
			first := e.code(secret)
			r = e.factor(p, "enroll_totp", first)
			if r.status != 200 || !strings.Contains(r.body, `id="recovery_codes"`) {
				t.Fatalf("enrollment code: %d %.300s", r.status, r.body)
			}
			sess := sessionCookieOf(t, r)
			codes := listItems(r.body)
			if len(codes) != 10 {
				t.Fatalf("%d recovery codes shown, want 10", len(codes))
			}
			p = next(t, p, r)
			r = e.post(p, factorPath, url.Values{"method": {"continue"}}, "")
			if r.code() == "" {
				t.Fatalf("continue after the codes: %d %q %.200s", r.status, r.location, r.body)
			}
			tok := e.redeem(0, "admin", "admin-secret", r.code())
			at, id := claimsOf(t, tok["access_token"].(string)), claimsOf(t, tok["id_token"].(string))
			if got := amrOfClaims(at); !slices.Equal(got, []string{"mfa", "otp", "pwd"}) {
				t.Fatalf("access token amr %v", got)
			}
			if got := amrOfClaims(id); !slices.Equal(got, []string{"mfa", "otp", "pwd"}) || id["acr"] != acr2FAAny {
				t.Fatalf("ID token amr %v acr %v", got, id["acr"])
			}

			// The session satisfies the policy: no further prompt.
			if _, r := e.openFor(0, "admin", nil, sess); r.status != http.StatusFound || !strings.Contains(r.location, "code=") {
				t.Fatalf("authorize with the MFA session: %d %q", r.status, r.location)
			}

			// Another node, another browser: password, then the code.
			e.clock.Advance(30 * time.Second)
			p, _ = e.openFor(1, "admin", nil)
			r = e.signIn(p, "alice@example.com", alicePass, "")
			if r.status != 200 || r.session() || !strings.Contains(r.body, `id="totp"`) || !strings.Contains(r.body, `id="recovery"`) {
				t.Fatalf("factor page at node B: %d %.400s", r.status, r.body)
			}
			p = next(t, p, r)
			r = e.factor(p, "totp", first)
			if r.status != http.StatusUnauthorized || r.session() {
				t.Fatalf("the enrollment's code again: %d session %v", r.status, r.session())
			}
			p = next(t, p, r)
			r = e.factor(p, "totp", "123456")
			if r.status != http.StatusUnauthorized || r.session() {
				t.Fatalf("a wrong code: %d session %v", r.status, r.session())
			}
			p = next(t, p, r)
			code := e.code(secret)
			if r = e.factor(p, "totp", code); r.code() == "" || !r.session() {
				t.Fatalf("the current code at node B: %d %q %.200s", r.status, r.location, r.body)
			}
			// Used once: the same code in another sign-in is refused.
			p, _ = e.openFor(0, "admin", nil)
			r = e.signIn(p, "alice@example.com", alicePass, "")
			p = next(t, p, r)
			r = e.factor(p, "totp", code)
			if r.status != http.StatusUnauthorized {
				t.Fatalf("a replayed code: %d", r.status)
			}
			p = next(t, p, r)
			// A recovery code, once.
			if r := e.factor(p, "recovery", strings.ToLower(codes[0])); r.code() == "" {
				t.Fatalf("a recovery code: %d %.200s", r.status, r.body)
			}
			p, _ = e.openFor(0, "admin", nil)
			p = next(t, p, e.signIn(p, "alice@example.com", alicePass, ""))
			if r := e.factor(p, "recovery", codes[0]); r.status != http.StatusUnauthorized {
				t.Fatalf("a used recovery code: %d", r.status)
			}

			// A client whose policy asks nothing: the password is enough.
			p, _ = e.openFor(0, "web", nil)
			if r := e.signIn(p, "alice@example.com", alicePass, ""); r.code() == "" {
				t.Fatalf("web: %d", r.status)
			}
			// The password grant cannot give the factor.
			status, body := e.passwordGrant(0, "admin", "admin-secret", "alice@example.com", alicePass)
			if status != 400 || body["error"] != "invalid_grant" || body["error_description"] != "The credentials provided were invalid." {
				t.Fatalf("password grant for alice: %d %v", status, body)
			}
			if status, _ := e.passwordGrant(0, "admin", "admin-secret", "dave@example.com", alicePass); status != 200 {
				t.Fatalf("password grant for dave (no rule): %d", status)
			}
			// A deny rule.
			p, _ = e.openFor(0, "admin", nil)
			r = e.signIn(p, "carol@example.com", alicePass, "")
			if u, _ := url.Parse(r.location); r.status != http.StatusFound || u.Query().Get("error") != "access_denied" || r.session() {
				t.Fatalf("contractor: %d %q", r.status, r.location)
			}
			// Caddy's log has the decisions, never the key or a recovery
			// code (6-digit codes are too short to look for by chance).
			if len(e.logs.FilterMessage(EventMFA).All()) == 0 || len(e.logs.FilterMessage(EventFactorActivate).All()) == 0 {
				t.Fatal("no MFA or factor activation events in Caddy's log")
			}
			for _, entry := range e.logs.All() {
				b, _ := json.Marshal(entry.ContextMap())
				text := entry.Message + string(b)
				for _, secretValue := range append([]string{secret, strings.ReplaceAll(codes[1], "-", "")}, codes...) {
					if strings.Contains(text, secretValue) {
						t.Fatalf("Caddy's log holds a secret (%.4s...): %s", secretValue, text)
					}
				}
			}
		})
	}
}

// TestMFAStepUp: a session from a password-only sign-in is stepped up
// (the factor asked, the session kept and its amr extended) when a
// client with a stricter rule signs in; prompt=none gets
// interaction_required instead; acr_values ask for a factor too.
func TestMFAStepUp(t *testing.T) {
	e := newMFAEnv(t, embeddedStore(t), 1)
	ctx := t.Context()
	en, err := e.nodes[0].factors.EnrollTOTP(ctx, "00u1alice", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.nodes[0].factors.ActivateTOTP(ctx, "00u1alice", en.FactorID, e.code(en.Secret)); err != nil {
		t.Fatal(err)
	}
	p, _ := e.openFor(0, "web", nil)
	r := e.signIn(p, "alice@example.com", alicePass, "")
	sess := sessionCookieOf(t, r)
	if r.code() == "" {
		t.Fatalf("web sign-in: %d", r.status)
	}
	if _, r := e.openFor(0, "admin", url.Values{"prompt": {"none"}}, sess); !strings.Contains(r.location, "error=interaction_required") {
		t.Fatalf("prompt=none step-up: %d %q", r.status, r.location)
	}
	e.clock.Advance(30 * time.Second)
	p, r = e.openFor(0, "admin", nil, sess)
	if r.status != 200 || !strings.Contains(r.body, `id="totp"`) {
		t.Fatalf("step-up page: %d %.300s", r.status, r.body)
	}
	if r = e.factor(p, "totp", e.code(en.Secret)); r.code() == "" || r.session() {
		t.Fatalf("step-up: %d %q, new session cookie %v (the session is kept)", r.status, r.location, r.session())
	}
	tok := e.redeem(0, "admin", "admin-secret", r.code())
	if got := amrOfClaims(claimsOf(t, tok["id_token"].(string))); !slices.Equal(got, []string{"mfa", "otp", "pwd"}) {
		t.Fatalf("stepped-up amr %v", got)
	}
	// The Sessions API tells the factor's time from the password's.
	me := e.get(0, "/api/v1/sessions/me", []*http.Cookie{sess})
	var s map[string]any
	if err := json.Unmarshal([]byte(me.body), &s); err != nil || me.status != 200 {
		t.Fatalf("sessions/me: %d %s", me.status, me.body)
	}
	if s["mfaActive"] != true || s["lastFactorVerification"] == s["lastPasswordVerification"] || s["lastFactorVerification"] == nil {
		t.Fatalf("stepped-up session: %v", s)
	}
	// The session now has the factor: web asking acr 2fa passes at once.
	if _, r := e.openFor(0, "web", url.Values{"acr_values": {acr2FAAny}}, sess); !strings.Contains(r.location, "code=") {
		t.Fatalf("acr 2fa with the stepped-up session: %d %q", r.status, r.location)
	}
	// dave has no rule, but acr_values ask for a factor: enrollment.
	p, _ = e.openFor(0, "web", url.Values{"acr_values": {acr2FAAny}})
	if r := e.signIn(p, "dave@example.com", alicePass, ""); r.status != 200 || !strings.Contains(r.body, `id="totp_secret"`) {
		t.Fatalf("acr 2fa for a user without a factor: %d %.200s", r.status, r.body)
	}
	if _, r := e.openFor(0, "web", url.Values{"acr_values": {"urn:example:unknown"}}); !strings.Contains(r.location, "error=invalid_request") {
		t.Fatalf("unknown acr_values: %d %q", r.status, r.location)
	}
}

// TestMFAWrongCodesLock: wrong codes count with wrong passwords, and a
// right password while the factor is pending does not clear the count.
func TestMFAWrongCodesLock(t *testing.T) {
	e := newMFAEnv(t, embeddedStore(t), 1)
	ctx := t.Context()
	en, _ := e.nodes[0].factors.EnrollTOTP(ctx, "00u1alice", "alice@example.com")
	if err := e.nodes[0].factors.ActivateTOTP(ctx, "00u1alice", en.FactorID, e.code(en.Secret)); err != nil {
		t.Fatal(err)
	}
	wrong := 0
	for wrong < maxUserFailures+2 {
		p, _ := e.openFor(0, "admin", nil)
		r := e.signIn(p, "alice@example.com", alicePass, "")
		if r.status == http.StatusTooManyRequests {
			break
		}
		p = next(t, p, r)
		for range 3 {
			r := e.factor(p, "totp", "000000")
			if r.status == http.StatusTooManyRequests {
				wrong = maxUserFailures + 2
				break
			}
			if r.status != http.StatusUnauthorized {
				t.Fatalf("a wrong code: %d", r.status)
			}
			p = next(t, p, r)
			wrong++
		}
	}
	e.clock.Advance(30 * time.Second)
	p, _ := e.openFor(0, "admin", nil)
	r := e.signIn(p, "alice@example.com", alicePass, "")
	if r.status != http.StatusTooManyRequests {
		// Locked at the password or at the code: never signed in.
		p = next(t, p, r)
		if r := e.factor(p, "totp", e.code(en.Secret)); r.code() != "" {
			t.Fatalf("signed in after %d wrong codes: the lockout did not hold", maxUserFailures)
		}
	}
}

func (e *mfaEnv) passwordGrant(node int, client, secret, login, pw string) (int, map[string]any) {
	e.t.Helper()
	form := url.Values{"grant_type": {"password"}, "username": {login}, "password": {pw}, "scope": {"openid"}}
	req, _ := http.NewRequest(http.MethodPost, e.urls[node]+"/oauth2/default/v1/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(client, secret)
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	var out map[string]any
	_ = json.Unmarshal([]byte(readBody(resp)), &out)
	return resp.StatusCode, out
}

func between(s, a, b string) string {
	i := strings.Index(s, a)
	if i < 0 {
		return ""
	}
	s = s[i+len(a):]
	return s[:strings.Index(s, b)]
}

// listItems are the <code> items of the recovery codes list.
func listItems(page string) []string {
	list := between(page, `<ul id="recovery_codes">`, "</ul>")
	var out []string
	for _, part := range strings.Split(list, "<code>")[1:] {
		out = append(out, part[:strings.Index(part, "</code>")])
	}
	return out
}

// mergeCookies is a browser's jar after an answer: set cookies replace
// those of the same name, expired ones leave.
func mergeCookies(jar, set []*http.Cookie) []*http.Cookie {
	out := slices.Clone(jar)
	for _, c := range set {
		out = slices.DeleteFunc(out, func(o *http.Cookie) bool { return o.Name == c.Name })
		if c.MaxAge >= 0 && c.Value != "" {
			out = append(out, c)
		}
	}
	return out
}

// newMFAEnvClock is a fake clock at real time: the stores judge expiry
// by their own clock.
func newMFAEnvClock() *testkit.Clock { return testkit.NewClock(time.Now()) }
