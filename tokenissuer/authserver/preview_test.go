package authserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/bcrypt"

	"github.com/apiaccess/caddy-apiaccess/internal/duration"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/claims"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/inlinehook"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/embedded"
)

// previewWriteCounter is a store that counts every write.
type previewWriteCounter struct {
	store.Store
	writes atomic.Int64
}

func (w *previewWriteCounter) UpdateKeys(ctx context.Context, as string, fn func([]store.KeyRecord) ([]store.KeyRecord, error)) error {
	w.writes.Add(1)
	return w.Store.UpdateKeys(ctx, as, fn)
}
func (w *previewWriteCounter) Mark(ctx context.Context, ns, key string, until time.Time) (bool, error) {
	w.writes.Add(1)
	return w.Store.Mark(ctx, ns, key, until)
}
func (w *previewWriteCounter) PutRefresh(ctx context.Context, rt store.RefreshToken) error {
	w.writes.Add(1)
	return w.Store.PutRefresh(ctx, rt)
}
func (w *previewWriteCounter) UpdateRefresh(ctx context.Context, hash string, fn func(*store.RefreshToken) error) (store.RefreshToken, error) {
	w.writes.Add(1)
	return w.Store.UpdateRefresh(ctx, hash, fn)
}
func (w *previewWriteCounter) PutRecord(ctx context.Context, ns, key string, v []byte, until time.Time) error {
	w.writes.Add(1)
	return w.Store.PutRecord(ctx, ns, key, v, until)
}
func (w *previewWriteCounter) CreateRecord(ctx context.Context, ns, key string, v []byte, until time.Time) (bool, error) {
	w.writes.Add(1)
	return w.Store.CreateRecord(ctx, ns, key, v, until)
}
func (w *previewWriteCounter) UpdateRecord(ctx context.Context, ns, key string, fn func([]byte) ([]byte, error)) ([]byte, error) {
	w.writes.Add(1)
	return w.Store.UpdateRecord(ctx, ns, key, fn)
}
func (w *previewWriteCounter) Incr(ctx context.Context, ns, key string, d int64, until time.Time) (int64, error) {
	w.writes.Add(1)
	return w.Store.Incr(ctx, ns, key, d, until)
}

// previewEnv is an issuer for the preview tests: users Alice (finance),
// Bob (suspended) and Carol (contractors); clients web (code and
// refresh), app (password only) and svc (client_credentials); server
// "default" with an Okta EL claim, CEL claims (one failing for users
// without a nickname), a groups claim and an ID-token claim.
type previewEnv struct {
	iss *Issuer
	// hookCalls counts the calls of the rule's inline hook "enrich"
	// (an external service answering with no commands).
	hookCalls *atomic.Int64
	st        *previewWriteCounter
	logs      *observer.ObservedLogs
	clock     time.Time
}

func newPreviewEnv(t *testing.T, signOn ...*policy.SignOnPolicy) *previewEnv {
	t.Helper()
	hash, _ := bcrypt.GenerateFromPassword([]byte("alice-password"), bcrypt.MinCost)
	dir, err := directory.NewFile([]*directory.User{
		{ID: "00u-alice", Login: "alice@example.com", PasswordHash: string(hash), Groups: []string{"finance", "staff"},
			Profile: map[string]any{"email": "alice@example.com", "given_name": "Alice"}},
		{ID: "00u-bob", Login: "bob@example.com", PasswordHash: string(hash), Status: directory.StatusSuspended, Groups: []string{"finance"}},
		{ID: "00u-carol", Login: "carol@example.com", Groups: []string{"contractors"}, Profile: map[string]any{"nickname": "cc"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	hookCalls := new(atomic.Int64)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hookCalls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(hook.Close)
	core, logs := observer.New(zap.InfoLevel)
	now := time.Now()
	iss, err := New(Options{
		BaseURL: "https://id.example.com", Directory: dir, Logger: zap.New(core), OrgSigningAlg: "ES256", Now: func() time.Time { return now },
		SignOnPolicies: signOn,
		InlineHooks:    []*inlinehook.Config{{Name: "enrich", URL: hook.URL}},
		Servers: map[string]*ServerConfig{"default": {
			SigningAlg: "ES256",
			Scopes:     []*Scope{{Name: "orders:read", Default: true}, {Name: "payments:write"}},
			Claims: []*claims.Claim{
				{Name: "login_name", Language: claims.Okta, Value: `String.substringBefore(user.login, "@")`},
				{Name: "where", Value: `client.id + "@" + server.id`},
				{Name: "nick", Value: `user.profile.nickname`},
				{Name: "fin_groups", Groups: &claims.GroupsFilter{Type: "starts_with", Value: "fin"}},
				{Name: "first_name", Token: claims.IDToken, Value: `user.profile.given_name`},
			},
			Policies: []*policy.Policy{
				{Name: "Apps", Priority: 1, Clients: []string{"web", "app"}, Rules: []*policy.Rule{
					{Name: "Finance", Priority: 1, GrantTypes: []string{GrantAuthorizationCode, GrantPassword}, Scopes: []string{"*"},
						People:              &policy.People{Groups: []string{"finance"}},
						AccessTokenLifetime: duration.Duration(10 * time.Minute), RefreshTokenLifetime: duration.Duration(24 * time.Hour),
						RefreshTokenIdle: duration.Duration(time.Hour), InlineHook: "enrich"},
					{Name: "Readers", Priority: 2, GrantTypes: []string{GrantAuthorizationCode}, Scopes: []string{"openid", "orders:read"},
						People: &policy.People{ExcludeGroups: []string{"contractors"}}},
				}},
				{Name: "Services", Priority: 2, Clients: []string{"svc"}, Rules: []*policy.Rule{
					{Name: "Machines", GrantTypes: []string{GrantClientCredentials}, Scopes: []string{"orders:read"}, AccessTokenLifetime: duration.Duration(30 * time.Minute)},
				}},
			},
		}},
		Clients: []*clientauth.Client{
			{ID: "web", Name: "Web App", Secret: "web-secret", GrantTypes: []string{GrantAuthorizationCode, GrantRefreshToken}, RedirectURIs: []string{"https://app.test/cb"}},
			{ID: "app", Name: "Native", Secret: "app-secret", GrantTypes: []string{GrantPassword}},
			{ID: "svc", Name: "Service", Secret: "svc-secret"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	db, err := embedded.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	st := &previewWriteCounter{Store: db}
	startIssuer(t, iss, st)
	return &previewEnv{iss: iss, hookCalls: hookCalls, st: st, logs: logs, clock: now}
}

func (e *previewEnv) preview(t *testing.T, req PreviewRequest) *Preview {
	t.Helper()
	p, err := e.iss.Preview(context.Background(), "default", req)
	if err != nil {
		t.Fatalf("preview %+v: %v", req, err)
	}
	return p
}

// TestPreviewMatchedRule: the deciding policy and rule, the evaluation
// rule by rule, the access token's claims (an Okta EL claim, CEL claims,
// a groups claim), the ID token's (openid), the lifetimes, the refresh
// token (offline_access and a client that may refresh), the failed
// claim and the rule's inline hook, with nothing written to the store
// or the log.
func TestPreviewMatchedRule(t *testing.T) {
	e := newPreviewEnv(t)
	writes, logged := e.st.writes.Load(), e.logs.Len()
	p := e.preview(t, PreviewRequest{ClientID: "web", GrantType: GrantAuthorizationCode, User: "Alice@Example.com",
		Scopes: []string{"openid", "profile", "orders:read", "offline_access"}})
	if p.Error != nil || p.Policy != "Apps" || p.Rule != "Finance" || p.User == nil || p.User.ID != "00u-alice" {
		t.Fatalf("preview %+v, want Apps/Finance for Alice", p)
	}
	x := p.Evaluation
	if x == nil || !x.Matched || len(x.Policies) != 2 || x.Policies[1].CoversClient || !x.Policies[0].Rules[0].Matched || x.Policies[0].Rules[1].Evaluated {
		t.Fatalf("evaluation %+v", x)
	}
	if r := x.Policies[0].Rules[1]; r.ScopesAllowed || !slices.Equal(r.ScopesNotAllowed, []string{"profile", "offline_access"}) {
		t.Errorf("Readers %+v: profile and offline_access not allowed", r)
	}
	at := p.AccessToken
	if at == nil || at.LifetimeSeconds != 600 || at.Lifetime != "10m0s" {
		t.Fatalf("access token %+v, want 10m", at)
	}
	c := at.Claims
	want := map[string]any{"cid": "web", "uid": "00u-alice", "sub": "alice@example.com", "iss": "https://id.example.com/oauth2/default",
		"aud": "api://default", "login_name": "alice", "where": "web@default"}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("access claim %s = %v, want %v", k, c[k], v)
		}
	}
	if g, _ := json.Marshal(c["fin_groups"]); string(g) != `["finance"]` {
		t.Errorf("fin_groups %v, want [finance]", c["fin_groups"])
	}
	if scp, _ := c["scp"].([]any); len(scp) != 4 {
		t.Errorf("scp %v", c["scp"])
	}
	if exp, iat := previewNum(c["exp"]), previewNum(c["iat"]); exp-iat != 600 || iat != e.clock.Unix() {
		t.Errorf("iat %d exp %d, want now and now+600", iat, exp)
	}
	if _, ok := c["nick"]; ok {
		t.Error("nick is in the access token: its expression fails for Alice")
	}
	if len(p.FailedClaims) != 1 || p.FailedClaims[0].Claim != "nick" || p.FailedClaims[0].Token != claims.AccessToken || p.FailedClaims[0].Error == "" {
		t.Errorf("failed claims %+v, want nick", p.FailedClaims)
	}
	id := p.IDToken
	if id == nil || id.Claims["sub"] != "00u-alice" || id.Claims["aud"] != "web" || id.Claims["preferred_username"] != "alice@example.com" ||
		id.Claims["first_name"] != "Alice" || id.LifetimeSeconds != int64(IDTokenLifetime.Seconds()) {
		t.Fatalf("ID token %+v", id)
	}
	if _, ok := id.Claims["at_hash"]; ok {
		t.Error("the preview's ID token has at_hash: nothing was signed to hash")
	}
	if r := p.RefreshToken; r == nil || !r.Issued || r.LifetimeSeconds != 86400 || r.IdleSeconds != 3600 {
		t.Errorf("refresh %+v, want issued, 1d, idle 1h", r)
	}
	if p.InlineHook != "enrich" {
		t.Errorf("inline hook %q", p.InlineHook)
	}
	if n := e.hookCalls.Load(); n != 0 {
		t.Errorf("the preview called the inline hook %d times", n)
	}
	if w := e.st.writes.Load(); w != writes {
		t.Errorf("the preview wrote to the store %d times", w-writes)
	}
	if n := e.logs.Len(); n != logged {
		t.Errorf("the preview logged %v", e.logs.All()[logged:])
	}
}

// TestPreviewTokensFollowScopesAndClient: no openid, no ID token; no
// offline_access, or a client that may not refresh, no refresh token,
// each with the reason; client_credentials takes the default scopes and
// has no user claims and no refresh token.
func TestPreviewTokensFollowScopesAndClient(t *testing.T) {
	e := newPreviewEnv(t)
	p := e.preview(t, PreviewRequest{ClientID: "web", GrantType: GrantAuthorizationCode, User: "00u-alice", Scopes: []string{"orders:read"}})
	if p.IDToken != nil || p.RefreshToken == nil || p.RefreshToken.Issued || p.RefreshToken.Reason != "scope offline_access is not granted" {
		t.Errorf("without openid and offline_access: id %+v refresh %+v", p.IDToken, p.RefreshToken)
	}
	p = e.preview(t, PreviewRequest{ClientID: "app", GrantType: GrantPassword, User: "alice@example.com", Scopes: []string{"openid", "offline_access"}})
	if p.IDToken == nil || p.RefreshToken.Issued || p.RefreshToken.Reason != "the client may not use the refresh_token grant" {
		t.Errorf("app: id %+v refresh %+v", p.IDToken, p.RefreshToken)
	}
	p = e.preview(t, PreviewRequest{ClientID: "svc", GrantType: GrantClientCredentials})
	if !p.DefaultScopes || !slices.Equal(p.Scopes, []string{"orders:read"}) || p.Rule != "Machines" || p.User != nil {
		t.Fatalf("svc %+v, want the default scopes and Machines", p)
	}
	c := p.AccessToken.Claims
	if c["sub"] != "svc" || c["where"] != "svc@default" || p.AccessToken.LifetimeSeconds != 1800 || p.IDToken != nil || p.RefreshToken != nil {
		t.Errorf("svc token %+v", p.AccessToken)
	}
	// The org server has no access policies: its fixed rule, no
	// evaluation; its custom claims are none.
	org, err := e.iss.Preview(context.Background(), OrgID, PreviewRequest{ClientID: "web", GrantType: GrantAuthorizationCode, User: "alice@example.com", Scopes: []string{"openid"}})
	if err != nil || org.Evaluation != nil || org.OrgRule == "" || org.Rule != orgRule.Name || org.IDToken == nil ||
		org.AccessToken.Claims["iss"] != "https://id.example.com" || org.AccessToken.Claims["where"] != nil {
		t.Errorf("org preview %+v %v", org, err)
	}
	for _, k := range []string{"uid", "login_name", "fin_groups", "nick"} {
		if _, ok := c[k]; ok {
			t.Errorf("client_credentials token has the user claim %s", k)
		}
	}
	if len(p.FailedClaims) != 0 {
		t.Errorf("failed claims %+v: user claims are left out silently without a user", p.FailedClaims)
	}
}

// TestPreviewNoRule: Carol (contractors) matches no rule: the error a
// real request gets, the reasons rule by rule, no tokens; Bob is
// suspended: the refusal a real request gets.
func TestPreviewNoRule(t *testing.T) {
	e := newPreviewEnv(t)
	p := e.preview(t, PreviewRequest{ClientID: "web", GrantType: GrantAuthorizationCode, User: "carol@example.com", Scopes: []string{"orders:read"}})
	if p.Error == nil || p.Error.Code != "access_denied" || p.Error.Description != "Policy evaluation failed for this request, please check the policy configurations." {
		t.Fatalf("error %+v, want access_denied", p.Error)
	}
	if p.AccessToken != nil || p.IDToken != nil || p.RefreshToken != nil || p.Rule != "" || p.Policy != "Apps" {
		t.Errorf("preview %+v: no tokens, no rule, first covering policy Apps", p)
	}
	x := p.Evaluation
	if x.Matched || x.Reason != `no rule matched in the policies covering the client: "Apps"` {
		t.Fatalf("evaluation %+v", x)
	}
	fin, rd := x.Policies[0].Rules[0], x.Policies[0].Rules[1]
	if fin.PeopleIncluded || !strings.HasPrefix(fin.PeopleReason, "not included") || !fin.GrantTypeListed || !fin.ScopesAllowed {
		t.Errorf("Finance for Carol %+v", fin)
	}
	if rd.PeopleIncluded || rd.PeopleReason != `excluded: the user is in group "contractors" of exclude_groups` {
		t.Errorf("Readers for Carol %+v", rd)
	}
	if s := x.Policies[1]; s.CoversClient || s.Policy != "Services" {
		t.Errorf("Services %+v: does not cover web", s)
	}

	p = e.preview(t, PreviewRequest{ClientID: "app", GrantType: GrantPassword, User: "bob@example.com"})
	if p.Error == nil || p.Error.Code != "invalid_grant" || p.Error.Reason != "user is suspended" || p.AccessToken != nil {
		t.Errorf("suspended Bob, password: %+v", p.Error)
	}
	p = e.preview(t, PreviewRequest{ClientID: "web", GrantType: GrantAuthorizationCode, User: "bob@example.com"})
	if p.Error == nil || p.Error.Code != "access_denied" || p.AccessToken != nil {
		t.Errorf("suspended Bob, code: %+v", p.Error)
	}
}

// TestPreviewRefusals: what cannot be previewed, with the status and
// the error a real request would get.
func TestPreviewRefusals(t *testing.T) {
	e := newPreviewEnv(t)
	for _, c := range []struct {
		name   string
		as     string
		req    PreviewRequest
		status int
		code   string
		text   string
	}{
		{"unknown server", "nope", PreviewRequest{ClientID: "svc", GrantType: GrantClientCredentials}, 404, "", `unknown authorization server "nope"`},
		{"unknown client", "default", PreviewRequest{ClientID: "nope", GrantType: GrantClientCredentials}, 404, "", `unknown client "nope"`},
		{"unknown user", "default", PreviewRequest{ClientID: "web", GrantType: GrantAuthorizationCode, User: "zed@example.com"}, 404, "", `unknown user "zed@example.com" (neither an id nor a login of the directory)`},
		{"grant the client may not use", "default", PreviewRequest{ClientID: "svc", GrantType: GrantPassword, User: "alice@example.com"}, 400, "unauthorized_client", "Configured grant types: [client_credentials]"},
		{"unsupported grant", "default", PreviewRequest{ClientID: "svc", GrantType: "implicit"}, 400, "unsupported_grant_type", "The authorization grant type is not supported by the authorization server."},
		{"refresh", "default", PreviewRequest{ClientID: "web", GrantType: GrantRefreshToken, User: "alice@example.com"}, 400, "invalid_request", "preview that grant"},
		{"token exchange", "default", PreviewRequest{ClientID: "svc", GrantType: GrantTokenExchange}, 400, "invalid_request", "preview the grant that produced the subject token"},
		{"unknown scope", "default", PreviewRequest{ClientID: "svc", GrantType: GrantClientCredentials, Scopes: []string{"orders:delete"}}, 400, "invalid_scope", "unknown scope orders:delete"},
		{"malformed scope", "default", PreviewRequest{ClientID: "svc", GrantType: GrantClientCredentials, Scopes: []string{"a\"b"}}, 400, "invalid_scope", "The requested scope is invalid, unknown, or malformed."},
		{"user scope without a user", "default", PreviewRequest{ClientID: "svc", GrantType: GrantClientCredentials, Scopes: []string{"openid"}}, 400, "invalid_scope", "not allowed for the client_credentials grant: openid"},
		{"user for client_credentials", "default", PreviewRequest{ClientID: "svc", GrantType: GrantClientCredentials, User: "alice@example.com"}, 400, "invalid_request", "has no user"},
		{"no user for a user grant", "default", PreviewRequest{ClientID: "web", GrantType: GrantAuthorizationCode}, 400, "invalid_request", "the authorization_code grant is for a user: user (a login or an id) is required"},
		{"no grant type", "default", PreviewRequest{ClientID: "web"}, 400, "invalid_request", "grant_type"},
		{"org: scope not among okta_api_scopes", "org", PreviewRequest{ClientID: "svc", GrantType: GrantClientCredentials, Scopes: []string{"okta.users.read"}}, 400, "invalid_scope", "The following scopes are not allowed for the client_credentials grant: okta.users.read."},
		{"org: no scopes", "org", PreviewRequest{ClientID: "svc", GrantType: GrantClientCredentials}, 400, "invalid_scope", "No scopes were requested."},
	} {
		_, err := e.iss.Preview(context.Background(), c.as, c.req)
		var pe *PreviewError
		if !errors.As(err, &pe) {
			t.Errorf("%s: %v, want a PreviewError", c.name, err)
			continue
		}
		if pe.Status != c.status || pe.Code != c.code || !strings.Contains(pe.Error(), c.text) {
			t.Errorf("%s: %d %q %q, want %d %q containing %q", c.name, pe.Status, pe.Code, pe.Error(), c.status, c.code, c.text)
		}
	}
}

// TestPreviewAgreesWithRealTokens: a real client_credentials token and
// a real password-grant token carry the claims the preview shows (but
// jti, which is fresh in every token).
func TestPreviewAgreesWithRealTokens(t *testing.T) {
	e := newPreviewEnv(t)
	for _, c := range []struct {
		client, secret string
		form           url.Values
		req            PreviewRequest
	}{
		{"svc", "svc-secret", url.Values{"grant_type": {"client_credentials"}}, PreviewRequest{ClientID: "svc", GrantType: GrantClientCredentials}},
		{"app", "app-secret", url.Values{"grant_type": {"password"}, "username": {"alice@example.com"}, "password": {"alice-password"}, "scope": {"openid orders:read"}},
			PreviewRequest{ClientID: "app", GrantType: GrantPassword, User: "alice@example.com", Scopes: []string{"openid", "orders:read"}}},
	} {
		r := httptest.NewRequest(http.MethodPost, tokenEP, strings.NewReader(c.form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.SetBasicAuth(c.client, c.secret)
		w := httptest.NewRecorder()
		e.iss.ServeHTTP(w, r)
		var body map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &body)
		if w.Code != 200 {
			t.Fatalf("%s: token request %d %v", c.client, w.Code, body)
		}
		real := payload(t, body["access_token"].(string))
		p := e.preview(t, c.req)
		shown, _ := json.Marshal(p.AccessToken.Claims)
		var seen map[string]any
		_ = json.Unmarshal(shown, &seen)
		delete(real, "jti")
		delete(seen, "jti")
		a, _ := json.Marshal(real)
		b, _ := json.Marshal(seen)
		if string(a) != string(b) {
			t.Errorf("%s: real access token %s, preview %s", c.client, a, b)
		}
		if int64(body["expires_in"].(float64)) != p.AccessToken.LifetimeSeconds {
			t.Errorf("%s: expires_in %v, preview lifetime %d", c.client, body["expires_in"], p.AccessToken.LifetimeSeconds)
		}
		if id, ok := body["id_token"].(string); ok {
			realID, shownID := payload(t, id), p.IDToken.Claims
			for _, k := range []string{"jti", "at_hash"} {
				delete(realID, k)
				delete(shownID, k)
			}
			a, _ := json.Marshal(realID)
			b, _ := json.Marshal(shownID)
			if string(a) != string(b) {
				t.Errorf("%s: real ID token %s, preview %s", c.client, a, b)
			}
		} else if p.IDToken != nil {
			t.Errorf("%s: the preview shows an ID token, the real answer has none", c.client)
		}
	}
	// The real password grant ran rule Finance's hook; the previews did not.
	if n := e.hookCalls.Load(); n != 1 {
		t.Errorf("inline hook called %d times, want once (the real password grant)", n)
	}
}

func previewNum(v any) int64 {
	n, _ := v.(json.Number).Int64()
	return n
}

// TestPreviewSignOnPolicy: a deny rule refuses every flow; a second
// factor refuses the password grant (it cannot be given there) and is
// a note in a browser flow, which asks for it.
func TestPreviewSignOnPolicy(t *testing.T) {
	e := newPreviewEnv(t, &policy.SignOnPolicy{Name: "Apps sign-on", Clients: []string{"web", "app"}, Rules: []*policy.SignOnRule{
		{Name: "No Carol", Priority: 1, People: &policy.People{Users: []string{"carol@example.com"}}, Access: policy.AccessDeny},
		{Name: "Finance MFA", Priority: 2, People: &policy.People{Groups: []string{"finance"}}, Factor: policy.FactorAny},
	}})
	p := e.preview(t, PreviewRequest{ClientID: "app", GrantType: GrantPassword, User: "alice@example.com"})
	if p.Error == nil || p.Error.Code != "invalid_grant" || p.Error.Reason != "sign-on policy requires a second factor" || p.AccessToken != nil ||
		p.SignOn == nil || p.SignOn.Policy != "Apps sign-on" || p.SignOn.Rule != "Finance MFA" || p.SignOn.Factor != policy.FactorAny {
		t.Errorf("password grant with a factor required: %+v %+v", p.Error, p.SignOn)
	}
	p = e.preview(t, PreviewRequest{ClientID: "web", GrantType: GrantAuthorizationCode, User: "alice@example.com"})
	if p.Error != nil || p.AccessToken == nil || len(p.Notes) == 0 || !strings.Contains(p.Notes[0], "second factor") {
		t.Errorf("code flow with a factor required: %+v notes %v", p.Error, p.Notes)
	}
	p = e.preview(t, PreviewRequest{ClientID: "web", GrantType: GrantAuthorizationCode, User: "carol@example.com"})
	if p.Error == nil || p.Error.Description != "The sign-on policy does not allow this user to sign in to this application." || !p.SignOn.Deny || p.AccessToken != nil {
		t.Errorf("denied Carol: %+v %+v", p.Error, p.SignOn)
	}
}

// TestPreviewNotesPAR: for a client with
// require_pushed_authorization_requests, the authorization_code preview
// says the request must go to the par endpoint first; other clients'
// previews do not.
func TestPreviewNotesPAR(t *testing.T) {
	e := newPreviewEnv(t)
	hasPAR := func(p *Preview) bool {
		return slices.ContainsFunc(p.Notes, func(n string) bool { return strings.Contains(n, "/oauth2/default/v1/par first") })
	}
	req := PreviewRequest{ClientID: "web", GrantType: GrantAuthorizationCode, User: "alice@example.com", Scopes: []string{"openid"}}
	if p := e.preview(t, req); hasPAR(p) {
		t.Errorf("a client without the requirement: %v", p.Notes)
	}
	e.iss.previewClient("web").RequirePushedAuthorizationRequests = true
	if p := e.preview(t, req); !hasPAR(p) || p.AccessToken == nil {
		t.Errorf("a client requiring PAR: %v", p.Notes)
	}
}
