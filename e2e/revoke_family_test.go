package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestIntrospectionSeesRefreshRevocation: revoking a refresh token
// revokes the access tokens issued from it (Okta guide "Revoke
// tokens"), so a route in introspection mode refuses both the access
// token of the first grant and the one a refresh issued, and so does a
// locally validating route of the same Caddy (the issuer's in-process
// revocation view, fed from the family's index).
func TestIntrospectionSeesRefreshRevocation(t *testing.T) {
	const (
		app      = "mobile-app"
		appSec   = "mobile-app-secret-0123456789"
		alice    = "alice@example.com"
		alicePwd = "alice-password-0123"
	)
	hash, err := bcrypt.GenerateFromPassword([]byte(alicePwd), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	iss := issuerApp(gw, filepath.Join(t.TempDir(), "db"))
	iss["directory"] = map[string]any{"source": "static", "users": []map[string]any{{"id": "00u-alice", "login": alice, "password_hash": string(hash)}}}
	iss["clients"] = []map[string]any{
		{"client_id": clientID, "client_secret": clientSec}, // the gateway's introspection client
		{"client_id": app, "client_secret": appSec, "grant_types": []string{"password", "refresh_token"}},
	}
	iss["authorization_servers"].(map[string]any)["default"].(map[string]any)["policies"] = []map[string]any{{"name": "All", "clients": []string{"*"},
		"rules": []map[string]any{{"name": "Any", "grant_types": []string{"password"}, "scopes": []string{"*"}, "access_token_lifetime": "5m"}}}}
	issuer := gw + "/oauth2/default"
	startRevocationRoutes(t, iss)

	post := func(path string, form url.Values) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, issuer+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(app, appSec)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(res.Body).Decode(&body)
		return res.StatusCode, body
	}
	tokens := func(status int, body map[string]any) (string, string) {
		t.Helper()
		at, _ := body["access_token"].(string)
		rt, _ := body["refresh_token"].(string)
		if status != http.StatusOK || at == "" || rt == "" {
			t.Fatalf("token request: %d %v", status, body)
		}
		return at, rt
	}
	first, rt1 := tokens(post("/v1/token", url.Values{"grant_type": {"password"}, "username": {alice}, "password": {alicePwd}, "scope": {"offline_access orders:read"}}))
	refreshed, rt2 := tokens(post("/v1/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt1}}))
	for _, tok := range []string{first, refreshed} {
		for _, p := range []string{"/strict", "/local"} {
			if res, body := call(t, p, tok); res.StatusCode != 200 || body != "ok "+alice {
				t.Fatalf("%s before revocation: %d %q", p, res.StatusCode, body)
			}
		}
	}

	if status, body := post("/v1/revoke", url.Values{"token": {rt2}, "token_type_hint": {"refresh_token"}}); status != http.StatusOK {
		t.Fatalf("revoke the refresh token: %d %v", status, body)
	}
	for name, tok := range map[string]string{"first grant's": first, "refresh grant's": refreshed} {
		if res, _ := call(t, "/strict", tok); res.StatusCode != 401 || !strings.Contains(res.Header.Get("WWW-Authenticate"), "invalid_token") {
			t.Errorf("introspection route, %s access token after revoking its refresh token: %d", name, res.StatusCode)
		}
		// The local route reads the issuer's revocations in process: the
		// family's access tokens are refused at once (the family index).
		if res, _ := call(t, "/local", tok); res.StatusCode != 401 || !strings.Contains(res.Header.Get("WWW-Authenticate"), "invalid_token") {
			t.Errorf("local route, %s access token after revoking its refresh token: %d", name, res.StatusCode)
		}
	}
	if status, body := post("/v1/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt2}}); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Errorf("revoked refresh token: %d %v", status, body)
	}
}
