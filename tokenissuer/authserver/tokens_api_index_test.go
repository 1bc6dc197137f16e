package authserver

import (
	"context"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/duration"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/embedded"
)

// mapDirectory is a directory of users by id, allowing ids the file
// directory refuses (a NUL), whose users a test may suspend.
type mapDirectory struct {
	mu    sync.Mutex
	users map[string]*directory.User
}

func (d *mapDirectory) UserByID(_ context.Context, id string) (*directory.User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if u, ok := d.users[id]; ok {
		c := *u
		return &c, nil
	}
	return nil, directory.ErrNotFound
}

func (d *mapDirectory) UserByLogin(_ context.Context, login string) (*directory.User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, u := range d.users {
		if u.Login == login {
			c := *u
			return &c, nil
		}
	}
	return nil, directory.ErrNotFound
}

func (d *mapDirectory) setStatus(id, status string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.users[id].Status = status
}

// mapDirEnv is grantsEnv with a mapDirectory of ids.
func mapDirEnv(t *testing.T, st store.Store, ids ...string) (*flowEnv, *mapDirectory) {
	t.Helper()
	dir := &mapDirectory{users: map[string]*directory.User{}}
	for n, id := range ids {
		dir.users[id] = &directory.User{ID: id, Login: "user" + string(rune('a'+n)) + "@example.com"}
	}
	e := newFlowEnvWith(t, issBase, func(o *Options) {
		o.APITokens, o.Directory = []string{logsToken}, dir
	}, st)
	return e, dir
}

// countingStore counts the store reads of the token lists.
type countingStore struct {
	store.Store
	reads       atomic.Int64
	failUpdates atomic.Int64 // UpdateRefresh calls still to fail with ErrNotFound
}

func (s *countingStore) GetRefresh(ctx context.Context, h string) (store.RefreshToken, error) {
	s.reads.Add(1)
	return s.Store.GetRefresh(ctx, h)
}

func (s *countingStore) GetRecord(ctx context.Context, ns, key string) ([]byte, error) {
	s.reads.Add(1)
	return s.Store.GetRecord(ctx, ns, key)
}

func (s *countingStore) Marked(ctx context.Context, ns, key string) (bool, error) {
	s.reads.Add(1)
	return s.Store.Marked(ctx, ns, key)
}

func (s *countingStore) ListRecords(ctx context.Context, ns, prefix, after string, limit int) ([]store.Record, error) {
	s.reads.Add(1)
	return s.Store.ListRecords(ctx, ns, prefix, after, limit)
}

func (s *countingStore) UpdateRefresh(ctx context.Context, h string, fn func(*store.RefreshToken) error) (store.RefreshToken, error) {
	if s.failUpdates.Add(-1) >= 0 {
		return store.RefreshToken{}, store.ErrNotFound
	}
	return s.Store.UpdateRefresh(ctx, h, fn)
}

func newCountingStore(t *testing.T) *countingStore {
	t.Helper()
	db, err := embedded.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return &countingStore{Store: db}
}

// TestTokensAPIUserIDsWithNUL: a user whose id is another's followed by
// a NUL shares that user's index prefix; neither route shows or revokes
// one user's family as the other's.
func TestTokensAPIUserIDsWithNUL(t *testing.T) {
	e, _ := mapDirEnv(t, nil, "u1", "u1\x00x")
	x := e.login("u1\x00x", "web", webCB)
	rt, err := e.st.GetRefresh(context.Background(), refreshHash(x.refresh))
	if err != nil {
		t.Fatal(err)
	}
	id := refreshTokenID(rt.Family)
	if list, _ := e.tokensList("/api/v1/users/u1/clients/web/tokens"); len(list) != 0 {
		t.Fatalf("u1's list shows another user's token: %+v", list)
	}
	w := e.grantsAPI(http.MethodGet, "/api/v1/users/u1/clients")
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != "[]" {
		t.Fatalf("u1's clients: %d %s", w.Code, w.Body)
	}
	for _, m := range []string{http.MethodGet, http.MethodDelete} {
		for _, p := range []string{"/api/v1/users/u1/clients/web/tokens/x%00" + id, "/api/v1/users/u1/clients/web/tokens/" + id} {
			if w := e.grantsAPI(m, p); w.Code != 404 {
				t.Errorf("%s %s: %d %s", m, p, w.Code, w.Body)
			}
		}
	}
	if !e.active(x.refresh) || !e.active(x.access) {
		t.Fatal("the other user's family was revoked")
	}
	// The client's list does show it, as that user's.
	if apps, _ := e.tokensList("/api/v1/apps/web/tokens"); len(apps) != 1 || apps[0].UserID != "u1\x00x" || apps[0].ID != id {
		t.Fatalf("web's tokens: %+v", apps)
	}
}

// TestTokensAPILinksResolve: the authorizationServer and scope links
// name the Authorization Servers API, and answer there.
func TestTokensAPILinksResolve(t *testing.T) {
	e, _ := grantsEnv(t, nil)
	e.login("u1", "web", webCB)
	list, _ := e.tokensList("/api/v1/users/u1/clients/web/tokens?expand=scope")
	if len(list) != 1 {
		t.Fatalf("list: %+v", list)
	}
	as, _ := list[0].Links["authorizationServer"].(map[string]any)
	if as["href"] != issBase+"/api/v1/authorizationServers/default" {
		t.Fatalf("authorizationServer link %v", as)
	}
	hrefs := []string{as["href"].(string)}
	scopes, _ := list[0].Embedded["scopes"].([]any)
	for _, sc := range scopes {
		if l, ok := sc.(map[string]any)["_links"].(map[string]any)["scope"].(map[string]any)["href"].(string); ok {
			hrefs = append(hrefs, l)
		}
	}
	if len(hrefs) < 2 {
		t.Fatalf("no scope link in %+v", list[0].Embedded)
	}
	for _, h := range hrefs {
		if w := e.grantsAPI(http.MethodGet, strings.TrimPrefix(h, issBase)); w.Code != 200 {
			t.Errorf("GET %s: %d %s", h, w.Code, w.Body)
		}
	}
}

// TestTokensAPIDeadFamiliesBounded: families cut off stay in the index
// until a list meets them; a list examines a bounded number of records
// per request (with a next link when the bound stopped it), deletes
// the dead records it meets, and once they are gone costs little.
func TestTokensAPIDeadFamiliesBounded(t *testing.T) {
	cs := newCountingStore(t)
	e, _ := grantsEnv(t, cs)
	const n = 300
	for range n {
		e.login("u1", "web", webCB)
	}
	e.clock.Advance(2 * time.Second)
	e.revoke204("/api/v1/users/u1/clients/web/tokens")
	e.clock.Advance(2 * time.Second)
	live := e.login("u2", "web", webCB)
	var found []oktaRefreshToken
	path := "/api/v1/apps/web/tokens?limit=1"
	calls := 0
	for path != "" {
		if calls++; calls > n {
			t.Fatal("paging does not end")
		}
		cs.reads.Store(0)
		page, h := e.tokensList(path)
		// 10*limit+50 records of about six reads each, plus the pages.
		if r := cs.reads.Load(); r > 400 {
			t.Fatalf("call %d: %d store reads for ?limit=1", calls, r)
		}
		found = append(found, page...)
		path = nextLink(t, h)
	}
	if len(found) != 1 || found[0].UserID != "u2" {
		t.Fatalf("found %+v", found)
	}
	// The dead records are gone: the list reads the live family only.
	cs.reads.Store(0)
	if list, h := e.tokensList("/api/v1/apps/web/tokens?limit=1"); len(list) != 1 || nextLink(t, h) != "" {
		t.Fatalf("second pass: %+v", list)
	}
	if r := cs.reads.Load(); r > 20 {
		t.Fatalf("after cleanup: %d store reads", r)
	}
	// Revoked at /v1/revoke: its record goes with it.
	e.revoke("web", live.refresh)
	if recs, err := cs.ListRecords(context.Background(), store.NSTokenIndex, tokenIndexPrefix("web", ""), "", 10); err != nil || len(recs) != 0 {
		t.Fatalf("index after the revocation: %d records, %v", len(recs), err)
	}
}

// TestTokensAPIInactiveUser: a suspended user's families cannot
// refresh and are not listed; they are kept, and listed again once the
// user is active again.
func TestTokensAPIInactiveUser(t *testing.T) {
	e, dir := mapDirEnv(t, nil, "u1", "u2")
	a := e.login("u1", "web", webCB)
	dir.setStatus("u1", directory.StatusSuspended)
	for _, p := range []string{"/api/v1/users/u1/clients/web/tokens", "/api/v1/apps/web/tokens"} {
		if list, _ := e.tokensList(p); len(list) != 0 {
			t.Fatalf("%s: a suspended user's tokens listed: %+v", p, list)
		}
	}
	if status, body := e.refresh("web", a.refresh); status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("suspended user's refresh: %d %v", status, body)
	}
	dir.setStatus("u1", directory.StatusActive)
	if list, _ := e.tokensList("/api/v1/apps/web/tokens"); len(list) != 1 {
		t.Fatalf("active again: %+v", list)
	}
}

// TestTokensAPIIndexAfterCommit: the index follows a refresh only once
// it committed, only forward, and a corrupt record neither fails a
// refresh nor stays corrupt.
func TestTokensAPIIndexAfterCommit(t *testing.T) {
	cs := newCountingStore(t)
	e, _ := grantsEnv(t, cs)
	a := e.login("u1", "web", webCB)
	first, err := cs.GetRefresh(context.Background(), refreshHash(a.refresh))
	if err != nil {
		t.Fatal(err)
	}
	path := "/api/v1/users/u1/clients/web/tokens"
	e.clock.Advance(time.Hour)
	cs.failUpdates.Store(1)
	if status, body := e.refresh("web", a.refresh); status != 400 {
		t.Fatalf("refresh whose commit failed: %d %v", status, body)
	}
	if list, _ := e.tokensList(path); len(list) != 1 || list[0].LastUpdated != list[0].Created {
		t.Fatalf("the index moved to an uncommitted token: %+v", list)
	}
	status, body := e.refresh("web", a.refresh)
	if status != 200 {
		t.Fatalf("refresh: %d %v", status, body)
	}
	list, _ := e.tokensList(path)
	if len(list) != 1 || list[0].LastUpdated == list[0].Created {
		t.Fatalf("the index did not follow the refresh: %+v", list)
	}
	moved := list[0].LastUpdated
	// An older token's write (a refresh racing within the leeway) does
	// not move it back.
	e.iss.indexSuccessor(context.Background(), &first)
	if list, _ := e.tokensList(path); len(list) != 1 || list[0].LastUpdated != moved {
		t.Fatalf("the index moved back: %+v", list)
	}
	// A corrupt record: the refresh succeeds and rewrites it.
	key := tokenIndexPrefix("web", "u1") + refreshTokenID(first.Family)
	if err := cs.PutRecord(context.Background(), store.NSTokenIndex, key, []byte("{not json"), e.clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	if status, body := e.refresh("web", body["refresh_token"].(string)); status != 200 {
		t.Fatalf("refresh over a corrupt index record: %d %v", status, body)
	}
	if list, _ := e.tokensList(path); len(list) != 1 || list[0].ID != refreshTokenID(first.Family) {
		t.Fatalf("after the rewrite: %+v", list)
	}
}

// TestTokensAPIDeleteNotLive: DELETE of a family idle past its window
// is 404 and publishes nothing; of a family revoked whose publish
// failed, it publishes and answers 204, then 404.
func TestTokensAPIDeleteNotLive(t *testing.T) {
	e := newFlowEnvWith(t, issBase, func(o *Options) {
		o.APITokens = []string{logsToken}
		o.Servers["default"].Policies[0].Rules[0].RefreshTokenIdle = duration.Duration(10 * time.Minute)
	}, nil)
	a := e.login("u1", "web", webCB)
	rtA, err := e.st.GetRefresh(context.Background(), refreshHash(a.refresh))
	if err != nil {
		t.Fatal(err)
	}
	if rtA.IdleExpires.Sub(rtA.Issued) != 10*time.Minute {
		t.Fatalf("idle window %v: the rule's setting did not apply", rtA.IdleExpires.Sub(rtA.Issued))
	}
	e.clock.Advance(11 * time.Minute)
	if w := e.grantsAPI(http.MethodDelete, "/api/v1/users/u1/clients/web/tokens/"+refreshTokenID(rtA.Family)); w.Code != 404 {
		t.Fatalf("DELETE of an idle-expired family: %d %s", w.Code, w.Body)
	}
	if e.iss.RevocationView().Revoked(jtiOf(t, a.access), "", "", "", time.Time{}) {
		t.Fatal("an idle-expired family's access token was published as revoked")
	}

	// Revoked (the mark written) and never published, as when the
	// publish of an earlier DELETE failed: a retried DELETE completes.
	b := e.login("u1", "web", webCB)
	rtB, err := e.st.GetRefresh(context.Background(), refreshHash(b.refresh))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Mark(context.Background(), store.NSFamily, rtB.Family, familyMarkUntil(rtB)); err != nil {
		t.Fatal(err)
	}
	p := "/api/v1/users/u1/clients/web/tokens/" + url.PathEscape(refreshTokenID(rtB.Family))
	if w := e.grantsAPI(http.MethodDelete, p); w.Code != http.StatusNoContent {
		t.Fatalf("retried DELETE: %d %s", w.Code, w.Body)
	}
	if !e.iss.RevocationView().Revoked(jtiOf(t, b.access), "", "", "", time.Time{}) {
		t.Fatal("the retried DELETE did not publish the family's access token")
	}
	if w := e.grantsAPI(http.MethodDelete, p); w.Code != 404 {
		t.Fatalf("DELETE once done: %d %s", w.Code, w.Body)
	}
}

// TestTokensAPIReuseDropsIndex: reuse detection revokes the family and
// deletes its index record.
func TestTokensAPIReuseDropsIndex(t *testing.T) {
	e, _ := grantsEnv(t, nil)
	a := e.login("u1", "web", webCB)
	if status, body := e.refresh("web", a.refresh); status != 200 {
		t.Fatalf("refresh: %d %v", status, body)
	}
	e.clock.Advance(time.Hour)
	if status, body := e.refresh("web", a.refresh); status != 400 {
		t.Fatalf("reuse: %d %v", status, body)
	}
	if recs, err := e.st.ListRecords(context.Background(), store.NSTokenIndex, tokenIndexPrefix("web", ""), "", 10); err != nil || len(recs) != 0 {
		t.Fatalf("index after reuse detection: %d records, %v", len(recs), err)
	}
}
