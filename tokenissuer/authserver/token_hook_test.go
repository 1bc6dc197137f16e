package authserver

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/duration"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/claims"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/inlinehook"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

const (
	hookBase   = "https://id.example.com"
	hookSecret = "Bearer hook-s3cret-value"
)

// hookServer is a real HTTP service on loopback that records each call
// and answers with answer.
type hookServer struct {
	t      *testing.T
	srv    *httptest.Server
	answer http.HandlerFunc
	mu     sync.Mutex
	calls  []hookCall
}

type hookCall struct {
	header http.Header
	body   map[string]any
	raw    string
}

func newHookServer(t *testing.T, answer http.HandlerFunc) *hookServer {
	t.Helper()
	h := &hookServer{t: t, answer: answer}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		h.mu.Lock()
		h.calls = append(h.calls, hookCall{header: r.Header.Clone(), body: m, raw: string(b)})
		h.mu.Unlock()
		h.answer(w, r)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookServer) calls0() []hookCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookCall(nil), h.calls...)
}

// answerJSON answers 200 with body.
func answerJSON(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	}
}

// newHookEnv is the flow environment whose rule runs hook h (named
// "enrich"), with a custom access claim tier="gold" and a System Log.
func newTokenHookEnv(t *testing.T, hookURL string, tweak func(*inlinehook.Config)) (*flowEnv, *memEventLog) {
	t.Helper()
	el := &memEventLog{}
	cfg := &inlinehook.Config{Name: "enrich", URL: hookURL, Authorization: hookSecret, Headers: map[string]string{"X-Tenant": "acme"}}
	if tweak != nil {
		tweak(cfg)
	}
	e := newFlowEnvWith(t, hookBase, func(o *Options) {
		o.InlineHooks = []*inlinehook.Config{cfg}
		o.EventLog = el
		sc := o.Servers["default"]
		sc.Claims = []*claims.Claim{{Name: "tier", Value: `"gold"`}}
		r := sc.Policies[0].Rules[0]
		r.InlineHook = "enrich"
		r.GrantTypes = append(r.GrantTypes, GrantPassword)
	}, nil)
	return e, el
}

// cc is a client_credentials grant of scope read by svc.
func (e *flowEnv) cc() (int, map[string]any) {
	e.t.Helper()
	return e.post(tokenEP, "svc", url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}})
}

// codeTokens redeems a code (openid read offline_access) as web.
func (e *flowEnv) codeTokens() (int, map[string]any) {
	e.t.Helper()
	return e.redeem("web", e.code("web", webCB, ""), webCB, "")
}

func lifetimeOf(c map[string]any) int64 {
	return int64(c["exp"].(float64) - c["iat"].(float64))
}

func hookEvents(t *testing.T, e *flowEnv, el *memEventLog) (executed, processed []store.LogEvent) {
	t.Helper()
	e.iss.StopEvents()
	all := el.all()
	return ofType(all, EventHookExecuted), ofType(all, EventHookProcessed)
}

// TestTokenHookRequestBody: the hook gets Okta's request body and the
// configured headers, once per grant, and no secret of the request.
func TestTokenHookRequestBody(t *testing.T) {
	h := newHookServer(t, answerJSON(`{}`))
	e, _ := newTokenHookEnv(t, h.srv.URL+"/okta/token?k=v", nil)

	status, body := e.cc()
	if status != http.StatusOK || body["access_token"] == nil {
		t.Fatalf("client_credentials: %d %v", status, body)
	}
	status, body = e.codeTokens()
	if status != http.StatusOK || body["id_token"] == nil || body["refresh_token"] == nil {
		t.Fatalf("authorization_code: %d %v", status, body)
	}
	status, _ = e.post(tokenEP, "web", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {body["refresh_token"].(string)}})
	if status != http.StatusOK {
		t.Fatalf("refresh: %d", status)
	}
	calls := h.calls0()
	if len(calls) != 3 {
		t.Fatalf("%d hook calls for 3 grants, want one each", len(calls))
	}
	for _, c := range calls {
		if c.header.Get("Authorization") != hookSecret || c.header.Get("X-Tenant") != "acme" ||
			c.header.Get("Content-Type") != "application/json" || c.header.Get("Accept") != "application/json" {
			t.Errorf("headers %v", c.header)
		}
		for _, secret := range []string{"svc-secret", "web-secret", body["refresh_token"].(string)} {
			if strings.Contains(c.raw, secret) {
				t.Errorf("the hook request holds a secret of the token request: %s", c.raw)
			}
		}
	}

	cc := calls[0].body
	for k, want := range map[string]any{"source": hookBase + "/oauth2/default/v1/token", "eventType": "com.okta.oauth2.tokens.transform",
		"eventTypeVersion": "1.0", "cloudEventVersion": "0.1", "contentType": "application/json"} {
		if cc[k] != want {
			t.Errorf("%s = %v, want %v", k, cc[k], want)
		}
	}
	if id, _ := cc["eventId"].(string); id == "" {
		t.Error("no eventId")
	}
	if _, err := time.Parse(time.RFC3339, cc["eventTime"].(string)); err != nil {
		t.Errorf("eventTime: %v", err)
	}
	data := cc["data"].(map[string]any)
	ctx := data["context"].(map[string]any)
	req := ctx["request"].(map[string]any)
	if req["method"] != "POST" || req["url"].(map[string]any)["value"] != hookBase+"/oauth2/default/v1/token" || req["ipAddress"] == "" || req["id"] == "" {
		t.Errorf("context.request %v", req)
	}
	proto := ctx["protocol"].(map[string]any)
	if proto["type"] != "OAUTH2.0" || proto["issuer"].(map[string]any)["uri"] != hookBase+"/oauth2/default" {
		t.Errorf("context.protocol %v", proto)
	}
	if r := proto["request"].(map[string]any); r["grant_type"] != "client_credentials" || r["scope"] != "read" || r["client_id"] != "svc" {
		t.Errorf("protocol.request %v", r)
	}
	if c := proto["client"].(map[string]any); c["id"] != "svc" || c["type"] != "CONFIDENTIAL" {
		t.Errorf("protocol.client %v", c)
	}
	if p := ctx["policy"].(map[string]any); p["id"] != "p" || p["rule"].(map[string]any)["id"] != "r" {
		t.Errorf("context.policy %v", p)
	}
	if ctx["user"] != nil || ctx["session"] != nil || data["identity"] != nil {
		t.Errorf("client_credentials has no user, session or ID token: %v", data)
	}
	access := data["access"].(map[string]any)
	ac := access["claims"].(map[string]any)
	if ac["cid"] != "svc" || ac["sub"] != "svc" || ac["aud"] != "api://default" || ac["ver"] != float64(1) || ac["tier"] != "gold" {
		t.Errorf("access.claims %v", ac)
	}
	if exp := access["token"].(map[string]any)["lifetime"].(map[string]any)["expiration"]; exp != float64(3600) {
		t.Errorf("access.token.lifetime.expiration %v, want 3600", exp)
	}
	if sc := access["scopes"].(map[string]any)["read"].(map[string]any); sc["action"] != "GRANT" || sc["id"] != "read" {
		t.Errorf("access.scopes %v", access["scopes"])
	}

	code := calls[1].body["data"].(map[string]any)
	ctx = code["context"].(map[string]any)
	if u := ctx["user"].(map[string]any); u["id"] != "u1" || u["profile"].(map[string]any)["login"] != "alice@example.com" {
		t.Errorf("context.user %v", u)
	}
	if s := ctx["session"].(map[string]any); s["userId"] != "u1" || s["login"] != "alice@example.com" || s["status"] != "ACTIVE" {
		t.Errorf("context.session %v", s)
	}
	if c := ctx["protocol"].(map[string]any)["client"].(map[string]any); c["id"] != "web" || c["name"] != "Web App" {
		t.Errorf("protocol.client %v", c)
	}
	identity := code["identity"].(map[string]any)
	if ic := identity["claims"].(map[string]any); ic["sub"] != "u1" || ic["aud"] != "web" || ic["iss"] != hookBase+"/oauth2/default" || ic["at_hash"] != nil {
		t.Errorf("identity.claims %v", ic)
	}
	if exp := identity["token"].(map[string]any)["lifetime"].(map[string]any)["expiration"]; exp != float64(IDTokenLifetime/time.Second) {
		t.Errorf("identity lifetime %v", exp)
	}
	if g := calls[2].body["data"].(map[string]any)["context"].(map[string]any)["protocol"].(map[string]any)["request"].(map[string]any)["grant_type"]; g != "refresh_token" {
		t.Errorf("refresh call grant_type %v", g)
	}
}

// TestTokenHookCommands: each command of an answer is applied to the
// tokens that are signed.
func TestTokenHookCommands(t *testing.T) {
	answer := `{"commands":[
		{"type":"com.okta.access.patch","value":[
			{"op":"add","path":"/claims/patient","value":"1234"},
			{"op":"replace","path":"/claims/tier","value":"platinum"},
			{"op":"add","path":"/claims/perms","value":["read","write"]},
			{"op":"add","path":"/claims/perms/-","value":"admin"},
			{"op":"remove","path":"/claims/perms/0"},
			{"op":"replace","path":"/claims/sub","value":"alice-at-hook"},
			{"op":"replace","path":"/token/lifetime/expiration","value":600}]},
		{"type":"com.okta.identity.patch","value":[
			{"op":"add","path":"/claims/profile_ext","value":{"employee_id":"e1","email":"a@x.test"}},
			{"op":"add","path":"/claims/profile_ext/department_id","value":"4947"},
			{"op":"replace","path":"/claims/profile_ext/employee_id","value":"e2"},
			{"op":"remove","path":"/claims/profile_ext/email","value":null},
			{"op":"replace","path":"/token/lifetime/expiration","value":900}]}],
		"debugContext":{"took":"5ms"}}`
	h := newHookServer(t, answerJSON(answer))
	e, el := newTokenHookEnv(t, h.srv.URL, nil)
	status, body := e.codeTokens()
	if status != http.StatusOK {
		t.Fatalf("%d %v", status, body)
	}
	at := claimsOf(t, body["access_token"].(string))
	if at["patient"] != "1234" || at["tier"] != "platinum" || at["sub"] != "alice-at-hook" || at["uid"] != "u1" || at["cid"] != "web" {
		t.Errorf("access token %v", at)
	}
	if p, _ := json.Marshal(at["perms"]); string(p) != `["write","admin"]` {
		t.Errorf("perms %s", p)
	}
	if lifetimeOf(at) != 600 || body["expires_in"] != float64(600) {
		t.Errorf("access lifetime %d, expires_in %v: want 600", lifetimeOf(at), body["expires_in"])
	}
	id := claimsOf(t, body["id_token"].(string))
	if p, _ := json.Marshal(id["profile_ext"]); string(p) != `{"department_id":"4947","employee_id":"e2"}` {
		t.Errorf("ID token profile_ext %s", p)
	}
	if lifetimeOf(id) != 900 || id["sub"] != "u1" || id["at_hash"] == nil {
		t.Errorf("ID token %v", id)
	}
	// The refresh token still works after a hook changed the access
	// token's lifetime.
	if status, _ := e.post(tokenEP, "web", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {body["refresh_token"].(string)}}); status != http.StatusOK {
		t.Errorf("refresh: %d", status)
	}
	executed, processed := hookEvents(t, e, el)
	if len(executed) != 2 || len(processed) != 2 {
		t.Fatalf("%d executed, %d processed events, want 2 each", len(executed), len(processed))
	}
	ev := processed[0]
	if ev.Outcome.Result != "SUCCESS" || ev.DebugContext.DebugData["debugContext"] != `{"took":"5ms"}` {
		t.Errorf("processed event %+v %v", ev.Outcome, ev.DebugContext.DebugData)
	}
	if tg := targetOf(ev, "InlineHook"); tg == nil || tg.ID != "enrich" || tg.DetailEntry["inlineHookType"] != inlinehook.EventType {
		t.Errorf("target %+v", tg)
	}
	if ex := executed[0]; ex.Outcome.Result != "SUCCESS" || ex.DebugContext.DebugData["inlineHookResponseStatus"] != 200 {
		t.Errorf("executed event %+v %v", ex.Outcome, ex.DebugContext.DebugData)
	}
}

// TestTokenHookRefusedPatches: an answer one of whose operations
// cannot be applied is ignored whole (Okta: "the entire PATCH fails"),
// the tokens are issued as planned, and the failure is logged.
func TestTokenHookRefusedPatches(t *testing.T) {
	marker := `{"op":"add","path":"/claims/marker","value":true}`
	for _, tc := range []struct {
		name, cmds string
		code       bool // authorization_code (an ID token) instead of client_credentials
	}{
		{"reserved access claim", `{"type":"com.okta.access.patch","value":[` + marker + `,{"op":"replace","path":"/claims/scp","value":["admin"]}]}`, false},
		{"reserved access claim added", `{"type":"com.okta.access.patch","value":[` + marker + `,{"op":"add","path":"/claims/cid","value":"x"}]}`, false},
		{"reserved ID claim", `{"type":"com.okta.access.patch","value":[` + marker + `]},{"type":"com.okta.identity.patch","value":[{"op":"replace","path":"/claims/sub","value":"x"}]}`, true},
		{"scope added (the gateway refuses scp with scope)", `{"type":"com.okta.access.patch","value":[` + marker + `,{"op":"add","path":"/claims/scope","value":"admin"}]}`, false},
		{"nbf added", `{"type":"com.okta.access.patch","value":[` + marker + `,{"op":"add","path":"/claims/nbf","value":4102444800}]}`, false},
		{"client_id added", `{"type":"com.okta.access.patch","value":[` + marker + `,{"op":"add","path":"/claims/client_id","value":"other"}]}`, false},
		{"actor claim added", `{"type":"com.okta.access.patch","value":[` + marker + `,{"op":"add","path":"/claims/act","value":{"sub":"admin"}}]}`, false},
		{"nested in a reserved claim", `{"type":"com.okta.access.patch","value":[` + marker + `,{"op":"add","path":"/claims/scp/-","value":"admin"}]}`, false},
		{"access aud removed", `{"type":"com.okta.access.patch","value":[` + marker + `,{"op":"remove","path":"/claims/aud"}]}`, false},
		{"access sub not a string", `{"type":"com.okta.access.patch","value":[` + marker + `,{"op":"replace","path":"/claims/sub","value":7}]}`, false},
		{"replace a claim not in the token", `{"type":"com.okta.access.patch","value":[` + marker + `,{"op":"replace","path":"/claims/nosuch","value":1}]}`, false},
		{"remove a claim not in the token", `{"type":"com.okta.access.patch","value":[` + marker + `,{"op":"remove","path":"/claims/nosuch"}]}`, false},
		{"remove with a value", `{"type":"com.okta.access.patch","value":[` + marker + `,{"op":"remove","path":"/claims/tier","value":"x"}]}`, false},
		{"member of a missing object", `{"type":"com.okta.access.patch","value":[` + marker + `,{"op":"add","path":"/claims/nosuch/x","value":1}]}`, false},
		{"array index out of range", `{"type":"com.okta.access.patch","value":[` + marker + `,{"op":"add","path":"/claims/l","value":[1]},{"op":"add","path":"/claims/l/3","value":2}]}`, false},
		{"unknown op", `{"type":"com.okta.access.patch","value":[` + marker + `,{"op":"move","path":"/claims/tier","value":"x"}]}`, false},
		{"bad path", `{"type":"com.okta.access.patch","value":[` + marker + `,{"op":"add","path":"/token/other","value":1}]}`, false},
		{"unknown command", `{"type":"com.okta.access.patch","value":[` + marker + `]},{"type":"com.okta.user.patch","value":[]}`, false},
		{"ID token patch without an ID token", `{"type":"com.okta.access.patch","value":[` + marker + `]},{"type":"com.okta.identity.patch","value":[{"op":"add","path":"/claims/x","value":1}]}`, false},
		{"lifetime too short", `{"type":"com.okta.access.patch","value":[` + marker + `,{"op":"replace","path":"/token/lifetime/expiration","value":299}]}`, false},
		{"lifetime too long", `{"type":"com.okta.access.patch","value":[` + marker + `,{"op":"replace","path":"/token/lifetime/expiration","value":86401}]}`, false},
		{"lifetime added", `{"type":"com.okta.access.patch","value":[` + marker + `,{"op":"add","path":"/token/lifetime/expiration","value":600}]}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHookServer(t, answerJSON(`{"commands":[`+tc.cmds+`]}`))
			e, el := newTokenHookEnv(t, h.srv.URL, nil)
			var status int
			var body map[string]any
			if tc.code {
				status, body = e.codeTokens()
			} else {
				status, body = e.cc()
			}
			if status != http.StatusOK {
				t.Fatalf("%d %v: a patch that fails must not deny the request", status, body)
			}
			at := claimsOf(t, body["access_token"].(string))
			if at["marker"] != nil || at["tier"] != "gold" || lifetimeOf(at) != 3600 || at["aud"] != "api://default" {
				t.Errorf("the access token was changed by a failed patch: %v", at)
			}
			if tc.code {
				if id := claimsOf(t, body["id_token"].(string)); id["sub"] != "u1" {
					t.Errorf("ID token %v", id)
				}
			}
			_, processed := hookEvents(t, e, el)
			if len(processed) != 1 || processed[0].Outcome.Result != "FAILURE" || *processed[0].Outcome.Reason != inlinehook.FailPatch {
				t.Fatalf("processed events %+v", processed)
			}
			// The patch failed for the reason the case names.
			if want, ok := map[string]string{"nested in a reserved claim": `claim "scp" is reserved`}[tc.name]; ok {
				if detail, _ := processed[0].DebugContext.DebugData["detail"].(string); !strings.Contains(detail, want) {
					t.Errorf("detail %q, want %q", detail, want)
				}
			}
		})
	}
}

// TestTokenHookErrorDenies: an error object denies the request with
// Okta's answer: server_error and the errorSummary.
func TestTokenHookErrorDenies(t *testing.T) {
	for _, tc := range []struct{ answer, want string }{
		{`{"error":{"errorSummary":"Patient record not found"},"commands":[{"type":"com.okta.access.patch","value":[{"op":"add","path":"/claims/x","value":1}]}]}`, "Patient record not found"},
		{`{"error":{}}`, "The callback service returned an error"},
	} {
		h := newHookServer(t, answerJSON(tc.answer))
		e, el := newTokenHookEnv(t, h.srv.URL, nil)
		status, body := e.cc()
		if status != http.StatusInternalServerError || body["error"] != "server_error" || body["error_description"] != tc.want || body["access_token"] != nil {
			t.Errorf("%s: %d %v, want server_error %q", tc.answer, status, body, tc.want)
		}
		executed, processed := hookEvents(t, e, el)
		if len(executed) != 1 || executed[0].Outcome.Result != "SUCCESS" {
			t.Errorf("executed %+v", executed)
		}
		if len(processed) != 1 || processed[0].Outcome.Result != "FAILURE" || *processed[0].Outcome.Reason != inlinehook.FailError ||
			processed[0].DebugContext.DebugData["detail"] != tc.want {
			t.Errorf("processed %+v", processed)
		}
		if n := len(ofType(el.all(), "app.oauth2.as.token.grant")); n != 1 {
			t.Errorf("%d denied-grant events, want 1", n)
		}
	}
}

// TestTokenHookFailuresIssueUnchanged: a hook that is late, down,
// answers other than 200, too much or not JSON is skipped: the token is
// issued as planned (Okta: "The Okta process flow continues with the
// original token returned") and the failure is logged.
func TestTokenHookFailuresIssueUnchanged(t *testing.T) {
	patch := `{"commands":[{"type":"com.okta.access.patch","value":[{"op":"add","path":"/claims/marker","value":true}]}]}`
	big := `{"commands":[],"debugContext":{"pad":"` + strings.Repeat("x", inlinehook.MaxResponseSize) + `"}}`
	down := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return "http://" + addr + "/hook"
	}
	for _, tc := range []struct {
		name     string
		answer   http.HandlerFunc // nil: nobody listens
		executed string           // executed outcome
		reason   string
		attempts int
	}{
		{"timeout", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, "FAILURE", inlinehook.FailTimeout, 1},
		{"connection refused", nil, "FAILURE", inlinehook.FailUnreachable, 2},
		{"server error, retried once", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) }, "FAILURE", inlinehook.FailStatus, 2},
		{"client error, not retried", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusUnauthorized) }, "FAILURE", inlinehook.FailStatus, 1},
		{"204 is not 200", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }, "FAILURE", inlinehook.FailStatus, 1},
		{"redirect not followed", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/moved" {
				answerJSON(patch)(w, r)
				return
			}
			http.Redirect(w, r, "/moved", http.StatusFound)
		}, "FAILURE", inlinehook.FailStatus, 2},
		{"oversized answer", answerJSON(big), "SUCCESS", inlinehook.FailTooLarge, 1},
		{"malformed answer", answerJSON(`{"commands": [`), "SUCCESS", inlinehook.FailMalformed, 1},
		{"not an object", answerJSON(`["commands"]`), "SUCCESS", inlinehook.FailMalformed, 1},
		{"trailing data", answerJSON(patch + `{}`), "SUCCESS", inlinehook.FailMalformed, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hookURL := ""
			var h *hookServer
			if tc.answer == nil {
				hookURL = down()
			} else {
				h = newHookServer(t, tc.answer)
				hookURL = h.srv.URL + "/hook"
			}
			e, el := newTokenHookEnv(t, hookURL, func(c *inlinehook.Config) { c.Timeout = duration.Duration(300 * time.Millisecond) })
			start := time.Now()
			status, body := e.cc()
			if status != http.StatusOK {
				t.Fatalf("%d %v: a failed hook must not deny the request", status, body)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("the grant took %s with a 300ms hook timeout", took)
			}
			at := claimsOf(t, body["access_token"].(string))
			if at["marker"] != nil || at["tier"] != "gold" || lifetimeOf(at) != 3600 {
				t.Errorf("access token %v", at)
			}
			if h != nil && tc.attempts == 1 && len(h.calls0()) != 1 {
				t.Errorf("%d calls, want 1", len(h.calls0()))
			}
			executed, processed := hookEvents(t, e, el)
			if len(executed) != 1 || executed[0].Outcome.Result != tc.executed {
				t.Fatalf("executed events %+v", executed)
			}
			debug := executed[0].DebugContext.DebugData
			if debug["attempts"] != tc.attempts {
				t.Errorf("attempts %v, want %d", debug["attempts"], tc.attempts)
			}
			reason := ""
			if tc.executed == "FAILURE" {
				reason = *executed[0].Outcome.Reason
				if len(processed) != 0 {
					t.Errorf("no answer, but %d processed events", len(processed))
				}
			} else {
				if len(processed) != 1 || processed[0].Outcome.Result != "FAILURE" {
					t.Fatalf("processed events %+v", processed)
				}
				reason = *processed[0].Outcome.Reason
			}
			if reason != tc.reason {
				t.Errorf("reason %q, want %q", reason, tc.reason)
			}
		})
	}
}

// TestTokenHookSecretNotLogged: the authorization header and the
// headers' values are in neither log.
func TestTokenHookSecretNotLogged(t *testing.T) {
	h := newHookServer(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	e, el := newTokenHookEnv(t, h.srv.URL+"/hook?api_key=query-secret", nil)
	if status, _ := e.cc(); status != http.StatusOK {
		t.Fatal(status)
	}
	e.iss.StopEvents()
	b, _ := json.Marshal(el.all())
	var logs strings.Builder
	for _, l := range e.logs.All() {
		logs.WriteString(l.Message)
		for k, v := range l.ContextMap() {
			logs.WriteString(k)
			logs.WriteString(stringOf(v))
		}
	}
	if !strings.Contains(string(b), EventHookExecuted) || !strings.Contains(logs.String(), EventHookExecuted) {
		t.Fatal("no hook events logged")
	}
	for _, secret := range []string{"hook-s3cret-value", "query-secret", "acme"} {
		if strings.Contains(string(b), secret) || strings.Contains(logs.String(), secret) {
			t.Errorf("a log holds %q", secret)
		}
	}
}

func stringOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestTokenHookConfig: hooks are checked when the issuer is built.
func TestTokenHookConfig(t *testing.T) {
	build := func(hooks []*inlinehook.Config, ruleHook string) error {
		_, err := New(Options{BaseURL: hookBase, InlineHooks: hooks,
			Servers: map[string]*ServerConfig{"default": {Policies: newPolicyWithHook(ruleHook)}}})
		return err
	}
	for _, tc := range []struct {
		name     string
		hooks    []*inlinehook.Config
		ruleHook string
		want     string
	}{
		{"unknown hook in a rule", nil, "nosuch", `authorization server "default": policy "p": rule "r": unknown inline hook "nosuch"`},
		{"plain http to another host", []*inlinehook.Config{{Name: "h", URL: "http://hooks.example.com/x"}}, "h", `inline hook "h": url "http://hooks.example.com/x" must use https`},
		{"relative url", []*inlinehook.Config{{Name: "h", URL: "/hook"}}, "", "must be an absolute https URL"},
		{"user info in the url", []*inlinehook.Config{{Name: "h", URL: "https://u:p@hooks.example.com/"}}, "", "must have no user info"},
		{"timeout over Okta's", []*inlinehook.Config{{Name: "h", URL: "https://hooks.example.com/", Timeout: duration.Duration(4 * time.Second)}}, "", "at most 3s"},
		{"defined twice", []*inlinehook.Config{{Name: "h", URL: "https://a.test/"}, {Name: "h", URL: "https://b.test/"}}, "", `inline hook "h": defined twice`},
		{"no name", []*inlinehook.Config{{URL: "https://a.test/"}}, "", "name is required"},
		{"reserved header", []*inlinehook.Config{{Name: "h", URL: "https://a.test/", Headers: map[string]string{"Content-Type": "x"}}}, "", `header "Content-Type" cannot be set`},
	} {
		err := build(tc.hooks, tc.ruleHook)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
	for _, u := range []string{"https://hooks.example.com/okta", "http://localhost:8080/h", "http://127.0.0.1:1/h", "http://[::1]:9/h"} {
		if err := build([]*inlinehook.Config{{Name: "h", URL: u}}, "h"); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	iss, err := New(Options{BaseURL: hookBase, InlineHooks: []*inlinehook.Config{{Name: "h", URL: "https://a.test/"}},
		Servers: map[string]*ServerConfig{"default": {Policies: newPolicyWithHook("h")}}})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := iss.Server("default")
	rule := s.policies.Policies()[0].Rules[0]
	if name := s.hookFor(rule); name != "h" {
		t.Errorf("hookFor = %q", name)
	}
	if name := s.hookFor(&policyRuleNoHook); name != "" {
		t.Errorf("hookFor without a hook = %q", name)
	}
	if s.retention < inlinehook.MaxLifetime {
		t.Errorf("keys are kept %s, less than the 24h a hook may give a token", s.retention)
	}
}

var policyRuleNoHook = policy.Rule{Name: "x"}

func newPolicyWithHook(hook string) []*policy.Policy {
	return []*policy.Policy{{Name: "p", Clients: []string{"*"}, Rules: []*policy.Rule{
		{Name: "r", GrantTypes: []string{GrantClientCredentials}, Scopes: []string{"*"}, InlineHook: hook}}}}
}
