package authserver

import (
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientip"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/factors"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/hashgate"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/ui"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/webauthnrp"
)

// The factor step's pages post to {base}/oauth2/v1/signin/factor: the
// second-factor page (a TOTP code, a recovery code, a WebAuthn key),
// the enrollment page (an authenticator app or a key) and the recovery
// codes page shown once after an enrollment.

const (
	factorPath = "/oauth2/v1/signin/factor"
	scriptPath = "/oauth2/v1/static/webauthn.js"
	// msgBadCode is all a refused code is told.
	msgBadCode = "That code is not valid. Try again."
	// msgNoFactor: a rule requires a factor the user has none of and
	// may not enroll now.
	msgNoFactor = "Signing in to this application needs a second factor you have not set up. Ask your administrator."
	// msgStrongerFactor: the user has factors, none the rule accepts.
	msgStrongerFactor = "Signing in to this application needs a security key or passkey. Add one in your account settings, then sign in again."
	// expiredFactor is the answer to a factor page that is no longer
	// this browser's pending sign-in.
	expiredFactor = "This page has expired or was not opened here. Return to the application and sign in again."
)

// askFactor shows the factor step for user u of req, who signed in at
// authTime with amr (a password just now, or the session being stepped
// up): the factor page, the enrollment page, or the refusal of a user
// who has no suitable factor and may not enroll one.
func (i *Issuer) askFactor(w http.ResponseWriter, r *http.Request, s *Server, c *clientauth.Client, req *authzRequest, u *directory.User, n need, authTime time.Time, amr []string, stepUp bool) {
	step, usable, err := i.factorStepFor(r.Context(), u, n)
	if err != nil {
		i.storeFailurePage(w, err)
		return
	}
	switch step {
	case stepPasswordOnly:
		// acr urn:okta:loa:2fa:any:ifpossible: no factor, the password is it.
		if stepUp {
			req.UserID, req.AuthTime, req.Amr = u.ID, authTime, amr
			i.proceed(w, r, s, c, req)
			return
		}
		i.clearLogin(r.Context(), directory.NormalizeLogin(u.Login))
		if r = i.startSession(w, r, decision{server: s, clientID: c.ID, login: u.Login, clientIP: clientip.From(r)}, req, u, authTime, amr); r != nil {
			i.proceed(w, r, s, c, req)
		}
		return
	case stepStronger:
		i.logSignOnPolicy(r, s, c, u, n, "DENY")
		i.errorPage(w, http.StatusForbidden, msgStrongerFactor)
		return
	case stepNoFactor:
		i.logSignOnPolicy(r, s, c, u, n, "DENY")
		i.errorPage(w, http.StatusForbidden, msgNoFactor)
		return
	case stepEnroll:
		if stepUp {
			// A session alone never enrolls a factor: the password first.
			req.LoginHint = u.Login
			i.signInAgain(w, r, s, req)
			return
		}
	}
	req.Pending, req.PendingTime, req.PendingAmr, req.StepUp = u.ID, authTime, amr, stepUp
	req.Need, req.Hardware, req.Enroll = n.factor, n.hardware, n.enroll
	req.CSRF = randomToken()
	if len(usable) == 0 {
		i.logSignOnPolicy(r, s, c, u, n, "CHALLENGE")
		i.enrollPage(w, r, "", req, c, u, "", http.StatusOK)
		return
	}
	i.logSignOnPolicy(r, s, c, u, n, "CHALLENGE")
	i.factorPage(w, r, "", req, c, u, usable, "", http.StatusOK)
}

// canEnroll reports whether this issuer offers a factor kind that meets n.
func (i *Issuer) canEnroll(n need) bool {
	if n.factor == policy.FactorPhishingResistant {
		return i.rp != nil
	}
	return i.rp != nil || slices.Contains(i.authenticators, policy.AuthenticatorTOTP)
}

// saveStep stores req under txn (a new txn when empty) for the next post.
func (i *Issuer) saveStep(w http.ResponseWriter, r *http.Request, txn string, req *authzRequest) (string, bool) {
	if txn == "" {
		return i.saveTxn(w, r, req)
	}
	b, _ := json.Marshal(req)
	if err := i.store.PutRecord(r.Context(), store.NSTransaction, txn, b, i.now().Add(txnLifetime)); err != nil {
		i.storeFailurePage(w, err)
		return "", false
	}
	return txn, true
}

// webAuthnPage is the WebAuthn part of a page.
func (i *Issuer) webAuthnPage(options []byte) ui.WebAuthn {
	if options == nil {
		return ui.WebAuthn{}
	}
	return ui.WebAuthn{Options: string(options), Script: i.base + scriptPath, Integrity: webauthnrp.ScriptIntegrity}
}

// webAuthnUser is u for the Relying Party, with the credentials of fs.
func webAuthnUser(u *directory.User, fs []factors.Factor) webauthnrp.User {
	var creds [][]byte
	for _, f := range fs {
		if f.Kind == factors.KindWebAuthn && len(f.Credential) > 0 {
			creds = append(creds, f.Credential)
		}
	}
	return webauthnrp.NewUser(u.ID, u.Login, u.Login, creds)
}

// factorPage renders the second-factor page for usable factors, with a
// fresh WebAuthn challenge when a key can answer, and saves the step.
func (i *Issuer) factorPage(w http.ResponseWriter, r *http.Request, txn string, req *authzRequest, c *clientauth.Client, u *directory.User, usable []factors.Factor, msg string, status int) {
	page := ui.Factor{Title: "Verify it's you", Action: i.base + factorPath, ClientName: c.Name, Login: u.Login, Error: msg}
	req.WebAuthn = nil
	for _, f := range usable {
		switch f.Kind {
		case factors.KindTOTP:
			page.TOTP = true
		case factors.KindWebAuthn:
			if i.rp != nil && req.WebAuthn == nil {
				creds, err := i.factors.WebAuthn(r.Context(), u.ID)
				if err != nil {
					i.storeFailurePage(w, err)
					return
				}
				opts, sess, err := i.rp.BeginLogin(webAuthnUser(u, creds))
				if err != nil {
					i.log.Error("starting a WebAuthn sign-in failed", zap.Error(err))
					continue
				}
				req.WebAuthn = sess
				page.WebAuthn = i.webAuthnPage(opts)
			}
		}
	}
	// A recovery code stands in for any factor, never for a
	// phishing-resistant one.
	if req.Need == policy.FactorAny {
		if left, err := i.factors.RecoveryCodesLeft(r.Context(), u.ID); err == nil && left > 0 {
			page.Recovery = true
		}
	}
	txn, ok := i.saveStep(w, r, txn, req)
	if !ok {
		return
	}
	page.Txn, page.CSRF = txn, req.CSRF
	mfaHeaders(w, req.RedirectURI)
	w.WriteHeader(status)
	_ = i.pages.RenderFactor(w, page)
}

// enrollPage renders the enrollment page: a new pending TOTP factor
// (when an authenticator app meets the rule) and a WebAuthn
// registration, and saves the step.
func (i *Issuer) enrollPage(w http.ResponseWriter, r *http.Request, txn string, req *authzRequest, c *clientauth.Client, u *directory.User, msg string, status int) {
	page := ui.Enroll{Title: "Set up a second factor", Action: i.base + factorPath, ClientName: c.Name, Login: u.Login, Error: msg}
	ctx := r.Context()
	if req.Need != policy.FactorPhishingResistant && slices.Contains(i.authenticators, policy.AuthenticatorTOTP) {
		// After a wrong code, the same secret again: the user scanned it.
		en, err := i.factors.PendingTOTP(ctx, u.ID, req.EnrollID, u.Login)
		if req.EnrollID == "" || errors.Is(err, factors.ErrNotFound) {
			en, err = i.factors.EnrollTOTP(ctx, u.ID, u.Login)
		}
		if err != nil {
			i.storeFailurePage(w, err)
			return
		}
		req.EnrollID = en.FactorID
		page.TOTPQR, page.TOTPSecret, page.TOTPURI = ui.PNGDataURL(en.QRPNG), en.Secret, template.URL(en.URL) // pquerna/otp made it
	}
	req.WebAuthn = nil
	if i.rp != nil {
		creds, err := i.factors.WebAuthn(ctx, u.ID)
		if err != nil {
			i.storeFailurePage(w, err)
			return
		}
		if opts, sess, err := i.rp.BeginRegistration(webAuthnUser(u, creds)); err == nil {
			req.WebAuthn = sess
			page.WebAuthn = i.webAuthnPage(opts)
		} else {
			i.log.Error("starting a WebAuthn registration failed", zap.Error(err))
		}
	}
	txn, ok := i.saveStep(w, r, txn, req)
	if !ok {
		return
	}
	page.Txn, page.CSRF = txn, req.CSRF
	mfaHeaders(w, req.RedirectURI)
	w.WriteHeader(status)
	_ = i.pages.RenderEnroll(w, page)
}

// mfaHeaders are htmlHeaders plus what the factor pages need: the QR
// code as a data: image and the WebAuthn script from the issuer itself.
// The form's answer may redirect to the client (redirectTo): form-action
// must allow its origin too, or the browser stops the redirect.
func mfaHeaders(w http.ResponseWriter, redirectTo ...string) {
	pageHeaders(w, "img-src data:; script-src 'self'; ", redirectTo...)
}

// serveFactor takes the factor step's posts.
func (i *Issuer) serveFactor(w http.ResponseWriter, r *http.Request) {
	form, txn, req, ok := i.postedPage(w, r, expiredFactor)
	if !ok {
		return
	}
	s, ok := i.Server(req.Server)
	c, ok2 := i.clientFor(req)
	if !ok || !ok2 {
		i.errorPage(w, http.StatusBadRequest, "The request could not be completed.")
		return
	}
	if form["method"] == "continue" {
		i.continueAfterCodes(w, r, txn, s, c, req)
		return
	}
	if req.Pending == "" {
		i.errorPage(w, http.StatusBadRequest, expiredFactor)
		return
	}
	ctx := r.Context()
	u, err := i.dir.UserByID(ctx, req.Pending)
	if err != nil || !u.Active() {
		i.errorPage(w, http.StatusBadRequest, expiredFactor)
		return
	}
	// A step-up answers for the session it steps up: this browser's.
	if req.StepUp {
		if sess, ok := i.currentSession(r); !ok || sess.UserID != u.ID {
			i.errorPage(w, http.StatusBadRequest, "Your session has ended. Return to the application and sign in again.")
			return
		}
	}
	tries, err := i.store.Incr(ctx, store.NSAttempts, "txn:"+txn, 1, i.now().Add(txnLifetime))
	if err != nil {
		i.storeFailurePage(w, err)
		return
	}
	if tries > maxTxnAttempts {
		i.dropTxn(ctx, txn)
		i.errorPage(w, http.StatusBadRequest, expiredFactor)
		return
	}
	d := decision{server: s, clientID: c.ID, userID: u.ID, login: u.Login, clientIP: clientip.From(r), req: r}
	method := form["method"]
	enrolling := method == "enroll_totp" || method == "enroll_webauthn"
	if enrolling && !req.Enroll {
		i.errorPage(w, http.StatusBadRequest, expiredFactor)
		return
	}
	// Every answer counts as an attempt of the login, with the
	// passwords (throttle.go): a wrong code locks as wrong passwords do.
	at, err := i.admitAttempt(ctx, directory.NormalizeLogin(u.Login), clientip.Key(r))
	switch {
	case errors.Is(err, errLocked):
		i.logFailure(EventMFA, d, &oauth.Error{Code: "locked", Reason: "too many failed sign-ins"})
		i.dropTxn(ctx, txn)
		i.errorPage(w, http.StatusTooManyRequests, genericSignInError)
		return
	case errors.Is(err, errLoginBusy), errors.Is(err, hashgate.ErrBusy):
		_, _ = i.store.Incr(ctx, store.NSAttempts, "txn:"+txn, -1, i.now().Add(txnLifetime))
		w.Header().Set("Retry-After", "1")
		i.errorPage(w, http.StatusServiceUnavailable, busyPage)
		return
	case err != nil:
		i.storeFailurePage(w, err)
		return
	}
	// The pending step is used up before the answer is checked: of two
	// posts of one page only one can enroll a factor or sign in; a wrong
	// answer gets a new page (and a new step).
	if !i.takeTxn(w, r, txn, expiredFactor) {
		at.unchecked(ctx)
		return
	}
	methods, factorID, err := i.checkFactor(r, req, u, method, form)
	if err != nil {
		var refused errRefusedFactor
		if !errors.As(err, &refused) {
			at.unchecked(ctx)
			i.storeFailurePage(w, err)
			return
		}
		at.failed(ctx, d)
		i.logFailure(EventMFA, d, &oauth.Error{Code: "invalid_credentials", Reason: refused.reason})
		n := need{factor: req.Need, hardware: req.Hardware}
		if enrolling {
			i.enrollPage(w, r, "", req, c, u, msgBadCode, http.StatusUnauthorized)
			return
		}
		usable, uerr := i.usableFactors(ctx, u, n)
		if uerr != nil {
			i.storeFailurePage(w, uerr)
			return
		}
		i.factorPage(w, r, "", req, c, u, usable, msgBadCode, http.StatusUnauthorized)
		return
	}
	at.succeeded(ctx)
	amr := withMethods(req.PendingAmr, methods...)
	if n := (need{factor: req.Need, hardware: req.Hardware}); !n.meets(amr) {
		// A key without what the rule asks (phrh and a synced passkey).
		i.errorPage(w, http.StatusForbidden, msgNoFactor)
		return
	}
	authTime, stepUp := req.PendingTime, req.StepUp
	req.Pending, req.PendingTime, req.PendingAmr, req.StepUp, req.WebAuthn, req.EnrollID = "", time.Time{}, nil, false, nil, ""
	if enrolling {
		i.logSuccess(EventFactorActivate, decision{server: s, clientID: c.ID, userID: u.ID, login: u.Login, req: r, amr: amr, outcomeReason: factorID})
	}
	if stepUp {
		if !i.stepUpSession(w, r, req, u, methods) {
			return
		}
	} else if r = i.startSession(w, r, d, req, u, authTime, amr); r == nil {
		return
	}
	i.logSuccess(EventMFA, decision{server: s, clientID: c.ID, userID: u.ID, login: u.Login, req: r, amr: req.Amr})
	if enrolling {
		i.showRecoveryCodes(w, r, c, req, u)
		return
	}
	i.proceed(w, r, s, c, req)
}

// errRefusedFactor: the answer was wrong (not a store failure).
type errRefusedFactor struct{ reason string }

func (e errRefusedFactor) Error() string { return e.reason }

// checkFactor verifies the posted answer for u and returns the methods
// it adds to the sign-in and the factor's id.
func (i *Issuer) checkFactor(r *http.Request, req *authzRequest, u *directory.User, method string, form map[string]string) ([]string, string, error) {
	ctx := r.Context()
	refused := func(err error) error {
		if refusedFactor(err) {
			return errRefusedFactor{err.Error()}
		}
		return err
	}
	code := trimFactor(form["code"])
	switch method {
	case "totp":
		if req.Need == policy.FactorPhishingResistant || !slices.Contains(i.authenticators, policy.AuthenticatorTOTP) {
			return nil, "", errRefusedFactor{"method not allowed by the rule"}
		}
		f, err := i.factors.VerifyTOTP(ctx, u.ID, code)
		if err != nil {
			return nil, "", refused(err)
		}
		return []string{amrOTP}, f.ID, nil
	case "recovery":
		if req.Need != policy.FactorAny {
			return nil, "", errRefusedFactor{"method not allowed by the rule"}
		}
		if err := i.factors.UseRecoveryCode(ctx, u.ID, code); err != nil {
			return nil, "", refused(err)
		}
		return []string{amrOTP}, "recovery", nil
	case "webauthn":
		if i.rp == nil || req.WebAuthn == nil {
			return nil, "", errRefusedFactor{"no WebAuthn ceremony"}
		}
		creds, err := i.factors.WebAuthn(ctx, u.ID)
		if err != nil {
			return nil, "", err
		}
		credID, cred, uv, err := i.rp.FinishLogin(webAuthnUser(u, creds), req.WebAuthn, []byte(form["webauthn_response"]))
		if err != nil {
			return nil, "", refused(webauthnRefusal{err})
		}
		f, err := i.factors.FindWebAuthn(ctx, u.ID, credID)
		if err != nil {
			return nil, "", refused(err)
		}
		// The counter only goes up: of two sign-ins racing with one
		// assertion's count, the second is refused.
		got, _ := webauthnrp.CredentialInfo(cred)
		err = i.factors.UpdateWebAuthnIf(ctx, u.ID, f.ID, cred, func(stored json.RawMessage) bool {
			old, err := webauthnrp.CredentialInfo(stored)
			return err == nil && (got.SignCount > old.SignCount || got.SignCount == 0 && old.SignCount == 0)
		})
		if errors.Is(err, factors.ErrStale) {
			return nil, "", errRefusedFactor{"webauthn: sign count not above the stored one"}
		}
		if err != nil {
			return nil, "", err
		}
		amr, err := webauthnrp.AMR(cred, uv)
		return amr, f.ID, err
	case "enroll_totp":
		if req.EnrollID == "" {
			return nil, "", errRefusedFactor{"no enrollment"}
		}
		if err := i.factors.ActivateTOTP(ctx, u.ID, req.EnrollID, code); err != nil {
			return nil, "", refused(err)
		}
		return []string{amrOTP}, req.EnrollID, nil
	case "enroll_webauthn":
		if i.rp == nil || req.WebAuthn == nil {
			return nil, "", errRefusedFactor{"no WebAuthn ceremony"}
		}
		creds, err := i.factors.WebAuthn(ctx, u.ID)
		if err != nil {
			return nil, "", err
		}
		credID, cred, err := i.rp.FinishRegistration(webAuthnUser(u, creds), req.WebAuthn, []byte(form["webauthn_response"]))
		if err != nil {
			return nil, "", refused(webauthnRefusal{err})
		}
		info, err := webauthnrp.CredentialInfo(cred)
		if err != nil {
			return nil, "", err
		}
		amr, err := webauthnrp.AMR(cred, info.UserVerified)
		if err != nil {
			return nil, "", err
		}
		// A key that cannot meet the rule (a synced passkey under phrh)
		// is not kept: it would sign in nowhere this rule applies.
		if !(need{factor: req.Need, hardware: req.Hardware}).meets(withMethods(req.PendingAmr, amr...)) {
			return nil, "", errRefusedFactor{"webauthn: the key does not meet the rule"}
		}
		f, err := i.factors.AddWebAuthn(ctx, u.ID, "Security key or passkey", credID, cred)
		if err != nil {
			return nil, "", refused(err)
		}
		return amr, f.ID, nil
	}
	return nil, "", errRefusedFactor{"unknown method " + strconv.Quote(trimFactor(method))}
}

// webauthnRefusal marks a ceremony the Relying Party refused.
type webauthnRefusal struct{ err error }

func (e webauthnRefusal) Error() string { return "webauthn: " + e.err.Error() }
func (e webauthnRefusal) Unwrap() error { return e.err }

// showRecoveryCodes shows a user who just enrolled their first factor
// new recovery codes, once, then goes on through the page's Continue.
func (i *Issuer) showRecoveryCodes(w http.ResponseWriter, r *http.Request, c *clientauth.Client, req *authzRequest, u *directory.User) {
	s, _ := i.Server(req.Server)
	left, err := i.factors.RecoveryCodesLeft(r.Context(), u.ID)
	if err != nil {
		i.storeFailurePage(w, err)
		return
	}
	if left > 0 {
		i.proceed(w, r, s, c, req)
		return
	}
	codes, err := i.factors.NewRecoveryCodes(r.Context(), u.ID)
	if err != nil {
		i.storeFailurePage(w, err)
		return
	}
	req.Enrolled, req.CSRF = true, randomToken()
	txn, ok := i.saveTxn(w, r, req)
	if !ok {
		return
	}
	htmlHeaders(w, req.RedirectURI)
	_ = i.pages.RenderRecoveryCodes(w, ui.RecoveryCodes{Title: "Save your recovery codes", Action: i.base + factorPath, Txn: txn, CSRF: req.CSRF, Codes: codes})
}

// continueAfterCodes goes on from the recovery codes page: the request
// of this browser's signed-in user.
func (i *Issuer) continueAfterCodes(w http.ResponseWriter, r *http.Request, txn string, s *Server, c *clientauth.Client, req *authzRequest) {
	if !req.Enrolled || req.UserID == "" {
		i.errorPage(w, http.StatusBadRequest, expiredFactor)
		return
	}
	if sess, ok := i.currentSession(r); !ok || sess.UserID != req.UserID {
		i.errorPage(w, http.StatusBadRequest, "Your session has ended. Return to the application and sign in again.")
		return
	}
	if !i.takeTxn(w, r, txn, expiredFactor) {
		return
	}
	req.Enrolled = false
	i.proceed(w, r, s, c, req)
}

// serveWebAuthnScript serves the browser half of WebAuthn.
func (i *Issuer) serveWebAuthnScript(w http.ResponseWriter, r *http.Request) {
	webauthnrp.ScriptHandler().ServeHTTP(w, r)
}
