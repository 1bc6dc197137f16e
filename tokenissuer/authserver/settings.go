package authserver

import (
	"errors"
	"net/http"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/factors"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/ui"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/webauthnrp"
)

// The self-service page, {base}/enduser/settings (Okta's end-user
// settings): users list, add and remove their own factors and make new
// recovery codes. It needs a fresh sign-in: within settingsFresh, and
// with a factor when the user has one, so that a session left open on
// a shared machine cannot change how its owner signs in. Sign-on
// policies may name it as the client SettingsClientID.

// SettingsClientID is the client id of the self-service page in
// sign-on policies and events.
const SettingsClientID = "apiaccess.settings"

const (
	settingsPath  = "/enduser/settings"
	settingsFresh = 10 * time.Minute
)

// settingsEndpoint serves the page (a page: no CORS).
var settingsEndpoint = &endpoint{serve: page((*Issuer).serveSettings)}

// settingsClient is the page as a client of the sign-in flow.
var settingsClient = &clientauth.Client{ID: SettingsClientID, Name: "Account settings"}

// clientFor is the client of a pending request: a configured one, or
// the self-service page.
func (i *Issuer) clientFor(req *authzRequest) (*clientauth.Client, bool) {
	if req.Settings {
		return settingsClient, true
	}
	return i.auth.Client(req.ClientID)
}

// settingsNeed is what the page needs of user u's sign-in on top of the
// sign-on policy: a fresh one, with a factor once the user has one.
func (i *Issuer) settingsNeed(r *http.Request, u *directory.User, n need) (need, error) {
	// A stricter rule for the page stays: a shorter age, or "every
	// sign-in", which for a page opened after its sign-in means the last
	// minute.
	if n.every {
		n.maxAge, n.every = time.Minute, false
	}
	if n.maxAge == 0 || n.maxAge > settingsFresh {
		n.maxAge = settingsFresh
	}
	if n.factor == policy.FactorNone {
		active, err := i.factors.Active(r.Context(), u.ID)
		if err != nil {
			return n, err
		}
		if len(active) > 0 {
			n.factor = policy.FactorAny
		}
	}
	n.enroll = false
	return n, nil
}

// serveSettings is the self-service page: GET shows it (after a fresh
// sign-in), POST takes its forms.
func (i *Issuer) serveSettings(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost:
		i.settingsAction(w, r)
		return
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		i.errorPage(w, http.StatusMethodNotAllowed, "The request could not be completed.")
		return
	}
	req := &authzRequest{Server: OrgID, ClientID: SettingsClientID, MaxAge: -1, CSRF: randomToken(), Settings: true}
	sess, ok := i.currentSession(r)
	if !ok {
		i.signInAgain(w, r, i.org, req)
		return
	}
	u, ok := i.settingsUser(w, r, sess)
	if !ok {
		return
	}
	n := i.requirement(settingsClient, u, nil)
	n, err := i.settingsNeed(r, u, n)
	if err != nil {
		i.storeFailurePage(w, err)
		return
	}
	if n.deny || i.now().Sub(sess.AuthTime) > n.maxAge || !n.meets(sess.Amr) {
		req.LoginHint = u.Login
		i.withSession(w, r, i.org, settingsClient, req, sess)
		return
	}
	i.settingsPage(w, r, u, "", "", nil, http.StatusOK)
}

// settingsUser is the active user of sess, or answers.
func (i *Issuer) settingsUser(w http.ResponseWriter, r *http.Request, sess *session) (*directory.User, bool) {
	u, err := i.dir.UserByID(r.Context(), sess.UserID)
	if err != nil || !u.Active() {
		i.errorPage(w, http.StatusBadRequest, "Your session has ended. Sign in again.")
		return nil, false
	}
	return u, true
}

// settingsPage renders the page for u, with an optional message, a
// TOTP enrollment in progress, or new recovery codes to show once; its
// forms post under a new pending request bound to this browser.
func (i *Issuer) settingsPage(w http.ResponseWriter, r *http.Request, u *directory.User, msg, notice string, codes []string, status int) {
	ctx := r.Context()
	req := &authzRequest{Server: OrgID, ClientID: SettingsClientID, MaxAge: -1, CSRF: randomToken(), Settings: true, UserID: u.ID}
	all, err := i.factors.List(ctx, u.ID)
	if err != nil {
		i.storeFailurePage(w, err)
		return
	}
	left, err := i.factors.RecoveryCodesLeft(ctx, u.ID)
	if err != nil {
		i.storeFailurePage(w, err)
		return
	}
	page := ui.Settings{Title: "Account settings", Action: i.base + settingsPath, Login: u.Login, Error: msg, Notice: notice,
		RecoveryLeft: left, NewCodes: codes, TOTPOffered: slices.Contains(i.authenticators, policy.AuthenticatorTOTP)}
	for _, f := range all {
		if f.Status != factors.StatusActive {
			continue
		}
		page.Factors = append(page.Factors, ui.FactorLine{ID: f.ID, Kind: kindName(f.Kind), Name: f.Name, Created: f.Created, LastUsed: f.LastUsed})
	}
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
	txn, ok := i.saveTxn(w, r, req)
	if !ok {
		return
	}
	page.Txn, page.CSRF = txn, req.CSRF
	mfaHeaders(w)
	w.WriteHeader(status)
	_ = i.pages.RenderSettings(w, page)
}

func kindName(k factors.Kind) string {
	if k == factors.KindWebAuthn {
		return "Security key or passkey"
	}
	return "Authenticator app"
}

// settingsAction takes one of the page's forms: only from the page
// this browser was shown (txn cookie and CSRF token), for the signed-in
// user, while the sign-in is fresh.
func (i *Issuer) settingsAction(w http.ResponseWriter, r *http.Request) {
	const expired = "This page has expired. Open your account settings again."
	form, txn, req, ok := i.postedPage(w, r, expired)
	if !ok {
		return
	}
	sess, ok := i.currentSession(r)
	if !req.Settings || !ok || sess.UserID != req.UserID {
		i.errorPage(w, http.StatusBadRequest, expired)
		return
	}
	u, ok := i.settingsUser(w, r, sess)
	if !ok {
		return
	}
	n, err := i.settingsNeed(r, u, i.requirement(settingsClient, u, nil))
	if err != nil {
		i.storeFailurePage(w, err)
		return
	}
	if n.deny || i.now().Sub(sess.AuthTime) > n.maxAge || !n.meets(sess.Amr) {
		// Stale: the GET asks for the sign-in again.
		http.Redirect(w, r, i.base+settingsPath, http.StatusSeeOther)
		return
	}
	if !i.takeTxn(w, r, txn, expired) {
		return
	}
	ctx := r.Context()
	d := decision{server: i.org, clientID: SettingsClientID, userID: u.ID, login: u.Login, req: r}
	switch form["action"] {
	case "add_totp":
		if !slices.Contains(i.authenticators, policy.AuthenticatorTOTP) {
			break
		}
		en, err := i.factors.EnrollTOTP(ctx, u.ID, u.Login)
		if err != nil {
			i.storeFailurePage(w, err)
			return
		}
		i.settingsEnrollPage(w, r, u, en, "", http.StatusOK)
		return
	case "confirm_totp":
		err := i.factors.ActivateTOTP(ctx, u.ID, form["factor"], trimFactor(form["code"]))
		if err != nil {
			if refusedFactor(err) {
				// The same enrollment again, while it lasts.
				if en, perr := i.factors.PendingTOTP(ctx, u.ID, form["factor"], u.Login); perr == nil {
					i.settingsEnrollPage(w, r, u, en, msgBadCode, http.StatusUnauthorized)
					return
				}
				i.settingsPage(w, r, u, msgBadCode, "", nil, http.StatusUnauthorized)
				return
			}
			i.storeFailurePage(w, err)
			return
		}
		d.outcomeReason = form["factor"]
		i.logSuccess(EventFactorActivate, d)
		i.settingsPage(w, r, u, "", "Authenticator app added.", nil, http.StatusOK)
		return
	case "add_webauthn":
		if i.rp == nil || req.WebAuthn == nil {
			break
		}
		creds, err := i.factors.WebAuthn(ctx, u.ID)
		if err != nil {
			i.storeFailurePage(w, err)
			return
		}
		credID, cred, err := i.rp.FinishRegistration(webAuthnUser(u, creds), req.WebAuthn, []byte(form["webauthn_response"]))
		if err != nil {
			i.log.Info("WebAuthn registration refused", zap.String("user_id", u.ID), zap.Error(err))
			i.settingsPage(w, r, u, "That security key or passkey could not be registered.", "", nil, http.StatusBadRequest)
			return
		}
		name := trimName(form["name"])
		if name == "" {
			name = "Security key or passkey"
		}
		f, err := i.factors.AddWebAuthn(ctx, u.ID, name, credID, cred)
		if err != nil {
			if refusedFactor(err) {
				i.settingsPage(w, r, u, "That security key or passkey is already registered.", "", nil, http.StatusBadRequest)
				return
			}
			i.storeFailurePage(w, err)
			return
		}
		d.outcomeReason = f.ID
		i.logSuccess(EventFactorActivate, d)
		i.settingsPage(w, r, u, "", "Security key or passkey added.", nil, http.StatusOK)
		return
	case "remove":
		f, err := i.factors.Remove(ctx, u.ID, form["factor"])
		if err != nil {
			if errors.Is(err, factors.ErrNotFound) {
				i.settingsPage(w, r, u, "That factor is not yours or was already removed.", "", nil, http.StatusBadRequest)
				return
			}
			i.storeFailurePage(w, err)
			return
		}
		d.outcomeReason = f.ID
		i.logSuccess(EventFactorDeactivate, d)
		i.settingsPage(w, r, u, "", kindName(f.Kind)+" removed.", nil, http.StatusOK)
		return
	case "recovery_codes":
		codes, err := i.factors.NewRecoveryCodes(ctx, u.ID)
		if err != nil {
			i.storeFailurePage(w, err)
			return
		}
		i.settingsPage(w, r, u, "", "New recovery codes: the old ones no longer work. They are shown only now.", codes, http.StatusOK)
		return
	}
	i.settingsPage(w, r, u, "That action is not available.", "", nil, http.StatusBadRequest)
}

// settingsEnrollPage shows a TOTP enrollment started from the page.
func (i *Issuer) settingsEnrollPage(w http.ResponseWriter, r *http.Request, u *directory.User, en factors.TOTPEnrollment, msg string, status int) {
	req := &authzRequest{Server: OrgID, ClientID: SettingsClientID, MaxAge: -1, CSRF: randomToken(), Settings: true, UserID: u.ID}
	txn, ok := i.saveTxn(w, r, req)
	if !ok {
		return
	}
	mfaHeaders(w)
	w.WriteHeader(status)
	_ = i.pages.RenderSettingsTOTP(w, ui.SettingsTOTP{Title: "Add an authenticator app", Action: i.base + settingsPath, Txn: txn, CSRF: req.CSRF,
		Login: u.Login, Error: msg, FactorID: en.FactorID, QR: ui.PNGDataURL(en.QRPNG), Secret: en.Secret})
}

// refusedFactor: the user's answer was wrong, not the store.
func refusedFactor(err error) bool {
	for _, e := range []error{factors.ErrBadCode, factors.ErrReplayed, factors.ErrNoFactor, factors.ErrNotFound, factors.ErrNotPending, factors.ErrDuplicate} {
		if errors.Is(err, e) {
			return true
		}
	}
	var refused webauthnRefusal
	return errors.As(err, &refused) || errors.Is(err, webauthnrp.ErrRefused)
}

// trimName bounds a label the user gave a key.
func trimName(s string) string {
	s = echoBounded(s, 64)
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return ""
		}
	}
	return s
}
