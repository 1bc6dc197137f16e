package authserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientip"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/hashgate"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/ui"
)

// genericSignInError is the only thing a failed sign-in page says.
const genericSignInError = "Unable to sign in. Check your username and password, or try again later."

// session is the SSO session behind the session cookie.
type session struct {
	UserID   string    `json:"uid"`
	AuthTime time.Time `json:"auth_time"`
	Amr      []string  `json:"amr"`
	// FactorTime is when a second factor was last verified (a step-up
	// keeps AuthTime, the password's, and moves this).
	FactorTime time.Time `json:"factor_time,omitzero"`
}

func (i *Issuer) currentSession(r *http.Request) (*session, bool) {
	sid, ok := i.readCookie(r, sessionCookie)
	if !ok || len(sid) > 128 {
		return nil, false
	}
	raw, err := i.store.GetRecord(r.Context(), store.NSSession, sid)
	if err != nil {
		return nil, false
	}
	var s session
	if json.Unmarshal(raw, &s) != nil {
		return nil, false
	}
	if i.dir == nil {
		return nil, false
	}
	if u, err := i.dir.UserByID(r.Context(), s.UserID); err != nil || !u.Active() {
		return nil, false
	}
	// An admin cleared the user's sessions (subject_revoke.go); a store
	// failure counts as no session: sign in again rather than guess.
	if cut, err := i.sessionCutOff(r.Context(), &s); err != nil || cut {
		return nil, false
	}
	return &s, true
}

// expiredSignIn is the answer to a sign-in form whose pending request
// is unknown, used up or not this browser's.
const expiredSignIn = "This sign-in page has expired or was not opened here. Return to the application and try again."

// busyPage is the answer when the password could not be checked now.
const busyPage = "Too many sign-ins are in progress. Try again in a moment."

// serveSignIn takes the sign-in form (org path /oauth2/v1/signin; the
// session it starts serves every authorization server).
func (i *Issuer) serveSignIn(w http.ResponseWriter, r *http.Request) {
	form, txn, req, ok := i.postedPage(w, r, expiredSignIn)
	if !ok {
		return
	}
	s, ok := i.Server(req.Server)
	if !ok {
		i.errorPage(w, http.StatusBadRequest, "The request could not be completed.")
		return
	}
	c, ok := i.clientFor(req)
	if !ok {
		i.errorPage(w, http.StatusBadRequest, "The request could not be completed.")
		return
	}
	login := directory.NormalizeLogin(form["username"])
	ctx := r.Context()
	d := decision{server: s, clientID: req.ClientID, login: login, clientIP: clientip.From(r), req: r}
	// One pending sign-in takes a few passwords, then expires: the
	// per-login limit is not the only bound on guesses through it.
	tries, err := i.store.Incr(ctx, store.NSAttempts, "txn:"+txn, 1, i.now().Add(txnLifetime))
	if err != nil {
		i.storeFailurePage(w, err)
		return
	}
	if tries > maxTxnAttempts {
		i.dropTxn(ctx, txn)
		i.errorPage(w, http.StatusBadRequest, expiredSignIn)
		return
	}
	u, err := i.passwordAttempt(ctx, login, form["password"], clientip.Key(r), d, func(u *directory.User) bool {
		n, err := i.needFor(r, c, u, req.ACRValues)
		return err == nil && n.factor == policy.FactorNone
	})
	switch {
	case errors.Is(err, errLocked):
		i.logFailure(EventSignIn, d, &oauth.Error{Code: "locked", Reason: "too many failed sign-ins"})
		i.loginPage(w, s, txn, typedLogin(req, form["username"]), genericSignInError, http.StatusTooManyRequests)
		return
	case errors.Is(err, errLoginBusy), errors.Is(err, hashgate.ErrBusy):
		// Not checked: the page keeps its attempt.
		_, _ = i.store.Incr(ctx, store.NSAttempts, "txn:"+txn, -1, i.now().Add(txnLifetime))
		i.logFailure(EventSignIn, d, &oauth.Error{Code: "temporarily_unavailable", Reason: err.Error()})
		w.Header().Set("Retry-After", strconv.Itoa(int(i.gate.RetryAfter().Round(time.Second).Seconds())))
		i.errorPage(w, http.StatusServiceUnavailable, busyPage)
		return
	case errors.Is(err, directory.ErrBadCredentials), errors.Is(err, errDirectory):
		reason := "bad credentials"
		if errors.Is(err, errDirectory) || errors.Is(err, errInactive) {
			reason = err.Error()
		}
		if u != nil {
			d.userID = u.ID
		}
		i.logFailure(EventSignIn, d, &oauth.Error{Code: "invalid_credentials", Reason: reason})
		if tries >= maxTxnAttempts {
			i.dropTxn(ctx, txn)
			i.errorPage(w, http.StatusUnauthorized, expiredSignIn)
			return
		}
		i.loginPage(w, s, txn, typedLogin(req, form["username"]), genericSignInError, http.StatusUnauthorized)
		return
	case err != nil:
		i.storeFailurePage(w, err)
		return
	}
	// The pending sign-in yields one session and one code: a second
	// post of the same form finds it gone.
	if !i.takeTxn(w, r, txn, expiredSignIn) {
		return
	}
	// The sign-on policy decides whether the password is enough (mfa.go).
	i.afterPassword(w, r, s, c, req, u, d)
}

// maxTypedLogin bounds the username a failed sign-in page shows again
// (the bound of login_hint).
const maxTypedLogin = 256

// typedLogin is req with the username the user typed as the login hint,
// so the page shown after a failed attempt keeps it (html/template
// escapes it). Too long or not UTF-8, it is left out.
func typedLogin(req *authzRequest, typed string) *authzRequest {
	again := *req
	again.LoginHint = ""
	if typed = strings.TrimSpace(typed); len(typed) <= maxTypedLogin && utf8.ValidString(typed) {
		again.LoginHint = typed
	}
	return &again
}

// takeTxn consumes a pending request, atomically: of two posts of one
// page only one goes on. The other gets the expired page.
func (i *Issuer) takeTxn(w http.ResponseWriter, r *http.Request, txn, expired string) bool {
	_, err := i.store.UpdateRecord(r.Context(), store.NSTransaction, txn, func([]byte) ([]byte, error) { return nil, nil })
	switch {
	case errors.Is(err, store.ErrNotFound):
		i.errorPage(w, http.StatusBadRequest, expired)
		return false
	case err != nil:
		i.storeFailurePage(w, err)
		return false
	}
	return true
}

// dropTxn ends a pending request that has had its attempts.
func (i *Issuer) dropTxn(ctx context.Context, txn string) {
	_, _ = i.store.UpdateRecord(ctx, store.NSTransaction, txn, func([]byte) ([]byte, error) { return nil, nil })
}

// afterSignIn runs the policy for the signed-in user, asks for consent
// when a required scope was not granted before, then issues the code.
func (i *Issuer) afterSignIn(w http.ResponseWriter, r *http.Request, s *Server, c *clientauth.Client, req *authzRequest) {
	u, err := i.dir.UserByID(r.Context(), req.UserID)
	if err != nil || !u.Active() {
		i.redirectError(w, r, s, req, "access_denied", "The user is not allowed to sign in.")
		return
	}
	d := decision{server: s, clientID: c.ID, userID: u.ID, scopes: req.Scopes, grantType: GrantAuthorizationCode}
	if _, e := s.evaluate(policy.Request{ClientID: c.ID, GrantType: GrantAuthorizationCode, Scopes: req.Scopes, User: policyUser(u)}, &d); e != nil {
		i.redirectDenied(w, r, s, req, d, e)
		return
	}
	if pending := i.pendingConsent(r, s, c, u, req); len(pending) > 0 {
		if slices.Contains(req.Prompt, "none") {
			i.redirectError(w, r, s, req, "consent_required", "The client requires user consent, but prompt=none was requested.")
			return
		}
		txn, ok := i.saveTxn(w, r, req)
		if !ok {
			return
		}
		lines := make([]ui.Scope, 0, len(pending))
		for _, sc := range pending {
			lines = append(lines, ui.Scope{Name: sc.Name, Description: sc.Description})
		}
		htmlHeaders(w, req.RedirectURI)
		_ = i.pages.RenderConsent(w, ui.Consent{Title: "Allow access", Action: i.base + "/oauth2/v1/consent", Txn: txn, CSRF: req.CSRF,
			ClientName: c.Name, Login: u.Login, Scopes: lines})
		return
	}
	i.issueCode(w, r, s, req)
}

// redirectDenied is redirectError for a policy decision: the event
// keeps the decision (policies tried, Okta's no_matching_policy reason
// and why), the client gets the error in its response mode.
func (i *Issuer) redirectDenied(w http.ResponseWriter, r *http.Request, s *Server, req *authzRequest, d decision, e *oauth.Error) {
	d.req = r
	i.logFailure(EventAuthorize, d, e)
	i.respond(w, r, s, req, map[string]string{"error": e.Code, "error_description": e.Description})
}

// pendingConsent lists the requested consent-required scopes this user
// has not granted this client yet (all of them with prompt=consent).
func (i *Issuer) pendingConsent(r *http.Request, s *Server, c *clientauth.Client, u *directory.User, req *authzRequest) []*Scope {
	var out []*Scope
	for _, name := range req.Scopes {
		sc := s.scopes[name]
		if sc == nil || sc.Consent != "required" {
			continue
		}
		if !slices.Contains(req.Prompt, "consent") {
			if _, err := i.store.GetRecord(r.Context(), store.NSConsent, consentKey(s, c, u.ID, name)); err == nil {
				continue
			}
		}
		out = append(out, sc)
	}
	return out
}

func consentKey(s *Server, c *clientauth.Client, uid, scope string) string {
	return s.ID + "\x00" + c.ID + "\x00" + uid + "\x00" + scope
}

// serveConsent takes the consent form.
func (i *Issuer) serveConsent(w http.ResponseWriter, r *http.Request) {
	const expired = "This page has expired or was not opened here. Return to the application and try again."
	form, txn, req, ok := i.postedPage(w, r, expired)
	if !ok {
		return
	}
	// A page of another step (the recovery codes page, the settings)
	// never answers a consent.
	if req.UserID == "" || req.Enrolled || req.Settings || req.Pending != "" {
		i.errorPage(w, http.StatusBadRequest, expired)
		return
	}
	// The consent belongs to the signed-in user of this browser.
	if sess, ok := i.currentSession(r); !ok || sess.UserID != req.UserID {
		i.errorPage(w, http.StatusBadRequest, "Your session has ended. Return to the application and sign in again.")
		return
	}
	s, ok := i.Server(req.Server)
	c, ok2 := i.auth.Client(req.ClientID)
	if !ok || !ok2 {
		i.errorPage(w, http.StatusBadRequest, "The request could not be completed.")
		return
	}
	// One answer per consent page: a second post finds it gone.
	if !i.takeTxn(w, r, txn, expired) {
		return
	}
	if form["decision"] == "switch" && req.Device == "" {
		i.switchUser(w, r, s, req)
		return
	}
	if req.Device != "" {
		i.decideDevice(w, r, req, form["decision"] == "allow")
		return
	}
	if form["decision"] != "allow" {
		i.redirectError(w, r, s, req, "access_denied", "User denied consent.")
		return
	}
	now := i.now()
	var granted []string
	for _, name := range req.Scopes {
		if sc := s.scopes[name]; sc != nil && sc.Consent == "required" {
			if err := i.store.PutRecord(r.Context(), store.NSConsent, consentKey(s, c, req.UserID, name), consentValue(now), now.Add(consentLifetime)); err != nil {
				i.storeFailurePage(w, err)
				return
			}
			granted = append(granted, name)
		}
	}
	if granted != nil {
		i.logSuccess(EventConsentGrant, decision{server: s, clientID: c.ID, userID: req.UserID, scopes: granted, req: r})
	}
	i.issueCode(w, r, s, req)
}

// switchUser answers "Not you?" on the consent page: the SSO session
// ends and the sign-in page is shown for the same pending request,
// under a new txn and CSRF token; signing in goes on to consent for
// whoever signs in. It is reached only by a POST carrying this
// browser's txn cookie and the page's CSRF token, so another site
// cannot end a session with it.
func (i *Issuer) switchUser(w http.ResponseWriter, r *http.Request, s *Server, req *authzRequest) {
	if sid, ok := i.readCookie(r, sessionCookie); ok {
		if err := i.endSession(r.Context(), sid); err != nil {
			// The session lives on: say so rather than pretend.
			i.storeFailurePage(w, err)
			return
		}
	}
	i.logSuccess(EventSignOut, decision{server: s, clientID: req.ClientID, userID: req.UserID, req: r})
	gone := i.cookie(r, sessionCookie, "", 0)
	gone.MaxAge = -1
	http.SetCookie(w, gone)
	// The client's login_hint named the user who just said "not me".
	req.UserID, req.AuthTime, req.Amr, req.LoginHint = "", time.Time{}, nil, ""
	req.CSRF = randomToken()
	txn, ok := i.saveTxn(w, r, req)
	if !ok {
		return
	}
	i.loginPage(w, s, txn, req, "", http.StatusOK)
}
