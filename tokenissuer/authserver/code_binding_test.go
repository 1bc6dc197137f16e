package authserver

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/duration"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

const verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk0123"

// TestCodeWrongClientChangesNothing (RFC 6749 sections 4.1.3, 10.5):
// a code presented by a client it was not issued to, confidential or
// public, is refused with invalid_grant and neither burns the fresh
// code nor, once used, revokes what it issued to its own client.
func TestCodeWrongClientChangesNothing(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	for _, attacker := range []struct{ id, redirect string }{{"other", otherCB}, {"pub", pubCB}} {
		t.Run(attacker.id, func(t *testing.T) {
			code := e.code("web", webCB, "")
			// First use by the wrong client: refused, code not burnt.
			if status, body := e.redeem(attacker.id, code, webCB, verifier); status != 400 || body["error"] != "invalid_grant" || body["access_token"] != nil {
				t.Fatalf("wrong client on a fresh code: %d %v", status, body)
			}
			status, tok := e.redeem("web", code, webCB, "")
			if status != 200 {
				t.Fatalf("the right client after a foreign attempt: %d %v", status, tok)
			}
			// Replay by the wrong client: refused, tokens stay valid.
			if status, body := e.redeem(attacker.id, code, attacker.redirect, verifier); status != 400 || body["error"] != "invalid_grant" {
				t.Fatalf("foreign replay: %d %v", status, body)
			}
			if !e.active(tok["access_token"].(string)) {
				t.Fatal("a foreign replay revoked the legitimate client's access token")
			}
			if status, body := e.post(tokenEP, "web", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}}); status != 200 {
				t.Fatalf("a foreign replay revoked the legitimate client's refresh token: %d %v", status, body)
			}
		})
	}
}

// TestCodeReplayRevokes (RFC 6749 section 4.1.2): the right client
// presenting a used code again is refused and revokes the access token
// and the refresh-token family the first use issued; introspection
// then reports the access token inactive.
func TestCodeReplayRevokes(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	code := e.code("web", webCB, "")
	status, tok := e.redeem("web", code, webCB, "")
	if status != 200 || tok["refresh_token"] == nil {
		t.Fatalf("first use: %d %v", status, tok)
	}
	at := tok["access_token"].(string)
	if !e.active(at) {
		t.Fatal("fresh access token inactive")
	}
	if status, body := e.redeem("web", code, webCB, ""); status != 400 || body["error"] != "invalid_grant" || body["access_token"] != nil {
		t.Fatalf("code reused: %d %v", status, body)
	}
	if e.active(at) {
		t.Fatal("access token of a replayed code still active at introspection")
	}
	if status, body := e.post(tokenEP, "web", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}}); status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("refresh token of a replayed code: %d %v", status, body)
	}
}

// TestCodeFreshWrongVerifier (RFC 7636 section 4.6): a fresh code with
// a wrong, well-formed verifier issues nothing; the right verifier
// then still works (a failed check does not consume the code).
func TestCodeFreshWrongVerifier(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	code := e.code("pub", pubCB, verifier)
	wrong := strings.Repeat("a", 43)
	if status, body := e.redeem("pub", code, pubCB, wrong); status != 400 || body["error"] != "invalid_grant" || body["access_token"] != nil {
		t.Fatalf("wrong verifier: %d %v", status, body)
	}
	if status, body := e.redeem("pub", code, pubCB, ""); status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("missing verifier: %d %v", status, body)
	}
	if status, body := e.redeem("pub", code, pubCB, verifier); status != 200 || body["access_token"] == nil {
		t.Fatalf("right verifier: %d %v", status, body)
	}
}

// TestCodeOtherRedirectURI (RFC 6749 section 4.1.3): the redirect_uri
// of the token request must be the one the code was issued for.
func TestCodeOtherRedirectURI(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	code := e.code("web", webCB, "")
	for _, other := range []string{webCB + "/", webCB + "?x=1", "https://app.test/other"} {
		if status, body := e.redeem("web", code, other, ""); status != 400 || body["error"] != "invalid_grant" || body["access_token"] != nil {
			t.Fatalf("redirect_uri %q: %d %v", other, status, body)
		}
	}
	if status, body := e.redeem("web", code, webCB, ""); status != 200 {
		t.Fatalf("issued redirect_uri: %d %v", status, body)
	}
}

// TestAuthorizeExactRedirect (RFC 6749 section 4.1.2.1, RFC 9700
// section 4.1.3): /authorize compares redirect URIs exactly; a near
// miss gets an error page and never a redirect.
func TestAuthorizeExactRedirect(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	for _, ru := range []string{webCB + "/", webCB + "?next=x", "https://app.test/cb/evil", "https://APP.test/cb", "http://app.test/cb", "https://app.test.evil/cb", ""} {
		q := url.Values{"client_id": {"web"}, "response_type": {"code"}, "scope": {"openid"}, "state": {"s"}, "redirect_uri": {ru}}
		w := e.browse(http.MethodGet, "/oauth2/default/v1/authorize?"+q.Encode(), nil)
		if w.Code != 400 || w.Header().Get("Location") != "" || !strings.Contains(w.Body.String(), "redirect URI is not registered") {
			t.Errorf("redirect_uri %q: %d %q", ru, w.Code, w.Header().Get("Location"))
		}
	}
	q := url.Values{"client_id": {"web"}, "response_type": {"code"}, "scope": {"openid"}, "state": {"s"}, "redirect_uri": {webCB}}
	if w := e.browse(http.MethodGet, "/oauth2/default/v1/authorize?"+q.Encode(), nil); w.Code != 200 || !strings.Contains(w.Body.String(), "current-password") {
		t.Fatalf("registered redirect_uri: %d", w.Code)
	}
}

// TestCodeReplayRevokesLongFamily: a replayed code marks its refresh
// family revoked for as long as the rule lets that family live (plus
// the longest access token), not for the default 90 days only.
func TestCodeReplayRevokesLongFamily(t *testing.T) {
	long := 400 * 24 * time.Hour
	h, e := newHookEnv(t, func(o *Options) {
		r := o.Servers["default"].Policies[0].Rules[0]
		r.RefreshTokenLifetime, r.RefreshTokenIdle = duration.Duration(long), duration.Duration(long)
	})
	var mu sync.Mutex
	marks := map[string]time.Time{}
	h.set(func(h *hookStore) {
		h.afterMark = func(ns, key string, until time.Time) {
			if ns == store.NSFamily {
				mu.Lock()
				marks[key] = until
				mu.Unlock()
			}
		}
	})
	code := e.code("web", webCB, "")
	if status, tok := e.redeem("web", code, webCB, ""); status != 200 || tok["refresh_token"] == nil {
		t.Fatalf("first use: %d %v", status, tok)
	}
	if status, _ := e.redeem("web", code, webCB, ""); status != 400 {
		t.Fatalf("replay: %d", status)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(marks) != 1 {
		t.Fatalf("family marks %v, want one", marks)
	}
	for _, until := range marks {
		if want := e.clock.Now().Add(long); until.Before(want) {
			t.Errorf("family revoked until %s, before the family ends (%s)", until, want)
		}
	}
}
