package tokenissuer_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit/caddytester"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
)

const (
	appID  = "native-app"
	appSec = "native-app-secret-0123456789"
)

// userEnv starts an issuer with a directory of users and a client that
// may use the password and refresh_token grants.
func userEnv(t *testing.T, leeway string) {
	t.Helper()
	startUserEnv(t, leeway, "")
}

// Browser-flow clients: a public app (PKCE, no secret) and a
// confidential web app.
const (
	spaID  = "spa"
	webID  = "web"
	webSec = "web-secret-0123456789"
	tvID   = "tv"
)

// startUserEnv is userEnv with browser clients redirecting to redirect.
func startUserEnv(t *testing.T, leeway, redirect string) {
	t.Helper()
	hash, err := directory.HashBcrypt("alice-password")
	if err != nil {
		t.Fatal(err)
	}
	users := []map[string]any{
		{"id": "00u-alice", "login": "alice@example.com", "password_hash": hash, "groups": []string{"finance", "staff"},
			"profile": map[string]any{"email": "alice@example.com", "email_verified": true, "name": "Alice Smith", "given_name": "Alice"}},
		{"id": "00u-bob", "login": "bob@example.com", "password_hash": hash, "status": "suspended"},
		{"id": "00u-carol", "login": "carol@example.com", "password_hash": hash, "groups": []string{"contractors"}},
	}
	client := map[string]any{"client_id": appID, "client_secret": appSec, "grant_types": []string{"password", "refresh_token"}}
	if leeway != "" {
		client["refresh_token_leeway"] = leeway
	}
	clients := []map[string]any{client}
	if redirect != "" {
		clients = append(clients,
			map[string]any{"client_id": spaID, "name": "Orders SPA", "token_endpoint_auth_method": "none", "grant_types": []string{"authorization_code", "refresh_token"},
				"redirect_uris": []string{redirect}, "post_logout_redirect_uris": []string{redirect + "/bye"}},
			map[string]any{"client_id": webID, "client_secret": webSec, "grant_types": []string{"authorization_code"}, "redirect_uris": []string{redirect}},
			map[string]any{"client_id": tvID, "name": "Living-room TV", "token_endpoint_auth_method": "none",
				"grant_types": []string{"urn:ietf:params:oauth:grant-type:device_code", "refresh_token"}})
	}
	startIssuer(t, issuerSetup{users: users, clients: clients, server: map[string]any{
		"scopes": []map[string]any{{"name": "orders:read", "default": true}, {"name": "payments:write", "consent": "required", "description": "Make payments for you"}},
		"claims": []map[string]any{
			{"name": "dept_groups", "groups": map[string]any{"type": "starts_with", "value": "fin"}},
			{"name": "email", "value": "user.profile.email"},
		},
		"policies": []map[string]any{{"name": "Employees", "clients": []string{"*"}, "rules": []map[string]any{{
			"name": "Staff", "grant_types": []string{"password", "authorization_code", "urn:ietf:params:oauth:grant-type:device_code"}, "scopes": []string{"*"},
			"people":                map[string]any{"exclude_groups": []string{"contractors"}},
			"access_token_lifetime": "10m", "refresh_token_lifetime": "1d", "refresh_token_idle": "1h",
		}}}},
	}})
}

// issuerSetup is an issuer for the user-flow tests, in this process on
// base: users in a directory file, clients, the "default"
// authorization server, and the site's routes (default: the issuer).
type issuerSetup struct {
	users   []map[string]any
	clients []map[string]any
	server  map[string]any
	routes  []map[string]any
	// site holds more settings of the HTTP server (e.g. trusted_proxies).
	site map[string]any
}

func startIssuer(t *testing.T, s issuerSetup) {
	t.Helper()
	dir := t.TempDir()
	b, _ := json.Marshal(map[string]any{"users": s.users})
	usersPath := filepath.Join(dir, "users.json")
	if err := os.WriteFile(usersPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if s.routes == nil {
		s.routes = []map[string]any{{"handle": []map[string]any{{"handler": "token_issuer"}}}}
	}
	srv := map[string]any{"listen": []string{":" + issuerPort}, "routes": s.routes}
	for k, v := range s.site {
		srv[k] = v
	}
	cfg := map[string]any{
		"admin": map[string]any{"listen": caddytester.AdminAddr()},
		"apps": map[string]any{
			"token_issuer": map[string]any{
				"base_url":              base,
				"key_encryption_secret": sealSecret,
				"storage":               map[string]any{"module": "embedded", "path": filepath.Join(dir, "issuer.db")},
				"directory":             map[string]any{"source": "file", "path": usersPath},
				"clients":               s.clients,
				"authorization_servers": map[string]any{"default": s.server},
			},
			"http": map[string]any{"servers": map[string]any{"srv0": srv}},
		},
	}
	cb, _ := json.Marshal(cfg)
	caddytester.NewTester(t).InitServer(string(cb), "json")
}

// TestPasswordGrantWithOIDCRelyingParty: a real relying party
// (go-oidc + x/oauth2) signs a user in with the password grant,
// verifies the ID token and its at_hash, reads userinfo, and refreshes.
func TestPasswordGrantWithOIDCRelyingParty(t *testing.T) {
	userEnv(t, "")
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, base+"/oauth2/default")
	if err != nil {
		t.Fatal(err)
	}
	conf := oauth2.Config{ClientID: appID, ClientSecret: appSec, Endpoint: provider.Endpoint(),
		Scopes: []string{"openid", "profile", "email", "groups", "offline_access", "orders:read"}}
	tok, err := conf.PasswordCredentialsToken(ctx, "Alice@Example.com", "alice-password")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&oidc.Config{ClientID: appID}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("ID token does not verify: %v", err)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Fatalf("at_hash: %v", err)
	}
	var ic struct {
		Email             string   `json:"email"`
		PreferredUsername string   `json:"preferred_username"`
		Groups            []string `json:"groups"`
		Amr               []string `json:"amr"`
		AuthTime          int64    `json:"auth_time"`
	}
	_ = idt.Claims(&ic)
	if idt.Subject != "00u-alice" || ic.Email != "alice@example.com" || ic.PreferredUsername != "alice@example.com" ||
		len(ic.Groups) != 2 || len(ic.Amr) != 1 || ic.Amr[0] != "pwd" || ic.AuthTime == 0 {
		t.Fatalf("ID token: sub %s claims %+v", idt.Subject, ic)
	}
	// The access token: Okta's user shape plus the custom claims.
	claims, _ := verify(t, "default", tok.AccessToken)
	if claims["uid"] != "00u-alice" || claims["sub"] != "alice@example.com" || claims["auth_time"] == nil ||
		claims["email"] != "alice@example.com" || claims["cid"] != appID {
		t.Fatalf("access token claims: %v", claims)
	}
	if g, _ := claims["dept_groups"].([]any); len(g) != 1 || g[0] != "finance" {
		t.Fatalf("groups claim with starts_with filter: %v", claims["dept_groups"])
	}
	if exp := claims["exp"].(float64) - claims["iat"].(float64); exp != 600 {
		t.Fatalf("access token lifetime %v, want the rule's 10m", exp)
	}
	info, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatal(err)
	}
	var uc map[string]any
	_ = info.Claims(&uc)
	if info.Subject != "00u-alice" || info.Email != "alice@example.com" || uc["name"] != "Alice Smith" {
		t.Fatalf("userinfo: %v", uc)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token with offline_access")
	}
	// Refresh (rotation): new tokens and a new refresh token.
	expired := &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}
	fresh, err := conf.TokenSource(ctx, expired).Token()
	if err != nil {
		t.Fatal(err)
	}
	if fresh.AccessToken == tok.AccessToken || fresh.RefreshToken == "" || fresh.RefreshToken == tok.RefreshToken {
		t.Fatal("refresh did not rotate")
	}
	if _, err := provider.Verifier(&oidc.Config{ClientID: appID}).Verify(ctx, fresh.Extra("id_token").(string)); err != nil {
		t.Fatalf("refreshed ID token: %v", err)
	}
	// Within the leeway the replaced token still works once more.
	if _, err := conf.TokenSource(ctx, expired).Token(); err != nil {
		t.Fatalf("retry within the leeway: %v", err)
	}
	// A narrower scope may be asked, a wider one not.
	res, body := post(t, "/oauth2/default/v1/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {fresh.RefreshToken}, "scope": {"openid orders:read"}}, basicAuth(appID, appSec))
	if res.StatusCode != 200 || body["scope"] != "openid orders:read" {
		t.Fatalf("narrower refresh: %d %v", res.StatusCode, body)
	}
}

// TestPasswordGrantRefusals: every bad sign-in gets the same answer;
// policies see the user; nothing is issued.
func TestPasswordGrantRefusals(t *testing.T) {
	userEnv(t, "")
	form := func(user, pw, scope string) url.Values {
		return url.Values{"grant_type": {"password"}, "username": {user}, "password": {pw}, "scope": {scope}}
	}
	app := basicAuth(appID, appSec)
	cases := []struct {
		name          string
		form          url.Values
		status        int
		code, descSub string
	}{
		{"wrong password", form("alice@example.com", "wrong", "openid"), 400, "invalid_grant", "The credentials provided were invalid."},
		{"unknown user", form("nobody@example.com", "alice-password", "openid"), 400, "invalid_grant", "The credentials provided were invalid."},
		{"suspended user", form("bob@example.com", "alice-password", "openid"), 400, "invalid_grant", "The credentials provided were invalid."},
		{"excluded group", form("carol@example.com", "alice-password", "openid"), 400, "access_denied", "Policy evaluation failed"},
		{"missing password", url.Values{"grant_type": {"password"}, "username": {"alice@example.com"}}, 400, "invalid_request", "password"},
		{"unknown scope", form("alice@example.com", "alice-password", "openid admin"), 400, "invalid_scope", ""},
	}
	for _, c := range cases {
		res, body := post(t, "/oauth2/default/v1/token", c.form, app)
		if res.StatusCode != c.status || body["error"] != c.code || !strings.Contains(body["error_description"].(string), c.descSub) {
			t.Errorf("%s: %d %v", c.name, res.StatusCode, body)
		}
		if body["access_token"] != nil || body["id_token"] != nil || body["refresh_token"] != nil {
			t.Errorf("%s: tokens issued", c.name)
		}
	}
	// The same client may not use client_credentials: not in its grants.
	res, body := post(t, "/oauth2/default/v1/token", url.Values{"grant_type": {"client_credentials"}}, app)
	if res.StatusCode != 400 || body["error"] != "unauthorized_client" {
		t.Fatalf("client_credentials for a password client: %d %v", res.StatusCode, body)
	}
}

// TestRefreshReuseRevokesFamily: with no leeway, using a replaced
// refresh token again revokes the whole family, including its newest
// token; revoking a refresh token revokes its family too.
func TestRefreshReuseRevokesFamily(t *testing.T) {
	userEnv(t, "1ns")
	app := basicAuth(appID, appSec)
	login := func() string {
		res, body := post(t, "/oauth2/default/v1/token", url.Values{"grant_type": {"password"}, "username": {"alice@example.com"},
			"password": {"alice-password"}, "scope": {"openid offline_access"}}, app)
		if res.StatusCode != 200 {
			t.Fatalf("login: %v", body)
		}
		return body["refresh_token"].(string)
	}
	refresh := func(rt string) (string, error) {
		res, body := post(t, "/oauth2/default/v1/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, app)
		if res.StatusCode != 200 {
			if body["error"] != "invalid_grant" || body["error_description"] != "The refresh token is invalid or expired." {
				t.Fatalf("refresh failure: %d %v", res.StatusCode, body)
			}
			return "", errors.New("refused")
		}
		return body["refresh_token"].(string), nil
	}
	first := login()
	second, err := refresh(first)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if _, err := refresh(first); err == nil {
		t.Fatal("a replaced refresh token was accepted after the leeway")
	}
	if _, err := refresh(second); err == nil {
		t.Fatal("the family's newest token survived reuse detection")
	}
	// Introspection sees it too.
	_, intro := post(t, "/oauth2/default/v1/introspect", url.Values{"token": {second}}, app)
	if intro["active"] != false {
		t.Fatalf("introspection of a revoked family's token: %v", intro)
	}
	// Revocation (RFC 7009) of a refresh token revokes its family.
	rt := login()
	_, intro = post(t, "/oauth2/default/v1/introspect", url.Values{"token": {rt}}, app)
	if intro["active"] != true || intro["token_type"] != "refresh_token" {
		t.Fatalf("introspection of a live refresh token: %v", intro)
	}
	if res, _ := post(t, "/oauth2/default/v1/revoke", url.Values{"token": {rt}, "token_type_hint": {"refresh_token"}}, app); res.StatusCode != 200 {
		t.Fatalf("revoke refresh token: %d", res.StatusCode)
	}
	if _, err := refresh(rt); err == nil {
		t.Fatal("a revoked refresh token still works")
	}
}

// TestUserinfoRefusals: userinfo wants a valid bearer access token with
// scope openid (RFC 6750 section 3 answers).
func TestUserinfoRefusals(t *testing.T) {
	userEnv(t, "")
	app := basicAuth(appID, appSec)
	_, body := post(t, "/oauth2/default/v1/token", url.Values{"grant_type": {"password"}, "username": {"alice@example.com"},
		"password": {"alice-password"}, "scope": {"orders:read"}}, app)
	noOpenID := body["access_token"].(string)
	for _, c := range []struct {
		name, auth string
		status     int
		challenge  string
	}{
		{"no token", "", 401, `Bearer realm=`},
		{"garbage", "Bearer abc.def.ghi", 401, `error="invalid_token"`},
		{"basic", "Basic YTpi", 400, `error="invalid_request"`},
		{"no openid scope", "Bearer " + noOpenID, 403, `error="insufficient_scope"`},
	} {
		req, _ := http.NewRequest(http.MethodGet, base+"/oauth2/default/v1/userinfo", nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != c.status || !strings.Contains(res.Header.Get("WWW-Authenticate"), c.challenge) {
			t.Errorf("%s: %d %q", c.name, res.StatusCode, res.Header.Get("WWW-Authenticate"))
		}
	}
}
