package tokenissuer_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2/clientcredentials"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
	"github.com/apiaccess/caddy-apiaccess/internal/testkit/caddytester"

	_ "github.com/apiaccess/caddy-apiaccess/tokenissuer"
)

// The in-process Caddy's addresses: free ports chosen once per test
// process, so that two test runs on one machine do not collide.
var (
	issuerPort = testkit.ProcessPortString("issuer")
	base       = "http://localhost:" + issuerPort
	adminURL   = caddytester.AdminURL()
)

const (
	basicID    = "reporting"
	basicSec   = "reporting-secret-0123456789"
	postID     = "billing-sync"
	postSec    = "billing secret/with+special&chars"
	jwtID      = "signer"
	otherID    = "outsider"
	otherSec   = "outsider-secret-0123456789"
	sealSecret = "integration-test-seal-secret-0123456789"
)

func TestMain(m *testing.M) {
	os.Setenv("APIACCESS_TEST_SECRET", basicSec)
	testkit.Main(m) // Caddy's data (and our generated files) out of the user's home
}

// env is one test's issuer configuration and its client key.
type env struct {
	t       *testing.T
	tester  *caddytest.Tester
	dbPath  string
	logPath string
	jwtKey  *ecdsa.PrivateKey
	config  string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	e := &env{t: t, jwtKey: k, dbPath: filepath.Join(dir, "issuer.db"), logPath: filepath.Join(dir, "caddy.log")}
	e.config = e.render(nil)
	e.tester = caddytester.NewTester(t)
	e.tester.InitServer(e.config, "json")
	return e
}

// render builds the JSON config; extraScopes adds scopes to "default"
// (to show a reload keeps keys).
func (e *env) render(extraScopes []string) string {
	pub, err := jwk.FromRaw(e.jwtKey.Public())
	if err != nil {
		e.t.Fatal(err)
	}
	_ = pub.Set(jwk.KeyIDKey, "client-key-1")
	_ = pub.Set(jwk.AlgorithmKey, jwa.ES256)
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	hash, err := bcrypt.GenerateFromPassword([]byte(postSec), bcrypt.MinCost)
	if err != nil {
		e.t.Fatal(err)
	}
	scopes := []map[string]any{
		{"name": "billing:read", "default": true, "publish": true},
		{"name": "billing:write"},
		{"name": "reports:read"},
		{"name": "admin"},
	}
	for _, s := range extraScopes {
		scopes = append(scopes, map[string]any{"name": s})
	}
	cfg := map[string]any{
		"admin": map[string]any{"listen": caddytester.AdminAddr()},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{
			"writer": map[string]any{"output": "file", "filename": e.logPath},
			"level":  "DEBUG",
		}}},
		"apps": map[string]any{
			"token_issuer": map[string]any{
				"base_url":              base,
				"key_encryption_secret": sealSecret,
				"storage":               map[string]any{"module": "embedded", "path": e.dbPath},
				"clients": []map[string]any{
					{"client_id": basicID, "client_secret": "{env.APIACCESS_TEST_SECRET}"},
					{"client_id": postID, "client_secret_hash": string(hash), "token_endpoint_auth_method": "client_secret_post"},
					{"client_id": jwtID, "token_endpoint_auth_method": "private_key_jwt", "jwks": set},
					{"client_id": otherID, "client_secret": otherSec},
				},
				"authorization_servers": map[string]any{
					"default": map[string]any{
						"scopes": scopes,
						"claims": []map[string]any{
							{"name": "tier", "value": `client.id == "reporting" ? "internal" : "partner"`},
							{"name": "can_write", "value": `"billing:write" in scopes`, "scopes": []string{"billing:write"}},
						},
						"policies": []map[string]any{
							{"name": "Partners", "priority": 1, "clients": []string{postID, jwtID, basicID},
								"rules": []map[string]any{
									{"name": "Writers", "priority": 2, "grant_types": []string{"client_credentials"}, "scopes": []string{"billing:read", "billing:write"}, "access_token_lifetime": "15m"},
									{"name": "Readers", "priority": 1, "grant_types": []string{"client_credentials"}, "scopes": []string{"billing:read", "reports:read"}},
								}},
						},
					},
					"es": map[string]any{
						"signing_alg": "ES256",
						"audience":    "https://api.example.com",
						"scopes":      []map[string]any{{"name": "read"}},
						"policies": []map[string]any{{"name": "All", "clients": []string{"*"},
							"rules": []map[string]any{{"name": "Any", "grant_types": []string{"client_credentials"}, "scopes": []string{"*"}}}}},
					},
				},
			},
			"http": map[string]any{"servers": map[string]any{"srv0": map[string]any{
				"listen": []string{":" + issuerPort},
				"routes": []map[string]any{{"handle": []map[string]any{
					{"handler": "token_issuer"},
					{"handler": "static_response", "status_code": 418, "body": "next handler"},
				}}},
			}}},
		},
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

// post sends a form to path and decodes the JSON answer.
func post(t *testing.T, path string, form url.Values, mod func(*http.Request)) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if mod != nil {
		mod(req)
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (*http.Response, map[string]any) {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var out map[string]any
	if len(body) > 0 {
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("%s %s: body is not JSON: %q", req.Method, req.URL, body)
		}
	}
	return res, out
}

func basicAuth(id, secret string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret)) }
}

// fetchKeys follows discovery to the JWKS, as a resource server would.
func fetchKeys(t *testing.T, as string) jwk.Set {
	t.Helper()
	res, meta := do(t, mustReq(http.MethodGet, base+"/oauth2/"+as+"/.well-known/oauth-authorization-server"))
	if res.StatusCode != 200 {
		t.Fatalf("discovery: %d", res.StatusCode)
	}
	set, err := jwk.Fetch(context.Background(), meta["jwks_uri"].(string))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func mustReq(method, u string) *http.Request {
	r, _ := http.NewRequest(method, u, nil)
	return r
}

// verify checks the token's signature against the served JWKS and
// returns its claims and header.
func verify(t *testing.T, as, tok string) (map[string]any, jws.Headers) {
	t.Helper()
	set := fetchKeys(t, as)
	payload, err := jws.Verify([]byte(tok), jws.WithKeySet(set))
	if err != nil {
		t.Fatalf("token does not verify against the served JWKS: %v", err)
	}
	msg, _ := jws.Parse([]byte(tok))
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims, msg.Signatures()[0].ProtectedHeaders()
}

func (e *env) assertion(aud, jti string, exp time.Time) string {
	tok := jwt.New()
	_ = tok.Set(jwt.IssuerKey, jwtID)
	_ = tok.Set(jwt.SubjectKey, jwtID)
	_ = tok.Set(jwt.AudienceKey, aud)
	_ = tok.Set(jwt.JwtIDKey, jti)
	_ = tok.Set(jwt.IssuedAtKey, time.Now())
	_ = tok.Set(jwt.ExpirationKey, exp)
	k, _ := jwk.FromRaw(e.jwtKey)
	_ = k.Set(jwk.KeyIDKey, "client-key-1")
	b, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, k))
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

func TestClientCredentialsWithRealClient(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	// client_secret_basic, secret from {env.*}; default scope.
	cc := clientcredentials.Config{ClientID: basicID, ClientSecret: basicSec, TokenURL: base + "/oauth2/default/v1/token"}
	tok, err := cc.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tok.TokenType != "Bearer" || tok.Extra("scope") != "billing:read" {
		t.Fatalf("token response: type %q scope %v", tok.TokenType, tok.Extra("scope"))
	}
	if d := time.Until(tok.Expiry); d < 59*time.Minute || d > 61*time.Minute {
		t.Fatalf("expires_in: want the Readers rule's default 1h, got %s", d)
	}
	claims, hdr := verify(t, "default", tok.AccessToken)
	if hdr.Algorithm() != jwa.RS256 || hdr.KeyID() == "" || hdr.Type() != "at+jwt" {
		t.Fatalf("header: alg %s kid %q typ %q", hdr.Algorithm(), hdr.KeyID(), hdr.Type())
	}
	want := map[string]any{
		"ver": 1.0, "iss": base + "/oauth2/default", "aud": "api://default",
		"cid": basicID, "sub": basicID, "tier": "internal",
	}
	for k, v := range want {
		if claims[k] != v {
			t.Errorf("claim %s = %v, want %v", k, claims[k], v)
		}
	}
	if scp, _ := claims["scp"].([]any); len(scp) != 1 || scp[0] != "billing:read" {
		t.Errorf("scp = %v", claims["scp"])
	}
	if jti, _ := claims["jti"].(string); !strings.HasPrefix(jti, "AT.") {
		t.Errorf("jti = %v", claims["jti"])
	}
	if _, ok := claims["can_write"]; ok {
		t.Error("can_write claim must only appear when billing:write is granted")
	}
	iat, exp := claims["iat"].(float64), claims["exp"].(float64)
	if exp-iat != 3600 {
		t.Errorf("exp - iat = %v", exp-iat)
	}

	// client_secret_post with a bcrypt-hashed secret, explicit scopes:
	// the first rule matches, with its 15m lifetime and the scoped claim.
	cc = clientcredentials.Config{ClientID: postID, ClientSecret: postSec, TokenURL: base + "/oauth2/default/v1/token",
		Scopes: []string{"billing:read", "billing:write"}, AuthStyle: 1 /* oauth2.AuthStyleInParams */}
	for range 2 { // the second request takes the cached-secret path
		tok, err = cc.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
	}
	claims, _ = verify(t, "default", tok.AccessToken)
	if claims["tier"] != "partner" || claims["can_write"] != true {
		t.Errorf("custom claims: %v", claims)
	}
	if exp := claims["exp"].(float64) - claims["iat"].(float64); exp != 900 {
		t.Errorf("lifetime = %vs, want 900 from rule Writers", exp)
	}

	// private_key_jwt (RFC 7523) at the ES256 server; the aud is its
	// token endpoint, as Okta requires.
	assertionForm := func(jti string) url.Values {
		return url.Values{
			"grant_type":            {"client_credentials"},
			"scope":                 {"read"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {e.assertion(base+"/oauth2/es/v1/token", jti, time.Now().Add(time.Minute))},
		}
	}
	res, body := post(t, "/oauth2/es/v1/token", assertionForm("jti-1"), nil)
	if res.StatusCode != 200 {
		t.Fatalf("private_key_jwt: %d %v", res.StatusCode, body)
	}
	if res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("token response Cache-Control = %q", res.Header.Get("Cache-Control"))
	}
	claims, hdr = verify(t, "es", body["access_token"].(string))
	if hdr.Algorithm() != jwa.ES256 || claims["aud"] != "https://api.example.com" || claims["sub"] != jwtID {
		t.Fatalf("ES256 token: alg %s claims %v", hdr.Algorithm(), claims)
	}
	// The same assertion id again is a replay (RFC 7523 section 3).
	res, body = post(t, "/oauth2/es/v1/token", assertionForm("jti-1"), nil)
	if res.StatusCode != 401 || body["error"] != "invalid_client" || body["access_token"] != nil {
		t.Fatalf("replayed assertion: %d %v", res.StatusCode, body)
	}

	// A token of one server is not a token of another.
	if _, err := jws.Verify([]byte(body2token(t, cc)), jws.WithKeySet(fetchKeys(t, "es"))); err == nil {
		t.Fatal("a default-server token verified with the es server's keys")
	}
}

func body2token(t *testing.T, cc clientcredentials.Config) string {
	t.Helper()
	tok, err := cc.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}
