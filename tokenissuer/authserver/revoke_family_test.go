package authserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"
	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/embedded"
)

// Okta's revocation semantics (OKTA-NOTES.md): revoking a refresh token
// revokes the access tokens issued from it (guide "Revoke tokens"),
// revoking an access token does not revoke its refresh token, and reuse
// of a rotated refresh token invalidates the newest refresh token and
// every access token issued since the user authenticated (guide
// "Refresh token rotation").

const revokeEP = "/oauth2/default/v1/revoke"

// tokenPair is what one token response handed out.
type tokenPair struct{ access, refresh string }

func (e *flowEnv) grantOf(status int, body map[string]any, what string) tokenPair {
	e.t.Helper()
	at, _ := body["access_token"].(string)
	rt, _ := body["refresh_token"].(string)
	if status != http.StatusOK || at == "" || rt == "" {
		e.t.Fatalf("%s: %d %v", what, status, body)
	}
	return tokenPair{at, rt}
}

// login redeems a fresh code of user uid for client (openid,
// offline_access, read).
func (e *flowEnv) login(uid, client, redirect string) tokenPair {
	e.t.Helper()
	status, body := e.redeem(client, e.codeFor(uid, client, redirect, ""), redirect, "")
	return e.grantOf(status, body, "code grant")
}

func (e *flowEnv) refresh(client, rt string) (int, map[string]any) {
	e.t.Helper()
	return e.post(tokenEP, client, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
}

func (e *flowEnv) revoke(client, tok string) {
	e.t.Helper()
	if status, body := e.post(revokeEP, client, url.Values{"token": {tok}}); status != http.StatusOK {
		e.t.Fatalf("revoke: %d %v", status, body)
	}
}

// userinfo reports the status of GET userinfo with tok.
func (e *flowEnv) userinfo(tok string) int {
	e.t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/oauth2/default/v1/userinfo", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	w := httptest.NewRecorder()
	e.iss.ServeHTTP(w, r)
	return w.Code
}

// wantActive checks introspection and userinfo agree on each token.
func (e *flowEnv) wantActive(want bool, toks map[string]string) {
	e.t.Helper()
	for name, tok := range toks {
		if got := e.active(tok); got != want {
			e.t.Errorf("%s: introspection active %v, want %v", name, got, want)
		}
		if got := e.userinfo(tok) == http.StatusOK; got != want {
			e.t.Errorf("%s: userinfo accepted %v, want %v", name, got, want)
		}
	}
}

// TestRevokeRefreshRevokesItsAccessTokens: revoking a refresh token
// makes inactive the access token issued with the family's first
// refresh token and the one a refresh issued; another family of the same
// user and client, and one of another client, are untouched.
func TestRevokeRefreshRevokesItsAccessTokens(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	first := e.login("u1", "web", webCB)
	status, body := e.refresh("web", first.refresh)
	second := e.grantOf(status, body, "refresh")
	sibling := e.login("u1", "web", webCB)
	foreign := e.login("u1", "other", otherCB)
	e.wantActive(true, map[string]string{"first": first.access, "refreshed": second.access, "sibling": sibling.access, "other client": foreign.access})

	e.revoke("web", second.refresh)
	e.wantActive(false, map[string]string{"first access token": first.access, "refreshed access token": second.access})
	if e.active(second.refresh) {
		t.Error("revoked refresh token still active")
	}
	e.wantActive(true, map[string]string{"sibling": sibling.access, "other client": foreign.access})
	if status, body := e.refresh("web", sibling.refresh); status != http.StatusOK {
		t.Errorf("sibling family refresh: %d %v", status, body)
	}
	// The rotated first token names the same family: revoking it again
	// is a 200 with nothing to write.
	e.revoke("web", first.refresh)
}

// TestRevokeAccessTokenKeepsRefresh: revoking an access token leaves
// its refresh token usable, and the access token that refresh issues
// is active.
func TestRevokeAccessTokenKeepsRefresh(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	g := e.login("u1", "web", webCB)
	e.revoke("web", g.access)
	e.wantActive(false, map[string]string{"revoked access token": g.access})
	if !e.active(g.refresh) {
		t.Fatal("refresh token inactive after revoking its access token")
	}
	status, body := e.refresh("web", g.refresh)
	next := e.grantOf(status, body, "refresh after revoking the access token")
	e.wantActive(true, map[string]string{"new access token": next.access})
	if !e.active(next.refresh) {
		t.Error("new refresh token inactive")
	}
	// Revoking an access token whose family is revoked writes nothing
	// and is still a 200 (RFC 7009 section 2.2).
	e.revoke("web", next.refresh)
	e.revoke("web", next.access)
	if rev, err := e.iss.revoked(context.Background(), jtiOf(t, next.access)); err != nil || rev {
		t.Errorf("an access token of a revoked family got its own mark: %v %v", rev, err)
	}
}

// TestRefreshReuseRevokesAccessTokens: a rotated refresh token used
// after the leeway revokes the family: the newest refresh token is
// refused and every access token of the family is inactive; another
// family of the same user stays active.
func TestRefreshReuseRevokesAccessTokens(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	g1 := e.login("u1", "web", webCB)
	sibling := e.login("u1", "web", webCB)
	status, body := e.refresh("web", g1.refresh)
	g2 := e.grantOf(status, body, "first refresh")
	e.clock.Advance(clientauth.DefaultLeeway + time.Second)
	status, body = e.refresh("web", g2.refresh)
	g3 := e.grantOf(status, body, "second refresh")
	e.wantActive(true, map[string]string{"1": g1.access, "2": g2.access, "3": g3.access})

	if status, body := e.refresh("web", g1.refresh); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("reuse after the leeway: %d %v", status, body)
	}
	if status, body := e.refresh("web", g3.refresh); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Errorf("newest refresh token after reuse: %d %v", status, body)
	}
	if e.active(g3.refresh) {
		t.Error("newest refresh token still active after reuse")
	}
	e.wantActive(false, map[string]string{"first access token": g1.access, "second": g2.access, "newest": g3.access})
	e.wantActive(true, map[string]string{"sibling family": sibling.access})
}

// TestClientCredentialsWritesNoLink: a token issued without a refresh
// token (client_credentials; a user grant without offline_access) has
// no family record.
func TestClientCredentialsWritesNoLink(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	_, cc := e.post(tokenEP, "svc", url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}})
	_, user := e.redeem("web", e.code("web", webCB, "", "openid", "read"), webCB, "")
	for name, body := range map[string]map[string]any{"client_credentials": cc, "no offline_access": user} {
		at, _ := body["access_token"].(string)
		if at == "" {
			t.Fatalf("%s: %v", name, body)
		}
		if _, err := e.st.GetRecord(context.Background(), store.NSAccessFamily, jtiOf(t, at)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: family record read gave %v, want none", name, err)
		}
		if !e.active(at) {
			t.Errorf("%s: inactive", name)
		}
	}
}

func jtiOf(t *testing.T, tok string) string {
	t.Helper()
	p, err := jwt.ParseInsecure([]byte(tok))
	if err != nil || p.JwtID() == "" {
		t.Fatalf("access token: %v", err)
	}
	return p.JwtID()
}

// newLinkEnv is an issuer on a linkOutage store with the confidential
// client "web" (code and refresh grants; rotation and leeway from tmpl)
// and "svc" (client_credentials).
func newLinkEnv(t *testing.T, tmpl clientauth.Client) (*linkOutage, *flowEnv) {
	t.Helper()
	c := testkit.NewClock(time.Now())
	dir, err := directory.ParseFile([]byte(`{"users":[{"id":"u1","login":"alice@example.com"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	web := tmpl
	web.ID, web.Secret, web.GrantTypes, web.RedirectURIs = "web", "web-secret", []string{GrantAuthorizationCode, GrantRefreshToken}, []string{webCB}
	iss, err := New(Options{
		BaseURL: "https://id.example.com", Directory: dir, Now: c.Now, OrgSigningAlg: "ES256", Logger: zap.NewNop(),
		Servers: map[string]*ServerConfig{"default": {SigningAlg: "ES256", Scopes: []*Scope{{Name: "read", Default: true}},
			Policies: []*policy.Policy{{Name: "p", Clients: []string{"*"}, Rules: []*policy.Rule{{Name: "r",
				GrantTypes: []string{GrantAuthorizationCode, GrantClientCredentials}, Scopes: []string{"*"}}}}}}},
		Clients: []*clientauth.Client{&web, {ID: "svc", Secret: "svc-secret"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	db, err := embedded.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	st := &linkOutage{Store: db}
	return st, &flowEnv{t: t, iss: iss, st: startIssuer(t, iss, st), clock: c}
}

// TestStaticRefreshTokenFamily: a client with static refresh tokens gets
// the same refresh token back; every access token it issued is linked
// to the family, so revoking that token makes them all inactive.
func TestStaticRefreshTokenFamily(t *testing.T) {
	_, e := newLinkEnv(t, clientauth.Client{RefreshTokenRotation: clientauth.StaticRefresh})
	g := e.login("u1", "web", webCB)
	status, body := e.refresh("web", g.refresh)
	next := e.grantOf(status, body, "static refresh")
	if next.refresh != g.refresh {
		t.Fatal("a static refresh token was rotated")
	}
	e.wantActive(true, map[string]string{"first": g.access, "refreshed": next.access})
	e.revoke("web", g.refresh)
	e.wantActive(false, map[string]string{"first": g.access, "refreshed": next.access})
}

// linkOutage is the embedded store whose writes of access-token family
// links fail while down, as a shared store's would in an outage; every
// other operation works. writes counts the links attempted.
type linkOutage struct {
	store.Store
	mu     sync.Mutex
	down   bool
	writes int
}

func (l *linkOutage) PutRecord(ctx context.Context, ns, key string, v []byte, until time.Time) error {
	if ns == store.NSAccessFamily {
		l.mu.Lock()
		down := l.down
		l.writes++
		l.mu.Unlock()
		if down {
			return fmt.Errorf("%w: PutRecord: dial tcp 127.0.0.1:5432: connect: connection refused", store.ErrUnavailable)
		}
	}
	return l.Store.PutRecord(ctx, ns, key, v, until)
}

func (l *linkOutage) set(down bool) { l.mu.Lock(); l.down = down; l.mu.Unlock() }

func (l *linkOutage) count() int { l.mu.Lock(); defer l.mu.Unlock(); return l.writes }

// TestFamilyLinkWriteFailureFailsGrant: when the family link cannot be
// stored, a grant that would issue a refresh token answers 503
// temporarily_unavailable and hands out no token (an unlinked access
// token would survive its family's revocation); the code and the
// refresh token stay usable for the retry. client_credentials writes
// no link and is not affected.
func TestFamilyLinkWriteFailureFailsGrant(t *testing.T) {
	st, e := newLinkEnv(t, clientauth.Client{})
	unavailable := func(what string, status int, body map[string]any) {
		t.Helper()
		if status != http.StatusServiceUnavailable || body["error"] != "temporarily_unavailable" || body["access_token"] != nil || body["refresh_token"] != nil {
			t.Fatalf("%s during the outage: %d %v", what, status, body)
		}
	}

	st.set(true)
	code := e.code("web", webCB, "")
	status, body := e.redeem("web", code, webCB, "")
	unavailable("code grant", status, body)
	before := st.count()
	if status, body := e.post(tokenEP, "svc", url.Values{"grant_type": {"client_credentials"}}); status != http.StatusOK {
		t.Fatalf("client_credentials during the outage: %d %v", status, body)
	}
	if st.count() != before {
		t.Error("client_credentials wrote a family link")
	}

	st.set(false)
	status, body = e.redeem("web", code, webCB, "")
	g := e.grantOf(status, body, "the same code after the outage")

	st.set(true)
	status, body = e.refresh("web", g.refresh)
	unavailable("refresh grant", status, body)
	st.set(false)
	status, body = e.refresh("web", g.refresh)
	next := e.grantOf(status, body, "the same refresh token after the outage")

	e.revoke("web", next.refresh)
	for name, tok := range map[string]string{"code grant's": g.access, "refresh grant's": next.access} {
		if e.active(tok) {
			t.Errorf("%s access token active after its family was revoked", name)
		}
	}
}
