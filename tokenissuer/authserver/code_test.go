package authserver

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
)

// TestExpiredCode: a code older than CodeLifetime is refused with
// invalid_grant and issues nothing; a fresh one works.
func TestExpiredCode(t *testing.T) {
	c := testkit.NewClock(time.Now())
	dir, _ := directory.ParseFile([]byte(`{"users":[{"id":"u1","login":"a@example.com"}]}`))
	iss, err := New(Options{
		BaseURL: "https://id.example.com", Directory: dir, Now: c.Now,
		Servers: map[string]*ServerConfig{"default": {Policies: []*policy.Policy{{Name: "p", Clients: []string{"*"},
			Rules: []*policy.Rule{{Name: "r", GrantTypes: []string{GrantAuthorizationCode}, Scopes: []string{"*"}}}}}}},
		Clients: []*clientauth.Client{{ID: "web", Secret: "s", GrantTypes: []string{GrantAuthorizationCode}, RedirectURIs: []string{"https://app.test/cb"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	st := startIssuer(t, iss, nil)
	put := func(issued time.Time) string {
		code := randomToken()
		g, _ := json.Marshal(codeGrant{authzRequest: authzRequest{Server: "default", ClientID: "web", RedirectURI: "https://app.test/cb",
			Scopes: []string{"openid"}, UserID: "u1", AuthTime: issued}})
		// The store expires records by the wall clock, as the issuer does.
		if err := st.PutRecord(context.Background(), store.NSCode, refreshHash(code), g, issued.Add(CodeLifetime)); err != nil {
			t.Fatal(err)
		}
		return code
	}
	redeem := func(code string) (int, map[string]any) {
		r := httptest.NewRequest(http.MethodPost, "/oauth2/default/v1/token", strings.NewReader(url.Values{
			"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.test/cb"}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.SetBasicAuth("web", "s")
		w := httptest.NewRecorder()
		iss.ServeHTTP(w, r)
		var body map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &body)
		return w.Code, body
	}
	if code, body := redeem(put(time.Now().Add(-CodeLifetime - time.Second))); code != 400 || body["error"] != "invalid_grant" || body["access_token"] != nil {
		t.Fatalf("expired code: %d %v", code, body)
	}
	if code, body := redeem(put(time.Now())); code != 200 || body["id_token"] == nil {
		t.Fatalf("fresh code: %d %v", code, body)
	}
}
