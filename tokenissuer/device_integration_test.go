package tokenissuer_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit/browser"
)

// TestDeviceFlow (RFC 8628): a TV asks for a code, polls; the user
// enters the code in a browser behind sign-in and approves; the TV gets
// tokens. Polling too fast gets slow_down; a denied or unknown code and
// an expired one get their answers.
func TestDeviceFlow(t *testing.T) {
	rp := httptest.NewServer(http.NotFoundHandler())
	defer rp.Close()
	startUserEnv(t, "", rp.URL+"/callback")
	ctx := context.Background()
	conf := oauth2.Config{ClientID: tvID, Scopes: []string{"openid", "orders:read"}, Endpoint: oauth2.Endpoint{
		DeviceAuthURL: base + "/oauth2/default/v1/device/authorize", TokenURL: base + "/oauth2/default/v1/token", AuthStyle: oauth2.AuthStyleInParams}}
	da, err := conf.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(da.UserCode) != 9 || da.VerificationURI != base+"/oauth2/v1/device" || da.Interval != 5 {
		t.Fatalf("device authorization: %+v", da)
	}
	poll := func() map[string]any {
		_, body := post(t, "/oauth2/default/v1/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
			"device_code": {da.DeviceCode}, "client_id": {tvID}}, nil)
		return body
	}
	if b := poll(); b["error"] != "authorization_pending" {
		t.Fatalf("first poll: %v", b)
	}

	// The user: code entry page, sign-in, approval.
	br := browser.New(t, base)
	res, page := br.Get(da.VerificationURI)
	if res.StatusCode != 200 || !strings.Contains(page, `name="user_code"`) {
		t.Fatalf("code entry page: %d", res.StatusCode)
	}
	res, _ = br.Get(da.VerificationURI + "?user_code=ZZZZ-ZZZZ")
	if res.StatusCode != 400 {
		t.Fatalf("unknown user code: %d", res.StatusCode)
	}
	// People type codes loosely: lower case, no dash.
	typed := strings.ToLower(strings.ReplaceAll(da.UserCode, "-", ""))
	res, page = br.Get(da.VerificationURI + "?user_code=" + typed)
	if res.StatusCode != 200 || !strings.Contains(page, "current-password") {
		t.Fatalf("device page without a session must ask for sign-in: %d", res.StatusCode)
	}
	res, page = br.SignIn(page, "alice@example.com", "alice-password")
	if res.StatusCode != 200 || !strings.Contains(page, "Living-room TV") || !strings.Contains(page, da.UserCode) {
		t.Fatalf("device approval page: %d %.300s", res.StatusCode, page)
	}
	// The code came in the URL, as from a link: the user confirms it
	// matches the device (RFC 8628 section 5.4).
	f := browser.Fields(page)
	f.Set("decision", "allow")
	f.Set("code_matches", "yes")
	if res, page := br.Post(base+"/oauth2/v1/device", f); res.StatusCode != 200 || !strings.Contains(page, "connected") {
		t.Fatalf("approval: %d", res.StatusCode)
	}
	// The x/oauth2 client polls (respecting slow_down) until it has tokens.
	pctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	tok, err := conf.DeviceAccessToken(pctx, da)
	if err != nil {
		t.Fatal(err)
	}
	claims, _ := verify(t, "default", tok.AccessToken)
	if claims["uid"] != "00u-alice" || claims["cid"] != tvID || tok.Extra("id_token") == nil {
		t.Fatalf("device tokens: %v", claims)
	}
	// The device code is single use.
	if b := poll(); b["error"] != "expired_token" {
		t.Fatalf("device code reused: %v", b)
	}

	// A denied device gets access_denied.
	da2, err := conf.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	poll2 := func() map[string]any {
		_, body := post(t, "/oauth2/default/v1/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
			"device_code": {da2.DeviceCode}, "client_id": {tvID}}, nil)
		return body
	}
	if b := poll2(); b["error"] != "authorization_pending" {
		t.Fatalf("first poll: %v", b)
	}
	if b := poll2(); b["error"] != "slow_down" {
		t.Fatalf("polling faster than the interval: %v", b)
	}
	res, page = br.Get(da2.VerificationURIComplete) // session exists: straight to approval
	if res.StatusCode != 200 || !strings.Contains(page, "Living-room TV") {
		t.Fatalf("approval with a session: %d", res.StatusCode)
	}
	f = browser.Fields(page)
	f.Set("decision", "deny")
	br.Post(base+"/oauth2/v1/device", f)
	time.Sleep(10 * time.Second) // the interval, grown by slow_down
	body := poll2()
	if body["error"] != "access_denied" || body["access_token"] != nil {
		t.Fatalf("denied device: %v", body)
	}
	// Unknown device code: expired_token; another client's: too.
	_, body = post(t, "/oauth2/default/v1/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
		"device_code": {"nope"}, "client_id": {tvID}}, nil)
	if body["error"] != "expired_token" {
		t.Fatalf("unknown device code: %v", body)
	}
}
