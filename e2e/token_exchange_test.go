package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit/caddytester"
)

// exchangeCaddyfile: an issuer with two custom servers, orders (where
// service A gets alice's token) and inventory (which trusts orders),
// and two APIs behind require_token: service B (/b/*, for orders'
// tokens) and service C (/c/*, for inventory's). Everything is logged,
// to {LOG}. {NAMES} are filled in.
const exchangeCaddyfile = `{
	admin {ADMIN}
	log {
		output file {LOG}
		level DEBUG
	}
	token_issuer {
		base_url {BASE}
		storage embedded {
			path {DB}
		}
		key_encryption_secret exchange-test-seal-secret-0123456789
		directory static {
			user alice@example.com {
				id 00u1alice
				password_hash {PASS_HASH}
			}
		}
		client service-a {
			secret service-a-secret
			grant_types password
		}
		client service-b {
			secret service-b-secret
			grant_types urn:ietf:params:oauth:grant-type:token-exchange
		}
		authorization_server orders {
			audience api://orders
			scope orders:read
			policy "Service A" {
				clients service-a
				rule "Users" {
					grant_types password
					scopes orders:read
				}
			}
		}
		authorization_server inventory {
			audience api://inventory
			trusted_servers orders
			scope stock:read
			policy "Service B to inventory" {
				clients service-b
				rule "On behalf of the user" {
					grant_types urn:ietf:params:oauth:grant-type:token-exchange
					scopes stock:read
				}
			}
		}
	}
}

{BASE} {
	handle /b/* {
		require_token {BASE}/oauth2/orders api://orders {
			scopes orders:read
		}
		reverse_proxy {SERVICE_B}
	}
	handle /c/* {
		require_token {BASE}/oauth2/inventory api://inventory {
			scopes stock:read
			forward_claim sub X-User
		}
		reverse_proxy {SERVICE_C}
	}
	handle {
		token_issuer
	}
}
`

// TestTokenExchangeServiceChain is Okta's On-Behalf-Of Token Exchange
// through real Caddy: service A signs alice in at orders (password
// grant) and calls service B with her token; B, behind require_token
// for orders, exchanges that token at inventory (x/oauth2's client
// credentials config with grant_type overridden, as a service would)
// and calls service C, behind require_token for inventory, on her
// behalf. C sees a token of inventory for alice, acted for by B. No
// token reaches Caddy's log, at any level.
func TestTokenExchangeServiceChain(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("alice-password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	// Service C answers with the claims of the token it was called with
	// (the gateway verified it) and the user the gateway forwarded.
	var seenByC atomic.Value // the exchanged token
	serviceC := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		seenByC.Store(tok)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"claims": bearerClaims(tok), "x_user": r.Header.Get("X-User")})
	}))
	t.Cleanup(serviceC.Close)
	// Service B exchanges the token it was called with and calls C.
	serviceB := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		subject, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		cc := clientcredentials.Config{ClientID: "service-b", ClientSecret: "service-b-secret", TokenURL: base + "/oauth2/inventory/v1/token",
			Scopes: []string{"stock:read"}, AuthStyle: oauth2.AuthStyleInHeader,
			EndpointParams: map[string][]string{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"},
				"subject_token": {subject}, "subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}, "audience": {"api://inventory"}}}
		tok, err := cc.Token(r.Context())
		if err != nil {
			http.Error(w, "exchange: "+err.Error(), http.StatusBadGateway)
			return
		}
		if tok.Extra("issued_token_type") != "urn:ietf:params:oauth:token-type:access_token" || tok.RefreshToken != "" {
			http.Error(w, fmt.Sprintf("exchange answer: issued_token_type %v, refresh token %t", tok.Extra("issued_token_type"), tok.RefreshToken != ""), http.StatusBadGateway)
			return
		}
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, base+"/c/stock", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer res.Body.Close()
		w.WriteHeader(res.StatusCode)
		_, _ = io.Copy(w, res.Body)
	}))
	t.Cleanup(serviceB.Close)

	cfg := exchangeCaddyfile
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	for k, v := range map[string]string{"{ADMIN}": caddytester.AdminAddr(), "{BASE}": base, "{DB}": filepath.Join(t.TempDir(), "db"), "{LOG}": logFile,
		"{PASS_HASH}": string(hash), "{SERVICE_B}": strings.TrimPrefix(serviceB.URL, "http://"), "{SERVICE_C}": strings.TrimPrefix(serviceC.URL, "http://")} {
		cfg = strings.ReplaceAll(cfg, k, v)
	}
	caddytester.NewTester(t).InitServer(cfg, "caddyfile")

	// Service A: alice's token from orders.
	a := oauth2.Config{ClientID: "service-a", ClientSecret: "service-a-secret", Scopes: []string{"orders:read"},
		Endpoint: oauth2.Endpoint{TokenURL: base + "/oauth2/orders/v1/token", AuthStyle: oauth2.AuthStyleInHeader}}
	userTok, err := a.PasswordCredentialsToken(context.Background(), "alice@example.com", "alice-password")
	if err != nil {
		t.Fatal(err)
	}
	// Her orders token does not open inventory's API by itself.
	if res := get(t, base+"/c/stock", userTok.AccessToken); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("orders token at C: %d, want 401", res.StatusCode)
	}
	res := get(t, base+"/b/orders", userTok.AccessToken)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("A -> B -> C: %d %s", res.StatusCode, body)
	}
	var got struct {
		Claims map[string]any `json:"claims"`
		XUser  string         `json:"x_user"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	want := map[string]any{"iss": base + "/oauth2/inventory", "aud": "api://inventory", "sub": "alice@example.com", "uid": "00u1alice",
		"cid": "service-b", "scp": []any{"stock:read"}, "act": map[string]any{"sub": "service-b"}}
	for k, v := range want {
		if !reflect.DeepEqual(got.Claims[k], v) {
			t.Errorf("C's token %s = %v, want %v", k, got.Claims[k], v)
		}
	}
	if got.XUser != "alice@example.com" {
		t.Errorf("C's X-User = %q, want alice's login", got.XUser)
	}

	// A client that may not exchange is refused in Okta's words.
	bad := clientcredentials.Config{ClientID: "service-a", ClientSecret: "service-a-secret", TokenURL: base + "/oauth2/inventory/v1/token",
		AuthStyle: oauth2.AuthStyleInHeader, EndpointParams: map[string][]string{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"},
			"subject_token": {userTok.AccessToken}, "subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}, "audience": {"api://inventory"}}}
	_, err = bad.Token(context.Background())
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "unauthorized_client" {
		t.Fatalf("exchange by service-a: %v, want unauthorized_client", err)
	}

	// Caddy's log has the grants, and no token (nor a token's signature).
	logs, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logs), "urn:ietf:params:oauth:grant-type:token-exchange") {
		t.Fatalf("no token exchange in Caddy's log:\n%s", logs)
	}
	exchanged, _ := seenByC.Load().(string)
	for name, tok := range map[string]string{"alice's orders token": userTok.AccessToken, "the exchanged token": exchanged} {
		if tok == "" {
			t.Fatalf("%s unknown", name)
		}
		sig := tok[strings.LastIndex(tok, ".")+1:]
		for _, line := range strings.Split(string(logs), "\n") {
			if strings.Contains(line, tok) || strings.Contains(line, sig) {
				t.Errorf("%s in Caddy's log: %s", name, line)
			}
		}
	}
}

// get calls url with a bearer token.
func get(t *testing.T, url, tok string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// bearerClaims decodes a JWS's claims (nil when it is not one).
func bearerClaims(tok string) map[string]any {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil
	}
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return m
}
