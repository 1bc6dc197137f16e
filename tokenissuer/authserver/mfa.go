package authserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/factors"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/webauthnrp"
)

// Sign-in in steps: the sign-on policy (policy.EvaluateSignOn) and the
// client's acr_values decide what a sign-in needs; a password alone, a
// second factor (any, or phishing-resistant: WebAuthn), or a fresh
// sign-in. An SSO session that lacks a required factor is stepped up
// (the factor is asked, the session kept); one older than the rule
// allows signs in again.

// Authentication methods (RFC 8176) in sessions and tokens' amr.
const (
	amrPassword = "pwd"
	amrOTP      = "otp"
	amrMFA      = "mfa"
	amrHardware = "hwk"
	amrSoftware = "swk"
)

// acr_values Okta accepts (Okta's /authorize reference, acr_values, and
// guide "Step-up authentication using ACR values").
const (
	acr1FAAny        = "urn:okta:loa:1fa:any"
	acr1FAPwd        = "urn:okta:loa:1fa:pwd"
	acr2FAAny        = "urn:okta:loa:2fa:any"
	acr2FAIfPossible = "urn:okta:loa:2fa:any:ifpossible"
	acrPhr           = "phr"
	acrPhrh          = "phrh"
)

var knownACR = []string{acr1FAAny, acr1FAPwd, acr2FAAny, acr2FAIfPossible, acrPhr, acrPhrh}

// need is what a sign-in must show besides the password.
type need struct {
	factor string // policy.FactorNone, FactorAny or FactorPhishingResistant
	// hardware: only a device-bound key (acr phrh).
	hardware bool
	// ifPossible: a factor when the user has one, else the password
	// (acr urn:okta:loa:2fa:any:ifpossible).
	ifPossible bool
	maxAge     time.Duration // 0: any session age
	every      bool          // sign in again at every sign-in
	enroll     bool          // a user without a suitable factor may enroll one
	deny       bool
	policy     string // the sign-on policy and rule that decided, for events
	rule       string
}

// requirement is what signing user u in to client c needs under the
// sign-on policies and the request's acr_values: the stricter of both.
func (i *Issuer) requirement(c *clientauth.Client, u *directory.User, acr []string) need {
	n := need{factor: policy.FactorNone}
	// A rule that asks for a factor and refuses enrollment at sign-in
	// keeps refusing it, whatever acr_values the client sends.
	noEnroll := false
	if d, ok := policy.EvaluateSignOn(i.signOn, policy.SignOnRequest{ClientID: c.ID, User: policyUser(u)}); ok {
		n = need{factor: d.Factor, maxAge: d.MaxSessionAge, every: d.EverySignIn, enroll: d.EnrollAtSignIn, deny: d.Deny, policy: d.Policy, rule: d.Rule}
		noEnroll = d.Factor != policy.FactorNone && !d.EnrollAtSignIn
	}
	if len(acr) == 0 {
		return n
	}
	// acr_values are in order of preference (OpenID Connect Core
	// section 3.1.2.1); the first one decides what is asked.
	switch acr[0] {
	case acr2FAAny:
		n.factor = stricter(n.factor, policy.FactorAny)
		n.enroll = !noEnroll
	case acr2FAIfPossible:
		if n.factor == policy.FactorNone {
			n.factor, n.ifPossible = policy.FactorAny, true
		}
	case acrPhr:
		n.factor, n.enroll = policy.FactorPhishingResistant, !noEnroll
	case acrPhrh:
		n.factor, n.hardware, n.enroll = policy.FactorPhishingResistant, true, !noEnroll
	}
	return n
}

// needFor is requirement with what the self-service page adds.
func (i *Issuer) needFor(r *http.Request, c *clientauth.Client, u *directory.User, acr []string) (need, error) {
	n := i.requirement(c, u, acr)
	if c == settingsClient {
		return i.settingsNeed(r, u, n)
	}
	return n, nil
}

func stricter(a, b string) string {
	rank := map[string]int{policy.FactorNone: 0, policy.FactorAny: 1, policy.FactorPhishingResistant: 2}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// meets reports whether a session's methods satisfy n's factor.
func (n need) meets(amr []string) bool {
	switch n.factor {
	case policy.FactorAny:
		return slices.Contains(amr, amrMFA)
	case policy.FactorPhishingResistant:
		if n.hardware {
			return slices.Contains(amr, amrHardware)
		}
		return slices.Contains(amr, amrHardware) || slices.Contains(amr, amrSoftware)
	}
	return true
}

// suits reports whether factor f can satisfy n.
func (n need) suits(f factors.Factor) bool {
	if f.Status != factors.StatusActive {
		return false
	}
	switch n.factor {
	case policy.FactorPhishingResistant:
		if f.Kind != factors.KindWebAuthn {
			return false
		}
		if n.hardware { // phrh: a device-bound key only
			info, err := webauthnrp.CredentialInfo(f.Credential)
			return err == nil && !info.BackupEligible
		}
		return true
	case policy.FactorAny:
		return true
	}
	return false
}

// acrOf is the acr of a session's methods for the request: the first
// requested value they satisfy, else what they are (Okta's 1fa / 2fa
// values).
func acrOf(amr []string, requested []string) string {
	satisfied := func(v string) bool {
		switch v {
		case acr1FAAny, acr1FAPwd:
			return true
		case acr2FAAny:
			return slices.Contains(amr, amrMFA)
		case acr2FAIfPossible:
			return true
		case acrPhr:
			return slices.Contains(amr, amrHardware) || slices.Contains(amr, amrSoftware)
		case acrPhrh:
			return slices.Contains(amr, amrHardware)
		}
		return false
	}
	for _, v := range requested {
		if satisfied(v) {
			return v
		}
	}
	if slices.Contains(amr, amrMFA) {
		return acr2FAAny
	}
	return acr1FAPwd
}

// withMethods is amr with the methods ms added once each, mfa when a
// second factor joins the password.
func withMethods(amr []string, ms ...string) []string {
	out := slices.Clone(amr)
	for _, m := range ms {
		if m != "" && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	if len(out) > 1 && slices.Contains(out, amrPassword) && !slices.Contains(out, amrMFA) {
		out = append(out, amrMFA)
	}
	return out
}

// proceed goes on with a request whose user is signed in with methods
// that meet its requirement: the device approval, or consent and code.
func (i *Issuer) proceed(w http.ResponseWriter, r *http.Request, s *Server, c *clientauth.Client, req *authzRequest) {
	if req.Settings {
		http.Redirect(w, r, i.base+settingsPath, http.StatusSeeOther)
		return
	}
	if req.Device != "" {
		i.deviceConfirm(w, r, s, c, req)
		return
	}
	i.afterSignIn(w, r, s, c, req)
}

// withSession continues a request with the browser's SSO session: on
// when it meets the sign-on policy, stepped up when it lacks a factor,
// a new sign-in when it is older than the rule allows (or the rule asks
// every time), refused by a deny rule.
func (i *Issuer) withSession(w http.ResponseWriter, r *http.Request, s *Server, c *clientauth.Client, req *authzRequest, sess *session) {
	u, err := i.dir.UserByID(r.Context(), sess.UserID)
	if err != nil || !u.Active() {
		i.signInAgain(w, r, s, req)
		return
	}
	n, err := i.needFor(r, c, u, req.ACRValues)
	if err != nil {
		i.storeFailurePage(w, err)
		return
	}
	switch {
	case n.deny:
		i.denyBySignOnPolicy(w, r, s, c, req, u, n)
		return
	case n.every || (n.maxAge > 0 && i.now().Sub(sess.AuthTime) > n.maxAge):
		i.logSignOnPolicy(r, s, c, u, n, "REAUTHENTICATE")
		i.signInAgain(w, r, s, req)
		return
	}
	req.UserID, req.AuthTime, req.Amr = sess.UserID, sess.AuthTime, sess.Amr
	if n.meets(sess.Amr) {
		i.proceed(w, r, s, c, req)
		return
	}
	// Step up: the session stays, the factor is asked.
	if slices.Contains(req.Prompt, "none") {
		i.redirectError(w, r, s, req, "interaction_required", "The client specified not to prompt, but the sign-on policy requires a second factor.")
		return
	}
	req.UserID, req.AuthTime, req.Amr = "", time.Time{}, nil
	i.askFactor(w, r, s, c, req, u, n, sess.AuthTime, sess.Amr, true)
}

// signInAgain shows the sign-in page for req (prompt=none: login_required).
func (i *Issuer) signInAgain(w http.ResponseWriter, r *http.Request, s *Server, req *authzRequest) {
	if slices.Contains(req.Prompt, "none") {
		i.redirectError(w, r, s, req, "login_required", "The client specified not to prompt, but the user is not logged in.")
		return
	}
	req.UserID, req.AuthTime, req.Amr = "", time.Time{}, nil
	txn, ok := i.saveTxn(w, r, req)
	if !ok {
		return
	}
	i.loginPage(w, s, txn, req, "", http.StatusOK)
}

// afterPassword goes on once user u gave the right password on the
// sign-in page (the pending request already consumed): a session when
// the password is enough, else the factor (or enrollment) step.
func (i *Issuer) afterPassword(w http.ResponseWriter, r *http.Request, s *Server, c *clientauth.Client, req *authzRequest, u *directory.User, d decision) {
	n, err := i.needFor(r, c, u, req.ACRValues)
	if err != nil {
		i.storeFailurePage(w, err)
		return
	}
	if n.deny {
		i.denyBySignOnPolicy(w, r, s, c, req, u, n)
		return
	}
	now := i.now()
	if n.factor != policy.FactorNone {
		i.askFactor(w, r, s, c, req, u, n, now, []string{amrPassword}, false)
		return
	}
	if n.policy != "" {
		i.logSignOnPolicy(r, s, c, u, n, "ALLOW")
	}
	if r = i.startSession(w, r, d, req, u, now, []string{amrPassword}); r != nil {
		i.proceed(w, r, s, c, req)
	}
}

// startSession creates the SSO session of u, signed in at authTime with
// amr, and sets req's user. It returns the request to go on with (it
// carries the new session's digest for the events that follow), or nil
// after answering a store failure.
func (i *Issuer) startSession(w http.ResponseWriter, r *http.Request, d decision, req *authzRequest, u *directory.User, authTime time.Time, amr []string) *http.Request {
	sid := randomToken()
	now := i.now()
	rec := session{UserID: u.ID, AuthTime: authTime, Amr: amr}
	if slices.Contains(amr, amrMFA) {
		rec.FactorTime = now
	}
	sb, _ := json.Marshal(rec)
	if err := i.store.PutRecord(r.Context(), store.NSSession, sid, sb, now.Add(SessionLifetime)); err != nil {
		i.storeFailurePage(w, err)
		return nil
	}
	http.SetCookie(w, i.cookie(r, sessionCookie, sid, SessionLifetime))
	d.userID, d.session, d.amr = u.ID, sessionDigest(sid), amr
	if d.req == nil {
		d.req = r
	}
	i.logSuccess(EventSignIn, d)
	req.UserID, req.AuthTime, req.Amr = u.ID, authTime, amr
	return r.WithContext(withSession(r.Context(), d.session))
}

// stepUpSession adds the factor's methods to the browser's session of
// u, keeping its sign-in time, and sets req's user; false after
// answering.
func (i *Issuer) stepUpSession(w http.ResponseWriter, r *http.Request, req *authzRequest, u *directory.User, methods []string) bool {
	sid, ok := i.readCookie(r, sessionCookie)
	if !ok {
		i.errorPage(w, http.StatusBadRequest, "Your session has ended. Return to the application and sign in again.")
		return false
	}
	var got session
	_, err := i.store.UpdateRecord(r.Context(), store.NSSession, sid, func(old []byte) ([]byte, error) {
		if json.Unmarshal(old, &got) != nil || got.UserID != u.ID {
			return nil, errSessionChanged
		}
		got.Amr, got.FactorTime = withMethods(got.Amr, methods...), i.now()
		return json.Marshal(got)
	})
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, errSessionChanged):
		i.errorPage(w, http.StatusBadRequest, "Your session has ended. Return to the application and sign in again.")
		return false
	case err != nil:
		i.storeFailurePage(w, err)
		return false
	}
	req.UserID, req.AuthTime, req.Amr = u.ID, got.AuthTime, got.Amr
	return true
}

// errSessionChanged: the session cookie now names another user's
// session (or a broken record); a step-up never crosses users.
var errSessionChanged = errors.New("session is another user's")

// denyBySignOnPolicy refuses a sign-in a deny rule matches, as Okta
// does for an app sign-on policy's "Access is denied".
func (i *Issuer) denyBySignOnPolicy(w http.ResponseWriter, r *http.Request, s *Server, c *clientauth.Client, req *authzRequest, u *directory.User, n need) {
	i.logSignOnPolicy(r, s, c, u, n, "DENY")
	switch {
	case req.Settings: // no client to send the error to
		i.errorPage(w, http.StatusForbidden, "The sign-on policy does not allow you to open your account settings.")
		return
	case req.Device != "": // the device learns it at its next poll
		i.decideDevice(w, r, req, false)
		return
	}
	i.redirectError(w, r, s, req, "access_denied", "The sign-on policy does not allow this user to sign in to this application.")
}

// factorKinds lists the kinds of the user's factors that can meet n,
// offered by this issuer.
func (i *Issuer) usableFactors(ctx context.Context, u *directory.User, n need) ([]factors.Factor, error) {
	all, err := i.factors.Active(ctx, u.ID)
	if n.factor == policy.FactorPhishingResistant {
		all, err = i.factors.WebAuthn(ctx, u.ID) // with the credentials, for their flags
	}
	if err != nil {
		return nil, err
	}
	var out []factors.Factor
	for _, f := range all {
		if !n.suits(f) || !slices.Contains(i.authenticators, string(f.Kind)) {
			continue
		}
		out = append(out, f)
	}
	return out, nil
}

// trimFactor bounds a code a user typed: digits, letters and dashes of
// a TOTP or recovery code, nothing longer.
func trimFactor(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 64 {
		return ""
	}
	return s
}
