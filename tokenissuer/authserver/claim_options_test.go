package authserver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/claims"
)

func alwaysIn(b bool) *bool { return &b }

// claimOptionsEnv is the flow environment with custom claims using
// Okta's per-claim options on server default.
func claimOptionsEnv(t *testing.T) *flowEnv {
	t.Helper()
	return newFlowEnvWith(t, "https://id.example.com", func(o *Options) {
		o.Servers["default"].Claims = []*claims.Claim{
			{Name: "team", Value: `"bi"`},
			{Name: "team_off", Value: `"bi"`, Disabled: true},
			{Name: "login_always", Value: `user.login`, Token: claims.IDToken, AlwaysIncludeInToken: alwaysIn(true)},
			{Name: "login_default", Value: `user.login`, Token: claims.IDToken},
			{Name: "login_userinfo", Value: `user.login`, Token: claims.IDToken, AlwaysIncludeInToken: alwaysIn(false)},
			{Name: "app", Value: `client.name`, Token: claims.IDToken, AlwaysIncludeInToken: alwaysIn(false)},
			{Name: "login_off", Value: `user.login`, Token: claims.IDToken, Disabled: true},
			{Name: "login_off_userinfo", Value: `user.login`, Token: claims.IDToken, Disabled: true, AlwaysIncludeInToken: alwaysIn(false)},
			{Name: "payer", Value: `"yes"`, Token: claims.IDToken, Scopes: []string{"pay"}, AlwaysIncludeInToken: alwaysIn(false)},
			{Name: "payer_always", Value: `"yes"`, Token: claims.IDToken, Scopes: []string{"pay"}},
		}
	}, nil)
}

// userinfoBody calls GET userinfo of server default with tok and
// decodes the answer.
func (e *flowEnv) userinfoBody(tok string) (int, map[string]any) {
	e.t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/oauth2/default/v1/userinfo", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	w := httptest.NewRecorder()
	e.iss.ServeHTTP(w, r)
	var m map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &m)
	return w.Code, m
}

// wantClaims checks which of names m has: those in present with their
// value, the others absent.
func wantClaims(t *testing.T, what string, m map[string]any, present map[string]any, absent ...string) {
	t.Helper()
	for k, v := range present {
		if m[k] != v {
			t.Errorf("%s: %s = %v, want %v", what, k, m[k], v)
		}
	}
	for _, k := range absent {
		if v, ok := m[k]; ok {
			t.Errorf("%s: %s = %v, want it absent", what, k, v)
		}
	}
}

// TestClaimOptionsCodeFlow: through the real endpoints (authorize with
// an SSO session, the token endpoint, userinfo, refresh), Okta's claim
// options hold. A disabled claim is nowhere. The ID token, always
// issued here with an access token, has the ID-token claims that are
// always included (explicitly or by default) and not those with
// always_include_in_token false ("thin" ID token, Okta's custom claims
// guide); userinfo has every active ID-token claim and no access-token
// claim. The same holds for the ID token of a refresh.
func TestClaimOptionsCodeFlow(t *testing.T) {
	e := claimOptionsEnv(t)
	sess := e.session("u1")
	q := url.Values{"client_id": {"web"}, "response_type": {"code"}, "scope": {"openid offline_access read"}, "state": {"s"}, "redirect_uri": {webCB}}
	loc, _ := url.Parse(e.browse(http.MethodGet, "/oauth2/default/v1/authorize?"+q.Encode(), nil, sess).Header().Get("Location"))
	status, tok := e.redeem("web", loc.Query().Get("code"), webCB, "")
	if status != 200 {
		t.Fatalf("redeem: %d %v", status, tok)
	}
	at, _ := tok["access_token"].(string)
	id, _ := tok["id_token"].(string)
	if at == "" || id == "" {
		t.Fatalf("token response without access or ID token: %v", tok)
	}
	alice := "alice@example.com"
	idAbsent := []string{"login_userinfo", "app", "login_off", "login_off_userinfo", "team", "team_off", "payer", "payer_always"}
	wantClaims(t, "access token", payload(t, at), map[string]any{"team": "bi"},
		"team_off", "login_always", "login_default", "login_userinfo", "app", "login_off", "login_off_userinfo")
	wantClaims(t, "ID token", payload(t, id), map[string]any{"login_always": alice, "login_default": alice}, idAbsent...)

	code, info := e.userinfoBody(at)
	if code != 200 {
		t.Fatalf("userinfo: %d %v", code, info)
	}
	wantClaims(t, "userinfo", info,
		map[string]any{"sub": "u1", "login_always": alice, "login_default": alice, "login_userinfo": alice, "app": "Web App"},
		"team", "team_off", "login_off", "login_off_userinfo", "payer", "payer_always")

	status, ref := e.post(tokenEP, "web", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}})
	if status != 200 {
		t.Fatalf("refresh: %d %v", status, ref)
	}
	wantClaims(t, "refreshed ID token", payload(t, ref["id_token"].(string)), map[string]any{"login_always": alice, "login_default": alice}, idAbsent...)
}

// TestClaimOptionsUserinfoScopes: userinfo gives an ID-token claim with
// a scope condition only when the access token was granted one of its
// scopes, whether the claim is always included or not.
func TestClaimOptionsUserinfoScopes(t *testing.T) {
	e := claimOptionsEnv(t)
	for _, tc := range []struct {
		scopes []string
		has    bool
	}{
		{[]string{"openid", "read"}, false},
		{[]string{"openid", "read", "pay"}, true},
	} {
		status, tok := e.redeem("web", e.code("web", webCB, "", tc.scopes...), webCB, "")
		if status != 200 {
			t.Fatalf("redeem %v: %d %v", tc.scopes, status, tok)
		}
		code, info := e.userinfoBody(tok["access_token"].(string))
		if code != 200 {
			t.Fatalf("userinfo: %d %v", code, info)
		}
		id := payload(t, tok["id_token"].(string))
		if tc.has {
			wantClaims(t, "userinfo with pay", info, map[string]any{"payer": "yes", "payer_always": "yes"})
			wantClaims(t, "ID token with pay", id, map[string]any{"payer_always": "yes"}, "payer")
		} else {
			wantClaims(t, "userinfo without pay", info, nil, "payer", "payer_always")
			wantClaims(t, "ID token without pay", id, nil, "payer", "payer_always")
		}
	}
}

// TestUserinfoClaimFailureAndClients: at userinfo, an ID-token claim
// that fails at run time (a profile attribute the user lacks) is left
// out with a warning naming the claim, never the token; the standard
// claims keep their values (a custom claim does not replace them); and
// an access token whose client is no longer configured is refused, as
// its claims could not be computed.
func TestUserinfoClaimFailureAndClients(t *testing.T) {
	e := newFlowEnvWith(t, "https://id.example.com", func(o *Options) {
		o.Servers["default"].Claims = []*claims.Claim{
			{Name: "dept", Value: `user.profile.department`, Token: claims.IDToken, AlwaysIncludeInToken: alwaysIn(false)},
			{Name: "preferred_username", Value: `"spoofed"`, Token: claims.IDToken, AlwaysIncludeInToken: alwaysIn(false)},
			{Name: "login", Value: `user.login`, Token: claims.IDToken, AlwaysIncludeInToken: alwaysIn(false)},
		}
	}, nil)
	status, tok := e.redeem("web", e.code("web", webCB, "", "openid", "profile"), webCB, "")
	if status != 200 {
		t.Fatalf("redeem: %d %v", status, tok)
	}
	at := tok["access_token"].(string)
	code, info := e.userinfoBody(at)
	if code != 200 {
		t.Fatalf("userinfo: %d %v", code, info)
	}
	wantClaims(t, "userinfo", info, map[string]any{"login": "alice@example.com", "preferred_username": "alice@example.com"}, "dept")
	warned := e.logs.FilterMessage("claim left out: its expression failed").All()
	if len(warned) != 1 || warned[0].Level != zap.WarnLevel || warned[0].ContextMap()["claim"] != "dept" || warned[0].ContextMap()["client_id"] != "web" {
		t.Fatalf("warnings %v, want one for claim dept and client web", warned)
	}
	for _, entry := range e.logs.All() {
		for k, v := range entry.ContextMap() {
			if s, _ := v.(string); strings.Contains(s, at) || strings.Contains(s, "web-secret") || strings.Contains(s, tok["id_token"].(string)) {
				t.Errorf("log %q field %s holds a token or secret", entry.Message, k)
			}
		}
	}

	s, _ := e.iss.Server("default")
	gone, oe := signTestAccess(e.iss, s, accessClaims{Cid: "removed", Sub: "alice@example.com", UID: "u1", Scp: []string{"openid"}}, time.Hour)
	if oe != nil {
		t.Fatal(oe)
	}
	if code, _ := e.userinfoBody(gone); code != http.StatusUnauthorized {
		t.Errorf("userinfo for a client no longer configured: %d, want 401", code)
	}
}
