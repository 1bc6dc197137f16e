package authserver

import (
	"context"
	"encoding/json"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/duration"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/inlinehook"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// TestTokenHookAudRevocable: a token whose aud the hook replaced (Okta
// allows it in access tokens) is still this server's: revocation marks
// and publishes it, introspection answers it active with its new aud,
// then inactive; userinfo takes it.
func TestTokenHookAudRevocable(t *testing.T) {
	h := newHookServer(t, answerJSON(`{"commands":[{"type":"com.okta.access.patch","value":[
		{"op":"replace","path":"/claims/aud","value":"api://patients"}]}]}`))
	e, _ := newTokenHookEnv(t, h.srv.URL, nil)
	status, body := e.codeTokens()
	if status != http.StatusOK {
		t.Fatalf("%d %v", status, body)
	}
	tok := body["access_token"].(string)
	at := claimsOf(t, tok)
	if at["aud"] != "api://patients" {
		t.Fatalf("aud %v: the hook's patch was not applied", at["aud"])
	}
	jti := at["jti"].(string)
	status, intro := e.post("/oauth2/default/v1/introspect", "web", url.Values{"token": {tok}})
	if status != http.StatusOK || intro["active"] != true || intro["aud"] != "api://patients" || intro["jti"] != jti {
		t.Fatalf("introspection: %d %v, want active with aud api://patients", status, intro)
	}
	if got := e.userinfo(tok); got != http.StatusOK {
		t.Errorf("userinfo: %d", got)
	}
	e.revoke("web", tok)
	if marked, err := e.st.Marked(context.Background(), store.NSRevoked, jti); err != nil || !marked {
		t.Errorf("NSRevoked mark: %v %v", marked, err)
	}
	if !e.iss.RevocationView().Revoked(jti, "", "", "", time.Time{}) {
		t.Error("the revocation was not published")
	}
	if e.active(tok) {
		t.Error("introspection: active after revocation")
	}
	if got := e.userinfo(tok); got != http.StatusUnauthorized {
		t.Errorf("userinfo after revocation: %d", got)
	}
}

// TestTokenHookTokenTooLarge: a patch that would make the access token
// larger than this server's own endpoints read is refused like any
// failed patch: the token is issued as planned, the failure logged.
func TestTokenHookTokenTooLarge(t *testing.T) {
	h := newHookServer(t, answerJSON(`{"commands":[{"type":"com.okta.access.patch","value":[
		{"op":"add","path":"/claims/marker","value":true},
		{"op":"add","path":"/claims/blob","value":"`+strings.Repeat("x", 9000)+`"}]}]}`))
	e, el := newTokenHookEnv(t, h.srv.URL, nil)
	status, body := e.cc()
	if status != http.StatusOK {
		t.Fatalf("%d %v", status, body)
	}
	tok := body["access_token"].(string)
	at := claimsOf(t, tok)
	if at["blob"] != nil || at["marker"] != nil || at["tier"] != "gold" || len(tok) > maxTokenBytes {
		t.Errorf("the oversized patch was applied: %d bytes", len(tok))
	}
	_, processed := hookEvents(t, e, el)
	if len(processed) != 1 || processed[0].Outcome.Result != "FAILURE" || *processed[0].Outcome.Reason != inlinehook.FailPatch ||
		!strings.Contains(stringOf(processed[0].DebugContext.DebugData["detail"]), "bytes") {
		t.Fatalf("processed events %+v", processed)
	}
	// Just under the bound is applied, and the token stays revocable.
	e2, _ := newTokenHookEnv(t, newHookServer(t, answerJSON(`{"commands":[{"type":"com.okta.access.patch","value":[
		{"op":"add","path":"/claims/blob","value":"`+strings.Repeat("x", 4000)+`"}]}]}`)).srv.URL, nil)
	_, body = e2.cc()
	if tok := body["access_token"].(string); claimsOf(t, tok)["blob"] == nil || !e2.active(tok) {
		t.Errorf("a 4000-byte claim (%d-byte token) was refused or is not introspectable", len(tok))
	}
}

// TestTokenHookCodeReplayLifetime: the code's record keeps the issued
// access token's own exp, which the hook lengthened, so the revocation
// on replay lasts as long as the token.
func TestTokenHookCodeReplayLifetime(t *testing.T) {
	h := newHookServer(t, answerJSON(`{"commands":[{"type":"com.okta.access.patch","value":[
		{"op":"replace","path":"/token/lifetime/expiration","value":86400}]}]}`))
	e, _ := newTokenHookEnv(t, h.srv.URL, nil)
	code := e.code("web", webCB, "")
	status, body := e.redeem("web", code, webCB, "")
	if status != http.StatusOK {
		t.Fatalf("%d %v", status, body)
	}
	at := claimsOf(t, body["access_token"].(string))
	if lifetimeOf(at) != 86400 {
		t.Fatalf("lifetime %d, want the hook's 86400", lifetimeOf(at))
	}
	raw, err := e.st.GetRecord(context.Background(), store.NSCode, refreshHash(code))
	if err != nil {
		t.Fatal(err)
	}
	var g codeGrant
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	if g.IssuedExp.Unix() != int64(at["exp"].(float64)) {
		t.Errorf("the code records exp %s, the token's is %d", g.IssuedExp, int64(at["exp"].(float64)))
	}
	// A replay revokes it.
	if status, _ := e.redeem("web", code, webCB, ""); status != http.StatusBadRequest {
		t.Fatalf("replay: %d", status)
	}
	if e.active(body["access_token"].(string)) {
		t.Error("the replayed code's token is active")
	}
}

// TestTokenHookSecretNotLoggedOtherPaths: a transport error and a
// refused patch log neither the secret header, a header value nor the
// URL's query.
func TestTokenHookSecretNotLoggedOtherPaths(t *testing.T) {
	down := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return "http://" + addr + "/hook?api_key=query-secret"
	}
	patchFails := newHookServer(t, answerJSON(`{"commands":[{"type":"com.okta.access.patch","value":[{"op":"replace","path":"/claims/nosuch","value":"hook-s3cret-value"}]}]}`))
	for name, u := range map[string]string{"transport error": down(), "patch failure": patchFails.srv.URL + "/hook?api_key=query-secret"} {
		t.Run(name, func(t *testing.T) {
			e, el := newTokenHookEnv(t, u, nil)
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
		})
	}
}

// TestTokenHookBodyTimeout: a service that answers 200 and then stalls
// in its body times out: the token is issued as planned, and the call
// is logged as a timeout.
func TestTokenHookBodyTimeout(t *testing.T) {
	h := newHookServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"commands":[`))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	e, el := newTokenHookEnv(t, h.srv.URL, func(c *inlinehook.Config) { c.Timeout = duration.Duration(300 * time.Millisecond) })
	status, body := e.cc()
	if status != http.StatusOK {
		t.Fatalf("%d %v", status, body)
	}
	if at := claimsOf(t, body["access_token"].(string)); at["tier"] != "gold" || lifetimeOf(at) != 3600 {
		t.Errorf("access token %v", at)
	}
	executed, processed := hookEvents(t, e, el)
	if len(executed) != 1 || executed[0].Outcome.Result != "FAILURE" || *executed[0].Outcome.Reason != inlinehook.FailTimeout || len(processed) != 0 {
		t.Fatalf("executed %+v, processed %+v", executed, processed)
	}
	if n := len(h.calls0()); n != 1 {
		t.Errorf("%d calls: a timeout is not retried", n)
	}
}

// TestTokenHookRequestNotEncoded: a planned claim that cannot be
// encoded (NaN: no grant produces one today) makes no call, so no
// inline_hook.executed event claims a SUCCESS; an error is logged and
// the mint is left as planned.
func TestTokenHookRequestNotEncoded(t *testing.T) {
	h := newHookServer(t, answerJSON(`{}`))
	e, el := newTokenHookEnv(t, h.srv.URL, nil)
	s, _ := e.iss.Server("default")
	rule := s.policies.Policies()[0].Rules[0]
	m := &mint{access: accessClaims{Cid: "svc", Sub: "svc", Aud: "api://default", Iat: 1, Exp: 3601},
		id: map[string]any{"iat": int64(1), "exp": int64(301), "bad": math.NaN()}}
	r := httptest.NewRequest(http.MethodPost, "/oauth2/default/v1/token", nil)
	d := &decision{server: s, clientID: "svc"}
	if e := e.iss.runTokenHook(r, s, e.iss.clientByID("svc"), nil, grantInfo{rule: rule, grant: GrantClientCredentials}, d, m); e != nil {
		t.Fatalf("denied: %v", e)
	}
	if n := len(h.calls0()); n != 0 {
		t.Errorf("%d calls", n)
	}
	executed, processed := hookEvents(t, e, el)
	if len(executed) != 0 || len(processed) != 0 {
		t.Errorf("%d executed, %d processed events: no call was made", len(executed), len(processed))
	}
	if n := e.logs.FilterMessage("inline hook skipped: the request does not encode").Len(); n != 1 {
		t.Errorf("%d error logs", n)
	}
	if m.access.Exp != 3601 || m.id["exp"] != int64(301) {
		t.Errorf("the mint changed: %+v", m)
	}
}

// TestAccessViewClaims: the hook's view of the access token and the
// preview's (one function) keep iat, exp and auth_time integers, add the
// custom claims and never let a custom claim take a registered name
// (signAccess would write it twice).
func TestAccessViewClaims(t *testing.T) {
	m := &mint{access: accessClaims{Ver: 1, Cid: "svc", Sub: "svc", Aud: "api://default", Iat: 1700000000, Exp: 1700003600, AuthTime: 1699999999},
		custom: map[string]any{"tier": "gold", "iss": "https://evil.example", "sub": "someone"}}
	v, err := accessView(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"iat", "exp", "auth_time"} {
		if n, ok := v.Claims[k].(json.Number); !ok {
			t.Errorf("%s is %T %v, want an integer json.Number", k, v.Claims[k], v.Claims[k])
		} else if _, err := n.Int64(); err != nil {
			t.Errorf("%s = %s: %v", k, n, err)
		}
	}
	if v.Claims["tier"] != "gold" || v.Claims["iss"] != "" || v.Claims["sub"] != "svc" || v.Lifetime != 3600 {
		t.Errorf("claims %v lifetime %d", v.Claims, v.Lifetime)
	}
	at, err := accessClaimMap(m.access, m.custom)
	if err != nil || !reflect.DeepEqual(at, v.Claims) {
		t.Errorf("the preview's view %v differs from the hook's %v (%v)", at, v.Claims, err)
	}
}
