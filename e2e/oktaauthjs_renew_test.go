package e2e

import (
	"net/http"
	"slices"
	"testing"
)

// offlineScopes are the app's scopes plus offline_access.
func (b *sdkTab) offlineScopes() []string {
	if b.profile == "org" {
		return []string{"openid", "profile", "email", "offline_access"}
	}
	return []string{"openid", "profile", "email", sdkOrderScope, "offline_access"}
}

// sameUserNewToken fails unless got is a new access token of the same
// user and client as was.
func (b *sdkTab) sameUserNewToken(what string, was, got tokenSummary) {
	b.T.Helper()
	if got.AccessToken == "" || got.AccessClaims["jti"] == was.AccessClaims["jti"] ||
		got.AccessClaims["uid"] != sdkUserID || got.AccessClaims["cid"] != sdkClientID || got.AccessClaims["iss"] != b.issuer() {
		b.Fail("%s: access token claims %v, was %v", what, got.AccessClaims, was.AccessClaims)
	}
}

// testSDKRenewRefresh: with offline_access the SDK renews with the
// refresh token (tokenManager.renew, token.renewTokens), at the token
// endpoint, without a frame.
func testSDKRenewRefresh(t *testing.T, b *sdkTab) {
	was := b.signIn(map[string]any{"scopes": b.offlineScopes()})
	if !was.HasRefreshToken || !slices.Contains(was.Scopes, "offline_access") {
		b.Fail("no refresh token after a sign-in with offline_access (scopes %v)", was.Scopes)
	}
	var renewed tokenSummary
	b.must(&renewed, "renew")
	renewed = b.decode(renewed)
	b.sameUserNewToken("tokenManager.renew", was, renewed)
	if !renewed.HasRefreshToken {
		b.Fail("the refresh token is gone after tokenManager.renew")
	}

	var all tokenSummary
	b.must(&all, "renewTokens")
	all = b.decode(all)
	b.sameUserNewToken("token.renewTokens", renewed, all)
	if all.IDClaims["sub"] != sdkUserID || !all.HasRefreshToken {
		b.Fail("token.renewTokens: ID token %v, refresh token %v", all.IDClaims, all.HasRefreshToken)
	}
	// The sign-in's code exchange and two refreshes, all answered 200.
	posts := b.net.find(http.MethodPost, b.endpoint("token"))
	if len(posts) != 3 || slices.ContainsFunc(posts, func(e netEntry) bool { return e.Status != 200 }) {
		b.Fail("token requests %+v", posts)
	}
	if got := b.net.find(http.MethodGet, b.endpoint("authorize")); len(got) != 1 {
		b.Fail("the renewals went to the authorize endpoint: %+v", got)
	}
}

// testSDKRenewSilent: without a refresh token, token.getWithoutPrompt
// (and renewTokens) gets new tokens in a hidden iframe (prompt=none,
// response_mode=okta_post_message) on the issuer's session.
func testSDKRenewSilent(t *testing.T, b *sdkTab) {
	was := b.signIn(nil)
	var got tokenSummary
	b.must(&got, "getWithoutPrompt")
	got = b.decode(got)
	b.sameUserNewToken("token.getWithoutPrompt", was, got)
	if got.IDClaims["sub"] != sdkUserID || got.IDClaims["aud"] != sdkClientID || got.HasRefreshToken {
		b.Fail("token.getWithoutPrompt: ID token %v, refresh token %v", got.IDClaims, got.HasRefreshToken)
	}

	var renewed tokenSummary
	b.must(&renewed, "renewTokens")
	renewed = b.decode(renewed)
	b.sameUserNewToken("token.renewTokens without a refresh token", got, renewed)
}

// testSDKRenewSilentNoSession: without an issuer session the hidden
// iframe's answer reaches the SDK as OAuthError login_required.
func testSDKRenewSilentNoSession(t *testing.T, b *sdkTab) {
	b.open("ready")
	r := b.call("getWithoutPrompt")
	if r.OK || r.Error.Name != "OAuthError" || r.Error.ErrorCode != "login_required" {
		b.Fail("token.getWithoutPrompt without a session: ok %v, %s", r.OK, r.Error)
	}
}
