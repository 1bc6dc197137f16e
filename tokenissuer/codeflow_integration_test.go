package tokenissuer_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit/browser"
)

// TestAuthorizationCodeFlow: a public client with PKCE runs the code
// flow through sign-in and consent; a real relying party (x/oauth2,
// go-oidc) redeems the code and verifies the ID token and its nonce.
// The SSO session and the remembered consent skip both pages next
// time; logout ends the session.
func TestAuthorizationCodeFlow(t *testing.T) {
	rp := httptest.NewServer(http.NotFoundHandler())
	defer rp.Close()
	redirect := rp.URL + "/callback"
	startUserEnv(t, "", redirect)
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, base+"/oauth2/default")
	if err != nil {
		t.Fatal(err)
	}
	conf := oauth2.Config{ClientID: spaID, Endpoint: provider.Endpoint(), RedirectURL: redirect,
		Scopes: []string{"openid", "profile", "email", "offline_access", "payments:write"}}
	conf.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("state-123", oauth2.S256ChallengeOption(verifier), oidc.Nonce("nonce-456"))

	b := browser.New(t, base)
	res, page := b.Get(authURL)
	if res.StatusCode != 200 || !strings.Contains(page, `autocomplete="current-password"`) {
		t.Fatalf("sign-in page: %d", res.StatusCode)
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("sign-in page CSP: %q", csp)
	}
	res, page = b.SignIn(page, "alice@example.com", "alice-password")
	if res.StatusCode != 200 || !strings.Contains(page, "Make payments for you") || !strings.Contains(page, "Orders SPA") {
		t.Fatalf("consent page: %d %.300s", res.StatusCode, page)
	}
	for _, c := range b.Client.Jar.Cookies(mustURL(base)) {
		if c.Name == "apiaccess_sid" && c.Value == "" {
			t.Fatal("empty session cookie")
		}
	}
	f := browser.Fields(page)
	f.Set("decision", "allow")
	res, _ = b.Post(base+"/oauth2/v1/consent", f)
	q := browser.Callback(t, res, redirect)
	if q.Get("state") != "state-123" || q.Get("iss") != base+"/oauth2/default" || q.Get("code") == "" {
		t.Fatalf("callback: %v", q)
	}
	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	idt, err := provider.Verifier(&oidc.Config{ClientID: spaID}).Verify(ctx, tok.Extra("id_token").(string))
	if err != nil {
		t.Fatal(err)
	}
	if idt.Nonce != "nonce-456" || idt.Subject != "00u-alice" || idt.VerifyAccessToken(tok.AccessToken) != nil || tok.RefreshToken == "" {
		t.Fatalf("ID token nonce %q sub %q, refresh token %v", idt.Nonce, idt.Subject, tok.RefreshToken != "")
	}
	// The same code again fails, and revokes what it issued.
	if _, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier)); err == nil {
		t.Fatal("an authorization code was redeemed twice")
	}
	_, intro := post(t, "/oauth2/default/v1/introspect", url.Values{"token": {tok.AccessToken}}, basicAuth(appID, appSec))
	if intro["active"] != false {
		t.Fatal("the access token of a replayed code is still active")
	}
	if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
		t.Fatal("the refresh token of a replayed code still works")
	}

	// SSO session and remembered consent: straight back with a code.
	verifier = oauth2.GenerateVerifier()
	res, _ = b.Get(conf.AuthCodeURL("s2", oauth2.S256ChallengeOption(verifier)))
	q = browser.Callback(t, res, redirect)
	tok, err = conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	// prompt=consent asks again; prompt=login asks for the password again.
	if res, page := b.Get(conf.AuthCodeURL("s3", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("prompt", "consent"))); res.StatusCode != 200 || !strings.Contains(page, "Allow access") {
		t.Fatalf("prompt=consent: %d", res.StatusCode)
	}
	if res, page := b.Get(conf.AuthCodeURL("s4", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("prompt", "login"))); res.StatusCode != 200 || !strings.Contains(page, "current-password") {
		t.Fatalf("prompt=login: %d", res.StatusCode)
	}

	// Logout with id_token_hint and a registered post-logout URI.
	idHint := tok.Extra("id_token").(string)
	res, _ = b.Get(base + "/oauth2/default/v1/logout?" + url.Values{"id_token_hint": {idHint}, "post_logout_redirect_uri": {redirect + "/bye"}, "state": {"bye"}}.Encode())
	if q := browser.Callback(t, res, redirect+"/bye"); q.Get("state") != "bye" {
		t.Fatalf("logout redirect: %v", q)
	}
	res, _ = b.Get(conf.AuthCodeURL("s5", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("prompt", "none")))
	if q := browser.Callback(t, res, redirect); q.Get("error") != "login_required" {
		t.Fatalf("prompt=none after logout: %v", q)
	}
	// An unregistered post-logout URI is never redirected to.
	res, _ = b.Get(base + "/oauth2/default/v1/logout?" + url.Values{"id_token_hint": {idHint}, "post_logout_redirect_uri": {"https://evil.example/"}}.Encode())
	if res.StatusCode != 400 || res.Header.Get("Location") != "" {
		t.Fatalf("unregistered post-logout URI: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
}

func mustURL(s string) *url.URL { u, _ := url.Parse(s); return u }

// TestAuthorizeRefusals: bad authorization requests never issue a code;
// errors that cannot be trusted to a redirect URI show a page instead.
func TestAuthorizeRefusals(t *testing.T) {
	rp := httptest.NewServer(http.NotFoundHandler())
	defer rp.Close()
	redirect := rp.URL + "/callback"
	startUserEnv(t, "", redirect)
	authz := base + "/oauth2/default/v1/authorize?"
	challenge := "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
	good := func(mod func(url.Values)) string {
		v := url.Values{"client_id": {spaID}, "redirect_uri": {redirect}, "response_type": {"code"}, "scope": {"openid"},
			"state": {"st"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
		if mod != nil {
			mod(v)
		}
		return authz + v.Encode()
	}
	b := browser.New(t, base)
	pages := []struct {
		name string
		u    string
	}{
		{"unknown client", good(func(v url.Values) { v.Set("client_id", "nobody") })},
		{"unregistered redirect URI", good(func(v url.Values) { v.Set("redirect_uri", "https://evil.example/callback") })},
		{"redirect URI prefix", good(func(v url.Values) { v.Set("redirect_uri", redirect+"/extra") })},
		{"redirect URI with query", good(func(v url.Values) { v.Set("redirect_uri", redirect+"?next=https://evil.example") })},
		{"no redirect URI", good(func(v url.Values) { v.Del("redirect_uri") })},
		{"repeated parameter", good(nil) + "&state=again"},
	}
	for _, p := range pages {
		res, body := b.Get(p.u)
		if res.StatusCode != 400 || res.Header.Get("Location") != "" || !strings.Contains(body, "<h1>") {
			t.Errorf("%s: %d %q", p.name, res.StatusCode, res.Header.Get("Location"))
		}
	}
	redirects := []struct {
		name, u, code string
	}{
		{"response type token", good(func(v url.Values) { v.Set("response_type", "token") }), "unsupported_response_type"},
		{"plain PKCE", good(func(v url.Values) { v.Set("code_challenge_method", "plain") }), "invalid_request"},
		{"public client without PKCE", good(func(v url.Values) { v.Del("code_challenge"); v.Del("code_challenge_method") }), "invalid_request"},
		{"malformed challenge", good(func(v url.Values) { v.Set("code_challenge", "short") }), "invalid_request"},
		{"unknown scope", good(func(v url.Values) { v.Set("scope", "openid root") }), "invalid_scope"},
		{"prompt none without session", good(func(v url.Values) { v.Set("prompt", "none") }), "login_required"},
		{"bad prompt", good(func(v url.Values) { v.Set("prompt", "select_account") }), "invalid_request"},
		{"bad max_age", good(func(v url.Values) { v.Set("max_age", "-1") }), "invalid_request"},
	}
	for _, c := range redirects {
		res, _ := b.Get(c.u)
		q := browser.Callback(t, res, redirect)
		if c.name == "response type token" {
			// Okta's /authorize: token responses default to the fragment.
			u, _ := url.Parse(res.Header.Get("Location"))
			q, _ = url.ParseQuery(u.Fragment)
		}
		if q.Get("error") != c.code || q.Get("state") != "st" || q.Get("iss") != base+"/oauth2/default" || q.Get("code") != "" {
			t.Errorf("%s: %v", c.name, q)
		}
	}

	// Sign-in: missing CSRF token, and no user enumeration.
	res, page := b.Get(good(nil))
	if res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	f := browser.Fields(page)
	noCSRF := url.Values{"txn": {f.Get("txn")}, "username": {"alice@example.com"}, "password": {"alice-password"}}
	if res, _ := b.Post(base+"/oauth2/v1/signin", noCSRF); res.StatusCode != 400 || res.Header.Get("Location") != "" {
		t.Fatalf("sign-in without CSRF token: %d", res.StatusCode)
	}
	other := browser.New(t, base) // a different browser cannot use this txn
	if res, _ := other.SignIn(page, "alice@example.com", "alice-password"); res.StatusCode != 400 {
		t.Fatalf("sign-in from another browser: %d", res.StatusCode)
	}
	_, wrongPw := b.SignIn(page, "alice@example.com", "nope")
	_, noUser := b.SignIn(page, "nobody@example.com", "nope")
	msg := regexp.MustCompile(`role="alert">([^<]*)<`)
	m1, m2 := msg.FindStringSubmatch(wrongPw), msg.FindStringSubmatch(noUser)
	if m1 == nil || m2 == nil || m1[1] != m2[1] {
		t.Fatalf("sign-in errors differ (user enumeration): %v / %v", m1, m2)
	}
	if res, _ := b.SignIn(page, "bob@example.com", "alice-password"); res.StatusCode != 401 {
		t.Fatalf("suspended user signed in: %d", res.StatusCode)
	}
	// After repeated failures even the right password is refused (each
	// on a fresh page: one page takes only 5 passwords, then expires).
	for range 10 {
		_, page = b.Get(good(nil))
		b.SignIn(page, "carol@example.com", "wrong")
	}
	_, page = b.Get(good(nil))
	if res, _ := b.SignIn(page, "carol@example.com", "alice-password"); res.StatusCode != 429 {
		t.Fatalf("locked login accepted: %d", res.StatusCode)
	}

	// form_post: the code arrives in an auto-submitted form.
	res, page = b.Get(good(func(v url.Values) { v.Set("response_mode", "form_post") }))
	res, page = b.SignIn(page, "alice@example.com", "alice-password")
	ff := browser.Fields(page)
	if res.StatusCode != 200 || ff.Get("code") == "" || ff.Get("state") != "st" || !strings.Contains(page, `action="`+redirect+`"`) {
		t.Fatalf("form_post: %d %.400s", res.StatusCode, page)
	}
	// Token endpoint: a wrong or missing verifier never redeems a code.
	for _, ver := range []string{"", strings.Repeat("x", 43)} {
		res, body := post(t, "/oauth2/default/v1/token", url.Values{"grant_type": {"authorization_code"}, "client_id": {spaID},
			"code": {ff.Get("code")}, "redirect_uri": {redirect}, "code_verifier": {ver}}, nil)
		if res.StatusCode != 400 || body["error"] != "invalid_grant" || body["access_token"] != nil {
			t.Fatalf("verifier %q: %d %v", ver, res.StatusCode, body)
		}
	}
}
