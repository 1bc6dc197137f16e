package authserver

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit/dpoptest"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
)

const dpopTokenURL = "https://id.example.com/oauth2/default/v1/token"

// dpopKey is a client's DPoP key.
type dpopKey struct{ *dpoptest.Client }

func newDPoPKey(t *testing.T) dpopKey { return dpopKey{dpoptest.New(t)} }

// proof is a DPoP proof of k for a POST to the token endpoint.
func (k dpopKey) proof(t *testing.T, nonce string) string {
	return k.Proof(t, "POST", dpopTokenURL, nonce, "")
}

// proofFor is a DPoP proof of k for method and url, with the ath of
// accessToken when given.
func (k dpopKey) proofFor(t *testing.T, method, u, nonce, accessToken string) string {
	return k.Proof(t, method, u, nonce, accessToken)
}

// sendDPoP is send with DPoP headers.
func (e *flowEnv) sendDPoP(client string, form url.Values, proofs ...string) (*httptest.ResponseRecorder, map[string]any) {
	e.t.Helper()
	r := httptest.NewRequest(http.MethodPost, tokenEP, nil)
	switch {
	case client == "bound": // the client this file adds
		r.SetBasicAuth("bound", "bound-secret")
	case client != "":
		as(client)(r, form)
	}
	r.Body = io.NopCloser(strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, p := range proofs {
		r.Header.Add("DPoP", p)
	}
	w := httptest.NewRecorder()
	e.iss.ServeHTTP(w, r)
	var body map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	return w, body
}

// TestTokenEndpointDPoP: a token request with a DPoP proof gets an access
// token bound to the proof's key (cnf.jkt, token_type DPoP), after the
// nonce round trip Okta makes; a proof is used once; introspection says
// DPoP and names the key; a client that requires DPoP is refused
// without a proof; a public client's refresh token is bound to the key
// and refused with another one; discovery lists the algorithms.
func TestTokenEndpointDPoP(t *testing.T) {
	e := newFlowEnvWith(t, "https://id.example.com", func(o *Options) {
		o.Clients = append(o.Clients, &clientauth.Client{ID: "bound", Secret: "bound-secret", DPoPBoundAccessTokens: true})
	}, nil)

	k := newDPoPKey(t)
	cc := func() url.Values { return url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}} }

	w, body := e.sendDPoP("svc", cc(), k.proof(t, ""))
	nonce := w.Header().Get("DPoP-Nonce")
	if w.Code != 400 || body["error"] != "use_dpop_nonce" || nonce == "" {
		t.Fatalf("a proof without a nonce: %d %v nonce %q", w.Code, body, nonce)
	}
	proof := k.proof(t, nonce)
	w, body = e.sendDPoP("svc", cc(), proof)
	if w.Code != 200 || body["token_type"] != "DPoP" {
		t.Fatalf("a proof with the nonce: %d %v", w.Code, body)
	}
	at := body["access_token"].(string)
	cnf, _ := claimsOf(t, at)["cnf"].(map[string]any)
	if cnf["jkt"] != k.JKT {
		t.Fatalf("access token cnf %v, want jkt %s", cnf, k.JKT)
	}
	if w, body := e.sendDPoP("svc", cc(), proof); w.Code != 400 || body["error"] != "invalid_dpop_proof" {
		t.Fatalf("the same proof again: %d %v", w.Code, body)
	}
	if w, body := e.sendDPoP("svc", cc(), k.proof(t, nonce), k.proof(t, nonce)); w.Code != 400 || body["error"] != "invalid_dpop_proof" {
		t.Fatalf("two DPoP headers: %d %v", w.Code, body)
	}
	status, intro := e.post("/oauth2/default/v1/introspect", "web", url.Values{"token": {at}})
	if c, _ := intro["cnf"].(map[string]any); status != 200 || intro["token_type"] != "DPoP" || c["jkt"] != k.JKT {
		t.Fatalf("introspection of a bound token: %d %v", status, intro)
	}
	// Without a proof, a bearer token as before.
	if w, body := e.sendDPoP("svc", cc()); w.Code != 200 || body["token_type"] != "Bearer" || claimsOf(t, body["access_token"].(string))["cnf"] != nil {
		t.Fatalf("a request without DPoP: %d %v", w.Code, body)
	}
	// A client that requires DPoP.
	if w, body := e.sendDPoP("bound", cc()); w.Code != 400 || body["error"] != "invalid_dpop_proof" || w.Header().Get("DPoP-Nonce") == "" {
		t.Fatalf("a DPoP client without a proof: %d %v", w.Code, body)
	}
	if w, body := e.sendDPoP("bound", cc(), k.proof(t, nonce)); w.Code != 200 || body["token_type"] != "DPoP" {
		t.Fatalf("a DPoP client with a proof: %d %v", w.Code, body)
	}

	// A public client: the refresh token is bound to the key.
	verifier := strings.Repeat("v", 43)
	code := e.code("pub", pubCB, verifier, "openid", "offline_access", "read")
	w, body = e.sendDPoP("pub", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {pubCB}, "code_verifier": {verifier}, "client_id": {"pub"}}, k.proof(t, nonce))
	rt, _ := body["refresh_token"].(string)
	if w.Code != 200 || body["token_type"] != "DPoP" || rt == "" {
		t.Fatalf("public client code with DPoP: %d %v", w.Code, body)
	}
	refresh := func() url.Values {
		return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"pub"}}
	}
	if w, body := e.sendDPoP("pub", refresh()); w.Code != 400 || body["error"] != "invalid_dpop_proof" {
		t.Fatalf("a bound refresh token without a proof: %d %v", w.Code, body)
	}
	other := newDPoPKey(t)
	if w, body := e.sendDPoP("pub", refresh(), other.proof(t, nonce)); w.Code != 400 || body["error"] != "invalid_dpop_proof" {
		t.Fatalf("a bound refresh token with another key: %d %v", w.Code, body)
	}
	if w, body := e.sendDPoP("pub", refresh(), k.proof(t, nonce)); w.Code != 200 || body["token_type"] != "DPoP" {
		t.Fatalf("a bound refresh token with its key: %d %v", w.Code, body)
	}

	// Userinfo: the bound token with a proof of its key only.
	userAT, _ := body["access_token"].(string)
	userinfo := func(auth string, proofs ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "/oauth2/default/v1/userinfo", nil)
		r.Header.Set("Authorization", auth)
		for _, p := range proofs {
			r.Header.Add("DPoP", p)
		}
		w := httptest.NewRecorder()
		e.iss.ServeHTTP(w, r)
		return w
	}
	const uiURL = "https://id.example.com/oauth2/default/v1/userinfo"
	if w := userinfo("Bearer " + userAT); w.Code != 401 || !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "DPoP ") {
		t.Fatalf("a bound token as a bearer token at userinfo: %d %q", w.Code, w.Header().Get("WWW-Authenticate"))
	}
	if w := userinfo("DPoP "+userAT, other.proofFor(t, "GET", uiURL, nonce, userAT)); w.Code != 401 || !strings.Contains(w.Header().Get("WWW-Authenticate"), "invalid_dpop_proof") {
		t.Fatalf("userinfo with another key's proof: %d %q", w.Code, w.Header().Get("WWW-Authenticate"))
	}
	if w := userinfo("DPoP "+userAT, k.proofFor(t, "GET", uiURL, nonce, "another token")); w.Code != 401 {
		t.Fatalf("userinfo with a proof for another token (ath): %d", w.Code)
	}
	if w := userinfo("DPoP "+userAT, k.proofFor(t, "GET", uiURL, nonce, userAT)); w.Code != 200 || !strings.Contains(w.Body.String(), `"sub"`) {
		t.Fatalf("userinfo with the token's proof: %d %s", w.Code, w.Body)
	}
	// Without a nonce too (okta-auth-js getUser sends none and never
	// retries), but each proof once.
	noNonce := k.proofFor(t, "GET", uiURL, "", userAT)
	if w := userinfo("DPoP "+userAT, noNonce); w.Code != 200 {
		t.Fatalf("userinfo with a proof without nonce: %d %s %q", w.Code, w.Body, w.Header().Get("WWW-Authenticate"))
	}
	if w := userinfo("DPoP "+userAT, noNonce); w.Code != 401 || !strings.Contains(w.Header().Get("WWW-Authenticate"), "invalid_dpop_proof") {
		t.Fatalf("userinfo with a replayed proof: %d %q", w.Code, w.Header().Get("WWW-Authenticate"))
	}

	// Discovery.
	dw := httptest.NewRecorder()
	e.iss.ServeHTTP(dw, httptest.NewRequest(http.MethodGet, "/oauth2/default/.well-known/openid-configuration", nil))
	if !strings.Contains(dw.Body.String(), `"dpop_signing_alg_values_supported":["ES256","RS256","PS256","EdDSA"]`) {
		t.Fatalf("discovery: %s", dw.Body)
	}
}
