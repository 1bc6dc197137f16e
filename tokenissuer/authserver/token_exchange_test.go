package authserver

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/apiaccess/caddy-apiaccess/internal/duration"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/claims"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/inlinehook"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

const inventoryEP = "/oauth2/inventory/v1/token"

// exchangeSecrets are the service apps of the exchange tests.
var exchangeSecrets = map[string]string{"api1": "api1-secret", "api2": "api2-secret", "api3": "api3-secret"}

// The service apps can also post (e.post) as themselves.
func init() {
	for id, sec := range exchangeSecrets {
		secrets[id] = sec
	}
}

// newExchangeEnv is the flow environment plus a server "inventory" that
// trusts "default", with policies for the service apps api1 and api2
// (token exchange for stock:read), api3 (may use the grant, but its rule
// is client_credentials only).
func newExchangeEnv(t *testing.T, el store.EventLog) *flowEnv {
	t.Helper()
	return newExchangeEnvWith(t, el, nil)
}

// newExchangeEnvWith is newExchangeEnv with tweak applied last.
func newExchangeEnvWith(t *testing.T, el store.EventLog, tweak func(*Options)) *flowEnv {
	t.Helper()
	return newFlowEnvWith(t, "https://id.example.com", func(o *Options) {
		if el != nil {
			o.EventLog = el
		}
		o.Servers["inventory"] = &ServerConfig{SigningAlg: "ES256", TrustedServers: []string{"default", "inventory"},
			Scopes: []*Scope{{Name: "stock:read"}, {Name: "stock:write"}},
			Policies: []*policy.Policy{
				{Name: "API1 to API2", Clients: []string{"api1", "api2"}, Rules: []*policy.Rule{{Name: "exchange",
					GrantTypes: []string{GrantTokenExchange, GrantClientCredentials}, Scopes: []string{"stock:read"}}}},
				{Name: "cc only", Clients: []string{"api3"}, Rules: []*policy.Rule{{Name: "cc",
					GrantTypes: []string{GrantClientCredentials}, Scopes: []string{"*"}}}},
			}}
		ex := []string{GrantTokenExchange, GrantClientCredentials}
		o.Clients = append(o.Clients,
			&clientauth.Client{ID: "api1", Secret: "api1-secret", GrantTypes: ex},
			&clientauth.Client{ID: "api2", Secret: "api2-secret", GrantTypes: ex},
			&clientauth.Client{ID: "api3", Secret: "api3-secret", GrantTypes: ex},
		)
		if tweak != nil {
			tweak(o)
		}
	}, nil)
}

// exchange posts a token exchange of subject to path as client (a
// service app of exchangeSecrets, another flow client, or a public one),
// with the default audience of inventory, form overriding.
func (e *flowEnv) exchange(path, client, subject string, form url.Values, dpopProof ...string) (int, map[string]any) {
	e.t.Helper()
	f := url.Values{"grant_type": {GrantTokenExchange}, "subject_token": {subject}, "subject_token_type": {TokenTypeAccessToken},
		"audience": {"api://inventory"}, "scope": {"stock:read"}}
	for k, v := range form {
		if len(v) == 1 && v[0] == "" {
			f.Del(k)
			continue
		}
		f[k] = v
	}
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(f.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if sec, ok := exchangeSecrets[client]; ok {
		r.SetBasicAuth(client, sec)
	} else if sec, ok := secrets[client]; ok {
		r.SetBasicAuth(client, sec)
	} else {
		f.Set("client_id", client)
		r = httptest.NewRequest(http.MethodPost, path, strings.NewReader(f.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, p := range dpopProof {
		r.Header.Add("DPoP", p)
	}
	w := httptest.NewRecorder()
	e.iss.ServeHTTP(w, r)
	var body map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	return w.Code, body
}

// userToken is alice's (u1) tokens from the code flow at default.
func (e *flowEnv) userToken(scopes ...string) map[string]any {
	e.t.Helper()
	status, tok := e.redeem("web", e.code("web", webCB, "", scopes...), webCB, "")
	if status != http.StatusOK {
		e.t.Fatalf("redeem: %d %v", status, tok)
	}
	return tok
}

// serviceToken is a client_credentials token of an exchange service app
// at path.
func (e *flowEnv) serviceToken(path, client, scope string) string {
	e.t.Helper()
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.SetBasicAuth(client, exchangeSecrets[client])
	w := httptest.NewRecorder()
	e.iss.ServeHTTP(w, r)
	var body map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	tok, _ := body["access_token"].(string)
	if w.Code != http.StatusOK || tok == "" {
		e.t.Fatalf("client_credentials for %s: %d %s", client, w.Code, w.Body)
	}
	return tok
}

// TestTokenExchangeOnBehalfOf: api1 exchanges alice's default-server
// token at inventory (which trusts default) as in Okta's guide: the
// answer has issued_token_type and no refresh or ID token, the token
// is inventory's, for alice, with api1 as the acting party; exchanged
// again by api2 (inventory trusts itself), the act chain nests; an
// actor token names the actor; the grant is one System Log event that
// names the subject token and the actor.
func TestTokenExchangeOnBehalfOf(t *testing.T) {
	el := &memEventLog{}
	e := newExchangeEnv(t, el)
	user := e.userToken("openid", "offline_access", "read")
	subject := user["access_token"].(string)
	subjectClaims := payload(t, subject)
	e.clock.Advance(time.Minute) // the new token's iat differs from auth_time

	status, body := e.exchange(inventoryEP, "api1", subject, nil)
	if status != http.StatusOK {
		t.Fatalf("exchange: %d %v", status, body)
	}
	// The subject has 59 minutes left: so has the exchanged token.
	if body["issued_token_type"] != TokenTypeAccessToken || body["token_type"] != "Bearer" || body["scope"] != "stock:read" ||
		body["refresh_token"] != nil || body["id_token"] != nil || body["expires_in"] != float64(3540) {
		t.Fatalf("exchange answer: %v", body)
	}
	first := body["access_token"].(string)
	c := payload(t, first)
	want := map[string]any{"iss": "https://id.example.com/oauth2/inventory", "aud": "api://inventory", "cid": "api1", "uid": "u1",
		"sub": "alice@example.com", "scp": []any{"stock:read"}, "act": map[string]any{"sub": "api1"},
		"auth_time": subjectClaims["auth_time"], "amr": subjectClaims["amr"], "exp": subjectClaims["exp"]}
	for k, v := range want {
		if !reflect.DeepEqual(c[k], v) {
			t.Errorf("exchanged token %s = %v, want %v", k, c[k], v)
		}
	}
	if c["iat"] == subjectClaims["iat"] {
		t.Errorf("iat %v: the exchanged token is new", c["iat"])
	}
	// It is inventory's own token: introspection there says active.
	if s, b := e.post("/oauth2/inventory/v1/introspect", "web", url.Values{"token": {first}}); s != 200 || b["active"] != true || b["uid"] != "u1" {
		t.Fatalf("introspect at inventory: %d %v", s, b)
	}

	// api2 exchanges api1's token at inventory: the chain nests.
	status, body = e.exchange(inventoryEP, "api2", first, nil)
	if status != http.StatusOK {
		t.Fatalf("second exchange: %d %v", status, body)
	}
	second := payload(t, body["access_token"].(string))
	wantAct := map[string]any{"sub": "api2", "act": map[string]any{"sub": "api1"}}
	if !reflect.DeepEqual(second["act"], wantAct) || second["uid"] != "u1" || second["cid"] != "api2" {
		t.Fatalf("second exchange: act %v uid %v cid %v, want act %v for u1 by api2", second["act"], second["uid"], second["cid"], wantAct)
	}

	// With an actor token (api2's own token) the actor is its subject.
	actor := e.serviceToken(inventoryEP, "api2", "stock:read")
	status, body = e.exchange(inventoryEP, "api2", first, url.Values{"actor_token": {actor}, "actor_token_type": {TokenTypeAccessToken}})
	if status != http.StatusOK {
		t.Fatalf("exchange with actor token: %d %v", status, body)
	}
	if got := payload(t, body["access_token"].(string))["act"]; !reflect.DeepEqual(got, wantAct) {
		t.Fatalf("act with actor token: %v, want %v", got, wantAct)
	}

	grants := e.logs.FilterMessage(EventTokenGrant).All()
	if f := grants[len(grants)-1].ContextMap(); f["grant_type"] != GrantTokenExchange || f["subject_token_jti"] != payload(t, first)["jti"] ||
		f["subject_token_server"] != "inventory" || f["actor"] != "api2" {
		t.Fatalf("Caddy log of the last exchange: %v", f)
	}
	e.iss.StopEvents()
	var ex []store.LogEvent
	for _, ev := range ofType(el.all(), "app.oauth2.as.token.grant.access_token") {
		if ev.DebugContext.DebugData["grantType"] == GrantTokenExchange {
			ex = append(ex, ev)
		}
	}
	if len(ex) != 3 {
		t.Fatalf("%d token exchange grant events, want 3", len(ex))
	}
	dd := ex[0].DebugContext.DebugData
	if ex[0].Actor.Type != "User" || ex[0].Actor.ID != "u1" || dd["subjectTokenJti"] != subjectClaims["jti"] ||
		dd["subjectTokenAuthorizationServer"] != "default" || dd["actor"] != "api1" || dd["authorizationServer"] != "inventory" ||
		dd["clientId"] != "api1" || dd["grantedScopes"] != "stock:read" || dd["jti"] != c["jti"] {
		t.Fatalf("exchange event: actor %+v debugData %v", ex[0].Actor, dd)
	}
	for _, ev := range el.all() {
		b, _ := json.Marshal(ev)
		if strings.Contains(string(b), subject) || strings.Contains(string(b), first) {
			t.Fatalf("a token reached the System Log: %s", b)
		}
	}
}

// TestTokenExchangeRefusals: every refusal, in Okta's and RFC 8693's
// error shapes.
func TestTokenExchangeRefusals(t *testing.T) {
	e := newExchangeEnv(t, nil)
	user := e.userToken("openid", "offline_access", "read")
	subject := user["access_token"].(string)
	_, firstBody := e.exchange(inventoryEP, "api1", subject, nil)
	inventoryToken, _ := firstBody["access_token"].(string)
	if inventoryToken == "" {
		t.Fatalf("exchange: %v", firstBody)
	}
	serviceOnly := e.serviceToken(tokenEP, "api1", "read") // default, no user
	api1Actor := e.serviceToken(inventoryEP, "api1", "stock:read")
	invalidSubject := [2]string{"invalid_grant", "subject token is invalid"}
	invalidActor := [2]string{"invalid_grant", "actor token is invalid"}
	badTarget := [2]string{"invalid_target", "The requested audience is not valid for this authorization server."}
	// why is in the logged reason of a refusal.
	whys := map[string]string{
		"garbage subject token":        "not a JWT",
		"ID token as subject":          "not an access token",
		"tampered subject token":       "verification failed",
		"untrusted issuer":             "issuer inventory is not a trusted server of default",
		"subject without a user":       "names no user",
		"garbage actor token":          "not a JWT",
		"another client's actor token": "issued to another client",
	}
	for _, tc := range []struct {
		name, path, client, subject string
		form                        url.Values
		want                        [2]string // error, error_description
	}{
		{"missing subject_token", inventoryEP, "api1", "", nil, [2]string{"invalid_request", "The 'subject_token' parameter is required."}},
		{"missing subject_token_type", inventoryEP, "api1", subject, url.Values{"subject_token_type": {""}}, [2]string{"invalid_request", "The 'subject_token_type' parameter is required."}},
		{"id_token subject_token_type", inventoryEP, "api1", subject, url.Values{"subject_token_type": {"urn:ietf:params:oauth:token-type:id_token"}},
			[2]string{"invalid_request", "The 'subject_token_type' parameter must be urn:ietf:params:oauth:token-type:access_token."}},
		{"refresh token requested", inventoryEP, "api1", subject, url.Values{"requested_token_type": {"urn:ietf:params:oauth:token-type:refresh_token"}},
			[2]string{"invalid_request", "The 'requested_token_type' parameter must be urn:ietf:params:oauth:token-type:access_token."}},
		{"garbage subject token", inventoryEP, "api1", "not.a.token", nil, invalidSubject},
		{"ID token as subject", inventoryEP, "api1", user["id_token"].(string), nil, invalidSubject},
		{"tampered subject token", inventoryEP, "api1", subject[:len(subject)-4] + "AAAA", nil, invalidSubject},
		{"untrusted issuer", tokenEP, "api1", inventoryToken, url.Values{"audience": {"api://default"}, "scope": {"read"}}, invalidSubject},
		{"subject without a user", inventoryEP, "api1", serviceOnly, nil, invalidSubject},
		{"missing audience", inventoryEP, "api1", subject, url.Values{"audience": {""}}, [2]string{"invalid_request", "The 'audience' parameter is required."}},
		{"another server's audience", inventoryEP, "api1", subject, url.Values{"audience": {"api://default"}}, badTarget},
		{"resource elsewhere", inventoryEP, "api1", subject, url.Values{"resource": {"https://elsewhere.example"}}, badTarget},
		{"scope the rule does not grant", inventoryEP, "api1", subject, url.Values{"scope": {"stock:write"}},
			[2]string{"access_denied", "Policy evaluation failed for this request, please check the policy configurations."}},
		{"OpenID scope", inventoryEP, "api1", subject, url.Values{"scope": {"openid stock:read"}},
			[2]string{"invalid_scope", "The following scopes are not allowed for the token exchange grant: openid."}},
		{"rule without the grant", inventoryEP, "api3", subject, nil,
			[2]string{"access_denied", "Policy evaluation failed for this request, please check the policy configurations."}},
		{"client without the grant", inventoryEP, "web", subject, nil,
			[2]string{"unauthorized_client", "The client is not authorized to use the provided grant type. Configured grant types: [authorization_code, refresh_token]."}},
		{"actor_token without its type", inventoryEP, "api1", subject, url.Values{"actor_token": {api1Actor}},
			[2]string{"invalid_request", "The 'actor_token_type' parameter is required with 'actor_token'."}},
		{"actor_token_type alone", inventoryEP, "api1", subject, url.Values{"actor_token_type": {TokenTypeAccessToken}},
			[2]string{"invalid_request", "The 'actor_token_type' parameter is only allowed with 'actor_token'."}},
		{"garbage actor token", inventoryEP, "api1", subject, url.Values{"actor_token": {"x.y.z"}, "actor_token_type": {TokenTypeAccessToken}}, invalidActor},
		{"another client's actor token", inventoryEP, "api2", subject, url.Values{"actor_token": {api1Actor}, "actor_token_type": {TokenTypeAccessToken}}, invalidActor},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := e.exchange(tc.path, tc.client, tc.subject, tc.form)
			if status != http.StatusBadRequest || body["error"] != tc.want[0] || body["error_description"] != tc.want[1] || body["access_token"] != nil {
				t.Fatalf("%d %v, want 400 %s %q", status, body, tc.want[0], tc.want[1])
			}
			if why := whys[tc.name]; why != "" {
				denied := e.logs.FilterMessage(EventTokenDenied).All()
				if r, _ := denied[len(denied)-1].ContextMap()["reason"].(string); !strings.Contains(r, why) {
					t.Fatalf("logged reason %q, want it to contain %q", r, why)
				}
			}
		})
	}

	// Revoked: the token itself, then (another token) its refresh-token
	// family, then expiry.
	lastReason := func() string {
		denied := e.logs.FilterMessage(EventTokenDenied).All()
		r, _ := denied[len(denied)-1].ContextMap()["reason"].(string)
		return r
	}
	e.revoke("web", subject)
	if status, body := e.exchange(inventoryEP, "api1", subject, nil); status != 400 || body["error_description"] != invalidSubject[1] || lastReason() != "revoked" {
		t.Fatalf("revoked subject token: %d %v (%s)", status, body, lastReason())
	}
	other := e.userToken("openid", "offline_access", "read")
	e.revoke("web", other["refresh_token"].(string))
	if status, body := e.exchange(inventoryEP, "api1", other["access_token"].(string), nil); status != 400 || body["error_description"] != invalidSubject[1] || lastReason() != "revoked" {
		t.Fatalf("subject token of a revoked family: %d %v", status, body)
	}
	fresh := e.userToken("read")["access_token"].(string)
	if status, body := e.exchange(inventoryEP, "api1", fresh, nil); status != 200 {
		t.Fatalf("fresh subject token: %d %v", status, body)
	}
	e.clock.Advance(2 * time.Hour)
	if status, body := e.exchange(inventoryEP, "api1", fresh, nil); status != 400 || body["error_description"] != invalidSubject[1] || !strings.Contains(lastReason(), "exp") {
		t.Fatalf("expired subject token: %d %v", status, body)
	}
}

// TestPriorAct: a prior act chain is nested as it is (subs only) up to
// maxActDepth-1 actors; deeper or malformed chains are refused.
func TestPriorAct(t *testing.T) {
	chain := func(n int) any {
		var v any
		for i := n; i > 0; i-- {
			a := map[string]any{"sub": "s" + string(rune('0'+i)), "exp": 1}
			if v != nil {
				a["act"] = v
			}
			v = a
		}
		return v
	}
	got, ok := priorAct(chain(2))
	if want := map[string]any{"sub": "s1", "act": map[string]any{"sub": "s2"}}; !ok || !reflect.DeepEqual(got, want) {
		t.Fatalf("priorAct(2) = %v %v, want %v", got, ok, want)
	}
	// The new token names one more: maxActDepth in all.
	if _, ok := priorAct(chain(maxActDepth - 1)); !ok {
		t.Fatalf("a chain of %d is allowed", maxActDepth-1)
	}
	for _, v := range []any{chain(maxActDepth), "api1", map[string]any{"act": map[string]any{"sub": "x"}}, map[string]any{"sub": 1}} {
		if _, ok := priorAct(v); ok {
			t.Errorf("priorAct(%v) accepted", v)
		}
	}
}

// TestTokenExchangeConfig: trusted_servers must name custom servers of
// the issuer; a public client cannot list the grant; discovery lists the grant where a service app may use it
// under a rule (and refresh_token is not added for it).
func TestTokenExchangeConfig(t *testing.T) {
	_, err := New(Options{BaseURL: "https://id.example.com", Servers: map[string]*ServerConfig{
		"inventory": {TrustedServers: []string{"orders"}}}})
	if err == nil || !strings.Contains(err.Error(), `unknown authorization server "orders" in trusted_servers`) {
		t.Fatalf("unknown trusted server: %v", err)
	}
	// A public client cannot list the grant (tokenExchange would refuse it).
	_, err = New(Options{BaseURL: "https://id.example.com", Clients: []*clientauth.Client{
		{ID: "pubx", AuthMethod: clientauth.None, GrantTypes: []string{GrantTokenExchange}}}})
	if err == nil || !strings.Contains(err.Error(), `client "pubx": a public client cannot use client_credentials, password or token exchange`) {
		t.Fatalf("a public client with the grant: %v", err)
	}
	e := newExchangeEnv(t, nil)
	inv, _ := e.iss.Server("inventory")
	if got := inv.usableGrants(e.iss.clients); !reflect.DeepEqual(got, []string{GrantClientCredentials, GrantTokenExchange}) {
		t.Fatalf("inventory grant_types_supported = %v", got)
	}
	def, _ := e.iss.Server("default")
	if slices.Contains(def.usableGrants(e.iss.clients), GrantTokenExchange) {
		t.Fatal("default lists token exchange, which no rule of it names")
	}
	for _, doc := range []string{docOAuth, docOIDC} {
		var meta map[string]any
		if err := json.Unmarshal(inv.metadata[doc], &meta); err != nil {
			t.Fatal(err)
		}
		if got := stringList(meta["grant_types_supported"]); !slices.Contains(got, GrantTokenExchange) {
			t.Fatalf("%s grant_types_supported: %v", doc, got)
		}
	}
}

// TestTokenExchangeDPoP: a DPoP-bound subject token is refused (the
// exchanging client cannot prove its key, and the exchange would strip
// the binding); an exchange that itself carries a proof gets a token
// bound to the exchanging client's key.
func TestTokenExchangeDPoP(t *testing.T) {
	e := newExchangeEnv(t, nil)
	k := newDPoPKey(t)
	redeem := func(proof string) (*httptest.ResponseRecorder, map[string]any) {
		return e.sendDPoP("web", url.Values{"grant_type": {"authorization_code"}, "code": {e.code("web", webCB, "", "read")}, "redirect_uri": {webCB}}, proof)
	}
	w, _ := redeem(k.proof(t, ""))
	nonce := w.Header().Get("DPoP-Nonce")
	w, body := redeem(k.proof(t, nonce))
	bound, _ := body["access_token"].(string)
	if w.Code != 200 || body["token_type"] != "DPoP" || bound == "" {
		t.Fatalf("bound user token: %d %v", w.Code, body)
	}
	status, body := e.exchange(inventoryEP, "api1", bound, nil)
	denied := e.logs.FilterMessage(EventTokenDenied).All()
	if reason, _ := denied[len(denied)-1].ContextMap()["reason"].(string); status != 400 || body["error_description"] != "subject token is invalid" || reason != "sender-constrained (cnf)" {
		t.Fatalf("bound subject token: %d %v (%s)", status, body, reason)
	}

	plain := e.userToken("read")["access_token"].(string)
	svc := newDPoPKey(t)
	status, body = e.exchange(inventoryEP, "api1", plain, nil, svc.Proof(t, "POST", "https://id.example.com"+inventoryEP, nonce, ""))
	if status != 200 || body["token_type"] != "DPoP" {
		t.Fatalf("exchange with a proof: %d %v", status, body)
	}
	if cnf, _ := payload(t, body["access_token"].(string))["cnf"].(map[string]any); cnf["jkt"] != svc.JKT {
		t.Fatalf("exchanged token cnf %v, want the exchanging client's key %s", cnf, svc.JKT)
	}
}

// suspendable is a directory whose users can be suspended meanwhile.
type suspendable struct {
	directory.Directory
	suspended atomic.Bool
}

func (d *suspendable) UserByID(ctx context.Context, id string) (*directory.User, error) {
	u, err := d.Directory.UserByID(ctx, id)
	if err == nil && d.suspended.Load() {
		c := *u
		c.Status = "suspended"
		return &c, nil
	}
	return u, err
}

// TestTokenExchangeUserSuspended: the subject token's user must still
// be able to get tokens.
func TestTokenExchangeUserSuspended(t *testing.T) {
	var dir *suspendable
	e := newFlowEnvWith(t, "https://id.example.com", func(o *Options) {
		dir = &suspendable{Directory: o.Directory}
		o.Directory = dir
		o.Servers["default"].Policies[0].Rules[0].GrantTypes = append(o.Servers["default"].Policies[0].Rules[0].GrantTypes, GrantTokenExchange)
		o.Clients = append(o.Clients, &clientauth.Client{ID: "api1", Secret: "api1-secret", GrantTypes: []string{GrantTokenExchange}})
	}, nil)
	subject := e.userToken("read")["access_token"].(string)
	form := url.Values{"audience": {"api://default"}, "scope": {"read"}}
	// Within one server (it trusts itself, as in Okta's guide).
	if status, body := e.exchange(tokenEP, "api1", subject, form); status != 200 {
		t.Fatalf("exchange at the issuing server: %d %v", status, body)
	}
	dir.suspended.Store(true)
	status, body := e.exchange(tokenEP, "api1", subject, form)
	denied := e.logs.FilterMessage(EventTokenDenied).All()
	if reason, _ := denied[len(denied)-1].ContextMap()["reason"].(string); status != 400 || body["error_description"] != "subject token is invalid" || reason != "user missing or not active" {
		t.Fatalf("suspended user: %d %v (%s)", status, body, reason)
	}
}

// activeAt introspects tok at server as client web (confidential).
func (e *flowEnv) activeAt(server, tok string) bool {
	e.t.Helper()
	s, b := e.post("/oauth2/"+server+"/v1/introspect", "web", url.Values{"token": {tok}})
	if s != http.StatusOK {
		e.t.Fatalf("introspect at %s: %d %v", server, s, b)
	}
	return b["active"] == true
}

// lastDenial is the logged reason of the last refused grant.
func (e *flowEnv) lastDenial() string {
	e.t.Helper()
	denied := e.logs.FilterMessage(EventTokenDenied).All()
	if len(denied) == 0 {
		e.t.Fatal("no refusal logged")
	}
	r, _ := denied[len(denied)-1].ContextMap()["reason"].(string)
	return r
}

// TestTokenExchangeFamilyRevocation: a token exchanged from a token of a
// refresh-token family (and one exchanged from that, in turn) joins the
// family: revoking the refresh token makes both inactive at
// introspection, refuses exchanging them again, and publishes both on
// the revocation feed, which is all a gateway following it sees.
func TestTokenExchangeFamilyRevocation(t *testing.T) {
	e := newExchangeEnv(t, nil)
	u := e.userToken("offline_access", "read")
	_, b := e.exchange(inventoryEP, "api1", u["access_token"].(string), nil)
	x, _ := b["access_token"].(string)
	_, b = e.exchange(inventoryEP, "api2", x, nil)
	y, _ := b["access_token"].(string)
	if x == "" || y == "" {
		t.Fatalf("exchanges: %v", b)
	}
	view := e.iss.RevocationView()
	for _, tok := range []string{x, y} {
		if jti := payload(t, tok)["jti"].(string); !e.activeAt("inventory", tok) || view.Revoked(jti, "", "", "", time.Time{}) {
			t.Fatal("an exchanged token is revoked before its family")
		}
	}
	e.revoke("web", u["refresh_token"].(string))
	for i, tok := range []string{x, y} {
		if e.activeAt("inventory", tok) {
			t.Errorf("exchanged token %d is active after its subject's family was revoked", i)
		}
		if !view.Revoked(payload(t, tok)["jti"].(string), "", "", "", time.Time{}) {
			t.Errorf("exchanged token %d is not on the revocation feed", i)
		}
		if s, b := e.exchange(inventoryEP, "api1", tok, nil); s != http.StatusBadRequest || b["error_description"] != "subject token is invalid" || e.lastDenial() != "revoked" {
			t.Errorf("exchanged token %d exchanged again: %d %v (%s)", i, s, b, e.lastDenial())
		}
	}
	// A subject without a family gives a token without one.
	plain := e.userToken("read")["access_token"].(string)
	_, b = e.exchange(inventoryEP, "api1", plain, nil)
	if fam, err := e.iss.familyOf(context.Background(), payload(t, b["access_token"].(string))["jti"].(string)); err != nil || fam != "" {
		t.Fatalf("family of a token exchanged from a family-less one: %q %v", fam, err)
	}
}

// TestTokenExchangeCutOffs: the cut-offs of the subject token's user at
// its client, and of its client, reach tokens exchanged from it, down a
// chain of exchanges (the exchanged tokens have another cid), at
// introspection and at a further exchange; and a cut-off refuses the
// subject token itself.
func TestTokenExchangeCutOffs(t *testing.T) {
	for _, path := range []string{"/api/v1/users/u1/clients/web/tokens", "/api/v1/apps/web/tokens"} {
		t.Run(path, func(t *testing.T) {
			e := newExchangeEnvWith(t, nil, func(o *Options) { o.APITokens = []string{logsToken} })
			subject := e.userToken("read")["access_token"].(string)
			_, b := e.exchange(inventoryEP, "api1", subject, nil)
			x, _ := b["access_token"].(string)
			_, b = e.exchange(inventoryEP, "api2", x, nil)
			y, _ := b["access_token"].(string)
			other := e.serviceToken(inventoryEP, "api1", "stock:read") // api1's own: no cut-off of web's
			if x == "" || y == "" || !e.activeAt("inventory", y) {
				t.Fatalf("exchanges: %v", b)
			}
			e.clock.Advance(2 * time.Second)
			e.revoke204(path)
			if s, _ := e.exchange(inventoryEP, "api1", subject, nil); s != http.StatusBadRequest || e.lastDenial() != "revoked" {
				t.Errorf("cut-off subject exchanged: %d", s)
			}
			for i, tok := range []string{x, y} {
				if e.activeAt("inventory", tok) {
					t.Errorf("token %d exchanged from a cut-off token is active", i)
				}
				if s, _ := e.exchange(inventoryEP, "api2", tok, nil); s != http.StatusBadRequest || e.lastDenial() != "revoked" {
					t.Errorf("token %d exchanged from a cut-off token exchanged again: %d", i, s)
				}
			}
			if !e.activeAt("inventory", other) {
				t.Error("a token of another client fell with web's cut-off")
			}
			// Issued after the cut-off: the chain's times are the subject's.
			e.clock.Advance(2 * time.Second)
			_, b = e.exchange(inventoryEP, "api1", e.userToken("read")["access_token"].(string), nil)
			if tok, _ := b["access_token"].(string); tok == "" || !e.activeAt("inventory", tok) {
				t.Errorf("a token exchanged from a token issued after the cut-off: %v", b)
			}
		})
	}
}

// TestTokenExchangeLifetime: the exchanged token never outlives the
// subject token (exp capped at the subject's, expires_in to match), so
// a chain of exchanges cannot stretch a user's token; a subject accepted
// only within the clock skew past its exp is refused (the token would be
// born expired); the chain stops at maxActDepth actors.
func TestTokenExchangeLifetime(t *testing.T) {
	e := newExchangeEnv(t, nil)
	subject := e.userToken("read")["access_token"].(string)
	sexp := payload(t, subject)["exp"].(float64)
	tok, n := subject, 0
	for ; n < maxActDepth+1; n++ {
		e.clock.Advance(5 * time.Minute)
		s, b := e.exchange(inventoryEP, []string{"api1", "api2"}[n%2], tok, nil)
		if s != http.StatusOK {
			if n != maxActDepth || !strings.Contains(e.lastDenial(), "prior actors") {
				t.Fatalf("exchange %d: %d %v (%s)", n, s, b, e.lastDenial())
			}
			break
		}
		tok = b["access_token"].(string)
		p := payload(t, tok)
		if p["exp"] != sexp || b["expires_in"] != sexp-p["iat"].(float64) {
			t.Fatalf("exchange %d: exp %v expires_in %v, want exp %v (the subject's) and expires_in to match", n, p["exp"], b["expires_in"], sexp)
		}
	}
	if n != maxActDepth {
		t.Fatalf("%d exchanges in a row, want %d", n, maxActDepth)
	}
	// A shorter rule lifetime is kept.
	short := newExchangeEnvWith(t, nil, func(o *Options) {
		o.Servers["inventory"].Policies[0].Rules[0].AccessTokenLifetime = duration.Duration(10 * time.Minute)
	})
	_, b := short.exchange(inventoryEP, "api1", short.userToken("read")["access_token"].(string), nil)
	if b["expires_in"] != float64(600) {
		t.Fatalf("rule lifetime shorter than the subject's rest: %v", b)
	}
	// Past exp, within the skew.
	fresh := e.userToken("read")["access_token"].(string)
	e.clock.Advance(time.Hour + 5*time.Second)
	if s, b := e.exchange(inventoryEP, "api1", fresh, nil); s != http.StatusBadRequest || !strings.Contains(e.lastDenial(), "cannot outlive") {
		t.Fatalf("subject 5s past exp: %d %v (%s)", s, b, e.lastDenial())
	}
}

// TestTokenExchangeConsent: a consent-required scope (default's pay) is
// granted by exchange only when the subject token carries it, that is
// when the user consented to it for the subject token.
func TestTokenExchangeConsent(t *testing.T) {
	e := newExchangeEnvWith(t, nil, func(o *Options) {
		r := o.Servers["default"].Policies[0].Rules[0]
		r.GrantTypes = append(r.GrantTypes, GrantTokenExchange)
	})
	form := url.Values{"audience": {"api://default"}, "scope": {"read pay"}}
	s, b := e.exchange(tokenEP, "api1", e.userToken("read")["access_token"].(string), form)
	if s != http.StatusBadRequest || b["error"] != "invalid_scope" ||
		b["error_description"] != "The following scopes require the user's consent, which the subject token does not carry: pay." {
		t.Fatalf("consent-required scope without consent: %d %v", s, b)
	}
	s, b = e.exchange(tokenEP, "api1", e.userToken("read", "pay")["access_token"].(string), form)
	if s != http.StatusOK || b["scope"] != "read pay" {
		t.Fatalf("consent-required scope the subject carries: %d %v", s, b)
	}
}

// TestTokenExchangeSkew: subject and actor tokens are accepted within
// the gateway's clock skew (a node behind sees a fresh token's iat in
// the future), not beyond it.
func TestTokenExchangeSkew(t *testing.T) {
	e := newExchangeEnv(t, nil)
	subject := e.userToken("read")["access_token"].(string)
	actor := e.serviceToken(inventoryEP, "api1", "stock:read")
	withActor := url.Values{"actor_token": {actor}, "actor_token_type": {TokenTypeAccessToken}}
	e.clock.Advance(-20 * time.Second) // this node is 20s behind the one that issued them
	if s, b := e.exchange(inventoryEP, "api1", subject, withActor); s != http.StatusOK {
		t.Fatalf("20s behind: %d %v (%s)", s, b, e.lastDenial())
	}
	e.clock.Advance(-20 * time.Second) // 40s behind
	if s, _ := e.exchange(inventoryEP, "api1", subject, nil); s != http.StatusBadRequest || !strings.Contains(e.lastDenial(), "iat") {
		t.Fatalf("40s behind, subject: %d (%s)", s, e.lastDenial())
	}
	e.clock.Advance(40 * time.Second)
	fresh := e.userToken("read")["access_token"].(string)
	if s, b := e.exchange(inventoryEP, "api1", fresh, withActor); s != http.StatusOK {
		t.Fatalf("in step: %d %v", s, b)
	}
	// The actor token a little past its exp (the subject is younger).
	e.clock.Advance(time.Hour + 10*time.Second)
	younger := e.userToken("read")["access_token"].(string)
	if s, b := e.exchange(inventoryEP, "api1", younger, withActor); s != http.StatusOK {
		t.Fatalf("actor 10s past exp: %d %v (%s)", s, b, e.lastDenial())
	}
	e.clock.Advance(time.Minute)
	if s, b := e.exchange(inventoryEP, "api1", younger, withActor); s != http.StatusBadRequest || b["error_description"] != "actor token is invalid" || !strings.Contains(e.lastDenial(), "exp") {
		t.Fatalf("actor 70s past exp: %d %v (%s)", s, b, e.lastDenial())
	}
}

// TestTokenExchangeIntrospection: introspecting an exchanged token shows
// its act chain (RFC 8693 section 4.1); other tokens have none.
func TestTokenExchangeIntrospection(t *testing.T) {
	e := newExchangeEnv(t, nil)
	subject := e.userToken("read")["access_token"].(string)
	_, b := e.exchange(inventoryEP, "api1", subject, nil)
	_, b = e.exchange(inventoryEP, "api2", b["access_token"].(string), nil)
	_, ib := e.post("/oauth2/inventory/v1/introspect", "web", url.Values{"token": {b["access_token"].(string)}})
	if want := map[string]any{"sub": "api2", "act": map[string]any{"sub": "api1"}}; ib["active"] != true || !reflect.DeepEqual(ib["act"], want) {
		t.Fatalf("introspection: %v, want act %v", ib, want)
	}
	if _, ib := e.post("/oauth2/default/v1/introspect", "web", url.Values{"token": {subject}}); ib["active"] != true || ib["act"] != nil {
		t.Fatalf("introspection of the subject: %v", ib)
	}
}

// suspendedUsers is a directory in which some users are suspended.
type suspendedUsers struct {
	directory.Directory
	ids map[string]bool
}

func (d *suspendedUsers) UserByID(ctx context.Context, id string) (*directory.User, error) {
	u, err := d.Directory.UserByID(ctx, id)
	if err == nil && d.ids[id] {
		c := *u
		c.Status = "suspended"
		return &c, nil
	}
	return u, err
}

// signed is an access token of server id signed directly, for cases no
// grant gives.
func (e *flowEnv) signed(id string, c accessClaims, lifetime time.Duration) string {
	e.t.Helper()
	s, ok := e.iss.Server(id)
	if !ok {
		e.t.Fatalf("no server %s", id)
	}
	tok, oe := signTestAccess(e.iss, s, c, lifetime)
	if oe != nil {
		e.t.Fatal(oe)
	}
	return tok
}

// TestTokenExchangeTokens: what is refused of subject and actor tokens
// beyond TestTokenExchangeRefusals: an org server token as subject or
// actor; an actor token revoked, expired, or from an untrusted server;
// an actor token of a suspended or deleted user. A subject without
// auth_time gives a token without it.
func TestTokenExchangeTokens(t *testing.T) {
	e := newExchangeEnvWith(t, nil, func(o *Options) {
		o.Directory = &suspendedUsers{Directory: o.Directory, ids: map[string]bool{"u2": true}}
	})
	subject := e.userToken("read")["access_token"].(string)
	orgUser := e.signed(OrgID, accessClaims{Cid: "api1", UID: "u1", Sub: "alice@example.com", Scp: []string{"openid"}}, time.Hour)
	revoked := e.serviceToken(inventoryEP, "api1", "stock:read")
	if s, b := e.post("/oauth2/inventory/v1/revoke", "api1", url.Values{"token": {revoked}}); s != http.StatusOK {
		t.Fatalf("revoke the actor token: %d %v", s, b)
	}
	expiring := e.signed("inventory", accessClaims{Cid: "api1", Sub: "api1", Scp: []string{"stock:read"}}, 5*time.Minute)
	untrusted := e.serviceToken(inventoryEP, "api1", "stock:read") // at default, which trusts no other server
	suspended := e.signed("inventory", accessClaims{Cid: "api1", UID: "u2", Sub: "mallory@example.com", Scp: []string{"stock:read"}}, time.Hour)
	deleted := e.signed("inventory", accessClaims{Cid: "api1", UID: "u9", Sub: "gone@example.com", Scp: []string{"stock:read"}}, time.Hour)
	e.clock.Advance(6 * time.Minute) // expiring is past exp and skew
	subject = e.userToken("read")["access_token"].(string)
	defaultForm := func(f url.Values) url.Values {
		f.Set("audience", "api://default")
		f.Set("scope", "read")
		return f
	}
	actor := func(tok string) url.Values {
		return url.Values{"actor_token": {tok}, "actor_token_type": {TokenTypeAccessToken}}
	}
	for _, tc := range []struct {
		name, path, subject string
		form                url.Values
		desc, reason        string
	}{
		{"org subject", inventoryEP, orgUser, nil, "subject token is invalid", "issuer org is not a trusted server of inventory"},
		{"org actor", inventoryEP, subject, actor(orgUser), "actor token is invalid", "issuer org is not a trusted server of inventory"},
		{"revoked actor", inventoryEP, subject, actor(revoked), "actor token is invalid", "revoked"},
		{"expired actor", inventoryEP, subject, actor(expiring), "actor token is invalid", "exp"},
		{"untrusted actor", tokenEP, subject, defaultForm(actor(untrusted)), "actor token is invalid", "not a trusted server of default"},
		{"suspended actor", inventoryEP, subject, actor(suspended), "actor token is invalid", "user missing or not active"},
		{"deleted actor", inventoryEP, subject, actor(deleted), "actor token is invalid", "user missing or not active"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, b := e.exchange(tc.path, "api1", tc.subject, tc.form)
			if s != http.StatusBadRequest || b["error"] != "invalid_grant" || b["error_description"] != tc.desc || !strings.Contains(e.lastDenial(), tc.reason) {
				t.Fatalf("%d %v (%s), want %q (%s)", s, b, e.lastDenial(), tc.desc, tc.reason)
			}
		})
	}
	// Without auth_time.
	bare := e.signed("default", accessClaims{Cid: "web", UID: "u1", Sub: "alice@example.com", Scp: []string{"read"}}, time.Hour)
	s, b := e.exchange(inventoryEP, "api1", bare, nil)
	if s != http.StatusOK {
		t.Fatalf("subject without auth_time: %d %v", s, b)
	}
	if p := payload(t, b["access_token"].(string)); p["auth_time"] != nil {
		t.Fatalf("auth_time %v made up for a subject without one", p["auth_time"])
	}
}

// TestTokenExchangeNoTokenInLog: neither the subject, the actor nor the
// issued token reaches the Caddy log at any level, granted or refused.
func TestTokenExchangeNoTokenInLog(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	e := newExchangeEnvWith(t, nil, func(o *Options) { o.Logger = zap.New(core) })
	subject := e.userToken("offline_access", "read")
	actor := e.serviceToken(inventoryEP, "api1", "stock:read")
	s, b := e.exchange(inventoryEP, "api1", subject["access_token"].(string), url.Values{"actor_token": {actor}, "actor_token_type": {TokenTypeAccessToken}})
	issued, _ := b["access_token"].(string)
	if s != http.StatusOK {
		t.Fatalf("exchange: %d %v", s, b)
	}
	// Refusals: a tampered subject, a foreign actor, a revoked family.
	tampered := subject["access_token"].(string)
	tampered = tampered[:len(tampered)-4] + "AAAA"
	e.exchange(inventoryEP, "api1", tampered, nil)
	e.exchange(inventoryEP, "api2", issued, url.Values{"actor_token": {actor}, "actor_token_type": {TokenTypeAccessToken}})
	e.revoke("web", subject["refresh_token"].(string))
	e.exchange(inventoryEP, "api2", issued, nil)
	e.activeAt("inventory", issued)
	if logs.Len() == 0 {
		t.Fatal("nothing logged")
	}
	secretsOf := func(tok string) []string { // the token and its signature alone
		return []string{tok, tok[strings.LastIndex(tok, ".")+1:]}
	}
	var all []string
	for _, tok := range []string{subject["access_token"].(string), tampered, actor, issued, subject["refresh_token"].(string)} {
		all = append(all, secretsOf(tok)...)
	}
	for _, en := range logs.All() {
		line, _ := json.Marshal(map[string]any{"msg": en.Message, "fields": en.ContextMap()})
		for _, sec := range all {
			if strings.Contains(string(line), sec) {
				t.Fatalf("a token in the log: %s", line)
			}
		}
	}
}

// TestAccessClaimNamesReserved: every claim of the access token itself
// (accessClaims) and RFC 8693's act and may_act are refused as custom
// access-token claim names, so that a custom claim cannot write a
// second JSON member over one of them (a configured act would forge
// the actor chain).
func TestAccessClaimNamesReserved(t *testing.T) {
	names := []string{"act", "may_act"}
	rt := reflect.TypeFor[accessClaims]()
	for f := range rt.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			t.Fatalf("accessClaims.%s has no json name", f.Name)
		}
		names = append(names, name)
	}
	for _, name := range names {
		_, err := claims.Compile([]*claims.Claim{{Name: name, Value: `"x"`}}, func(string) bool { return true })
		if err == nil || !strings.Contains(err.Error(), "reserved") {
			t.Errorf("custom access-token claim %q: %v, want it reserved", name, err)
		}
	}
	// And the server refuses the configuration, naming the claim.
	_, err := New(Options{BaseURL: "https://id.example.com", Servers: map[string]*ServerConfig{
		"inventory": {Claims: []*claims.Claim{{Name: "act", Value: `{"sub": "forged"}`}}}}})
	if err == nil || !strings.Contains(err.Error(), `claim "act": the name is reserved in access tokens`) {
		t.Fatalf("a custom act claim: %v", err)
	}
}

// TestTokenExchangeHookCannotStretch: a token inline hook that lengthens
// an exchanged token's lifetime does not take it past the subject's exp.
func TestTokenExchangeHookCannotStretch(t *testing.T) {
	h := newHookServer(t, answerJSON(`{"commands":[{"type":"com.okta.access.patch","value":[
		{"op":"replace","path":"/token/lifetime/expiration","value":86400}]}]}`))
	e := newExchangeEnvWith(t, nil, func(o *Options) {
		o.InlineHooks = []*inlinehook.Config{{Name: "stretch", URL: h.srv.URL}}
		o.Servers["inventory"].Policies[0].Rules[0].InlineHook = "stretch"
	})
	subject := e.userToken("read")["access_token"].(string)
	e.clock.Advance(10 * time.Minute)
	s, b := e.exchange(inventoryEP, "api1", subject, nil)
	if s != http.StatusOK || len(h.calls0()) != 1 {
		t.Fatalf("exchange: %d %v (hook calls %d)", s, b, len(h.calls0()))
	}
	if p := payload(t, b["access_token"].(string)); p["exp"] != payload(t, subject)["exp"] || b["expires_in"] != float64(50*60) {
		t.Fatalf("exp %v expires_in %v: the hook stretched the token past its subject (exp %v)", p["exp"], b["expires_in"], payload(t, subject)["exp"])
	}
}
