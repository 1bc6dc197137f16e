package authserver

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/ui"
)

// Lifetimes of the browser flow's state.
const (
	CodeLifetime    = 60 * time.Second // RFC 6749 section 4.1.2: short
	txnLifetime     = 15 * time.Minute
	SessionLifetime = 12 * time.Hour
	consentLifetime = 365 * 24 * time.Hour
)

// Cookies of the browser flows: the SSO session, shared by every
// authorization server of the issuer, and the binding of a pending
// authorization to the browser that started it.
const (
	sessionCookie = "apiaccess_sid"
	txnCookie     = "apiaccess_txn"
)

// pkceChars is RFC 7636 section 4.1's unreserved alphabet.
var pkceChars = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)

// authzRequest is a validated authorization request, kept server-side
// while the user signs in and consents.
type authzRequest struct {
	Server       string    `json:"as"`
	ClientID     string    `json:"cid"`
	RedirectURI  string    `json:"redirect_uri"`
	ResponseMode string    `json:"response_mode"`
	State        string    `json:"state,omitempty"`
	Nonce        string    `json:"nonce,omitempty"`
	Challenge    string    `json:"code_challenge,omitempty"`
	Scopes       []string  `json:"scp"`
	Prompt       []string  `json:"prompt,omitempty"`
	MaxAge       int       `json:"max_age"`
	LoginHint    string    `json:"login_hint,omitempty"`
	CSRF         string    `json:"csrf"`
	UserID       string    `json:"uid,omitempty"`
	AuthTime     time.Time `json:"auth_time,omitzero"`
	Amr          []string  `json:"amr,omitempty"`
	// Device, for a device approval, is the device grant's key.
	Device string `json:"device,omitempty"`
	// DeviceCheck: the user code came in a link, so the user must
	// confirm it matches their device before approving.
	DeviceCheck bool `json:"device_check,omitempty"`
	// ACRValues the client asked for (acr_values), in its order.
	ACRValues []string `json:"acr_values,omitempty"`

	// A sign-in in steps (mfa.go): Pending is the user who gave the
	// password (or whose session is stepped up, StepUp) and must still
	// give a factor; PendingTime and PendingAmr are that sign-in's;
	// Need is the factor required, Hardware a device-bound key, Enroll
	// that one may be enrolled now; EnrollID the TOTP factor being
	// enrolled; WebAuthn the Relying Party's state of a ceremony.
	Pending     string    `json:"pending_uid,omitempty"`
	PendingTime time.Time `json:"pending_time,omitzero"`
	PendingAmr  []string  `json:"pending_amr,omitempty"`
	StepUp      bool      `json:"step_up,omitempty"`
	Need        string    `json:"need,omitempty"`
	Hardware    bool      `json:"hardware,omitempty"`
	Enroll      bool      `json:"enroll,omitempty"`
	EnrollID    string    `json:"enroll_id,omitempty"`
	WebAuthn    []byte    `json:"webauthn,omitempty"`
	// Enrolled: a factor was just enrolled and its recovery codes shown;
	// the session exists, the page's Continue goes on.
	Enrolled bool `json:"enrolled,omitempty"`
	// Settings: the sign-in is for the self-service page (settings.go).
	Settings bool `json:"settings,omitempty"`
}

// serveAuthorize is the authorization endpoint (RFC 6749 section 3.1,
// OpenID Connect Core section 3.1.2), response type code only: the
// request is read and validated, then an SSO session that satisfies it
// goes straight on, else the user signs in first.
func (i *Issuer) serveAuthorize(w http.ResponseWriter, r *http.Request, s *Server) {
	params, ok := i.authorizeParams(w, r)
	if !ok {
		return
	}
	pushed := params.Has("request_uri")
	var use *pushedUse
	if pushed { // RFC 9126 section 4 (par.go)
		if use, ok = i.pushedRequest(w, r, s, params); !ok {
			return
		}
		if use.again != nil { // a reload of its sign-in page
			i.loginPage(w, s, use.txn, use.again, "", http.StatusOK)
			return
		}
		params = use.params
	}
	c, req, ok := i.validateAuthorize(w, r, s, params, pushed)
	if !ok {
		return
	}
	i.continueAuthorize(w, r, s, c, req, use)
}

// authorizeParams reads the request's parameters: the query of a GET,
// the form of a POST (OpenID Connect Core section 3.1.2.1), each at
// most once. On failure it has answered with an error page.
func (i *Issuer) authorizeParams(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	var params url.Values
	switch r.Method {
	case http.MethodGet:
		params = r.URL.Query()
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, oauth.MaxBodyBytes)
		if err := r.ParseForm(); err != nil {
			i.errorPage(w, http.StatusBadRequest, "The request could not be read.")
			return nil, false
		}
		params = r.PostForm
	default:
		w.Header().Set("Allow", "GET, POST")
		i.errorPage(w, http.StatusMethodNotAllowed, "The request method is not allowed.")
		return nil, false
	}
	for _, v := range params {
		if len(v) > 1 {
			i.errorPage(w, http.StatusBadRequest, "A parameter was included more than once.")
			return nil, false
		}
	}
	return params, true
}

// validateAuthorize checks the request against the client and the
// server. Until the client and its redirect URI are known, errors are
// pages (RFC 6749 section 4.1.2.1: never redirect to an unverified
// URI); after that they go to the redirect URI. pushed: the parameters
// are a pushed request's (par.go). On failure it has answered.
func (i *Issuer) validateAuthorize(w http.ResponseWriter, r *http.Request, s *Server, params url.Values, pushed bool) (*clientauth.Client, *authzRequest, bool) {
	one := params.Get
	c, ok := i.auth.Client(one("client_id"))
	if !ok {
		i.errorPage(w, http.StatusBadRequest, "The client is not known.")
		return nil, nil, false
	}
	redirect := one("redirect_uri")
	// An unregistered redirect URI never gets a redirect: that would be
	// an open redirector (RFC 6749 section 4.1.2.1).
	if redirect == "" || !slices.Contains(c.RedirectURIs, redirect) {
		i.errorPage(w, http.StatusBadRequest, "The redirect URI is not registered for this client.")
		return nil, nil, false
	}
	req, code, desc := i.readAuthorize(s, c, params, pushed)
	if code != "" {
		i.redirectError(w, r, s, req, code, desc)
		return nil, nil, false
	}
	req.CSRF = randomToken()
	return c, req, true
}

// readAuthorize reads and checks the request of client c, whose
// redirect URI is registered, into an authzRequest; it returns the
// error code and description to answer with, or "". The request is
// returned in both cases: an error goes to its redirect URI in its
// response mode. pushed: it came through /v1/par, which a client that
// requires pushed requests must use (RFC 9126 section 6).
func (i *Issuer) readAuthorize(s *Server, c *clientauth.Client, params url.Values, pushed bool) (*authzRequest, string, string) {
	one := params.Get
	req := &authzRequest{Server: s.ID, ClientID: c.ID, RedirectURI: one("redirect_uri"), MaxAge: -1}
	req.State = one("state")
	mode, bad := chooseResponseMode(one("response_type"), one("response_mode"), req.RedirectURI)
	req.ResponseMode = mode
	if bad != "" {
		return req, "invalid_request", bad
	}
	if c.RequirePushedAuthorizationRequests && !pushed {
		return req, errPARRequired.Code, errPARRequired.Description
	}
	code, desc := i.checkAuthorize(s, c, req, params)
	return req, code, desc
}

// checkAuthorize validates the rest of the request into req; it returns
// the error code and description to redirect with, or "".
func (i *Issuer) checkAuthorize(s *Server, c *clientauth.Client, req *authzRequest, params url.Values) (string, string) {
	one := params.Get
	if one("response_type") != "code" {
		return "unsupported_response_type", "The response type is not supported by the authorization server. Configured response types: [code]."
	}
	if !s.supports(GrantAuthorizationCode) || !c.AllowsGrant(GrantAuthorizationCode) {
		return "unauthorized_client", "The client is not authorized to use the provided grant type. Configured grant types: [" + strings.Join(c.GrantTypes, ", ") + "]."
	}
	req.Nonce, req.LoginHint = one("nonce"), one("login_hint")
	if len(req.State) > 2048 || len(req.Nonce) > 2048 || len(req.LoginHint) > 256 {
		return "invalid_request", "A parameter is too long."
	}
	challenge, method := one("code_challenge"), one("code_challenge_method")
	switch {
	case challenge == "" && method != "":
		return "invalid_request", "The code_challenge_method requires a code_challenge."
	case challenge == "" && c.AuthMethod == clientauth.None:
		return "invalid_request", "PKCE code challenge is required when the token endpoint authentication method is 'NONE'."
	case challenge != "" && method != "S256":
		// RFC 7636 section 4.2 allows plain; OAuth 2.0 Security BCP
		// (RFC 9700 section 2.1.1) says S256 only.
		return "invalid_request", "PKCE code_challenge_method must be S256."
	case challenge != "" && !pkceChars.MatchString(challenge):
		return "invalid_request", "PKCE code challenge is malformed."
	}
	req.Challenge = challenge
	scopes, e := s.requestedScopes(one("scope"), &decision{server: s})
	if e != nil {
		return e.Code, e.Description
	}
	req.Scopes = scopes
	if p := one("prompt"); p != "" {
		req.Prompt = strings.Fields(p)
		for _, v := range req.Prompt {
			if v != "none" && v != "login" && v != "consent" {
				return "invalid_request", "The prompt value is not supported."
			}
		}
		if slices.Contains(req.Prompt, "none") && len(req.Prompt) > 1 {
			return "invalid_request", "prompt=none cannot be combined with other values."
		}
	}
	if acr := one("acr_values"); acr != "" {
		req.ACRValues = strings.Fields(acr)
		for _, v := range req.ACRValues {
			if !slices.Contains(knownACR, v) {
				return "invalid_request", "The acr_values parameter value is not supported."
			}
		}
	}
	if ma := one("max_age"); ma != "" {
		n, err := strconv.Atoi(ma)
		if err != nil || n < 0 {
			return "invalid_request", "The max_age parameter must be a non-negative integer."
		}
		req.MaxAge = n
	}
	return "", ""
}

// satisfyingSession is the browser's SSO session when it satisfies the
// request's prompt and max_age (OpenID Connect Core section 3.1.2.1).
func (i *Issuer) satisfyingSession(r *http.Request, req *authzRequest) (*session, bool) {
	if slices.Contains(req.Prompt, "login") {
		return nil, false
	}
	sess, ok := i.currentSession(r)
	if !ok || (req.MaxAge >= 0 && i.now().Sub(sess.AuthTime) > time.Duration(req.MaxAge)*time.Second) {
		return nil, false
	}
	return sess, true
}

// continueAuthorize goes on with a valid request: with a satisfying
// session straight to consent and the code, else to sign-in, unless
// the client asked not to prompt. use: the request is a pushed one,
// whose handle is used up here (par.go).
func (i *Issuer) continueAuthorize(w http.ResponseWriter, r *http.Request, s *Server, c *clientauth.Client, req *authzRequest, use *pushedUse) {
	if sess, ok := i.satisfyingSession(r, req); ok {
		if w, ok = i.usePushed(w, r, s, req.ClientID, use, randomToken()); ok {
			i.withSession(w, r, s, c, req, sess)
		}
		return
	}
	if slices.Contains(req.Prompt, "none") {
		if _, ok := i.usePushed(w, r, s, req.ClientID, use, randomToken()); ok {
			i.redirectError(w, r, s, req, "login_required", "The client specified not to prompt, but the user is not logged in.")
		}
		return
	}
	if use != nil {
		i.pushedSignIn(w, r, s, req, use)
		return
	}
	txn, ok := i.saveTxn(w, r, req)
	if !ok {
		return
	}
	i.loginPage(w, s, txn, req, "", http.StatusOK)
}

// saveTxn stores a pending request and binds it to this browser.
func (i *Issuer) saveTxn(w http.ResponseWriter, r *http.Request, req *authzRequest) (string, bool) {
	txn := randomToken()
	b, _ := json.Marshal(req)
	if err := i.store.PutRecord(r.Context(), store.NSTransaction, txn, b, i.now().Add(txnLifetime)); err != nil {
		i.storeFailurePage(w, err)
		return "", false
	}
	http.SetCookie(w, i.cookie(r, txnCookie, txn, txnLifetime))
	return txn, true
}

// errBadTxn: the posted page is not a pending request of this browser.
var errBadTxn = errors.New("unknown, expired or foreign pending request")

// loadTxn reads a pending request posted back by a page: the txn must
// be this browser's (cookie) and carry its CSRF token. A store failure
// is returned as such, so the page can say "try again" rather than
// "expired".
func (i *Issuer) loadTxn(r *http.Request, form map[string]string) (string, *authzRequest, error) {
	txn := form["txn"]
	ck, ok := i.readCookie(r, txnCookie)
	if txn == "" || !ok || subtle.ConstantTimeCompare([]byte(ck), []byte(txn)) != 1 {
		return "", nil, errBadTxn
	}
	raw, err := i.store.GetRecord(r.Context(), store.NSTransaction, txn)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil, errBadTxn
	}
	if err != nil {
		return "", nil, err
	}
	var req authzRequest
	if json.Unmarshal(raw, &req) != nil || subtle.ConstantTimeCompare([]byte(req.CSRF), []byte(form["csrf"])) != 1 {
		return "", nil, errBadTxn
	}
	return txn, &req, nil
}

// postedPage parses a form posted by a sign-in or consent page and
// loads its pending request. On failure it answers with an error page
// (expired when the request is not, or no longer, this browser's) and
// reports false.
func (i *Issuer) postedPage(w http.ResponseWriter, r *http.Request, expired string) (map[string]string, string, *authzRequest, bool) {
	form, e := oauth.ParseForm(w, r)
	if e != nil {
		i.errorPage(w, e.Status, "The request could not be read.")
		return nil, "", nil, false
	}
	txn, req, err := i.loadTxn(r, form)
	switch {
	case errors.Is(err, errBadTxn):
		i.errorPage(w, http.StatusBadRequest, expired)
		return nil, "", nil, false
	case err != nil:
		i.storeFailurePage(w, err)
		return nil, "", nil, false
	}
	return form, txn, req, true
}

// secure reports whether the browser reaches the issuer over HTTPS.
func (i *Issuer) secure(r *http.Request) bool {
	return r.TLS != nil || strings.HasPrefix(i.base, "https://")
}

// cookieName is a cookie's name for the scheme in use: on HTTPS with
// the `__Host-` prefix (RFC 6265bis section 4.1.3.2: Secure, Path=/, no
// Domain), so a sibling subdomain or a plain-http page cannot set or
// overwrite it; on plain http (loopback development) the bare name,
// as browsers refuse Secure cookies there.
func (i *Issuer) cookieName(r *http.Request, name string) string {
	if i.secure(r) {
		return "__Host-" + name
	}
	return name
}

// cookie builds one of the issuer's cookies. On HTTPS the SSO session
// cookie is SameSite=None, as Okta's `sid` and `idx` are: an app on
// another site reads it through the Sessions API (fetch with
// credentials) and the hidden iframe of prompt=none renewal, and
// browsers withhold Lax cookies from both. That does not weaken the
// pages' CSRF defences, which never rest on the session cookie alone:
// sign-in, consent and device approval need the pending request's
// cookie (kept Lax, so a cross-site POST lacks it) and the page's CSRF
// token; logout confirmation needs a token derived from the session
// id; the Sessions API refuses state changes from untrusted origins;
// and an authorization answers only at a registered redirect URI.
// Other cookies stay Lax. On plain http (loopback development) every
// cookie stays Lax: browsers refuse SameSite=None without Secure.
func (i *Issuer) cookie(r *http.Request, name, value string, maxAge time.Duration) *http.Cookie {
	sameSite := http.SameSiteLaxMode
	if name == sessionCookie && i.secure(r) {
		sameSite = http.SameSiteNoneMode
	}
	return &http.Cookie{Name: i.cookieName(r, name), Value: value, Path: "/", MaxAge: int(maxAge.Seconds()), HttpOnly: true,
		Secure: i.secure(r), SameSite: sameSite}
}

// readCookie returns the value of cookie name as cookie sets it; a
// cookie of the other scheme's name is ignored.
func (i *Issuer) readCookie(r *http.Request, name string) (string, bool) {
	c, err := r.Cookie(i.cookieName(r, name))
	if err != nil || c.Value == "" {
		return "", false
	}
	return c.Value, true
}

// redirectError sends an error to the client's redirect URI (RFC 6749
// section 4.1.2.1), with iss (RFC 9207).
func (i *Issuer) redirectError(w http.ResponseWriter, r *http.Request, s *Server, req *authzRequest, code, desc string) {
	i.logFailure(EventAuthorize, decision{server: s, clientID: req.ClientID, userID: req.UserID, req: r}, &oauth.Error{Code: code, Description: desc})
	p := map[string]string{"error": code, "error_description": desc}
	i.respond(w, r, s, req, p)
}

// respond delivers parameters to the redirect URI in the request's
// response mode (response_mode.go): query (default for code), fragment,
// form_post or okta_post_message.
func (i *Issuer) respond(w http.ResponseWriter, r *http.Request, s *Server, req *authzRequest, p map[string]string) {
	p["iss"] = s.Issuer
	if req.State != "" {
		p["state"] = req.State
	}
	w.Header().Set("Cache-Control", "no-store")
	switch req.ResponseMode {
	case modeFormPost:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; frame-ancestors 'none'")
		_ = i.pages.RenderFormPost(w, ui.FormPost{Action: req.RedirectURI, Params: p})
		return
	case modePostMessage:
		i.respondPostMessage(w, req, p)
		return
	case modeFragment:
		respondFragment(w, r, req.RedirectURI, p)
		return
	}
	u, _ := url.Parse(req.RedirectURI)
	q := u.Query()
	for k, v := range p {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// respondPlain redirects to target with params added to its query.
func (i *Issuer) respondPlain(w http.ResponseWriter, r *http.Request, target string, p map[string]string) {
	u, _ := url.Parse(target)
	q := u.Query()
	for k, v := range p {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// htmlHeaders protect the issuer's pages. A form whose answer redirects
// to the client needs that origin in form-action: browsers apply it to
// the redirect after the submission too.
func htmlHeaders(w http.ResponseWriter, redirectTo ...string) {
	pageHeaders(w, "", redirectTo...)
}

// pageHeaders is htmlHeaders with more CSP directives (extra, each
// ending in "; ").
func pageHeaders(w http.ResponseWriter, extra string, redirectTo ...string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	formAction := "'self'"
	for _, target := range redirectTo {
		if u, err := url.Parse(target); err == nil && u.Scheme != "" {
			origin := u.Scheme + ":"
			if u.Host != "" {
				origin = u.Scheme + "://" + u.Host
			}
			formAction += " " + origin
		}
	}
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; "+extra+"form-action "+formAction+"; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
}

// storeFailurePage answers a page whose state could not be stored: 503
// with Retry-After while the store is unreachable, else 500.
func (i *Issuer) storeFailurePage(w http.ResponseWriter, err error) {
	i.log.Error("issuer state store failed", zap.Error(err))
	if errors.Is(err, store.ErrUnavailable) {
		w.Header().Set("Retry-After", oauth.RetryAfter)
		i.errorPage(w, http.StatusServiceUnavailable, "The service is temporarily unavailable. Try again in a moment.")
		return
	}
	i.errorPage(w, http.StatusInternalServerError, "The request could not be completed.")
}

func (i *Issuer) errorPage(w http.ResponseWriter, status int, msg string) {
	htmlHeaders(w)
	w.WriteHeader(status)
	_ = i.pages.RenderError(w, ui.Error{Title: "Error", Error: msg})
}

// loginPage shows the sign-in form for a pending request, naming the
// client that asks (its name, which defaults to its id).
func (i *Issuer) loginPage(w http.ResponseWriter, s *Server, txn string, req *authzRequest, msg string, status int) {
	page := ui.Login{Title: "Sign in", Action: i.base + "/oauth2/v1/signin", Txn: txn, CSRF: req.CSRF, LoginHint: req.LoginHint, Error: msg}
	if c, ok := i.clientFor(req); ok {
		page.ClientName = c.Name
	}
	htmlHeaders(w, req.RedirectURI)
	w.WriteHeader(status)
	_ = i.pages.RenderLogin(w, page)
}
