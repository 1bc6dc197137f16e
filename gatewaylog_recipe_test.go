package apiaccess_test

import (
	"bufio"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	_ "github.com/apiaccess/caddy-apiaccess/caddymodule"
)

// TestGatewayLogRecipe runs README's recipe for remote gateways ("One
// log for every gateway") against a TCP listener standing in for the
// collector and an issuer of the test's own: an accepted and a refused
// request each arrive as one JSON line of logger
// http.handlers.require_token naming the route, the client and the
// reason, and no token reaches the collector.
func TestGatewayLogRecipe(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_DATA_HOME", filepath.Join(dir, "data"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))

	// The collector.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	lines := make(chan string, 64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				sc.Buffer(nil, 1<<20)
				for sc.Scan() {
					lines <- sc.Text()
				}
			}()
		}
	}()

	// The issuer: discovery and keys only.
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := jwk.FromRaw(priv)
	_ = key.Set(jwk.KeyIDKey, "k1")
	_ = key.Set(jwk.AlgorithmKey, jwa.RS256)
	pub, _ := key.PublicKey()
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	var iss string
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/oauth2/default/.well-known/openid-configuration", "/oauth2/default/.well-known/oauth-authorization-server":
			_ = json.NewEncoder(w).Encode(map[string]any{"issuer": iss, "jwks_uri": iss + "/v1/keys"})
		case "/oauth2/default/v1/keys":
			_ = json.NewEncoder(w).Encode(set)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(idp.Close)
	iss = idp.URL + "/oauth2/default"
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("orders")) }))
	t.Cleanup(upstream.Close)

	port := freeLoopbackPort(t)
	site := fmt.Sprintf("http://127.0.0.1:%d", port)
	recipe := readmeRecipe(t, "### One log for every gateway")
	recipe = replaceOnce(t, recipe, "tcp/logs.internal:5170", "tcp/"+ln.Addr().String())
	recipe = replaceOnce(t, recipe, "\napi.example.com {\n", "\n"+site+" {\n")
	recipe = replaceOnce(t, recipe, "https://id.example.com/oauth2/default", iss)
	recipe = replaceOnce(t, recipe, "reverse_proxy localhost:9001", "reverse_proxy "+strings.TrimPrefix(upstream.URL, "http://"))
	recipe = replaceOnce(t, recipe, "{\n\tlog gateway_decisions {", "{\n\tadmin off\n\tpersist_config off\n\tstorage file_system "+filepath.Join(dir, "data", "caddy")+"\n\tlog gateway_decisions {")
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(recipe), map[string]any{"filename": "README.md"})
	if err != nil {
		t.Fatalf("adapting the README recipe: %v\n%s", err, recipe)
	}
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatalf("loading the README recipe: %v", err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })

	tok, err := jwt.NewBuilder().Issuer(iss).Audience([]string{"api://default"}).Subject("svc-orders").JwtID("AT.recipe").
		IssuedAt(time.Now()).Expiration(time.Now().Add(time.Hour)).Claim("cid", "svc-orders").Claim("scp", []string{"orders:read"}).Build()
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.TypeKey, "at+jwt")
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.RS256, key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	get := func(auth string) int {
		req, _ := http.NewRequest(http.MethodGet, site+"/orders/7?secret=q", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if s := get("Bearer " + string(signed)); s != 200 {
		t.Fatalf("valid token: %d", s)
	}
	if s := get("Bearer " + string(signed[:len(signed)-4]) + "AAAA"); s != 401 {
		t.Fatalf("forged token: %d", s)
	}

	got := map[string]map[string]any{}
	timeout := time.After(10 * time.Second)
	for len(got) < 2 {
		select {
		case l := <-lines:
			var e map[string]any
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("collector line is not JSON: %v: %s", err, l)
			}
			if e["logger"] != "http.handlers.require_token" {
				t.Fatalf("the recipe ships another logger's line: %s", l)
			}
			if strings.Contains(l, string(signed[strings.LastIndexByte(string(signed), '.')+1:])) || strings.Contains(l, "secret=q") {
				t.Fatalf("a token or the query reached the collector: %s", l)
			}
			got[e["msg"].(string)] = e
		case <-timeout:
			t.Fatalf("the collector got %d decisions, want 2: %v", len(got), got)
		}
	}
	ok, bad := got["token accepted"], got["token rejected"]
	if ok == nil || ok["route"] != "orders-api" || ok["client_id"] != "svc-orders" || ok["subject"] != "svc-orders" || ok["path"] != "/orders/7" {
		t.Errorf("accepted: %v", ok)
	}
	if bad == nil || bad["route"] != "orders-api" || bad["reason"] != "bad_signature" || bad["client_id"] != nil || bad["client_ip"] != "127.0.0.1" {
		t.Errorf("rejected: %v", bad)
	}
}
