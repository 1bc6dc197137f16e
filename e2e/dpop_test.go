package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit/caddytester"
	"github.com/apiaccess/caddy-apiaccess/internal/testkit/dpoptest"
)

// TestDPoPEndToEnd: issuer and gateway in one Caddy. A client gets a
// DPoP-bound token (after the nonce round trip) and calls a route that
// requires DPoP with a proof per request; the same token as a bearer
// token, a replayed proof and another key's proof are refused.
func TestDPoPEndToEnd(t *testing.T) {
	be, hits := backend(t)
	cfg := map[string]any{
		"admin": map[string]any{"listen": caddytester.AdminAddr()},
		"apps": map[string]any{
			"token_issuer": issuerApp(gw, filepath.Join(t.TempDir(), "db")),
			"http": map[string]any{"servers": map[string]any{"srv0": map[string]any{"listen": []string{":" + gwPort}, "routes": []map[string]any{
				{"match": []map[string]any{{"path": []string{"/orders/*"}}}, "handle": []map[string]any{
					{"handler": "require_token", "issuers": []map[string]any{{"url": gw + "/oauth2/default"}}, "audience": []string{"api://default"},
						"scopes": []string{"orders:read"}, "dpop": "required"},
					{"handler": "reverse_proxy", "upstreams": []map[string]any{{"dial": strings.TrimPrefix(be.URL, "http://")}}},
				}},
				{"handle": []map[string]any{{"handler": "token_issuer"}}},
			}}}},
		},
	}
	caddytester.NewTester(t).InitServer(mustJSON(t, cfg), "json")

	key, otherKey := dpoptest.New(t), dpoptest.New(t)
	proof := func(k *dpoptest.Client, method, u, nonce, tok string) string {
		return k.Proof(t, method, u, nonce, tok)
	}
	tokenURL := gw + "/oauth2/default/v1/token"
	tokenReq := func(p string) (*http.Response, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {"orders:read"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(clientID, clientSec)
		req.Header.Set("DPoP", p)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(res.Body).Decode(&m)
		return res, m
	}
	res, body := tokenReq(proof(key, "POST", tokenURL, "", ""))
	nonce := res.Header.Get("DPoP-Nonce")
	if res.StatusCode != 400 || body["error"] != "use_dpop_nonce" || nonce == "" {
		t.Fatalf("first token request: %d %v", res.StatusCode, body)
	}
	res, body = tokenReq(proof(key, "POST", tokenURL, nonce, ""))
	tok, _ := body["access_token"].(string)
	if res.StatusCode != 200 || body["token_type"] != "DPoP" || tok == "" {
		t.Fatalf("token request with the nonce: %d %v", res.StatusCode, body)
	}

	api := gw + "/orders/1"
	call := func(scheme string, proofs ...string) int {
		req, _ := http.NewRequest(http.MethodGet, api, nil)
		req.Header.Set("Authorization", scheme+" "+tok)
		for _, p := range proofs {
			req.Header.Add("DPoP", p)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	before := hits.Load()
	good := proof(key, "GET", api, "", tok)
	if s := call("DPoP", good); s != 200 {
		t.Fatalf("a DPoP call: %d", s)
	}
	if s := call("DPoP", proof(key, "GET", api, "", tok)); s != 200 {
		t.Fatalf("a second DPoP call with a new proof: %d", s)
	}
	for name, s := range map[string]int{
		"the token as a bearer token": call("Bearer"),
		"a replayed proof":            call("DPoP", good),
		"another key's proof":         call("DPoP", proof(otherKey, "GET", api, "", tok)),
		"a proof for another URL":     call("DPoP", proof(key, "GET", gw+"/orders/2", "", tok)),
	} {
		if s != 401 {
			t.Errorf("%s: %d, want 401", name, s)
		}
	}
	if got := hits.Load() - before; got != 2 {
		t.Fatalf("the backend saw %d requests, want the 2 good ones", got)
	}
}
