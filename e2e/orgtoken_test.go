package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"golang.org/x/oauth2"

	_ "github.com/apiaccess/caddy-apiaccess/caddymodule" // require_token, to show it refuses org tokens

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit/browser"
)

// TestOrgTokensOnlyForOrgUserinfo: an access token of the org
// authorization server (from a code flow at /oauth2/v1/authorize) works
// at the org's userinfo and nowhere else: the custom server's userinfo
// and a require_token route for the custom server refuse it.
func TestOrgTokensOnlyForOrgUserinfo(t *testing.T) {
	rp := httptest.NewServer(http.NotFoundHandler())
	defer rp.Close()
	redirect := rp.URL + "/callback"
	hash, _ := directory.HashBcrypt("alice-password")
	startIssuer(t, issuerSetup{
		users: []map[string]any{{"id": "00u-alice", "login": "alice@example.com", "password_hash": hash,
			"profile": map[string]any{"email": "alice@example.com"}}},
		clients: []map[string]any{{"client_id": spaID, "token_endpoint_auth_method": "none",
			"grant_types": []string{"authorization_code"}, "redirect_uris": []string{redirect}}},
		server: map[string]any{
			"scopes":   []map[string]any{{"name": "orders:read"}},
			"policies": []map[string]any{{"name": "All", "clients": []string{"*"}, "rules": []map[string]any{{"name": "Any", "grant_types": []string{"authorization_code"}, "scopes": []string{"*"}}}}},
		},
		routes: []map[string]any{
			{"match": []map[string]any{{"path": []string{"/api/*"}}}, "handle": []map[string]any{
				{"handler": "require_token", "issuers": []map[string]any{{"url": base + "/oauth2/default", "audience": []string{"api://default"}}}},
				{"handler": "static_response", "body": "api"},
			}},
			{"handle": []map[string]any{{"handler": "token_issuer"}}},
		},
	})

	conf := oauth2.Config{ClientID: spaID, RedirectURL: redirect, Scopes: []string{"openid", "email"},
		Endpoint: oauth2.Endpoint{AuthURL: base + "/oauth2/v1/authorize", TokenURL: base + "/oauth2/v1/token", AuthStyle: oauth2.AuthStyleInParams}}
	verifier := oauth2.GenerateVerifier()
	b := browser.New(t, base)
	_, page := b.Get(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)))
	res, _ := b.SignIn(page, "alice@example.com", "alice-password")
	q := browser.Callback(t, res, redirect)
	if q.Get("iss") != base {
		t.Fatalf("org authorization response iss: %v", q)
	}
	tok, err := conf.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	set, err := jwk.Fetch(context.Background(), base+"/oauth2/v1/keys")
	if err != nil {
		t.Fatal(err)
	}
	payload, err := jws.Verify([]byte(tok.AccessToken), jws.WithKeySet(set))
	if err != nil {
		t.Fatalf("org token does not verify with the org JWKS: %v", err)
	}
	var claims map[string]any
	_ = json.Unmarshal(payload, &claims)
	if claims["iss"] != base || claims["aud"] != base {
		t.Fatalf("org access token: %v", claims)
	}
	call := func(u string) int {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if c := call(base + "/oauth2/v1/userinfo"); c != 200 {
		t.Fatalf("org userinfo with an org token: %d", c)
	}
	if c := call(base + "/oauth2/default/v1/userinfo"); c != 401 {
		t.Fatalf("custom server's userinfo accepted an org token: %d", c)
	}
	if c := call(base + "/api/orders"); c != 401 {
		t.Fatalf("require_token accepted an org token: %d", c)
	}
	if !strings.HasPrefix(tok.AccessToken, "ey") {
		t.Fatal("not a JWT")
	}
}
