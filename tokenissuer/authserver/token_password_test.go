package authserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"go.uber.org/zap/zapcore"
)

// grant posts a password grant to node 0 and returns the status and
// the JSON answer.
func (e *signInEnv) grant(login, password string) (int, http.Header, map[string]any) {
	e.t.Helper()
	return e.grantFrom(login, password, "")
}

// grantFrom is grant from the client address client ("" the socket's).
func (e *signInEnv) grantFrom(login, password, client string) (int, http.Header, map[string]any) {
	form := url.Values{"grant_type": {"password"}, "username": {login}, "password": {password}, "scope": {"orders:read"}}
	req, _ := http.NewRequest(http.MethodPost, e.urls[0]+"/oauth2/default/v1/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("web", "web-secret")
	if client != "" {
		req.Header.Set("X-Test-Client", client)
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Error(err)
		return 0, nil, nil
	}
	var m map[string]any
	_ = json.Unmarshal([]byte(readBody(resp)), &m)
	return resp.StatusCode, resp.Header, m
}

// badCredentials asserts Okta's answer to a failed password grant.
func badCredentials(t *testing.T, what string, status int, m map[string]any) {
	t.Helper()
	if status != http.StatusBadRequest || m["error"] != "invalid_grant" || m["error_description"] != "The credentials provided were invalid." || m["access_token"] != nil {
		t.Fatalf("%s: %d %v, want 400 invalid_grant \"The credentials provided were invalid.\"", what, status, m)
	}
}

// Finding 8: 30 wrong passwords through the password grant, then the
// right one, used to get a token. The grant counts like the sign-in
// page: after 10 the user is locked (same answer as a wrong password),
// the lockout is one user.account.lock event, the password is never
// logged, and the page is locked too.
func TestPasswordGrantLockout(t *testing.T) {
	e := newSignInEnv(t, embeddedStore(t), 1, nil, nil)
	for n := range 30 {
		status, _, m := e.grant("alice@example.com", fmt.Sprintf("wrong-%02d", n))
		badCredentials(t, fmt.Sprintf("wrong password %d", n+1), status, m)
	}
	status, _, m := e.grant("alice@example.com", alicePass)
	badCredentials(t, "the right password after 30 wrong ones", status, m)

	locks := e.logs.FilterMessage(EventAccountLock).All()
	if len(locks) != 1 || locks[0].Level != zapcore.WarnLevel || locks[0].ContextMap()["user_id"] != "00u1alice" {
		t.Fatalf("lockout events: %v, want one user.account.lock (warn) for 00u1alice", locks)
	}
	for _, entry := range e.logs.All() {
		line := fmt.Sprint(entry.Message, entry.ContextMap())
		if strings.Contains(line, "wrong-") || strings.Contains(line, alicePass) {
			t.Fatalf("a password reached the log: %s", line)
		}
	}
	// Shared with the page: alice cannot sign in there either.
	if r := e.signIn(e.open(0), "alice@example.com", alicePass, ""); r.session() || r.status != http.StatusTooManyRequests {
		t.Fatalf("sign-in page after the grant's lockout: %d session=%v", r.status, r.session())
	}
}

// And the other way: a lockout earned on the page blocks the grant.
func TestPageLockoutBlocksPasswordGrant(t *testing.T) {
	e := newSignInEnv(t, embeddedStore(t), 1, nil, nil)
	for n := range maxUserFailures {
		if r := e.signIn(e.open(0), "alice@example.com", fmt.Sprint("wrong", n), ""); r.status != http.StatusUnauthorized {
			t.Fatalf("page failure %d: %d", n+1, r.status)
		}
	}
	status, _, m := e.grant("alice@example.com", alicePass)
	badCredentials(t, "password grant after the page's lockout", status, m)
	// A suspended user with the right password: the same answer.
	status, _, m = e.grant("bob@example.com", alicePass)
	badCredentials(t, "suspended user", status, m)
}
