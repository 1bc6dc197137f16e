package tokenissuer_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	jwtverifier "github.com/okta/okta-jwt-verifier-golang/v2"
	"golang.org/x/oauth2"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
	"github.com/apiaccess/caddy-apiaccess/internal/testkit/browser"
)

// Okta's server-side SDKs against the issuer, unchanged: the Go
// okta-jwt-verifier-golang/v2 (pinned in go.mod) here, the Node
// @okta/jwt-verifier and @okta/oidc-middleware (pinned in
// tokenissuer/interop/package.json) through node.

// sdkRedirect is the web app's redirect URI for tokens fetched by the
// test itself; it is never fetched (the test reads the redirect).
const sdkRedirect = "http://127.0.0.1:9/sdk/callback"

// sdkTokens are what a confidential web app got from a code flow at the
// custom server "default" and at the org server, with the nonces sent.
type sdkTokens struct {
	access, id, nonce          string // custom server
	orgAccess, orgID, orgNonce string // org server
}

// startSDKIssuer starts an issuer whose web app (client_secret_basic)
// may use the code flow with the given redirect URIs.
func startSDKIssuer(t *testing.T, redirects, postLogout []string) {
	t.Helper()
	startRealClientEnv(t, []map[string]any{{
		"client_id": interopWeb, "name": "Okta SDK web app", "client_secret": interopSec,
		"token_endpoint_auth_method": "client_secret_basic", "grant_types": []string{"authorization_code", "refresh_token"},
		"redirect_uris": append([]string{sdkRedirect}, redirects...), "post_logout_redirect_uris": postLogout,
	}})
}

// startSDKEnv starts the issuer and signs alice in to the web app at the
// custom and the org server with a browser.
func startSDKEnv(t *testing.T) sdkTokens {
	t.Helper()
	startSDKIssuer(t, nil, nil)
	b := browser.New(t, base)
	var s sdkTokens
	tok, nonce := webCodeFlow(t, b, base+"/oauth2/default", "openid", "email", "orders:read")
	s.access, s.id, s.nonce = tok.AccessToken, idToken(t, tok), nonce
	tok, nonce = webCodeFlow(t, b, base+"/oauth2", "openid", "email")
	s.orgAccess, s.orgID, s.orgNonce = tok.AccessToken, idToken(t, tok), nonce
	return s
}

// webCodeFlow runs the code flow (S256 PKCE, nonce) of the web app at
// the server whose endpoints are under root/v1 (the org server's are
// under {base}/oauth2/v1): sign-in and consent pages when shown, then
// the exchange.
func webCodeFlow(t *testing.T, b *browser.Browser, root string, scopes ...string) (*oauth2.Token, string) {
	t.Helper()
	conf := oauth2.Config{ClientID: interopWeb, ClientSecret: interopSec, RedirectURL: sdkRedirect, Scopes: scopes,
		Endpoint: oauth2.Endpoint{AuthURL: root + "/v1/authorize", TokenURL: root + "/v1/token", AuthStyle: oauth2.AuthStyleInHeader}}
	state, nonce, verifier := rand.Text(), rand.Text(), oauth2.GenerateVerifier()
	res, page := b.Get(conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", nonce)))
	if res.StatusCode == http.StatusOK {
		res, page = b.SignIn(page, aliceLogin, alicePass)
	}
	if res.StatusCode == http.StatusOK { // consent
		f := browser.Fields(page)
		f.Set("decision", "allow")
		res, _ = b.Post(base+"/oauth2/v1/consent", f)
	}
	q := browser.Callback(t, res, sdkRedirect)
	if q.Get("state") != state || q.Get("code") == "" {
		t.Fatalf("callback from %s: %v", root, q)
	}
	tok, err := conf.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code exchange at %s: %v", root, err)
	}
	return tok, nonce
}

func idToken(t *testing.T, tok *oauth2.Token) string {
	t.Helper()
	s, _ := tok.Extra("id_token").(string)
	if s == "" {
		t.Fatal("no ID token")
	}
	return s
}

// tamper changes one character in the middle of a JWT's signature.
func tamper(jwt string) string {
	i := strings.LastIndexByte(jwt, '.') + 10
	c := byte('A')
	if jwt[i] == 'A' {
		c = 'B'
	}
	return jwt[:i] + string(c) + jwt[i+1:]
}

// needNode skips unless node and the interop packages are installed.
func needNode(t *testing.T, pkg string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	testkit.Need(t, err == nil, "no node on PATH")
	_, err = os.Stat(filepath.Join("interop", "node_modules", filepath.FromSlash(pkg)))
	testkit.Needf(t, err == nil, "no tokenissuer/interop/node_modules/%s (npm ci --prefix tokenissuer/interop)", pkg)
	return node
}

// TestOktaJWTVerifierNode: @okta/jwt-verifier 4.0.2 runs
// tokenissuer/interop/okta-jwt-verifier.test.mjs against the issuer:
// access and ID tokens of a custom server verify; a wrong audience,
// client id or nonce, a changed signature, an expired token and a token
// of another issuer are refused; assertClaims checks scp and cid; the
// org server's ID token verifies with jwksUri {base}/oauth2/v1/keys.
func TestOktaJWTVerifierNode(t *testing.T) {
	node := needNode(t, "@okta/jwt-verifier")
	s := startSDKEnv(t)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "tokenissuer/interop/okta-jwt-verifier.test.mjs")
	cmd.Dir = ".." // the repository root
	cmd.Env = append(os.Environ(),
		"APIACCESS_BASE="+base,
		"APIACCESS_ISSUER="+base+"/oauth2/default",
		"APIACCESS_AUDIENCE=api://default",
		"APIACCESS_CLIENT_ID="+interopWeb,
		"APIACCESS_USER_ID="+aliceID,
		"APIACCESS_ACCESS_TOKEN="+s.access,
		"APIACCESS_ID_TOKEN="+s.id,
		"APIACCESS_NONCE="+s.nonce,
		"APIACCESS_ORG_ACCESS_TOKEN="+s.orgAccess,
		"APIACCESS_ORG_ID_TOKEN="+s.orgID,
		"APIACCESS_ORG_NONCE="+s.orgNonce,
		"NO_COLOR=1",
	)
	runNodeTest(t, cmd)
}

// runNodeTest runs a `node --test` command and fails on a failed or
// skipped test.
func runNodeTest(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	err := testkit.Start(t, cmd).Wait()
	out := output.String()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
	t.Logf("node --test:\n%s", out)
	if !strings.Contains(out, "# skipped 0") || strings.Contains(out, "# pass 0") {
		t.Fatalf("node tests skipped or none ran:\n%s", out)
	}
}

// TestOktaJWTVerifierGo: okta-jwt-verifier-golang/v2 v2.1.1, configured
// as Okta documents it (Issuer and ClaimsToValidate), verifies the
// custom server's access token (aud, cid) and ID token (aud, nonce) and
// the org server's ID token through discovery alone; it refuses a wrong
// audience, client id or nonce, a changed signature, and tokens signed
// by another authorization server's key.
func TestOktaJWTVerifierGo(t *testing.T) {
	s := startSDKEnv(t)
	custom := base + "/oauth2/default"
	verifier := func(issuer string, claims map[string]string) *jwtverifier.JwtVerifier {
		t.Helper()
		v, err := (&jwtverifier.JwtVerifier{Issuer: issuer, ClaimsToValidate: claims}).New()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	at := verifier(custom, map[string]string{"aud": "api://default", "cid": interopWeb})
	jwt, err := at.VerifyAccessToken(s.access)
	if err != nil {
		t.Fatalf("access token refused: %v", err)
	}
	if c := jwt.Claims; c["sub"] != aliceLogin || c["uid"] != aliceID || c["iss"] != custom {
		t.Fatalf("access token claims: %v", c)
	}
	if scp, _ := jwt.Claims["scp"].([]any); !contains(scp, "orders:read") {
		t.Fatalf("access token scp: %v", jwt.Claims["scp"])
	}
	if lifetime := jwt.Claims["exp"].(float64) - jwt.Claims["iat"].(float64); lifetime != 600 {
		t.Fatalf("access token lifetime %vs, want the rule's 10m", lifetime)
	}
	refuse := func(what string, v *jwtverifier.JwtVerifier, verify func(*jwtverifier.JwtVerifier, string) (*jwtverifier.Jwt, error), tok, want string) {
		t.Helper()
		_, err := verify(v, tok)
		if err == nil {
			t.Fatalf("%s: accepted", what)
		}
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: refused with %q, want %q", what, err, want)
		}
	}
	verifyAT := (*jwtverifier.JwtVerifier).VerifyAccessToken
	verifyID := (*jwtverifier.JwtVerifier).VerifyIdToken
	refuse("wrong audience", verifier(custom, map[string]string{"aud": "api://other", "cid": interopWeb}), verifyAT, s.access, "`Audience`")
	refuse("wrong client id", verifier(custom, map[string]string{"aud": "api://default", "cid": "someone-else"}), verifyAT, s.access, "`Client Id`")
	refuse("changed signature", at, verifyAT, tamper(s.access), "could not decode token")
	// Signed with the org server's key, which the custom server's JWKS
	// does not hold (and the other way round).
	refuse("org access token at the custom server", at, verifyAT, s.orgAccess, "could not decode token")
	refuse("custom access token at the org server", verifier(base, map[string]string{"aud": "api://default"}), verifyAT, s.access, "could not decode token")
	// An ID token is not an access token for the API: its aud is the
	// client.
	refuse("ID token as access token", at, verifyAT, s.id, "`Audience`")

	id := verifier(custom, map[string]string{"aud": interopWeb, "nonce": s.nonce})
	jwt, err = id.VerifyIdToken(s.id)
	if err != nil {
		t.Fatalf("ID token refused: %v", err)
	}
	if c := jwt.Claims; c["sub"] != aliceID || c["email"] != aliceLogin || c["nonce"] != s.nonce {
		t.Fatalf("ID token claims: %v", c)
	}
	refuse("wrong nonce", verifier(custom, map[string]string{"aud": interopWeb, "nonce": "other"}), verifyID, s.id, "`Nonce`")
	refuse("wrong client", verifier(custom, map[string]string{"aud": "someone-else", "nonce": s.nonce}), verifyID, s.id, "`Audience`")
	refuse("changed ID token signature", id, verifyID, tamper(s.id), "could not decode token")

	// The org server: discovery at {base}/.well-known/openid-configuration
	// names {base}/oauth2/v1/keys.
	org := verifier(base, map[string]string{"aud": interopWeb, "nonce": s.orgNonce})
	if jwt, err = org.VerifyIdToken(s.orgID); err != nil {
		t.Fatalf("org ID token refused: %v", err)
	}
	if jwt.Claims["iss"] != base || jwt.Claims["sub"] != aliceID {
		t.Fatalf("org ID token claims: %v", jwt.Claims)
	}
	refuse("org ID token at the custom server", verifier(custom, map[string]string{"aud": interopWeb, "nonce": s.orgNonce}), verifyID, s.orgID, "could not decode token")
}

func contains(list []any, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestOktaOIDCMiddleware: an Express app using @okta/oidc-middleware
// 5.5.1 (tokenissuer/interop/oidc-middleware-app.mjs, configured with
// the issuer, client id and secret, app base URL and scopes) signs a
// user in through the issuer's pages: its protected route sends the
// browser to /login, the issuer's sign-in and consent pages, the
// callback, and back to the route, which shows the user from
// userinfo. Its /logout revokes both tokens at the issuer and ends the
// issuer's session (RP-initiated logout): the route then asks for the
// password again.
func TestOktaOIDCMiddleware(t *testing.T) {
	node := needNode(t, "@okta/oidc-middleware")
	port := testkit.FreePort(t)
	app := "http://127.0.0.1:" + strconv.Itoa(port)
	startSDKIssuer(t, []string{app + "/authorization-code/callback"}, []string{app + "/"})

	cmd := exec.Command(node, "tokenissuer/interop/oidc-middleware-app.mjs")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(),
		"APIACCESS_ISSUER="+base+"/oauth2/default",
		"APIACCESS_CLIENT_ID="+interopWeb,
		"APIACCESS_CLIENT_SECRET="+interopSec,
		"APIACCESS_APP_URL="+app,
		"APIACCESS_APP_PORT="+strconv.Itoa(port),
		"APIACCESS_SCOPE=openid profile email offline_access "+consentOnly,
	)
	var output lockedBuffer
	cmd.Stdout, cmd.Stderr = &output, &output
	proc := testkit.Start(t, cmd)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("app output:\n%s", output.String())
		}
	})
	testkit.WaitFor(t, "the Express app", 30*time.Second, func() bool {
		select {
		case <-proc.Done():
			t.Fatalf("the Express app exited:\n%s", output.String())
		default:
		}
		res, err := http.Get(app + "/")
		if err == nil {
			res.Body.Close()
		}
		return err == nil
	})

	b := browser.New(t, base)
	b.Client.Transport = acceptHTML{}
	// step checks a redirect (resolved against the app's URL) and
	// returns where it goes.
	step := func(what string, res *http.Response, status int, path string) string {
		t.Helper()
		loc := res.Header.Get("Location")
		if u, err := res.Request.URL.Parse(loc); err == nil && loc != "" {
			loc = u.String()
		}
		if res.StatusCode != status || (path != "" && !strings.HasPrefix(loc, path)) {
			t.Fatalf("%s: %d to %q, want %d to %s", what, res.StatusCode, loc, status, path)
		}
		return loc
	}
	// signIn follows the app from its protected route to the issuer's
	// sign-in page.
	signInPage := func() string {
		t.Helper()
		res, _ := b.Get(app + "/profile")
		loc := step("protected route", res, http.StatusFound, app+"/login")
		res, _ = b.Get(loc)
		loc = step("login", res, http.StatusFound, base+"/oauth2/default/v1/authorize?")
		u, _ := url.Parse(loc)
		if q := u.Query(); q.Get("client_id") != interopWeb || q.Get("state") == "" ||
			q.Get("redirect_uri") != app+"/authorization-code/callback" {
			t.Fatalf("authorization request: %v", q)
		}
		res, page := b.Get(loc)
		if res.StatusCode != http.StatusOK || !strings.Contains(page, `autocomplete="current-password"`) {
			t.Fatalf("want the issuer's sign-in page, got %d %.300s", res.StatusCode, page)
		}
		return page
	}

	res, page := b.SignIn(signInPage(), aliceLogin, alicePass)
	if res.StatusCode != http.StatusOK || !strings.Contains(page, "Okta SDK web app") || !strings.Contains(page, "Make payments for you") {
		t.Fatalf("want the consent page, got %d %.300s", res.StatusCode, page)
	}
	f := browser.Fields(page)
	f.Set("decision", "allow")
	res, _ = b.Post(base+"/oauth2/v1/consent", f)
	loc := step("consent", res, http.StatusFound, app+"/authorization-code/callback?")
	res, text := b.Get(loc)
	step("callback: "+text, res, http.StatusFound, app+"/profile")
	res, text = b.Get(app + "/profile")
	if res.StatusCode != http.StatusOK || !strings.Contains(text, "Hello Alice Smith ("+aliceLogin+")") {
		t.Fatalf("protected route after sign-in: %d %q", res.StatusCode, text)
	}

	// The tokens the middleware holds for this session are live.
	res, text = b.Get(app + "/tokens")
	var tokens struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal([]byte(text), &tokens); err != nil || tokens.AccessToken == "" || tokens.RefreshToken == "" {
		t.Fatalf("app tokens: %d %v", res.StatusCode, err)
	}
	introspect := func(tok string) bool {
		t.Helper()
		_, body := post(t, "/oauth2/default/v1/introspect", url.Values{"token": {tok}}, basicAuth(interopWeb, interopSec))
		return body["active"] == true
	}
	if !introspect(tokens.AccessToken) || !introspect(tokens.RefreshToken) {
		t.Fatal("the app's tokens are not active")
	}

	// Logout: the middleware revokes both tokens (it awaits that before
	// answering), then sends the browser to the issuer's logout with
	// the ID token, which ends the session and returns to the app.
	res, _ = b.Post(app+"/logout", url.Values{})
	loc = step("app logout", res, http.StatusFound, base+"/oauth2/default/v1/logout?")
	if introspect(tokens.AccessToken) || introspect(tokens.RefreshToken) {
		t.Fatal("the middleware's logout left its tokens active")
	}
	if u, _ := url.Parse(loc); u.Query().Get("id_token_hint") == "" || u.Query().Get("post_logout_redirect_uri") != app+"/" {
		t.Fatalf("RP-initiated logout request: %v", u.Query())
	}
	res, _ = b.Get(loc)
	step("issuer logout", res, http.StatusFound, app+"/")
	if res, text = b.Get(app + "/"); res.StatusCode != http.StatusOK || !strings.Contains(text, "Signed out") {
		t.Fatalf("app home after logout: %d %q", res.StatusCode, text)
	}
	// The issuer's session ended: the protected route asks for the
	// password again.
	signInPage()
	if out := output.String(); strings.Contains(out, "OIDC error") {
		t.Fatalf("the middleware reported errors:\n%s", out)
	}
}

// acceptHTML asks for HTML, as a browser does: the middleware answers
// other requests for a protected route with 401 instead of a redirect.
type acceptHTML struct{}

func (acceptHTML) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Accept", "text/html,application/xhtml+xml")
	return http.DefaultTransport.RoundTrip(r)
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
