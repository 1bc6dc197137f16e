package authserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/pquerna/otp/totp"
	"golang.org/x/crypto/bcrypt"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/claims"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
)

// previewSignInEnv is newSignInEnv (one node, rule "r" for everyone and
// every client) with the sign-on rule given, a device client "tv" and a
// fake clock for TOTP codes; an https base URL, for WebAuthn.
func previewSignInEnv(t *testing.T, users []*directory.User, rule *policy.SignOnRule) *mfaEnv {
	t.Helper()
	clock := newMFAEnvClock()
	e := newSignInEnv(t, embeddedStore(t), 1, users, func(o *Options) {
		o.Now, o.BaseURL = clock.Now, "https://issuer.test"
		o.Clients = append(o.Clients, &clientauth.Client{ID: "tv", Name: "TV", Secret: "tv-secret", GrantTypes: []string{GrantDeviceCode}})
		r := o.Servers["default"].Policies[0].Rules[0]
		r.GrantTypes = append(r.GrantTypes, GrantDeviceCode)
		if rule != nil {
			o.SignOnPolicies = []*policy.SignOnPolicy{{Name: "sign-on", Clients: []string{"*"}, Rules: []*policy.SignOnRule{rule}}}
		}
	})
	return &mfaEnv{signInEnv: e, clock: clock}
}

// previewOf previews req at node 0, for scope orders:read when none is
// given (the server has no default scope).
func (e *mfaEnv) previewOf(t *testing.T, req PreviewRequest) *Preview {
	t.Helper()
	if req.Scopes == nil {
		req.Scopes = []string{"orders:read"}
	}
	p, err := e.nodes[0].Preview(context.Background(), "default", req)
	if err != nil {
		t.Fatalf("preview %+v: %v", req, err)
	}
	return p
}

// activateTOTP gives uid an active TOTP factor.
func (e *mfaEnv) activateTOTP(t *testing.T, uid, login string) {
	t.Helper()
	ctx := context.Background()
	en, err := e.nodes[0].factors.EnrollTOTP(ctx, uid, login)
	if err != nil {
		t.Fatal(err)
	}
	code, _ := totp.GenerateCode(en.Secret, e.clock.Now())
	if err := e.nodes[0].factors.ActivateTOTP(ctx, uid, en.FactorID, code); err != nil {
		t.Fatal(err)
	}
}

// TestPreviewFactorStepAgreesWithSignIn: a sign-on rule whose factor the
// user cannot give (enrollment denied and no factor; a phishing-resistant
// factor and only TOTP) makes the real sign-in answer 403; the preview
// answers that refusal, for the code and the device flow, with no tokens
// and no inline hook. A user who may enroll gets tokens and a note.
func TestPreviewFactorStepAgreesWithSignIn(t *testing.T) {
	alice := func() []*directory.User {
		return []*directory.User{{ID: "00u1alice", Login: "alice@example.com", PasswordHash: testBcryptCost(t, alicePass, bcrypt.MinCost)}}
	}
	for _, c := range []struct {
		name   string
		rule   *policy.SignOnRule
		totp   bool
		msg    string
		reason string
	}{
		{"any factor, enrollment deny, no factor", &policy.SignOnRule{Name: "mfa", Factor: policy.FactorAny, Enrollment: policy.EnrollDeny}, false,
			msgNoFactor, "the rule denies enrollment at sign-in"},
		{"phishing-resistant, only TOTP", &policy.SignOnRule{Name: "phr", Factor: policy.FactorPhishingResistant}, true,
			msgStrongerFactor, "none of the user's factors meets it"},
		{"phishing-resistant, enrollment deny, no factor", &policy.SignOnRule{Name: "phr", Factor: policy.FactorPhishingResistant, Enrollment: policy.EnrollDeny}, false,
			msgNoFactor, "the rule denies enrollment at sign-in"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := previewSignInEnv(t, alice(), c.rule)
			if c.totp {
				e.activateTOTP(t, "00u1alice", "alice@example.com")
			}
			r := e.signIn(e.open(0), "alice@example.com", alicePass, "")
			if r.status != http.StatusForbidden || !strings.Contains(r.body, c.msg) {
				t.Fatalf("real sign-in: %d %.300s, want 403 with %q", r.status, r.body, c.msg)
			}
			for _, req := range []PreviewRequest{
				{ClientID: "web", GrantType: GrantAuthorizationCode, User: "alice@example.com"},
				{ClientID: "tv", GrantType: GrantDeviceCode, User: "alice@example.com"},
			} {
				p := e.previewOf(t, req)
				if p.Error == nil || p.Error.Code != "access_denied" || p.Error.Description != c.msg || !strings.Contains(p.Error.Reason, c.reason) {
					t.Errorf("%s: error %+v, want access_denied %q with reason containing %q", req.GrantType, p.Error, c.msg, c.reason)
				}
				if p.AccessToken != nil || p.IDToken != nil || p.RefreshToken != nil || p.InlineHook != "" {
					t.Errorf("%s: a refused sign-in previews tokens: %+v", req.GrantType, p)
				}
				if p.SignOn == nil || p.SignOn.Factor != c.rule.Factor || p.Rule != "r" {
					t.Errorf("%s: sign-on %+v rule %q", req.GrantType, p.SignOn, p.Rule)
				}
			}
		})
	}

	// Enrollment at sign-in allowed: the real sign-in shows the
	// enrollment page, the preview shows tokens and says so.
	e := previewSignInEnv(t, alice(), &policy.SignOnRule{Name: "mfa", Factor: policy.FactorAny})
	if r := e.signIn(e.open(0), "alice@example.com", alicePass, ""); r.status != http.StatusOK || !strings.Contains(r.body, "Set up a second factor") {
		t.Fatalf("real sign-in with enrollment: %d %.300s", r.status, r.body)
	}
	p := e.previewOf(t, PreviewRequest{ClientID: "web", GrantType: GrantAuthorizationCode, User: "alice@example.com"})
	if p.Error != nil || p.AccessToken == nil || !slices.ContainsFunc(p.Notes, func(n string) bool { return strings.Contains(n, "enroll") }) {
		t.Errorf("enrollment at sign-in: %+v notes %v", p.Error, p.Notes)
	}
	// Once enrolled, the factor page: tokens and the second-factor note.
	e.activateTOTP(t, "00u1alice", "alice@example.com")
	p = e.previewOf(t, PreviewRequest{ClientID: "web", GrantType: GrantAuthorizationCode, User: "alice@example.com"})
	if p.Error != nil || p.AccessToken == nil || !slices.ContainsFunc(p.Notes, func(n string) bool { return strings.Contains(n, "asks for a second factor") }) {
		t.Errorf("with a TOTP factor: %+v notes %v", p.Error, p.Notes)
	}
}

// TestPreviewPasswordlessUser: the password grant for a user without a
// password is invalid_grant, as the real grant answers; the browser
// flows note it.
func TestPreviewPasswordlessUser(t *testing.T) {
	users := []*directory.User{{ID: "00u5erin", Login: "erin@example.com"}}
	e := previewSignInEnv(t, users, nil)
	code, _, body := e.grant("erin@example.com", "any-password")
	if code != http.StatusBadRequest || body["error"] != "invalid_grant" || body["error_description"] != errBadCredentials.Description {
		t.Fatalf("real password grant: %d %v", code, body)
	}
	p := e.previewOf(t, PreviewRequest{ClientID: "web", GrantType: GrantPassword, User: "erin@example.com"})
	if p.Error == nil || p.Error.Code != body["error"] || p.Error.Description != body["error_description"] || !strings.Contains(p.Error.Reason, "no password") ||
		p.AccessToken != nil || p.RefreshToken != nil {
		t.Errorf("preview: %+v, want the real grant's invalid_grant with a reason and no tokens", p.Error)
	}
	p = e.previewOf(t, PreviewRequest{ClientID: "web", GrantType: GrantAuthorizationCode, User: "erin@example.com"})
	if !slices.ContainsFunc(p.Notes, func(n string) bool { return strings.Contains(n, "no password") }) {
		t.Errorf("code flow notes %v, want the missing password", p.Notes)
	}
}

// TestPreviewUserLookupFollowsTheGrant: the password grant finds the
// user by login only; the browser flows by login or id; a value that
// is one user's login and another's id is refused.
func TestPreviewUserLookupFollowsTheGrant(t *testing.T) {
	hash := testBcryptCost(t, alicePass, bcrypt.MinCost)
	users := []*directory.User{
		{ID: "00u1alice", Login: "alice@example.com", PasswordHash: hash},
		{ID: "dan@example.com", Login: "mallory@example.com", PasswordHash: hash},
		{ID: "00u7dan", Login: "dan@example.com", PasswordHash: hash},
	}
	e := previewSignInEnv(t, users, nil)
	if p := e.previewOf(t, PreviewRequest{ClientID: "web", GrantType: GrantPassword, User: "dan@example.com"}); p.User.ID != "00u7dan" {
		t.Errorf("password, dan's login: %+v, want 00u7dan (the grant's username is a login)", p.User)
	}
	if p := e.previewOf(t, PreviewRequest{ClientID: "web", GrantType: GrantAuthorizationCode, User: "00u1alice"}); p.User.ID != "00u1alice" {
		t.Errorf("code, alice's id: %+v", p.User)
	}
	if p := e.previewOf(t, PreviewRequest{ClientID: "web", GrantType: GrantAuthorizationCode, User: "mallory@example.com"}); p.User.ID != "dan@example.com" {
		t.Errorf("code, mallory's login: %+v", p.User)
	}
	for _, c := range []struct {
		req    PreviewRequest
		status int
		text   string
	}{
		{PreviewRequest{ClientID: "web", GrantType: GrantPassword, User: "00u1alice", Scopes: []string{"orders:read"}}, 404,
			`unknown user "00u1alice": the password grant signs in by login, and this is the id of the user whose login is "alice@example.com"`},
		{PreviewRequest{ClientID: "web", GrantType: GrantAuthorizationCode, User: "dan@example.com", Scopes: []string{"orders:read"}}, 400,
			`invalid_request: ambiguous user "dan@example.com": it is the login of user 00u7dan and the id of user dan@example.com: give "00u7dan" (an id) or "mallory@example.com" (a login)`},
		{PreviewRequest{ClientID: "tv", GrantType: GrantDeviceCode, User: "dan@example.com", Scopes: []string{"orders:read"}}, 400, `ambiguous user "dan@example.com"`},
	} {
		_, err := e.nodes[0].Preview(context.Background(), "default", c.req)
		var pe *PreviewError
		if !errors.As(err, &pe) || pe.Status != c.status || !strings.Contains(pe.Error(), c.text) {
			t.Errorf("%+v: %v, want %d %q", c.req, err, c.status, c.text)
		}
	}
	// The real password grant agrees: the id is not a username.
	if code, _, body := e.grant("00u1alice", alicePass); code != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Errorf("real password grant with an id: %d %v", code, body)
	}
}

// TestPreviewConsent: a consent-required scope the user has not granted
// is named (the real sign-in shows the consent page); once granted
// through the real consent page, the preview says so.
func TestPreviewConsent(t *testing.T) {
	clock := newMFAEnvClock()
	se := newSignInEnv(t, embeddedStore(t), 1, nil, func(o *Options) {
		o.Now = clock.Now
		o.Servers["default"].Scopes = append(o.Servers["default"].Scopes, &Scope{Name: "payments:write", Consent: "required"})
	})
	e := &mfaEnv{signInEnv: se, clock: clock}
	req := PreviewRequest{ClientID: "web", GrantType: GrantAuthorizationCode, User: "alice@example.com", Scopes: []string{"orders:read", "payments:write"}}
	p := e.previewOf(t, req)
	if len(p.Consent) != 1 || p.Consent[0] != (PreviewConsent{Scope: "payments:write"}) || p.AccessToken == nil ||
		!slices.ContainsFunc(p.Notes, func(n string) bool { return strings.Contains(n, "payments:write need the user's consent") }) {
		t.Fatalf("before consent: %+v notes %v", p.Consent, p.Notes)
	}
	pg, _ := e.openFor(0, "web", url.Values{"scope": {"orders:read payments:write"}})
	r := e.signIn(pg, "alice@example.com", alicePass, "")
	if r.status != http.StatusOK || !strings.Contains(r.body, "Allow access") || !strings.Contains(r.body, "payments:write") {
		t.Fatalf("real sign-in: %d %.300s, want the consent page", r.status, r.body)
	}
	if a := e.post(next(t, pg, r), "/oauth2/v1/consent", url.Values{"decision": {"allow"}}, ""); a.code() == "" {
		t.Fatalf("consent: %d %s", a.status, a.location)
	}
	p = e.previewOf(t, req)
	if len(p.Consent) != 1 || !p.Consent[0].Granted || !slices.ContainsFunc(p.Notes, func(n string) bool { return strings.Contains(n, "gave this client before") }) {
		t.Errorf("after consent: %+v notes %v", p.Consent, p.Notes)
	}
	// Not for the password grant, which asks no consent.
	if p = e.previewOf(t, PreviewRequest{ClientID: "web", GrantType: GrantPassword, User: "alice@example.com", Scopes: req.Scopes}); p.Consent != nil {
		t.Errorf("password grant consent %+v", p.Consent)
	}
}

// TestPreviewDefaultScopesAndHook: entries that are all empty mean the
// defaults; a refused request names no inline hook.
func TestPreviewDefaultScopesAndHook(t *testing.T) {
	e := newPreviewEnv(t, &policy.SignOnPolicy{Name: "MFA", Clients: []string{"app"}, Rules: []*policy.SignOnRule{{Name: "all", Factor: policy.FactorAny}}})
	p := e.preview(t, PreviewRequest{ClientID: "svc", GrantType: GrantClientCredentials, Scopes: []string{""}})
	if !p.DefaultScopes || !slices.Equal(p.Scopes, []string{"orders:read"}) {
		t.Errorf(`scopes [""]: %v default %v, want the defaults`, p.Scopes, p.DefaultScopes)
	}
	// Rule Finance runs hook enrich; the password grant is refused (a
	// second factor), so no hook would run.
	p = e.preview(t, PreviewRequest{ClientID: "app", GrantType: GrantPassword, User: "alice@example.com"})
	if p.Error == nil || p.Rule != "Finance" || p.InlineHook != "" {
		t.Errorf("refused: error %+v rule %q hook %q, want no hook", p.Error, p.Rule, p.InlineHook)
	}
	p = e.preview(t, PreviewRequest{ClientID: "web", GrantType: GrantAuthorizationCode, User: "alice@example.com"})
	if p.Error != nil || p.InlineHook != "enrich" {
		t.Errorf("issued: error %+v hook %q, want enrich", p.Error, p.InlineHook)
	}
}

// TestPreviewAgreesWithCodeRedemption: the claims of a real
// authorization code's tokens are the preview's, but for what a real
// sign-in makes per request: jti, iat, exp, auth_time (the moment of
// the sign-in), at_hash (hashes the signed access token) and the ID
// token's nonce (the authorize request's; the preview has none). amr
// ("pwd": a password sign-in), acr (urn:okta:loa:1fa:pwd) and the rest
// agree.
func TestPreviewAgreesWithCodeRedemption(t *testing.T) {
	clock := newMFAEnvClock()
	se := newSignInEnv(t, embeddedStore(t), 1, nil, func(o *Options) {
		o.Now = clock.Now
		o.Clients[0].GrantTypes = append(o.Clients[0].GrantTypes, GrantRefreshToken)
		o.Servers["default"].Claims = previewEnvClaims()
	})
	e := &mfaEnv{signInEnv: se, clock: clock}
	pg, _ := e.openFor(0, "web", url.Values{"scope": {"openid profile orders:read offline_access"}})
	r := e.signIn(pg, "alice@example.com", alicePass, "")
	if r.code() == "" {
		t.Fatalf("sign-in: %d %.300s", r.status, r.body)
	}
	body := e.redeem(0, "web", "web-secret", r.code())
	p := e.previewOf(t, PreviewRequest{ClientID: "web", GrantType: GrantAuthorizationCode, User: "alice@example.com",
		Scopes: []string{"openid", "profile", "orders:read", "offline_access"}})
	if p.Error != nil || p.RefreshToken == nil || !p.RefreshToken.Issued || body["refresh_token"] == nil {
		t.Fatalf("preview %+v refresh %+v; real %v", p.Error, p.RefreshToken, body)
	}
	realAT, realID := payload(t, body["access_token"].(string)), payload(t, body["id_token"].(string))
	if realID["nonce"] != "n" || p.IDToken.Claims["nonce"] != nil {
		t.Errorf("nonce: real %v, preview %v", realID["nonce"], p.IDToken.Claims["nonce"])
	}
	if g, _ := json.Marshal(realAT["amr"]); string(g) != `["pwd"]` {
		t.Errorf("real amr %s, want the password's", g)
	}
	same := func(name string, real, shown map[string]any) {
		t.Helper()
		b, _ := json.Marshal(shown)
		var seen map[string]any
		_ = json.Unmarshal(b, &seen)
		for _, k := range []string{"jti", "iat", "exp", "auth_time", "at_hash", "nonce"} {
			delete(real, k)
			delete(seen, k)
		}
		x, _ := json.Marshal(real)
		y, _ := json.Marshal(seen)
		if string(x) != string(y) {
			t.Errorf("%s: real %s, preview %s", name, x, y)
		}
	}
	if realID["acr"] != acr1FAPwd || p.IDToken.Claims["acr"] != realID["acr"] {
		t.Errorf("acr: real %v, preview %v, want %s (a password sign-in)", realID["acr"], p.IDToken.Claims["acr"], acr1FAPwd)
	}
	same("access token", realAT, p.AccessToken.Claims)
	same("ID token", realID, p.IDToken.Claims)
}

// previewEnvClaims are custom claims of both tokens for agreement tests.
func previewEnvClaims() []*claims.Claim {
	return []*claims.Claim{
		{Name: "login_name", Language: claims.Okta, Value: `String.substringBefore(user.login, "@")`},
		{Name: "where", Value: `client.id + "@" + server.id`},
		{Name: "mail", Token: claims.IDToken, Value: `user.login`},
	}
}
