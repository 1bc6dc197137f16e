package authserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// memEventLog is an in-memory store.EventLog for tests.
type memEventLog struct {
	mu     sync.Mutex
	events []store.LogEvent
	calls  int
}

func (m *memEventLog) AppendEvents(_ context.Context, events []store.LogEvent) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	m.events = append(m.events, events...)
	return nil
}

func (m *memEventLog) QueryEvents(context.Context, store.LogQuery) ([]store.LogEvent, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]store.LogEvent(nil), m.events...), false, nil
}

func (m *memEventLog) PurgeEvents(context.Context, time.Time) error { return nil }

func (m *memEventLog) all() []store.LogEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]store.LogEvent(nil), m.events...)
}

// ofType returns the stored events of type t.
func ofType(evs []store.LogEvent, t string) []store.LogEvent {
	var out []store.LogEvent
	for _, e := range evs {
		if e.EventType == t {
			out = append(out, e)
		}
	}
	return out
}

// one returns the only event of type t, or fails.
func one(t *testing.T, evs []store.LogEvent, typ string) store.LogEvent {
	t.Helper()
	got := ofType(evs, typ)
	if len(got) != 1 {
		var types []string
		for _, e := range evs {
			types = append(types, e.EventType)
		}
		t.Fatalf("%d %s events, want 1; events: %v", len(got), typ, types)
	}
	return got[0]
}

func targetOf(e store.LogEvent, typ string) *store.LogTarget {
	for i := range e.Target {
		if e.Target[i].Type == typ {
			return &e.Target[i]
		}
	}
	return nil
}

// noSecrets fails if any stored event, as JSON, holds one of secrets.
func noSecrets(t *testing.T, evs []store.LogEvent, secrets ...string) {
	t.Helper()
	for _, e := range evs {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if s != "" && strings.Contains(string(b), s) {
				t.Fatalf("event %s holds a secret value (%.12s...): %s", e.EventType, s, b)
			}
		}
	}
}

// TestSystemLogTokenEvents: grants, a refresh, a refresh-token reuse, a
// client_credentials grant, a revocation and key rotations become
// events with Okta's types and shape in the EventLog, and none holds a
// token, code or secret.
func TestSystemLogTokenEvents(t *testing.T) {
	el := &memEventLog{}
	e := newFlowEnvWith(t, "https://id.example.com", func(o *Options) { o.EventLog = el }, nil)

	code := e.code("web", webCB, "")
	status, tok := e.redeem("web", code, webCB, "")
	if status != 200 {
		t.Fatalf("redeem: %d %v", status, tok)
	}
	at, rt, idt := tok["access_token"].(string), tok["refresh_token"].(string), tok["id_token"].(string)
	status, next := e.refresh("web", rt)
	if status != 200 {
		t.Fatalf("refresh: %d %v", status, next)
	}
	rt2, at2 := next["refresh_token"].(string), next["access_token"].(string)
	e.revoke("web", at)
	e.clock.Advance(time.Hour) // past any leeway: the old token again is reuse
	if status, _ := e.refresh("web", rt); status != 400 {
		t.Fatalf("reused refresh token: %d", status)
	}
	// client_credentials from a client with a User-Agent.
	req := httptest.NewRequest(http.MethodPost, tokenEP, strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "okta-sdk-test/1.0")
	req.SetBasicAuth("svc", "svc-secret")
	req = req.WithContext(WithRequestID(req.Context(), func() string { return "caddy-request-uuid" }))
	w := httptest.NewRecorder()
	e.iss.ServeHTTP(w, req)
	var cc map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &cc)
	ccTok, _ := cc["access_token"].(string)
	if w.Code != 200 || ccTok == "" {
		t.Fatalf("client_credentials: %d %s", w.Code, w.Body)
	}
	if _, err := e.iss.RotateKeys(context.Background(), "default"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.iss.RotateKeys(context.Background(), OrgID); err != nil {
		t.Fatal(err)
	}
	e.iss.StopEvents()
	evs := el.all()

	// The code grant: one event per token issued, in one transaction.
	grants := ofType(evs, "app.oauth2.as.token.grant.access_token")
	if len(grants) != 3 {
		t.Fatalf("%d access-token grant events, want 3 (code, refresh, client_credentials)", len(grants))
	}
	g := grants[0]
	idEv := ofType(evs, "app.oauth2.as.token.grant.id_token")
	rtEv := ofType(evs, "app.oauth2.as.token.grant.refresh_token")
	if len(idEv) != 2 || len(rtEv) != 2 {
		t.Fatalf("%d id-token and %d refresh-token grant events, want 2 and 2 (code, refresh)", len(idEv), len(rtEv))
	}
	if g.Version != "0" || g.Severity != "INFO" || g.DisplayMessage != "OAuth2 access token is granted" || g.Outcome.Result != "SUCCESS" ||
		g.UUID == "" || g.UUID == idEv[0].UUID || g.Published.IsZero() {
		t.Fatalf("grant event header: %+v", g)
	}
	if g.Transaction == nil || g.Transaction.Type != "WEB" || g.Transaction.ID == "" || g.Transaction.ID != idEv[0].Transaction.ID || g.Transaction.ID != rtEv[0].Transaction.ID {
		t.Fatalf("the code grant's events are not one transaction: %+v %+v", g.Transaction, idEv[0].Transaction)
	}
	if g.Actor.Type != "User" || g.Actor.ID != "u1" || g.Client.IPAddress != "192.0.2.1" {
		t.Fatalf("grant actor %+v client %+v", g.Actor, g.Client)
	}
	dd := g.DebugContext.DebugData
	jti := dd["jti"].(string)
	if dd["grantType"] != "authorization_code" || dd["grantedScopes"] != "openid offline_access read" || dd["policy"] != "p" || dd["rule"] != "r" ||
		!strings.HasPrefix(jti, "AT.") || dd["clientId"] != "web" {
		t.Fatalf("grant debugData: %v", dd)
	}
	if tt := targetOf(g, "access_token"); tt == nil || tt.ID != jti {
		t.Fatalf("grant targets %+v: want the access token by jti %s", g.Target, jti)
	}
	if c := targetOf(g, "PublicClientApp"); c == nil || c.ID != "web" || c.DisplayName != "Web App" {
		t.Fatalf("grant targets %+v: want the client", g.Target)
	}
	if as := targetOf(g, "AuthorizationServer"); as == nil || as.ID != "default" || as.AlternateID != "https://id.example.com/oauth2/default" {
		t.Fatalf("grant targets %+v: want the authorization server", g.Target)
	}
	if r := targetOf(rtEv[0], "refresh_token"); r == nil || r.ID == "" || r.ID != targetOf(rtEv[1], "refresh_token").ID {
		t.Fatalf("refresh-token targets %+v %+v: want the family, the same after rotation", rtEv[0].Target, rtEv[1].Target)
	}

	// The reuse: a failed grant and Okta's detect_reuse, a warning.
	reuse := one(t, evs, "app.oauth2.as.token.detect_reuse")
	if reuse.Severity != "WARN" || reuse.Outcome.Result != "FAILURE" || *reuse.Outcome.Reason != "invalid_grant" || reuse.DebugContext.DebugData["grantType"] != "refresh_token" {
		t.Fatalf("reuse event: %+v %+v", reuse.Outcome, reuse.DebugContext)
	}
	failed := one(t, evs, "app.oauth2.as.token.grant")
	if failed.Transaction.ID != reuse.Transaction.ID || failed.Outcome.Result != "FAILURE" || failed.Severity != "WARN" {
		t.Fatalf("failed grant event: %+v", failed)
	}

	// client_credentials: the client acts; Caddy's request id and the
	// User-Agent are recorded.
	c := grants[2]
	if c.Actor.Type != "PublicClientApp" || c.Actor.ID != "svc" || c.Transaction.ID != "caddy-request-uuid" ||
		c.Client.UserAgent == nil || c.Client.UserAgent.RawUserAgent != "okta-sdk-test/1.0" || c.DebugContext.DebugData["grantType"] != "client_credentials" {
		t.Fatalf("client_credentials event: actor %+v txn %+v client %+v", c.Actor, c.Transaction, c.Client)
	}

	rev := one(t, evs, "app.oauth2.as.token.revoke")
	if rev.Outcome.Result != "SUCCESS" || rev.DebugContext.DebugData["jti"] == nil {
		t.Fatalf("revoke event: %+v", rev)
	}
	// Start created the keys, RotateKeys rotated them.
	rolls := ofType(evs, "app.oauth2.as.key.rollover")
	if len(rolls) != 2 || len(ofType(evs, "app.oauth2.key.rollover")) != 2 {
		t.Fatalf("%d key rollover events of the custom server, want 2 (created, rotated), and 2 of the org server", len(rolls))
	}
	if k := rolls[1]; k.Actor.Type != "SystemPrincipal" || k.Transaction.Type != "JOB" || k.DebugContext.DebugData["activeKid"] == "" {
		t.Fatalf("key rollover event: %+v", k)
	}

	noSecrets(t, evs, code, refreshHash(code), at, at2, rt, rt2, idt, ccTok, "web-secret", "svc-secret",
		strings.Split(at, ".")[2], strings.Split(idt, ".")[2])
}

// TestSystemLogSignInEvents: sign-in failure and success, the code it
// issues, the lockout and the sign-out are events with Okta's types;
// the session is named by a digest, never the cookie, and no password
// appears.
func TestSystemLogSignInEvents(t *testing.T) {
	el := &memEventLog{}
	e := newSignInEnv(t, embeddedStore(t), 1, nil, func(o *Options) { o.EventLog = el })
	if r := e.signIn(e.open(0), "alice@example.com", "wrong-page-pw", "203.0.113.7"); r.status != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", r.status)
	}
	ok := e.signIn(e.open(0), "alice@example.com", alicePass, "203.0.113.8")
	if !ok.session() || ok.code() == "" {
		t.Fatalf("sign-in: %d %s", ok.status, ok.location)
	}
	var sid string
	for _, c := range ok.cookies {
		if c.Name == sessionCookie {
			sid = c.Value
		}
	}
	for n := range maxUserFailures {
		e.grantFrom("alice@example.com", fmt.Sprintf("wrong-grant-%02d", n), "198.51.100.23")
	}
	e.nodes[0].StopEvents()
	evs := el.all()

	starts := ofType(evs, "user.session.start")
	if len(starts) != 2 {
		t.Fatalf("%d user.session.start events, want 2", len(starts))
	}
	bad, good := starts[0], starts[1]
	if bad.Outcome.Result != "FAILURE" || *bad.Outcome.Reason != "INVALID_CREDENTIALS" || bad.Severity != "WARN" ||
		bad.Actor.AlternateID != "alice@example.com" || bad.Client.IPAddress != "203.0.113.7" {
		t.Fatalf("failed sign-in event: outcome %+v actor %+v client %+v", bad.Outcome, bad.Actor, bad.Client)
	}
	if good.Outcome.Result != "SUCCESS" || good.DisplayMessage != "User login to Okta" || good.Actor.ID != "00u1alice" || good.Actor.Type != "User" ||
		good.AuthenticationContext == nil || good.AuthenticationContext.ExternalSessionID != sessionDigest(sid) {
		t.Fatalf("sign-in event: %+v %+v", good.Outcome, good.AuthenticationContext)
	}
	code := one(t, evs, "app.oauth2.as.authorize.code")
	if code.AuthenticationContext == nil || code.AuthenticationContext.ExternalSessionID != sessionDigest(sid) {
		t.Fatalf("authorize.code event: %+v, want the sign-in's session", code.AuthenticationContext)
	}
	lock := one(t, evs, "user.account.lock")
	if lock.Severity != "WARN" || lock.Actor.ID != "00u1alice" || lock.Client.IPAddress != "198.51.100.23" || *lock.Outcome.Reason != "Max sign in attempts exceeded" {
		t.Fatalf("lock event: %+v %+v", lock.Actor, lock.Outcome)
	}
	noSecrets(t, evs, alicePass, "wrong-page-pw", "wrong-grant-", "web-secret", sid, ok.code(), refreshHash(ok.code()))
}

// TestSystemLogSignOut: ending a session through the Sessions API is
// user.session.end, naming the session by its digest only.
func TestSystemLogSignOut(t *testing.T) {
	el := &memEventLog{}
	e := newFlowEnvWith(t, "https://id.example.com", func(o *Options) { o.EventLog = el }, nil)
	c := e.session("u1")
	w := e.api(http.MethodDelete, "/api/v1/sessions/me", "", c)
	e.iss.StopEvents()
	evs := el.all()
	end := one(t, evs, "user.session.end")
	if end.Actor.ID != "u1" || end.AuthenticationContext == nil || end.AuthenticationContext.ExternalSessionID != sessionDigest(c.Value) {
		t.Fatalf("sign-out event (answer %d): %+v %+v", w.Code, end.Actor, end.AuthenticationContext)
	}
	noSecrets(t, evs, c.Value)
}

// TestSystemLogOnEmbeddedStore: the embedded store's own EventLog keeps
// the events of a grant and a sign-in, and answers them as written.
func TestSystemLogOnEmbeddedStore(t *testing.T) {
	st := embeddedStore(t)
	el, ok := st.(store.EventLog)
	if !ok {
		t.Fatal("the embedded store keeps no System Log")
	}
	e := newFlowEnvWith(t, "https://id.example.com", func(o *Options) { o.EventLog = el }, st)
	code := e.code("web", webCB, "")
	if status, tok := e.redeem("web", code, webCB, ""); status != 200 {
		t.Fatalf("redeem: %d %v", status, tok)
	}
	e.iss.StopEvents()
	got, _, err := el.QueryEvents(context.Background(), store.LogQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	g := one(t, got, "app.oauth2.as.token.grant.access_token")
	if g.Actor.ID != "u1" || g.DebugContext.DebugData["grantType"] != "authorization_code" || targetOf(g, "access_token") == nil {
		t.Fatalf("stored grant event: %+v", g)
	}
	one(t, got, "app.oauth2.as.token.grant.id_token")
	one(t, got, "app.oauth2.as.token.grant.refresh_token")
	noSecrets(t, got, code, "web-secret")
}
