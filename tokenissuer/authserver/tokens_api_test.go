package authserver

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/postgres"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/postgres/pgtest"
)

// tokensList GETs a token list and decodes it, failing on anything but
// a 200 JSON array.
func (e *flowEnv) tokensList(path string) ([]oktaRefreshToken, http.Header) {
	e.t.Helper()
	w := e.grantsAPI(http.MethodGet, path)
	if w.Code != 200 || w.Header().Get("Cache-Control") != "no-store" || !strings.HasPrefix(strings.TrimSpace(w.Body.String()), "[") {
		e.t.Fatalf("GET %s: %d %s", path, w.Code, w.Body)
	}
	var out []oktaRefreshToken
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		e.t.Fatal(err)
	}
	return out, w.Header()
}

func tokenIDs(ts []oktaRefreshToken) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.ID)
	}
	slices.Sort(out)
	return out
}

// nextLink is the rel="next" target of a Link header, as a path and
// query below the base URL ("" when there is none).
func nextLink(t *testing.T, h http.Header) string {
	t.Helper()
	for _, l := range h.Values("Link") {
		if target, ok := strings.CutSuffix(l, `>; rel="next"`); ok {
			return strings.TrimPrefix(strings.TrimPrefix(target, "<"), issBase)
		}
	}
	return ""
}

var oktaTokenID = regexp.MustCompile(`^oar[A-Za-z0-9_-]{17}$`)

// TestTokensAPIListsAndReads: a user's refresh tokens at a client and a
// client's are listed in Okta's OAuth2RefreshToken shape without their
// values, one id per family that survives rotation, with expand=scope;
// one is read by id on either route.
func TestTokensAPIListsAndReads(t *testing.T) {
	e, _ := grantsEnv(t, nil)
	a := e.login("u1", "web", webCB)
	b := e.login("u1", "web", webCB)
	c := e.login("u2", "web", webCB)
	d := e.login("u1", "other", otherCB)
	list, h := e.tokensList("/api/v1/users/u1/clients/web/tokens")
	if len(list) != 2 {
		t.Fatalf("u1 at web: %d tokens, want 2: %+v", len(list), list)
	}
	if self := h.Get("Link"); self != `<`+issBase+`/api/v1/users/u1/clients/web/tokens>; rel="self"` {
		t.Errorf("Link = %q", self)
	}
	for _, tok := range list {
		if !oktaTokenID.MatchString(tok.ID) || tok.Status != "ACTIVE" || tok.ClientID != "web" || tok.UserID != "u1" ||
			tok.Issuer != issBase+"/oauth2/default" || !slices.Equal(tok.Scopes, []string{"openid", "offline_access", "read"}) {
			t.Errorf("token %+v", tok)
		}
		created, err1 := time.Parse(time.RFC3339, tok.Created)
		exp, err2 := time.Parse(time.RFC3339, tok.ExpiresAt)
		if err1 != nil || err2 != nil || exp.Sub(created) != 7*24*time.Hour {
			t.Errorf("created %q expiresAt %q: want the 7-day idle window", tok.Created, tok.ExpiresAt)
		}
		if tok.Links["revoke"] == nil || tok.Links["authorizationServer"] == nil || tok.Embedded != nil {
			t.Errorf("links %v embedded %v", tok.Links, tok.Embedded)
		}
		self, _ := tok.Links["self"].(map[string]any)
		if self["href"] != issBase+"/api/v1/users/u1/clients/web/tokens/"+tok.ID {
			t.Errorf("self %v", self)
		}
	}
	body := e.grantsAPI(http.MethodGet, "/api/v1/users/u1/clients/web/tokens").Body.String()
	for _, secret := range []string{a.refresh, b.refresh, a.access, refreshHash(a.refresh)} {
		if strings.Contains(body, secret) {
			t.Fatal("the list shows a token or its hash")
		}
	}

	// Rotation keeps the id and moves lastUpdated.
	before := tokenIDs(list)
	e.clock.Advance(time.Hour)
	status, rotated := e.refresh("web", a.refresh)
	if status != 200 {
		t.Fatalf("refresh: %d %v", status, rotated)
	}
	list, _ = e.tokensList("/api/v1/users/u1/clients/web/tokens")
	if !slices.Equal(tokenIDs(list), before) {
		t.Fatalf("ids after rotation %v, before %v", tokenIDs(list), before)
	}
	moved := 0
	for _, tok := range list {
		if tok.LastUpdated != tok.Created {
			moved++
		}
	}
	if moved != 1 {
		t.Errorf("%d tokens with lastUpdated moved, want the refreshed one: %+v", moved, list)
	}

	// A client's tokens: every user's.
	apps, _ := e.tokensList("/api/v1/apps/web/tokens")
	if len(apps) != 3 {
		t.Fatalf("web's tokens: %d, want 3", len(apps))
	}
	others, _ := e.tokensList("/api/v1/apps/other/tokens")
	if len(others) != 1 || others[0].UserID != "u1" || others[0].ClientID != "other" {
		t.Fatalf("other's tokens: %+v", others)
	}
	for _, tok := range apps {
		self, _ := tok.Links["self"].(map[string]any)
		if self["href"] != issBase+"/api/v1/apps/web/tokens/"+tok.ID {
			t.Errorf("app token self %v", self)
		}
	}
	var u2 string
	for _, tok := range apps {
		if tok.UserID == "u2" {
			u2 = tok.ID
		}
	}

	// One by id, on both routes; expand=scope embeds the scopes.
	id := list[0].ID
	var one oktaRefreshToken
	w := e.grantsAPI(http.MethodGet, "/api/v1/users/u1/clients/web/tokens/"+id+"?expand=scope")
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &one) != nil || one.ID != id {
		t.Fatalf("GET one: %d %s", w.Code, w.Body)
	}
	emb, _ := one.Embedded["scopes"].([]any)
	if len(emb) != 3 || emb[2].(map[string]any)["name"] != "read" {
		t.Errorf("expand=scope: %v", one.Embedded)
	}
	if w := e.grantsAPI(http.MethodGet, "/api/v1/apps/web/tokens/"+u2); w.Code != 200 || !strings.Contains(w.Body.String(), `"userId":"u2"`) {
		t.Errorf("GET app token: %d %s", w.Code, w.Body)
	}
	for _, p := range []string{
		"/api/v1/users/u2/clients/web/tokens/" + id, // another user's route
		"/api/v1/apps/other/tokens/" + id,           // another client's
		"/api/v1/users/u1/clients/web/tokens/oarNOSUCHTOKEN0000000",
	} {
		if w := e.grantsAPI(http.MethodGet, p); w.Code != 404 || !strings.Contains(w.Body.String(), "E0000007") {
			t.Errorf("GET %s: %d %s", p, w.Code, w.Body)
		}
	}
	_, _ = c, d
}

// TestTokensAPIPaging: limit bounds a page, the next link (an opaque
// after) continues it, the pages join up with no token twice; a bad
// limit or cursor is Okta's 400.
func TestTokensAPIPaging(t *testing.T) {
	e, _ := grantsEnv(t, nil)
	for range 5 {
		e.login("u1", "web", webCB)
	}
	e.login("u2", "web", webCB)
	for _, c := range []struct {
		path  string
		total int
	}{{"/api/v1/users/u1/clients/web/tokens?limit=2", 5}, {"/api/v1/apps/web/tokens?limit=2", 6}} {
		var all []oktaRefreshToken
		path := c.path
		for pages := 0; path != ""; pages++ {
			if pages > 5 {
				t.Fatal("paging does not end")
			}
			page, h := e.tokensList(path)
			if len(page) > 2 {
				t.Fatalf("%s: page of %d", path, len(page))
			}
			all = append(all, page...)
			path = nextLink(t, h)
			if path != "" && !strings.Contains(path, "limit=2") {
				t.Fatalf("next link %q lost the limit", path)
			}
		}
		ids := tokenIDs(all)
		if len(ids) != c.total || len(slices.Compact(slices.Clone(ids))) != c.total {
			t.Errorf("%s: pages joined %v, want %d distinct", c.path, ids, c.total)
		}
	}
	if list, h := e.tokensList("/api/v1/users/u1/clients/web/tokens"); len(list) != 5 || nextLink(t, h) != "" {
		t.Errorf("default page: %d tokens, next %q", len(list), nextLink(t, h))
	}
	for _, p := range []string{"?limit=0", "?limit=x", "?after=%25%25"} {
		if w := e.grantsAPI(http.MethodGet, "/api/v1/apps/web/tokens"+p); w.Code != 400 || !strings.Contains(w.Body.String(), "E0000001") {
			t.Errorf("%s: %d %s", p, w.Code, w.Body)
		}
	}
}

// TestTokensAPIRevokesOne: DELETE of one token revokes its family (the
// refresh token and its access tokens, on the revocation feed) and no
// other; it is no longer listed or found. Tokens revoked, cut off or
// expired otherwise are not listed; a family of before the index is not
// either.
func TestTokensAPIRevokesOne(t *testing.T) {
	e, el := grantsEnv(t, nil)
	a := e.login("u1", "web", webCB)
	b := e.login("u1", "web", webCB)
	c := e.login("u2", "web", webCB)
	list, _ := e.tokensList("/api/v1/users/u1/clients/web/tokens")
	idOf := func(refresh string) string {
		t.Helper()
		rt, err := e.st.GetRefresh(context.Background(), refreshHash(refresh))
		if err != nil {
			t.Fatal(err)
		}
		return refreshTokenID(rt.Family)
	}
	aID := idOf(a.refresh)
	if !slices.Contains(tokenIDs(list), aID) {
		t.Fatalf("a's id %s not in %v", aID, tokenIDs(list))
	}
	jti := jtiOf(t, a.access)
	if w := e.grantsAPI(http.MethodDelete, "/api/v1/users/u1/clients/web/tokens/"+aID); w.Code != http.StatusNoContent || w.Body.Len() != 0 {
		t.Fatalf("DELETE: %d %s", w.Code, w.Body)
	}
	if e.active(a.access) || e.active(a.refresh) {
		t.Fatal("the revoked family's tokens are active")
	}
	if !e.iss.RevocationView().Revoked(jti, "", "", "", time.Time{}) {
		t.Fatal("the family's access token is not on the revocation feed")
	}
	if status, body := e.refresh("web", a.refresh); status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("refresh of the revoked token: %d %v", status, body)
	}
	if !e.active(b.access) || !e.active(b.refresh) {
		t.Fatal("another family was revoked too")
	}
	if list, _ := e.tokensList("/api/v1/users/u1/clients/web/tokens"); len(list) != 1 || list[0].ID != idOf(b.refresh) {
		t.Fatalf("after the DELETE: %+v", list)
	}
	for _, m := range []string{http.MethodGet, http.MethodDelete} {
		if w := e.grantsAPI(m, "/api/v1/users/u1/clients/web/tokens/"+aID); w.Code != 404 {
			t.Errorf("%s of the revoked token: %d %s", m, w.Code, w.Body)
		}
	}

	// The app route revokes too.
	if w := e.grantsAPI(http.MethodDelete, "/api/v1/apps/web/tokens/"+idOf(c.refresh)); w.Code != http.StatusNoContent {
		t.Fatalf("DELETE on the app route: %d %s", w.Code, w.Body)
	}
	if e.active(c.refresh) {
		t.Fatal("app route: the token is still active")
	}

	// Revoked at /v1/revoke: not listed.
	e.revoke("web", b.refresh)
	if list, _ := e.tokensList("/api/v1/apps/web/tokens"); len(list) != 0 {
		t.Fatalf("revoked tokens listed: %+v", list)
	}

	// Cut off: not listed; issued after: listed.
	d := e.login("u1", "web", webCB)
	e.clock.Advance(2 * time.Second)
	e.revoke204("/api/v1/users/u1/clients/web/tokens")
	if list, _ := e.tokensList("/api/v1/users/u1/clients/web/tokens"); len(list) != 0 {
		t.Fatalf("cut-off tokens listed: %+v", list)
	}
	e.clock.Advance(2 * time.Second)
	f := e.login("u1", "web", webCB)
	if list, _ := e.tokensList("/api/v1/users/u1/clients/web/tokens"); len(list) != 1 || list[0].ID != idOf(f.refresh) {
		t.Fatalf("after the cut-off: %+v", list)
	}
	_ = d

	// Idle past the window: not listed.
	e.clock.Advance(8 * 24 * time.Hour)
	if list, _ := e.tokensList("/api/v1/users/u1/clients/web/tokens"); len(list) != 0 {
		t.Fatalf("idle-expired tokens listed: %+v", list)
	}

	// A family of before the index (no index record) is not listed.
	g := e.login("u2", "other", otherCB)
	if _, err := e.st.UpdateRecord(context.Background(), store.NSTokenIndex, tokenIndexPrefix("other", "u2")+idOf(g.refresh),
		func([]byte) ([]byte, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if list, _ := e.tokensList("/api/v1/apps/other/tokens"); len(list) != 0 {
		t.Fatalf("an unindexed family listed: %+v", list)
	}
	if status, _ := e.refresh("other", g.refresh); status != 200 {
		t.Fatalf("an unindexed family's refresh: %d", status)
	}

	// The API token acts in the System Log; the token id is in it.
	e.iss.StopEvents()
	n := 0
	for _, ev := range el.all() {
		if ev.DebugContext != nil && ev.DebugContext.DebugData["tokenId"] == aID {
			n++
			if ev.Actor == nil || ev.Actor.Type != "SystemPrincipal" || targetOf(ev, "User") == nil {
				t.Errorf("revoke event: %+v", ev)
			}
		}
	}
	if n == 0 {
		t.Error("no System Log event names the revoked token")
	}
}

// TestTokensAPIRefusals: no API token 401, unknown user, client or
// token 404, other methods 405, empty segments no route.
func TestTokensAPIRefusals(t *testing.T) {
	e, _ := grantsEnv(t, nil)
	e.login("u1", "web", webCB)
	for _, c := range []struct {
		method, path string
		auth         []string
		status       int
		code         string
	}{
		{http.MethodGet, "/api/v1/users/u1/clients/web/tokens", []string{}, 401, "E0000011"},
		{http.MethodGet, "/api/v1/users/u1/clients/web/tokens/oarX", []string{"SSWS wrong-" + logsToken}, 401, "E0000011"},
		{http.MethodDelete, "/api/v1/users/u1/clients/web/tokens/oarX", []string{"Bearer " + logsToken}, 401, "E0000011"},
		{http.MethodGet, "/api/v1/apps/web/tokens", []string{}, 401, "E0000011"},
		{http.MethodGet, "/api/v1/apps/web/tokens/oarX", []string{}, 401, "E0000011"},
		{http.MethodDelete, "/api/v1/apps/web/tokens/oarX", []string{}, 401, "E0000011"},
		{http.MethodGet, "/api/v1/users/nobody/clients/web/tokens", nil, 404, "(User)"},
		{http.MethodGet, "/api/v1/users/u1/clients/nope/tokens", nil, 404, "(Client)"},
		{http.MethodGet, "/api/v1/apps/nope/tokens", nil, 404, "(Application)"},
		{http.MethodGet, "/api/v1/apps/web/tokens/oarX", nil, 404, "(OAuth2RefreshToken)"},
		{http.MethodDelete, "/api/v1/apps/web/tokens/oarX", nil, 404, "(OAuth2RefreshToken)"},
		{http.MethodPost, "/api/v1/users/u1/clients/web/tokens", nil, 405, "E0000022"},
		{http.MethodPut, "/api/v1/apps/web/tokens/oarX", nil, 405, "E0000022"},
		{http.MethodGet, "/api/v1/apps/web/tokens//", nil, 404, ""},
		{http.MethodGet, "/api/v1/apps/web/tokens/oarX/more", nil, 404, ""},
	} {
		w := e.grantsAPI(c.method, c.path, c.auth...)
		if w.Code != c.status || (c.code != "" && !strings.Contains(w.Body.String(), c.code)) {
			t.Errorf("%s %s: %d %s, want %d %s", c.method, c.path, w.Code, w.Body, c.status, c.code)
		}
		if c.status == 405 && w.Header().Get("Allow") != "GET, DELETE" {
			t.Errorf("%s %s: Allow %q", c.method, c.path, w.Header().Get("Allow"))
		}
	}
}

// TestTokensAPIAcrossNodes: on PostgreSQL (the pgtest helper skips
// without one unless APIACCESS_STRICT=1), tokens issued at one node are
// listed and paged at another, and revoked there for both.
func TestTokensAPIAcrossNodes(t *testing.T) {
	schema := pgtest.FreshSchema(t, "apiaccess_tokens_")
	open := func() store.Store {
		st, err := postgres.Open(context.Background(), postgres.Config{DSN: pgtest.DSN(t), Schema: schema, MaxConns: 8})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	a, _ := grantsEnv(t, open())
	b, _ := grantsEnv(t, open())
	var pairs []tokenPair
	for range 3 {
		pairs = append(pairs, a.login("u1", "web", webCB))
	}
	page, h := b.tokensList("/api/v1/users/u1/clients/web/tokens?limit=2")
	next := nextLink(t, h)
	if len(page) != 2 || next == "" {
		t.Fatalf("node B's first page: %d, next %q", len(page), next)
	}
	rest, h := b.tokensList(next)
	if len(rest) != 1 || nextLink(t, h) != "" || slices.Contains(tokenIDs(page), rest[0].ID) {
		t.Fatalf("node B's second page: %+v", rest)
	}
	rt, err := a.st.GetRefresh(context.Background(), refreshHash(pairs[0].refresh))
	if err != nil {
		t.Fatal(err)
	}
	id := refreshTokenID(rt.Family)
	if w := b.grantsAPI(http.MethodDelete, "/api/v1/apps/web/tokens/"+id); w.Code != http.StatusNoContent {
		t.Fatalf("DELETE at node B: %d %s", w.Code, w.Body)
	}
	if status, _ := a.refresh("web", pairs[0].refresh); status != 400 {
		t.Fatalf("node A refreshed a token revoked at node B: %d", status)
	}
	if a.active(pairs[0].access) {
		t.Fatal("node A: the revoked family's access token is active")
	}
	if list, _ := a.tokensList("/api/v1/apps/web/tokens"); len(list) != 2 || slices.Contains(tokenIDs(list), id) {
		t.Fatalf("node A lists %+v", list)
	}
}

// TestUserClientsWithTokens: Okta's "List all clients" of a user names
// the clients the user has active refresh tokens at (no grant needed),
// with links to the grants and the tokens, and drops one whose tokens
// were revoked.
func TestUserClientsWithTokens(t *testing.T) {
	e, _ := grantsEnv(t, nil)
	clients := func() []oktaClient {
		t.Helper()
		w := e.grantsAPI(http.MethodGet, "/api/v1/users/u1/clients")
		var out []oktaClient
		if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &out) != nil {
			t.Fatalf("clients: %d %s", w.Code, w.Body)
		}
		return out
	}
	if got := clients(); len(got) != 0 {
		t.Fatalf("before any token: %+v", got)
	}
	e.login("u1", "other", otherCB)
	e.login("u2", "web", webCB) // another user's
	got := clients()
	if len(got) != 1 || got[0].ClientID != "other" || got[0].ClientName != "Other App" ||
		got[0].Links["tokens"]["href"] != issBase+"/api/v1/users/u1/clients/other/tokens" || got[0].Links["grants"] == nil {
		t.Fatalf("clients with tokens: %+v", got)
	}
	e.clock.Advance(2 * time.Second)
	e.revoke204("/api/v1/users/u1/clients/other/tokens")
	if got := clients(); len(got) != 0 {
		t.Fatalf("after the cut-off: %+v", got)
	}
}
