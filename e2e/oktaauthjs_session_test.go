package e2e

import (
	"net/http"
	"testing"
	"time"
)

// oktaSession is the part of Okta's Session object the tests read.
type oktaSession struct {
	ID         string    `json:"id"`
	Login      string    `json:"login"`
	UserID     string    `json:"userId"`
	Status     string    `json:"status"`
	ExpiresAt  time.Time `json:"expiresAt"`
	CanRefresh bool      `json:"canRefresh"`
}

func (b *sdkTab) session() oktaSession {
	b.T.Helper()
	var s oktaSession
	b.must(&s, "sessionGet")
	return s
}

func (b *sdkTab) sessionExists() bool {
	b.T.Helper()
	var ok bool
	b.must(&ok, "sessionExists")
	return ok
}

// testSDKSession: session.exists, session.get, session.refresh (and the
// session's own refresh link) and closeSession, cross-site with the
// issuer's cookie, through the Sessions API.
func testSDKSession(t *testing.T, b *sdkTab) {
	b.open("ready")
	if b.sessionExists() {
		b.Fail("session.exists() before signing in")
	}
	if s := b.session(); s.Status != "INACTIVE" {
		b.Fail("session.get() before signing in: %+v", s)
	}
	me := b.env.base + "/api/v1/sessions/me"
	if got := b.net.find(http.MethodGet, me); len(got) != 2 || got[0].Status != 404 || got[0].Failed != "" {
		b.Fail("GET %s without a session: %+v (want 404 readable by the app)", me, got)
	}

	b.signIn(nil)
	if !b.sessionExists() {
		b.Fail("session.exists() is false after signing in")
	}
	s := b.session()
	if s.Status != "ACTIVE" || s.Login != sdkUser || s.UserID != sdkUserID || s.ID == "" || !s.CanRefresh || !s.ExpiresAt.After(time.Now()) {
		b.Fail("session.get(): %+v", s)
	}

	var refreshed oktaSession
	b.must(&refreshed, "sessionRefresh")
	if refreshed.ID != s.ID || refreshed.Status != "ACTIVE" || refreshed.ExpiresAt.Before(s.ExpiresAt) {
		b.Fail("session.refresh(): %+v, was %+v", refreshed, s)
	}
	var linked oktaSession
	b.must(&linked, "sessionRefreshLink")
	if linked.ID != s.ID || linked.Status != "ACTIVE" {
		b.Fail("the session's refresh link: %+v", linked)
	}
	if got := b.net.find(http.MethodPost, me+"/lifecycle/refresh"); len(got) != 2 || got[0].Status != 200 || got[1].Status != 200 {
		b.Fail("session refreshes: %+v", got)
	}

	var closed bool
	b.must(&closed, "closeSession")
	if !closed {
		b.Fail("closeSession() found no session")
	}
	if b.sessionExists() {
		b.Fail("session.exists() after closeSession()")
	}
	b.must(&closed, "closeSession")
	if closed {
		b.Fail("a second closeSession() closed a session")
	}
	if tok := b.tokens(); tok.AccessToken != "" {
		b.Fail("closeSession() left the tokens")
	}
	// Signing in again asks for the password.
	b.startSignIn(nil)

	// Credentialed CORS is for the trusted origin only.
	for origin, want := range map[string]string{b.env.app: "true", "https://evil.example": ""} {
		req, _ := http.NewRequest(http.MethodOptions, me, nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "DELETE")
		res, err := b.env.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if got := res.Header.Get("Access-Control-Allow-Credentials"); got != want {
			t.Errorf("preflight of DELETE %s from %s: Access-Control-Allow-Credentials %q, want %q", me, origin, got, want)
		}
		if want == "" && res.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight from %s allowed", origin)
		}
	}
}
