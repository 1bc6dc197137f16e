package authserver

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/apiaccess/caddy-apiaccess/internal/gatewaylog"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// TestGatewayDecisionEvents: require_token's decisions become events of
// type apiaccess.gateway.request: an allowed request names the user,
// the client, the server, the route and the token by jti; a refusal
// without a verified token names nobody; what came from the request is
// bounded and valid UTF-8.
func TestGatewayDecisionEvents(t *testing.T) {
	el := &memEventLog{}
	e := newFlowEnvWith(t, "https://id.example.com", func(o *Options) { o.EventLog = el }, nil)
	at := time.Date(2026, 12, 1, 10, 0, 0, 123456789, time.UTC)
	e.iss.RecordGatewayDecision(gatewaylog.Decision{
		Time: at, Allowed: true, Route: "billing-api", Method: "GET", Host: "api.example.com", Path: "/billing/42",
		ClientIP: "203.0.113.7", UserAgent: "curl/8", RequestID: "req-1",
		Issuer: "https://id.example.com/oauth2/default", Subject: "alice@example.com", ClientID: "web", UserID: "u1",
		JTI: "AT.abc", Scopes: []string{"read", "write"},
	})
	e.iss.RecordGatewayDecision(gatewaylog.Decision{
		Time: at.Add(time.Second), Status: 401, Reason: "bad_signature", Method: "POST", Host: "api.example.com",
		Path: "/billing/\xff" + strings.Repeat("p", 5000), ClientIP: "198.51.100.2", UserAgent: strings.Repeat("u", 2000),
		Issuer: "https://id.example.com/oauth2/default",
	})
	e.iss.RecordGatewayDecision(gatewaylog.Decision{
		Time: at.Add(2 * time.Second), Status: 403, Reason: "insufficient_scope", Method: "GET", Host: "api.example.com", Path: "/billing/42",
		Issuer: "https://id.example.com/oauth2/default", Subject: "svc", ClientID: "svc", JTI: "AT.def",
	})
	e.iss.StopEvents()
	evs := ofType(el.all(), "apiaccess.gateway.request")
	if len(evs) != 3 {
		t.Fatalf("%d gateway events, want 3", len(evs))
	}

	byReason := map[string]store.LogEvent{}
	for _, ev := range evs {
		r := ""
		if ev.Outcome.Reason != nil {
			r = *ev.Outcome.Reason
		}
		byReason[r] = ev
	}
	ok := byReason[""]
	if ok.Outcome.Result != "ALLOW" || ok.Outcome.Reason != nil || ok.Severity != "INFO" || !ok.Published.Equal(at.Truncate(time.Microsecond)) ||
		ok.Transaction.ID != "req-1" || ok.Client.IPAddress != "203.0.113.7" || ok.Client.UserAgent.RawUserAgent != "curl/8" {
		t.Fatalf("allowed event header: %+v %+v %+v", ok.Outcome, ok.Transaction, ok.Client)
	}
	if ok.Actor.Type != "User" || ok.Actor.ID != "u1" || ok.Actor.AlternateID != "alice@example.com" {
		t.Fatalf("allowed event actor: %+v", ok.Actor)
	}
	if r := targetOf(ok, "apiaccess.Route"); r == nil || r.ID != "billing-api" || r.AlternateID != "api.example.com" {
		t.Fatalf("route target: %+v", ok.Target)
	}
	if s := targetOf(ok, "AuthorizationServer"); s == nil || s.ID != "default" {
		t.Fatalf("server target: %+v", ok.Target)
	}
	if c := targetOf(ok, "PublicClientApp"); c == nil || c.ID != "web" || c.DisplayName != "Web App" {
		t.Fatalf("client target: %+v", ok.Target)
	}
	if tok := targetOf(ok, "access_token"); tok == nil || tok.ID != "AT.abc" {
		t.Fatalf("token target: %+v", ok.Target)
	}
	dd := ok.DebugContext.DebugData
	if dd["requestUri"] != "/billing/42" || dd["httpMethod"] != "GET" || dd["grantedScopes"] != "read write" || dd["jti"] != "AT.abc" ||
		dd["clientId"] != "web" || dd["authorizationServer"] != "default" || dd["statusCode"] != nil || dd["requestCount"] != "1" {
		t.Fatalf("allowed debugData: %v", dd)
	}

	bad := byReason["bad_signature"]
	if bad.Outcome.Result != "DENY" || *bad.Outcome.Reason != "bad_signature" || bad.Severity != "WARN" || bad.DebugContext.DebugData["statusCode"] != "401" {
		t.Fatalf("refusal: %+v %v", bad.Outcome, bad.DebugContext.DebugData)
	}
	if bad.Actor.ID != "unknown" || targetOf(bad, "PublicClientApp") != nil || targetOf(bad, "access_token") != nil {
		t.Fatalf("a refusal without a verified token names someone: %+v %+v", bad.Actor, bad.Target)
	}
	if r := targetOf(bad, "apiaccess.Route"); r == nil || r.ID != "api.example.com" {
		t.Fatalf("route of an unnamed route: want the host, got %+v", bad.Target)
	}
	uri, _ := bad.DebugContext.DebugData["requestUri"].(string)
	if len(uri) > maxEchoedPath+8 || !utf8.ValidString(uri) || len(bad.Client.UserAgent.RawUserAgent) > maxUserAgent {
		t.Fatalf("request strings not bounded or not UTF-8: uri %d bytes, user agent %d", len(uri), len(bad.Client.UserAgent.RawUserAgent))
	}
	if bad.Transaction.ID == "" {
		t.Fatal("no transaction id without a request id")
	}

	scope := byReason["insufficient_scope"]
	if scope.Actor.Type != "PublicClientApp" || scope.Actor.ID != "svc" || *scope.Outcome.Reason != "insufficient_scope" ||
		scope.DebugContext.DebugData["grantedScopes"] != nil {
		t.Fatalf("client refusal: %+v %+v %v", scope.Actor, scope.Outcome, scope.DebugContext.DebugData)
	}
}
