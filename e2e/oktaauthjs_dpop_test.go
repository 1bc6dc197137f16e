package e2e

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// The DPoP test's own client and custom authorization server (the
// shared harness's client does not use DPoP).
const (
	dpopSDKClient = "sdk-dpop"
	dpopSDKServer = "dpop"
)

// dpopSDKIssuer: a public client that must use DPoP (RFC 9449 section
// 5: every token request carries a proof; tokens are bound to its key)
// and the custom server that issues its tokens.
const dpopSDKIssuer = `client ` + dpopSDKClient + ` {
			name "SDK DPoP app"
			auth_method none
			grant_types authorization_code refresh_token
			redirect_uris {APP}/dpop/callback
			dpop_bound_access_tokens
		}
		authorization_server ` + dpopSDKServer + ` {
			audience api://` + dpopSDKServer + `
			scope {ORDERS} {
				description "Read orders"
				consent implicit
				publish
			}
			policy "DPoP app" {
				clients ` + dpopSDKClient + `
				rule "People" {
					grant_types authorization_code
					scopes *
					access_token_lifetime 10m
					refresh_token_lifetime 1d
				}
			}
		}`

// dpopSDKApp: the DPoP page (testdata/oktaauthjs/dpop.html at /dpop/
// and its callback) and two routes that require DPoP, one of them
// with resource-server nonces (RFC 9449 section 9). The app's origin is
// what Caddy sees (https://127.0.0.1:P), so no dpop_origin.
const dpopSDKApp = `handle /dpop-config.js {
		header Content-Type "text/javascript; charset=utf-8"
		respond ` + "`" + `window.DPOP_CONFIG = {"issuer": "{BASE}/oauth2/` + dpopSDKServer + `", "clientId": "` + dpopSDKClient + `",
			"scopes": ["openid", "profile", "email", "{ORDERS}", "offline_access"]};` + "`" + ` 200
	}
	handle /dpop/* {
		root * {PAGE_DIR}
		rewrite * /dpop.html
		file_server
	}
	handle /dpop-api/* {
		require_token {BASE}/oauth2/` + dpopSDKServer + ` api://` + dpopSDKServer + ` {
			scopes {ORDERS}
			dpop required
		}
		header Content-Type application/json
		respond ` + "`" + `{"sub":"{http.auth.token.claims.sub}","cid":"{http.auth.token.claims.cid}"}` + "`" + ` 200
	}
	handle /dpop-nonce-api/* {
		require_token {BASE}/oauth2/` + dpopSDKServer + ` api://` + dpopSDKServer + ` {
			dpop required
			dpop_nonce_secret test-only-gateway-nonce-secret
		}
		header Content-Type application/json
		respond ` + "`" + `{"sub":"{http.auth.token.claims.sub}","cid":"{http.auth.token.claims.cid}"}` + "`" + ` 200
	}`

// dpopTokens is what the DPoP page's app.tokens() returns.
type dpopTokens struct {
	AccessToken     string   `json:"accessToken"`
	TokenType       string   `json:"tokenType"`
	Scopes          []string `json:"scopes"`
	HasRefreshToken bool     `json:"hasRefreshToken"`
	AccessKeyPair   string   `json:"accessKeyPair"`
	RefreshKeyPair  string   `json:"refreshKeyPair"`
}

// dpopAnswer is one API answer as the page saw it.
type dpopAnswer struct {
	Status    int    `json:"status"`
	Body      string `json:"body"`
	Challenge string `json:"challenge"`
	Nonce     string `json:"nonce"`
}

// TestOktaAuthJSDPoP runs okta-auth-js 8.0.1 with `dpop: true` in
// Chromium (WebCrypto key, kept in IndexedDB): signInWithRedirect
// through the issuer's sign-in page, the code exchange with a proof
// (after the token endpoint's use_dpop_nonce), then the page calls a
// require_token route with `dpop required` with
// getDPoPAuthorizationHeaders. The token is bound to the SDK's key
// (cnf.jkt, token_type DPoP); the same token as a bearer token and a
// replayed proof are refused; a route with nonces and the issuer's
// userinfo work through parseUseDPoPNonceError; a refresh keeps the
// key and the binding.
func TestOktaAuthJSDPoP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 110*time.Second)
	defer cancel()
	env := startSDKEnvSites(t, ctx, dpopSDKIssuer, dpopSDKApp)
	// This test's tabs sign in at the dpop server (sdkTab's issuer and
	// endpoints are env.custom's).
	env.custom = env.base + "/oauth2/" + dpopSDKServer
	b := env.newTab(t, "dpop")

	b.signIn(nil)
	was := eval[dpopTokens](b, "window.app.tokens()")
	wasClaims := b.decode(tokenSummary{AccessToken: was.AccessToken}).AccessClaims
	if was.TokenType != "DPoP" || was.AccessKeyPair == "" || !was.HasRefreshToken || was.RefreshKeyPair != was.AccessKeyPair ||
		!slices.Contains(was.Scopes, "offline_access") {
		b.Fail("after the sign-in: token type %q, key pair %q, refresh token %v on key pair %q, scopes %v",
			was.TokenType, was.AccessKeyPair, was.HasRefreshToken, was.RefreshKeyPair, was.Scopes)
	}
	if wasClaims["cid"] != dpopSDKClient || wasClaims["uid"] != sdkUserID || wasClaims["iss"] != env.custom {
		b.Fail("access token claims %v", wasClaims)
	}
	jkt := b.sdkKeyThumbprint(was.AccessKeyPair)
	if got := cnfJKT(wasClaims); got != jkt {
		b.Fail("the access token's cnf.jkt %q, want the thumbprint of the SDK's key %q", got, jkt)
	}
	// The SDK's first proof has no nonce: the issuer answers
	// use_dpop_nonce (400, DPoP-Nonce, exposed to the page by CORS) and
	// the SDK retries once with it (RFC 9449 section 8).
	b.tokenStatuses("the code exchange", 400, 200)

	api := "/dpop-api/orders"
	b.wantWhoAmI("the API with the SDK's DPoP headers", dpopCall(b, "callDPoP", api))

	// RFC 9449 section 7.1: a DPoP-bound token is no bearer token.
	if got := dpopCall(b, "callBearer", api); got.Status != 401 || !strings.HasPrefix(got.Challenge, "DPoP ") {
		b.Fail("the DPoP token as a bearer token: %+v, want 401 with a DPoP challenge", got)
	}

	// Section 11.1: a proof is used once.
	var replay struct{ First, Second dpopAnswer }
	b.must(&replay, "callReplay", api)
	b.wantWhoAmI("the first use of a proof", replay.First)
	if replay.Second.Status != 401 || !strings.HasPrefix(replay.Second.Challenge, "DPoP ") ||
		!strings.Contains(replay.Second.Challenge, `error="invalid_dpop_proof"`) {
		b.Fail("a replayed proof: %+v, want 401 with DPoP error=\"invalid_dpop_proof\"", replay.Second)
	}

	// Section 9: a route with resource-server nonces answers
	// use_dpop_nonce; the SDK's parseUseDPoPNonceError reads the nonce
	// and a proof with it passes.
	b.wantWhoAmI("the nonce route with the server's nonce", b.nonceRoundTrip("/dpop-nonce-api/orders"))

	// userinfo takes the DPoP token with a proof (RFC 9449 section 7),
	// cross-origin (the DPoP request header allowed), without a nonce.
	var user map[string]any
	if got := dpopCall(b, "callDPoP", b.endpoint("userinfo")); got.Status != 200 || json.Unmarshal([]byte(got.Body), &user) != nil ||
		user["sub"] != sdkUserID || user["email"] != sdkUser {
		b.Fail("userinfo with DPoP: %+v", got)
	}
	// The SDK's own getUser sends one proof without a nonce and does not
	// retry on use_dpop_nonce (okta-auth-js 8.0.1 oidc/getUserInfo.js):
	// userinfo takes proofs without a nonce (authserver/dpop.go).
	var profile map[string]any
	b.must(&profile, "getUser")
	if profile["sub"] != sdkUserID || profile["email"] != sdkUser {
		b.Fail("getUser with DPoP: %v", profile)
	}

	// The refresh grant: the refresh token is bound to the key too
	// (public client, section 5), and the SDK proves it with the same
	// key pair; the new access token is bound to the same key.
	var renewed dpopTokens
	b.must(&renewed, "renewTokens")
	renewedClaims := b.decode(tokenSummary{AccessToken: renewed.AccessToken}).AccessClaims
	if renewed.TokenType != "DPoP" || renewed.AccessKeyPair != was.AccessKeyPair || !renewed.HasRefreshToken ||
		renewedClaims["jti"] == wasClaims["jti"] || cnfJKT(renewedClaims) != jkt {
		b.Fail("after renewTokens: token type %q, key pair %q (was %q), refresh token %v, jti %v (was %v), cnf.jkt %q (want %q)",
			renewed.TokenType, renewed.AccessKeyPair, was.AccessKeyPair, renewed.HasRefreshToken,
			renewedClaims["jti"], wasClaims["jti"], cnfJKT(renewedClaims), jkt)
	}
	b.tokenStatuses("the code exchange and the refresh", 400, 200, 400, 200)
	b.wantWhoAmI("the API with the renewed token", dpopCall(b, "callDPoP", api))
	if b.sdkKeyThumbprint(renewed.AccessKeyPair) != jkt {
		b.Fail("the SDK's key changed")
	}
}

// nonceRoundTrip GETs url with a proof without a nonce, which must be
// refused with use_dpop_nonce and a DPoP-Nonce that the SDK's
// parseUseDPoPNonceError reads, and returns the answer to the retry
// with a proof carrying that nonce.
func (b *sdkTab) nonceRoundTrip(url string) dpopAnswer {
	b.T.Helper()
	var r struct {
		First       dpopAnswer
		ParsedNonce string
		Second      *dpopAnswer
	}
	b.must(&r, "callWithNonce", url)
	if r.First.Status != 401 || !strings.Contains(r.First.Challenge, `error="use_dpop_nonce"`) ||
		r.First.Nonce == "" || r.ParsedNonce != r.First.Nonce || r.Second == nil {
		b.Fail("%s without a nonce: %+v, parsed nonce %q", redactURL(url), r.First, r.ParsedNonce)
	}
	return *r.Second
}

// dpopCall runs one of the page's API calls, which must settle.
func dpopCall(b *sdkTab, fn, path string) dpopAnswer {
	b.T.Helper()
	var a dpopAnswer
	b.must(&a, fn, path)
	return a
}

// wantWhoAmI fails unless a is the API's 200 for the SDK's user and
// the DPoP client.
func (b *sdkTab) wantWhoAmI(what string, a dpopAnswer) {
	b.T.Helper()
	var who struct{ Sub, Cid string }
	if a.Status != 200 || json.Unmarshal([]byte(a.Body), &who) != nil || who.Sub != sdkUser || who.Cid != dpopSDKClient {
		b.Fail("%s: %+v, want 200 for %s and %s", what, a, sdkUser, dpopSDKClient)
	}
}

// tokenStatuses fails unless the tab's token requests were answered
// with these statuses, in order.
func (b *sdkTab) tokenStatuses(what string, want ...int64) {
	b.T.Helper()
	var got []int64
	for _, e := range b.net.find(http.MethodPost, b.endpoint("token")) {
		got = append(got, e.Status)
	}
	if !slices.Equal(got, want) {
		b.Fail("%s: token requests answered %v, want %v", what, got, want)
	}
}

// sdkKeyThumbprint is the RFC 7638 thumbprint of the public key of the
// page's only DPoP key pair, which must have the id pairID.
func (b *sdkTab) sdkKeyThumbprint(pairID string) string {
	b.T.Helper()
	var pairs map[string]json.RawMessage
	b.must(&pairs, "keyPairs")
	if len(pairs) != 1 || pairs[pairID] == nil {
		ids := make([]string, 0, len(pairs))
		for id := range pairs {
			ids = append(ids, id)
		}
		b.Fail("the SDK's key pairs %v, want only %q", ids, pairID)
	}
	k, err := jwk.ParseKey(pairs[pairID])
	if err != nil {
		b.Fail("the SDK's public key: %v", err)
	}
	sum, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		b.Fail("thumbprint: %v", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum)
}

// cnfJKT is claims' cnf.jkt, or "".
func cnfJKT(claims map[string]any) string {
	cnf, _ := claims["cnf"].(map[string]any)
	jkt, _ := cnf["jkt"].(string)
	return jkt
}
