package authserver

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/bcrypt"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
)

// The browser-flow test environment: two users, confidential clients
// "web" and "other", public clients "pub" (code flow) and "tv" (device
// flow), a client_credentials client "svc", and a custom server
// "default" with an implicit default scope and a consent-required one.
const (
	webCB   = "https://app.test/cb"
	otherCB = "https://other.test/cb"
	pubCB   = "https://pub.test/cb"
	webBye  = "https://app.test/bye"
	tokenEP = "/oauth2/default/v1/token"

	alicePassword = "alice-password"
)

type flowEnv struct {
	t     *testing.T
	iss   *Issuer
	st    store.Store
	clock *testkit.Clock
	// logs holds the issuer's events (Info and above).
	logs *observer.ObservedLogs
	core zapcore.Core
}

func newFlowEnv(t *testing.T, base string) *flowEnv {
	t.Helper()
	return newFlowEnvWith(t, base, nil, nil)
}

// newFlowEnvWith is newFlowEnv with tweak applied to the issuer's
// options before New, on st (nil: a fresh embedded store).
func newFlowEnvWith(t *testing.T, base string, tweak func(*Options), st store.Store) *flowEnv {
	t.Helper()
	hash, _ := bcrypt.GenerateFromPassword([]byte(alicePassword), bcrypt.MinCost)
	users, _ := json.Marshal(map[string]any{"users": []map[string]any{
		{"id": "u1", "login": "alice@example.com", "password_hash": string(hash)}, {"id": "u2", "login": "mallory@example.com"}}})
	dir, err := directory.ParseFile(users)
	if err != nil {
		t.Fatal(err)
	}
	c := testkit.NewClock(time.Now())
	core, logs := observer.New(zap.InfoLevel)
	user := []string{GrantAuthorizationCode, GrantRefreshToken}
	opts := Options{
		// ES256: key generation is cheap, which keeps these tests fast.
		BaseURL: base, Directory: dir, Now: c.Now, OrgSigningAlg: "ES256", Logger: zap.New(core),
		Servers: map[string]*ServerConfig{"default": {
			SigningAlg: "ES256",
			Scopes:     []*Scope{{Name: "read", Default: true}, {Name: "pay", Consent: "required", Description: "Make payments"}},
			Policies: []*policy.Policy{{Name: "p", Clients: []string{"*"}, Rules: []*policy.Rule{{Name: "r",
				GrantTypes: []string{GrantAuthorizationCode, GrantClientCredentials, GrantDeviceCode}, Scopes: []string{"*"}}}}},
		}},
		Clients: []*clientauth.Client{
			{ID: "web", Name: "Web App", Secret: "web-secret", GrantTypes: user, RedirectURIs: []string{webCB}, PostLogoutRedirectURIs: []string{webBye}},
			{ID: "other", Name: "Other App", Secret: "other-secret", GrantTypes: user, RedirectURIs: []string{otherCB}},
			{ID: "pub", Name: "Public SPA", AuthMethod: clientauth.None, GrantTypes: user, RedirectURIs: []string{pubCB}},
			{ID: "tv", Name: "Living-room TV", AuthMethod: clientauth.None, GrantTypes: []string{GrantDeviceCode}},
			{ID: "svc", Secret: "svc-secret"},
		},
	}
	if tweak != nil {
		tweak(&opts)
	}
	iss, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return &flowEnv{t: t, iss: iss, st: startIssuer(t, iss, st), clock: c, logs: logs, core: core}
}

// secrets of the confidential clients.
var secrets = map[string]string{"web": "web-secret", "other": "other-secret", "svc": "svc-secret"}

// as authenticates a request as client id: Basic for a confidential
// client, client_id in the form for a public one.
func as(id string) func(*http.Request, url.Values) {
	return func(r *http.Request, f url.Values) {
		if sec, ok := secrets[id]; ok {
			r.SetBasicAuth(id, sec)
			return
		}
		f.Set("client_id", id)
	}
}

// post sends a form to path as client id and decodes the JSON answer.
func (e *flowEnv) post(path, client string, form url.Values) (int, map[string]any) {
	e.t.Helper()
	w := e.send(path, client, form)
	var body map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	return w.Code, body
}

// send posts a form to path as client id and returns the whole answer.
func (e *flowEnv) send(path, client string, form url.Values) *httptest.ResponseRecorder {
	e.t.Helper()
	r := httptest.NewRequest(http.MethodPost, path, nil)
	if form == nil {
		form = url.Values{}
	}
	if client != "" {
		as(client)(r, form)
	}
	r.Body = io.NopCloser(strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	e.iss.ServeHTTP(w, r)
	return w
}

// code stores an authorization code as /authorize would have issued it
// to client for user u1, with PKCE challenge S256(verifier) when
// verifier is not empty.
func (e *flowEnv) code(client, redirect, verifier string, scopes ...string) string {
	e.t.Helper()
	return e.codeFor("u1", client, redirect, verifier, scopes...)
}

// codeFor is code for user uid.
func (e *flowEnv) codeFor(uid, client, redirect, verifier string, scopes ...string) string {
	e.t.Helper()
	if len(scopes) == 0 {
		scopes = []string{"openid", "offline_access", "read"}
	}
	req := authzRequest{Server: "default", ClientID: client, RedirectURI: redirect, Scopes: scopes, UserID: uid,
		AuthTime: e.clock.Now(), Amr: []string{"pwd"}}
	if verifier != "" {
		req.Challenge = s256(verifier)
	}
	code := randomToken()
	b, _ := json.Marshal(codeGrant{authzRequest: req})
	if err := e.st.PutRecord(context.Background(), store.NSCode, refreshHash(code), b, time.Now().Add(CodeLifetime)); err != nil {
		e.t.Fatal(err)
	}
	return code
}

// redeem exchanges a code at the token endpoint.
func (e *flowEnv) redeem(client, code, redirect, verifier string) (int, map[string]any) {
	e.t.Helper()
	f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}}
	if verifier != "" {
		f.Set("code_verifier", verifier)
	}
	return e.post(tokenEP, client, f)
}

// active introspects tok as client web (a confidential resource
// server) and reports whether it is active.
func (e *flowEnv) active(tok string) bool {
	e.t.Helper()
	status, body := e.post("/oauth2/default/v1/introspect", "web", url.Values{"token": {tok}})
	if status != http.StatusOK {
		e.t.Fatalf("introspect: %d %v", status, body)
	}
	return body["active"] == true
}

// session starts an SSO session for user uid and returns its cookie.
func (e *flowEnv) session(uid string) *http.Cookie {
	e.t.Helper()
	sid := randomToken()
	b, _ := json.Marshal(session{UserID: uid, AuthTime: e.clock.Now(), Amr: []string{"pwd"}})
	if err := e.st.PutRecord(context.Background(), store.NSSession, sid, b, time.Now().Add(SessionLifetime)); err != nil {
		e.t.Fatal(err)
	}
	return e.iss.cookie(httptest.NewRequest(http.MethodGet, e.iss.base+"/", nil), sessionCookie, sid, SessionLifetime)
}

// sessionAlive reports whether the session behind cookie still exists.
func (e *flowEnv) sessionAlive(c *http.Cookie) bool {
	_, err := e.st.GetRecord(context.Background(), store.NSSession, c.Value)
	return err == nil
}

// browse sends a browser request with cookies and returns the answer.
func (e *flowEnv) browse(method, target string, form url.Values, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	e.t.Helper()
	var r *http.Request
	if form != nil {
		r = httptest.NewRequest(method, target, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r = httptest.NewRequest(method, target, nil)
	}
	for _, c := range cookies {
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	w := httptest.NewRecorder()
	e.iss.ServeHTTP(w, r)
	return w
}

// cookieOf returns the cookie named name that w set, or nil.
func cookieOf(w *httptest.ResponseRecorder, name string) *http.Cookie {
	for _, c := range w.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// hidden returns the value of the hidden input name in an HTML page.
func hidden(page, name string) string {
	_, rest, ok := strings.Cut(page, `name="`+name+`" value="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}
