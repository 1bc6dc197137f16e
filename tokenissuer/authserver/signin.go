package authserver

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/ui"
)

// Throttling of failed sign-ins: each failure beyond the first few is
// slowed down, and too many lock the login (or the address) for the
// window. The message never says which.
const (
	throttleWindow  = 15 * time.Minute
	maxUserFailures = 10
	maxAddrFailures = 50
	slowAfter       = 3
	maxDelay        = 2 * time.Second
)

// genericSignInError is the only thing a failed sign-in page says.
const genericSignInError = "Unable to sign in. Check your username and password, or try again later."

// session is the SSO session behind the session cookie.
type session struct {
	UserID   string    `json:"uid"`
	AuthTime time.Time `json:"auth_time"`
	Amr      []string  `json:"amr"`
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
	return &s, true
}

// serveSignIn takes the sign-in form (org path /oauth2/v1/signin; the
// session it starts serves every authorization server).
func (i *Issuer) serveSignIn(w http.ResponseWriter, r *http.Request) {
	form, txn, req, ok := i.postedPage(w, r, "This sign-in page has expired or was not opened here. Return to the application and try again.")
	if !ok {
		return
	}
	s, ok := i.Server(req.Server)
	if !ok {
		i.errorPage(w, http.StatusBadRequest, "The request could not be completed.")
		return
	}
	c, ok := i.auth.Client(req.ClientID)
	if !ok {
		i.errorPage(w, http.StatusBadRequest, "The request could not be completed.")
		return
	}
	login := directory.NormalizeLogin(form["username"])
	addr := clientAddr(r)
	ctx := r.Context()
	d := decision{server: s, clientID: req.ClientID}
	if i.throttled(ctx, "user:"+login, maxUserFailures) || i.throttled(ctx, "addr:"+addr, maxAddrFailures) {
		i.logFailure(EventSignIn, d, &oauth.Error{Code: "locked", Reason: "too many failed sign-ins"})
		i.loginPage(w, s, txn, req, genericSignInError, http.StatusTooManyRequests)
		return
	}
	var u *directory.User
	var err error = directory.ErrBadCredentials
	if i.dir != nil && login != "" && form["password"] != "" {
		u, err = directory.CheckPassword(ctx, i.dir, login, form["password"])
	}
	if err == nil && !u.Active() {
		err = directory.ErrBadCredentials
	}
	if err != nil {
		n := max(i.fail(ctx, "user:"+login), i.fail(ctx, "addr:"+addr))
		if n > slowAfter {
			time.Sleep(min(time.Duration(n-slowAfter)*250*time.Millisecond, maxDelay))
		}
		reason := "bad credentials"
		if !errors.Is(err, directory.ErrBadCredentials) {
			reason = "directory: " + err.Error()
		}
		i.logFailure(EventSignIn, d, &oauth.Error{Code: "invalid_credentials", Reason: reason})
		i.loginPage(w, s, txn, req, genericSignInError, http.StatusUnauthorized)
		return
	}
	i.clearFailures(ctx, "user:"+login)
	sid := randomToken()
	now := i.now()
	sb, _ := json.Marshal(session{UserID: u.ID, AuthTime: now, Amr: []string{"pwd"}})
	if err := i.store.PutRecord(ctx, store.NSSession, sid, sb, now.Add(SessionLifetime)); err != nil {
		i.storeFailurePage(w, err)
		return
	}
	http.SetCookie(w, i.cookie(r, sessionCookie, sid, SessionLifetime))
	d.userID = u.ID
	i.logSuccess(EventSignIn, d)
	req.UserID, req.AuthTime, req.Amr = u.ID, now, []string{"pwd"}
	if req.Device != "" {
		i.deviceConfirm(w, r, s, c, req)
		return
	}
	i.afterSignIn(w, r, s, c, req)
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
		i.redirectError(w, r, s, req, e.Code, e.Description)
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
		_ = i.pages.RenderConsent(w, ui.Consent{Title: "Allow access", Action: i.base + "/oauth2/v1/consent", Txn: txn, CSRF: req.CSRF, ClientName: c.Name, Scopes: lines})
		return
	}
	i.issueCode(w, r, s, req)
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
	form, _, req, ok := i.postedPage(w, r, expired)
	if !ok {
		return
	}
	if req.UserID == "" {
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
	if req.Device != "" {
		i.decideDevice(w, r, req, form["decision"] == "allow")
		return
	}
	if form["decision"] != "allow" {
		i.redirectError(w, r, s, req, "access_denied", "User denied consent.")
		return
	}
	now := i.now()
	for _, name := range req.Scopes {
		if sc := s.scopes[name]; sc != nil && sc.Consent == "required" {
			if err := i.store.PutRecord(r.Context(), store.NSConsent, consentKey(s, c, req.UserID, name), []byte("1"), now.Add(consentLifetime)); err != nil {
				i.storeFailurePage(w, err)
				return
			}
		}
	}
	i.issueCode(w, r, s, req)
}

// throttle counters live in the store (shared by instances).
type counter struct {
	N int `json:"n"`
}

func (i *Issuer) throttled(ctx context.Context, key string, limit int) bool {
	raw, err := i.store.GetRecord(ctx, store.NSThrottle, key)
	if err != nil {
		return false
	}
	var c counter
	_ = json.Unmarshal(raw, &c)
	return c.N >= limit
}

// fail counts a failure and returns the new count.
func (i *Issuer) fail(ctx context.Context, key string) int {
	var c counter
	_, err := i.store.UpdateRecord(ctx, store.NSThrottle, key, func(v []byte) ([]byte, error) {
		_ = json.Unmarshal(v, &c)
		c.N++
		return json.Marshal(c)
	})
	if errors.Is(err, store.ErrNotFound) {
		c = counter{N: 1}
		b, _ := json.Marshal(c)
		_ = i.store.PutRecord(ctx, store.NSThrottle, key, b, i.now().Add(throttleWindow))
	}
	return c.N
}

func (i *Issuer) clearFailures(ctx context.Context, key string) {
	_, _ = i.store.UpdateRecord(ctx, store.NSThrottle, key, func([]byte) ([]byte, error) { return nil, nil })
}

// clientAddr is the connection's address (not a forwarded header a
// client could forge).
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
