package authserver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pquerna/otp/totp"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// credentialMarker is in the fake WebAuthn credential's JSON: it must
// never come back from the API.
const credentialMarker = "pk-credential-marker-DO-NOT-SHOW"

// factorsFixture is alice (u1) with an ACTIVE TOTP app, a WebAuthn
// credential and recovery codes, and mallory (u2) with a pending TOTP
// app.
type factorsFixture struct {
	secret              string // alice's TOTP secret (base32)
	totpID, webauthnID  string
	credID              []byte
	malloryID, malloryS string
}

func (e *flowEnv) enrollFactors() factorsFixture {
	e.t.Helper()
	ctx, m := context.Background(), e.iss.factors
	enr, err := m.EnrollTOTP(ctx, "u1", "alice@example.com")
	if err != nil {
		e.t.Fatal(err)
	}
	code, err := totp.GenerateCode(enr.Secret, e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	if err := m.ActivateTOTP(ctx, "u1", enr.FactorID, code); err != nil {
		e.t.Fatal(err)
	}
	cred := []byte{0xfb, 0xff, 0x01, 0x02, 0x03, 0xfe}
	wa, err := m.AddWebAuthn(ctx, "u1", "YubiKey 5C", cred, json.RawMessage(`{"publicKey":"`+credentialMarker+`","signCount":7}`))
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := m.NewRecoveryCodes(ctx, "u1"); err != nil {
		e.t.Fatal(err)
	}
	mal, err := m.EnrollTOTP(ctx, "u2", "mallory@example.com")
	if err != nil {
		e.t.Fatal(err)
	}
	return factorsFixture{secret: enr.Secret, totpID: enr.FactorID, webauthnID: wa.ID, credID: cred, malloryID: mal.FactorID, malloryS: mal.Secret}
}

// factorsAPI calls path and checks no answer holds a secret or a
// credential of the fixture, nor the word "secret".
func (e *flowEnv) factorsAPI(fx factorsFixture, method, path string, auth ...string) *httptest.ResponseRecorder {
	e.t.Helper()
	w := e.grantsAPI(method, path, auth...)
	for _, s := range []string{fx.secret, fx.malloryS, credentialMarker, "signCount", "ecret", "last_step"} {
		if strings.Contains(w.Body.String(), s) {
			e.t.Fatalf("%s %s: the answer holds %q: %s", method, path, s, w.Body)
		}
	}
	return w
}

func (e *flowEnv) userFactors(fx factorsFixture, uid string) []oktaFactor {
	e.t.Helper()
	w := e.factorsAPI(fx, http.MethodGet, "/api/v1/users/"+uid+"/factors")
	if w.Code != 200 || w.Header().Get("Cache-Control") != "no-store" || strings.TrimSpace(w.Body.String()) == "null" {
		e.t.Fatalf("GET %s's factors: %d %s", uid, w.Code, w.Body)
	}
	var out []oktaFactor
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func factorIDs(fs []oktaFactor) []string {
	out := []string{}
	for _, f := range fs {
		out = append(out, f.ID)
	}
	return out
}

// TestUserFactorsAPI: a user's TOTP app and WebAuthn credential are
// Okta UserFactor objects (listed and by id) without secret or
// credential; another user's factor id is 404 and stays; unenrolling
// one leaves the other; resetting removes the rest and the recovery
// codes, and nothing of the other user's; each change is one System Log
// event of Okta's type with the API token as actor and the user as
// target. On both stores.
func TestUserFactorsAPI(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { testUserFactorsAPI(t, nil) })
	t.Run("postgres", func(t *testing.T) { testUserFactorsAPI(t, postgresStore(t)) })
}

func testUserFactorsAPI(t *testing.T, st store.Store) {
	e, el := grantsEnv(t, st)
	fx := e.enrollFactors()
	at := oktaTime(e.clock.Now())

	fs := e.userFactors(fx, "u1")
	if got := factorIDs(fs); len(got) != 2 || got[0] != fx.totpID || got[1] != fx.webauthnID {
		t.Fatalf("alice's factors %q, want [%s %s]", got, fx.totpID, fx.webauthnID)
	}
	tf, wf := fs[0], fs[1]
	if tf.FactorType != "token:software:totp" || tf.Provider != "GOOGLE" || tf.VendorName != "GOOGLE" || tf.Status != "ACTIVE" ||
		tf.Created != at || tf.LastUpdated != at || len(tf.Profile) != 1 || tf.Profile["credentialId"] != "alice@example.com" {
		t.Fatalf("TOTP factor %+v", tf)
	}
	if wf.FactorType != "webauthn" || wf.Provider != "FIDO" || wf.VendorName != "FIDO" || wf.Status != "ACTIVE" || wf.Created != at ||
		wf.Profile["credentialId"] != base64.RawURLEncoding.EncodeToString(fx.credID) || wf.Profile["authenticatorName"] != "YubiKey 5C" {
		t.Fatalf("WebAuthn factor %+v", wf)
	}
	for _, f := range fs {
		if self := f.Links["self"]["href"]; self != "https://id.example.com/api/v1/users/u1/factors/"+f.ID {
			t.Fatalf("self link %v", self)
		}
		if user := f.Links["user"]["href"]; user != "https://id.example.com/api/v1/users/u1" {
			t.Fatalf("user link %v", user)
		}
	}
	mal := e.userFactors(fx, "u2")
	if len(mal) != 1 || mal[0].ID != fx.malloryID || mal[0].Status != "PENDING_ACTIVATION" || mal[0].Profile["credentialId"] != "mallory@example.com" {
		t.Fatalf("mallory's factors %+v", mal)
	}

	// One by id, exactly as listed.
	w := e.factorsAPI(fx, http.MethodGet, "/api/v1/users/u1/factors/"+fx.webauthnID)
	var byID oktaFactor
	if err := json.Unmarshal(w.Body.Bytes(), &byID); err != nil || w.Code != 200 || byID.ID != fx.webauthnID || byID.Profile["authenticatorName"] != "YubiKey 5C" {
		t.Fatalf("factor by id: %d %s", w.Code, w.Body)
	}

	// Mallory's factor id is not alice's: 404, and it stays.
	for _, m := range []string{http.MethodGet, http.MethodDelete} {
		oktaNotFound(t, e.factorsAPI(fx, m, "/api/v1/users/u1/factors/"+fx.malloryID), fx.malloryID+" (UserFactor)")
	}
	oktaNotFound(t, e.factorsAPI(fx, http.MethodGet, "/api/v1/users/u1/factors/mfaNoSuchFactor00000"), "mfaNoSuchFactor00000 (UserFactor)")

	// Unenroll the WebAuthn credential: 204, the TOTP app stays.
	if w := e.factorsAPI(fx, http.MethodDelete, "/api/v1/users/u1/factors/"+fx.webauthnID); w.Code != http.StatusNoContent || w.Body.Len() != 0 {
		t.Fatalf("DELETE factor: %d %s", w.Code, w.Body)
	}
	if got := factorIDs(e.userFactors(fx, "u1")); len(got) != 1 || got[0] != fx.totpID {
		t.Fatalf("after unenroll: %q", got)
	}
	oktaNotFound(t, e.factorsAPI(fx, http.MethodDelete, "/api/v1/users/u1/factors/"+fx.webauthnID), "(UserFactor)")
	if _, err := e.iss.factors.FindWebAuthn(context.Background(), "u1", fx.credID); err == nil {
		t.Fatal("the unenrolled credential is still found")
	}

	// Reset: 200 {}, no factor, no recovery code; mallory's stay.
	w = e.factorsAPI(fx, http.MethodPost, "/api/v1/users/u1/lifecycle/reset_factors")
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != "{}" || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("reset_factors: %d %q", w.Code, w.Body)
	}
	if got := e.userFactors(fx, "u1"); len(got) != 0 {
		t.Fatalf("after reset: %q", factorIDs(got))
	}
	ctx := context.Background()
	if n, err := e.iss.factors.RecoveryCodesLeft(ctx, "u1"); err != nil || n != 0 {
		t.Fatalf("recovery codes after reset: %d %v", n, err)
	}
	code, _ := totp.GenerateCode(fx.secret, e.clock.Now())
	if _, err := e.iss.factors.VerifyTOTP(ctx, "u1", code); err == nil {
		t.Fatal("the reset TOTP app still verifies")
	}
	if got := factorIDs(e.userFactors(fx, "u2")); len(got) != 1 || got[0] != fx.malloryID {
		t.Fatalf("mallory's factors after alice's reset: %q", got)
	}
	// Nothing left: still 200.
	if w := e.factorsAPI(fx, http.MethodPost, "/api/v1/users/u1/lifecycle/reset_factors"); w.Code != 200 {
		t.Fatalf("second reset_factors: %d %s", w.Code, w.Body)
	}

	e.iss.StopEvents()
	evs := el.all()
	deact := one(t, evs, "user.mfa.factor.deactivate")
	resets := ofType(evs, "user.mfa.factor.reset_all")
	if len(resets) != 2 {
		t.Fatalf("%d reset_all events, want 2", len(resets))
	}
	for _, ev := range []store.LogEvent{deact, resets[0], resets[1]} {
		u := targetOf(ev, "User")
		if u == nil || u.ID != "u1" || u.AlternateID != "alice@example.com" || ev.Actor.ID != apiActor.ID || ev.Actor.Type != "SystemPrincipal" ||
			ev.Outcome.Result != "SUCCESS" || ev.Severity != "INFO" || ev.DisplayMessage == "" || ev.Transaction.Type != "WEB" ||
			targetOf(ev, "AuthorizationServer") != nil {
			t.Fatalf("%s event: actor %+v targets %+v outcome %+v", ev.EventType, ev.Actor, ev.Target, ev.Outcome)
		}
	}
	if dd := deact.DebugContext.DebugData; dd["factorId"] != fx.webauthnID || dd["factorType"] != "webauthn" {
		t.Fatalf("deactivate debugData %v", dd)
	}
	if dd := resets[0].DebugContext.DebugData; dd["factorIds"] != fx.totpID || resets[1].DebugContext.DebugData["factorIds"] != "" {
		t.Fatalf("reset_all debugData %v, %v", dd, resets[1].DebugContext.DebugData)
	}
	noSecrets(t, evs, logsToken, fx.secret, credentialMarker, code)
	logged := e.logs.FilterMessage(EventFactorDeactivate).All()
	if len(logged) != 1 || logged[0].ContextMap()["factor_id"] != fx.webauthnID || logged[0].ContextMap()["user_id"] != "u1" {
		t.Fatalf("Caddy log events %v", logged)
	}
	if n := len(e.logs.FilterMessage(EventFactorResetAll).All()); n != 2 {
		t.Fatalf("%d reset_all Caddy log events", n)
	}
}

// TestUserFactorsAPIRefusals: without a valid API token 401 E0000011
// on every path (before anything about the user is told); an unknown
// user (the login is not the id) is 404 E0000007; an unknown lifecycle
// operation is an unknown path; other methods 405 with Allow.
func TestUserFactorsAPIRefusals(t *testing.T) {
	e, _ := grantsEnv(t, nil)
	fx := e.enrollFactors()
	paths := []struct{ method, path string }{
		{http.MethodGet, "/api/v1/users/u1/factors"},
		{http.MethodGet, "/api/v1/users/u1/factors/" + fx.totpID},
		{http.MethodDelete, "/api/v1/users/u1/factors/" + fx.totpID},
		{http.MethodPost, "/api/v1/users/u1/lifecycle/reset_factors"},
		{http.MethodPost, "/api/v1/users/u1/lifecycle/unlock"},
		{http.MethodGet, "/api/v1/users/nobody/factors"},
	}
	for _, auth := range [][]string{{}, {"SSWS wrong-" + logsToken}, {"Bearer " + logsToken}, {"SSWS " + logsToken, "SSWS " + logsToken}} {
		for _, p := range paths {
			w := e.factorsAPI(fx, p.method, p.path, auth...)
			var body oktaError
			if json.Unmarshal(w.Body.Bytes(), &body) != nil || w.Code != 401 || body.Code != "E0000011" || w.Header().Get("WWW-Authenticate") != "SSWS" {
				t.Fatalf("%s %s with %q: %d %s", p.method, p.path, auth, w.Code, w.Body)
			}
		}
	}
	if got := factorIDs(e.userFactors(fx, "u1")); len(got) != 2 {
		t.Fatalf("refused calls changed alice's factors: %q", got)
	}
	for _, p := range []struct{ method, path string }{
		{http.MethodGet, "/api/v1/users/nobody/factors"},
		{http.MethodGet, "/api/v1/users/alice@example.com/factors"},
		{http.MethodDelete, "/api/v1/users/nobody/factors/" + fx.totpID},
		{http.MethodPost, "/api/v1/users/nobody/lifecycle/reset_factors"},
		{http.MethodPost, "/api/v1/users/nobody/lifecycle/unlock"},
	} {
		who := strings.Split(strings.TrimPrefix(p.path, "/api/v1/users/"), "/")[0]
		oktaNotFound(t, e.factorsAPI(fx, p.method, p.path), who+" (User)")
	}
	for _, p := range []string{"/api/v1/users/u1/lifecycle/suspend", "/api/v1/users/u1/lifecycle", "/api/v1/users/u1/factors/", "/api/v1/users/u1/factors/x/verify"} {
		oktaNotFound(t, e.factorsAPI(fx, http.MethodPost, p), "(Path)")
	}
	for _, c := range []struct{ method, path, allow string }{
		{http.MethodPost, "/api/v1/users/u1/factors", "GET"},
		{http.MethodDelete, "/api/v1/users/u1/factors", "GET"},
		{http.MethodPut, "/api/v1/users/u1/factors/" + fx.totpID, "GET, DELETE"},
		{http.MethodGet, "/api/v1/users/u1/lifecycle/reset_factors", "POST"},
		{http.MethodDelete, "/api/v1/users/u1/lifecycle/unlock", "POST"},
		{"GE", "/api/v1/users/u1/factors", "GET"},
	} {
		w := e.factorsAPI(fx, c.method, c.path)
		var body oktaError
		if w.Code != 405 || w.Header().Get("Allow") != c.allow || json.Unmarshal(w.Body.Bytes(), &body) != nil || body.Code != "E0000022" {
			t.Fatalf("%s %s: %d Allow %q %s", c.method, c.path, w.Code, w.Header().Get("Allow"), w.Body)
		}
	}
	if got := factorIDs(e.userFactors(fx, "u1")); len(got) != 2 {
		t.Fatalf("refused calls changed alice's factors: %q", got)
	}
}

// unlockAPI posts Okta's unlock for uid to node 0 with the API token.
func (e *signInEnv) unlockAPI(uid string) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.urls[0]+"/api/v1/users/"+uid+"/lifecycle/unlock", nil)
	req.Header.Set("Authorization", "SSWS "+logsToken)
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, readBody(resp)
}

// notLocked asserts Okta's answer to unlocking a user not locked out.
func notLocked(t *testing.T, what string, status int, body string) {
	t.Helper()
	var e struct {
		oktaError
		Causes []map[string]string `json:"errorCauses"`
	}
	if status != http.StatusForbidden || json.Unmarshal([]byte(body), &e) != nil || e.Code != "E0000032" ||
		e.Summary != "Unlock is not allowed for this user." || e.ID == "" || len(e.Causes) != 1 || e.Causes[0]["errorSummary"] == "" {
		t.Fatalf("%s: %d %s, want 403 E0000032", what, status, body)
	}
}

// TestUnlockUser: a user who is not locked out cannot be unlocked (403
// E0000032, Okta's), neither after a few wrong passwords; ten wrong
// passwords lock alice (the right one is refused), the API's unlock
// ends it (200 {}), the right password then gets a token, and the
// unlock is one user.account.unlock_by_admin event by the API token.
// On both stores.
func TestUnlockUser(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { testUnlockUser(t, embeddedStore(t)) })
	t.Run("postgres", func(t *testing.T) { testUnlockUser(t, postgresStore(t)) })
}

func testUnlockUser(t *testing.T, st store.Store) {
	el := &memEventLog{}
	e := newSignInEnv(t, st, 1, nil, func(o *Options) { o.APITokens, o.EventLog = []string{logsToken}, el })
	status, body := e.unlockAPI("00u1alice")
	notLocked(t, "alice, never failed", status, body)
	for n := range maxUserFailures - 1 {
		status, _, m := e.grant("alice@example.com", fmt.Sprintf("wrong-%02d", n))
		badCredentials(t, fmt.Sprintf("wrong password %d", n+1), status, m)
	}
	status, body = e.unlockAPI("00u1alice")
	notLocked(t, fmt.Sprintf("alice after %d failures", maxUserFailures-1), status, body)

	status, _, m := e.grant("alice@example.com", "wrong-last")
	badCredentials(t, "the failure that locks", status, m)
	status, _, m = e.grant("alice@example.com", alicePass)
	badCredentials(t, "the right password, locked", status, m)

	status, body = e.unlockAPI("00u1alice")
	if status != 200 || strings.TrimSpace(body) != "{}" {
		t.Fatalf("unlock: %d %s", status, body)
	}
	status, _, m = e.grant("alice@example.com", alicePass)
	if status != 200 || m["access_token"] == nil {
		t.Fatalf("the right password after the unlock: %d %v", status, m)
	}
	status, body = e.unlockAPI("00u1alice")
	notLocked(t, "alice, signed in again", status, body)
	status, body = e.unlockAPI("alice@example.com")
	if !strings.Contains(body, "E0000007") || status != 404 {
		t.Fatalf("unlock by login: %d %s", status, body)
	}

	e.nodes[0].StopEvents()
	evs := el.all()
	ev := one(t, evs, "user.account.unlock_by_admin")
	u := targetOf(ev, "User")
	if u == nil || u.ID != "00u1alice" || u.AlternateID != "alice@example.com" || ev.Actor.ID != apiActor.ID ||
		ev.Outcome.Result != "SUCCESS" || ev.DisplayMessage != "Unlock user account by admin" {
		t.Fatalf("unlock event: actor %+v targets %+v outcome %+v", ev.Actor, ev.Target, ev.Outcome)
	}
	one(t, evs, "user.account.lock")
	noSecrets(t, evs, logsToken, alicePass, "wrong-")
	if n := len(e.logs.FilterMessage(EventUnlockByAdmin).All()); n != 1 {
		t.Fatalf("%d unlock Caddy log events, want 1", n)
	}
}

// The kinds' names are Okta's, on both servers' forms.
func TestFactorEventKinds(t *testing.T) {
	for event, want := range map[string]string{
		EventFactorDeactivate: "user.mfa.factor.deactivate",
		EventFactorResetAll:   "user.mfa.factor.reset_all",
		EventUnlockByAdmin:    "user.account.unlock_by_admin",
	} {
		k := kindsOf(event, &decision{}, false)
		if len(k) != 1 || k[0].custom != want || k[0].org != want {
			t.Fatalf("%s: kinds %+v", event, k)
		}
	}
}
