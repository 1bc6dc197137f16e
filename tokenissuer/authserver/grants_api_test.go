package authserver

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// grantsEnv is the browser-flow environment on st (nil: embedded) with
// an API token, an EventLog, and a second consent-required scope on
// server "default".
func grantsEnv(t *testing.T, st store.Store) (*flowEnv, *memEventLog) {
	t.Helper()
	el := &memEventLog{}
	e := newFlowEnvWith(t, "https://id.example.com", func(o *Options) {
		o.APITokens, o.EventLog = []string{logsToken}, el
		s := o.Servers["default"]
		s.Scopes = append(s.Scopes, &Scope{Name: "statements", Consent: "required", Description: "Read statements"})
	}, st)
	return e, el
}

// grantsAPI calls the User Grants API with the API token, or with the
// Authorization headers given.
func (e *flowEnv) grantsAPI(method, path string, auth ...string) *httptest.ResponseRecorder {
	e.t.Helper()
	r := httptest.NewRequest(method, "https://id.example.com"+path, nil)
	if auth == nil {
		auth = []string{"SSWS " + logsToken}
	}
	for _, h := range auth {
		r.Header.Add("Authorization", h)
	}
	w := httptest.NewRecorder()
	if !e.iss.ServeHTTP(w, r) {
		e.t.Fatalf("%s %s: not served", method, path)
	}
	return w
}

// grants lists through path and decodes Okta's grant objects.
func (e *flowEnv) grants(path string) []oktaGrant {
	e.t.Helper()
	w := e.grantsAPI(http.MethodGet, path)
	if w.Code != 200 || w.Header().Get("Cache-Control") != "no-store" {
		e.t.Fatalf("GET %s: %d %s", path, w.Code, w.Body)
	}
	if strings.TrimSpace(w.Body.String()) == "null" {
		e.t.Fatalf("GET %s: null, not an array", path)
	}
	var out []oktaGrant
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *flowEnv) revoke204(path string) {
	e.t.Helper()
	if w := e.grantsAPI(http.MethodDelete, path); w.Code != http.StatusNoContent || w.Body.Len() != 0 {
		e.t.Fatalf("DELETE %s: %d %s", path, w.Code, w.Body)
	}
}

func authorizeURL(client, cb, scope string) string {
	q := url.Values{"client_id": {client}, "response_type": {"code"}, "scope": {scope}, "state": {"s"}, "redirect_uri": {cb}}
	return "/oauth2/default/v1/authorize?" + q.Encode()
}

// asksConsent reports whether authorize shows the consent page (true)
// or issues the code at once (false).
func (e *flowEnv) asksConsent(sess *http.Cookie, client, cb, scope string) (bool, *httptest.ResponseRecorder) {
	e.t.Helper()
	w := e.browse(http.MethodGet, authorizeURL(client, cb, scope), nil, sess)
	if loc := w.Header().Get("Location"); strings.HasPrefix(loc, cb+"?") && strings.Contains(loc, "code=") {
		return false, w
	}
	if w.Code != 200 || hidden(w.Body.String(), "txn") == "" {
		e.t.Fatalf("authorize %s %q: %d %q, neither consent page nor code", client, scope, w.Code, w.Header().Get("Location"))
	}
	return true, w
}

// consent approves the consent page of client for scope.
func (e *flowEnv) consent(sess *http.Cookie, client, cb, scope string) {
	e.t.Helper()
	asked, w := e.asksConsent(sess, client, cb, scope)
	if !asked {
		e.t.Fatalf("%s %q: no consent page", client, scope)
	}
	page := w.Body.String()
	form := url.Values{"txn": {hidden(page, "txn")}, "csrf": {hidden(page, "csrf")}, "decision": {"allow"}}
	if loc := e.browse(http.MethodPost, "/oauth2/v1/consent", form, sess, cookieOf(w, "__Host-apiaccess_txn")).Header().Get("Location"); !strings.Contains(loc, "code=") {
		e.t.Fatalf("consent %s %q: %q", client, scope, loc)
	}
}

// byClientScope indexes grants by "client scope".
func byClientScope(gs []oktaGrant) map[string]oktaGrant {
	out := map[string]oktaGrant{}
	for _, g := range gs {
		out[g.ClientID+" "+g.ScopeID] = g
	}
	return out
}

func keysOfGrants(gs []oktaGrant) []string {
	var k []string
	for _, g := range gs {
		k = append(k, g.ClientID+" "+g.ScopeID)
	}
	slices.Sort(k)
	return k
}

func wantKeys(t *testing.T, what string, gs []oktaGrant, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := keysOfGrants(gs); !slices.Equal(got, want) {
		t.Fatalf("%s: grants %q, want %q", what, got, want)
	}
}

// TestUserGrantsAPI: consents given on the consent page are Okta grant
// objects of the User Grants API, listed per user (filtered, paged),
// per client and by id; revoking one grant, a client's and a user's
// deletes exactly those (another user's grant id is not this user's),
// the next authorize asks again, and each revoked grant is one System
// Log event of Okta's type with the API token as actor and the user,
// client and scope as targets. On both stores.
func TestUserGrantsAPI(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { testUserGrantsAPI(t, nil) })
	t.Run("postgres", func(t *testing.T) { testUserGrantsAPI(t, postgresStore(t)) })
}

func testUserGrantsAPI(t *testing.T, st store.Store) {
	e, el := grantsEnv(t, st)
	alice, mallory := e.session("u1"), e.session("u2")
	e.consent(alice, "web", webCB, "openid pay statements")
	e.consent(alice, "other", otherCB, "pay")
	e.consent(mallory, "web", webCB, "pay")
	consentAt := e.clock.Now().UTC().Truncate(time.Millisecond)
	e.clock.Advance(time.Minute)

	all := e.grants("/api/v1/users/u1/grants")
	wantKeys(t, "alice's grants", all, "web pay", "web statements", "other pay")
	for _, g := range all {
		created, err := time.Parse(time.RFC3339, g.Created)
		if len(g.ID) != 20 || !strings.HasPrefix(g.ID, "oag") || strings.Contains(g.ID, "u1") || strings.Contains(g.ID, "default") ||
			g.Status != "ACTIVE" || g.Issuer != "https://id.example.com/oauth2/default" || g.UserID != "u1" || g.Source != "END_USER" ||
			err != nil || !created.Equal(consentAt) || g.LastUpdated != g.Created || g.CreatedBy["id"] != "u1" {
			t.Fatalf("grant object %+v (created %v, want %v)", g, created, consentAt)
		}
		if self := g.Links["self"]["href"]; self != "https://id.example.com/api/v1/users/u1/grants/"+g.ID {
			t.Fatalf("self link %v", self)
		}
		if g.Embedded != nil {
			t.Fatalf("_embedded without expand: %v", g.Embedded)
		}
	}
	if again := e.grants("/api/v1/users/u1/grants"); !slices.EqualFunc(again, all, func(a, b oktaGrant) bool { return a.ID == b.ID }) {
		t.Fatal("grant ids are not stable")
	}
	ids := byClientScope(all)
	mal := e.grants("/api/v1/users/u2/grants")
	wantKeys(t, "mallory's grants", mal, "web pay")
	if mal[0].ID == ids["web pay"].ID {
		t.Fatal("two users' grants share an id")
	}

	wantKeys(t, "scopeId=pay", e.grants("/api/v1/users/u1/grants?scopeId=pay"), "web pay", "other pay")
	wantKeys(t, "web's grants", e.grants("/api/v1/users/u1/clients/web/grants"), "web pay", "web statements")
	wantKeys(t, "svc's grants", e.grants("/api/v1/users/u1/clients/svc/grants"))

	// Pages of 2 by the Link header.
	w := e.grantsAPI(http.MethodGet, "/api/v1/users/u1/grants?limit=2")
	var page []oktaGrant
	_ = json.Unmarshal(w.Body.Bytes(), &page)
	l := links(t, w)
	if len(page) != 2 || l["next"] == "" || !strings.HasPrefix(l["self"], "https://id.example.com/api/v1/users/u1/grants?limit=2") {
		t.Fatalf("first page: %d grants, links %v", len(page), l)
	}
	w = e.grantsAPI(http.MethodGet, strings.TrimPrefix(l["next"], "https://id.example.com"))
	var rest []oktaGrant
	_ = json.Unmarshal(w.Body.Bytes(), &rest)
	if l := links(t, w); len(rest) != 1 || l["next"] != "" {
		t.Fatalf("second page: %d grants, links %v", len(rest), l)
	}
	if !slices.EqualFunc(append(page, rest...), all, func(a, b oktaGrant) bool { return a.ID == b.ID }) {
		t.Fatal("the pages are not the list")
	}

	// One grant by id, with expand=scope.
	w = e.grantsAPI(http.MethodGet, "/api/v1/users/u1/grants/"+ids["web pay"].ID+"?expand=scope")
	var got oktaGrant
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != 200 || got.ID != ids["web pay"].ID || got.ScopeID != "pay" ||
		got.Embedded["scope"].(map[string]any)["id"] != "pay" {
		t.Fatalf("grant by id: %d %s", w.Code, w.Body)
	}

	// The clients alice has grants for.
	w = e.grantsAPI(http.MethodGet, "/api/v1/users/u1/clients")
	var clients []oktaClient
	if err := json.Unmarshal(w.Body.Bytes(), &clients); err != nil || w.Code != 200 || len(clients) != 2 ||
		clients[0].ClientID != "web" || clients[0].ClientName != "Web App" || clients[1].ClientID != "other" ||
		clients[0].Links["grants"]["href"] != "https://id.example.com/api/v1/users/u1/clients/web/grants" {
		t.Fatalf("clients: %d %s", w.Code, w.Body)
	}

	// Mallory's grant id is not alice's: 404, and it stays.
	for _, m := range []string{http.MethodGet, http.MethodDelete} {
		oktaNotFound(t, e.grantsAPI(m, "/api/v1/users/u1/grants/"+mal[0].ID), mal[0].ID+" (OAuth2ScopeConsentGrant)")
	}
	wantKeys(t, "mallory's grants after", e.grants("/api/v1/users/u2/grants"), "web pay")

	// Revoke one grant: asked again for pay, not for statements.
	e.revoke204("/api/v1/users/u1/grants/" + ids["web pay"].ID)
	wantKeys(t, "after one revoke", e.grants("/api/v1/users/u1/grants"), "web statements", "other pay")
	if asked, _ := e.asksConsent(alice, "web", webCB, "openid statements"); asked {
		t.Fatal("asked again for a scope whose grant stays")
	}
	if asked, w := e.asksConsent(alice, "web", webCB, "openid pay"); !asked || !strings.Contains(w.Body.String(), "Make payments") {
		t.Fatal("not asked again for the revoked grant")
	}
	oktaNotFound(t, e.grantsAPI(http.MethodDelete, "/api/v1/users/u1/grants/"+ids["web pay"].ID), "(OAuth2ScopeConsentGrant)")

	// Revoke a client's grants, then the user's.
	e.revoke204("/api/v1/users/u1/clients/other/grants")
	wantKeys(t, "after the client's revoke", e.grants("/api/v1/users/u1/grants"), "web statements")
	if asked, _ := e.asksConsent(alice, "other", otherCB, "pay"); !asked {
		t.Fatal("other: not asked again")
	}
	e.revoke204("/api/v1/users/u1/grants")
	wantKeys(t, "after the user's revoke", e.grants("/api/v1/users/u1/grants"))
	e.revoke204("/api/v1/users/u1/grants") // nothing left: still 204
	if asked, _ := e.asksConsent(alice, "web", webCB, "statements"); !asked {
		t.Fatal("web statements: not asked again")
	}
	wantKeys(t, "mallory's grants at the end", e.grants("/api/v1/users/u2/grants"), "web pay")
	if asked, _ := e.asksConsent(mallory, "web", webCB, "pay"); asked {
		t.Fatal("mallory's consent went with alice's")
	}

	e.iss.StopEvents()
	evs := el.all()
	for typ, want := range map[string]string{
		"app.oauth2.as.consent.revoke":             "web pay",
		"app.oauth2.as.consent.revoke.user.client": "other pay",
		"app.oauth2.as.consent.revoke.user":        "web statements",
	} {
		ev := one(t, evs, typ)
		c, u, sc, as := targetOf(ev, "PublicClientApp"), targetOf(ev, "User"), targetOf(ev, "Scope"), targetOf(ev, "AuthorizationServer")
		if c == nil || u == nil || sc == nil || as == nil || c.ID+" "+sc.ID != want || u.ID != "u1" || u.AlternateID != "alice@example.com" || as.ID != "default" {
			t.Fatalf("%s targets %+v, want %s of u1", typ, ev.Target, want)
		}
		if ev.Outcome.Result != "SUCCESS" || ev.Actor.Type != "SystemPrincipal" || ev.Actor.ID != apiActor.ID || ev.Transaction.Type != "WEB" ||
			ev.DebugContext.DebugData["grantId"] != ids[want].ID || ev.DisplayMessage == "" {
			t.Fatalf("%s event: outcome %+v actor %+v debug %v", typ, ev.Outcome, ev.Actor, ev.DebugContext.DebugData)
		}
	}
	if n := len(ofType(evs, "app.oauth2.as.consent.grant")); n != 3 {
		t.Fatalf("%d consent.grant events, want 3", n)
	}
	noSecrets(t, evs, logsToken)
	logged := e.logs.FilterMessage(EventConsentRevoke).All()
	if len(logged) != 1 || logged[0].ContextMap()["grant_id"] != ids["web pay"].ID || logged[0].ContextMap()["user_id"] != "u1" {
		t.Fatalf("Caddy log events %v", logged)
	}
}

func oktaNotFound(t *testing.T, w *httptest.ResponseRecorder, what string) {
	t.Helper()
	var body oktaError
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Code != 404 || body.Code != "E0000007" || !strings.HasSuffix(body.Summary, what) || body.ID == "" {
		t.Fatalf("want 404 E0000007 for %s: %d %s", what, w.Code, w.Body)
	}
}

// TestUserGrantsAPIRefusals: without a valid API token 401 E0000011
// (before anything about the user is told); an unknown user (the login
// is not the id), client or path is 404 E0000007; other methods 405.
func TestUserGrantsAPIRefusals(t *testing.T) {
	e, _ := grantsEnv(t, nil)
	for _, auth := range [][]string{{}, {"SSWS wrong-" + logsToken}, {"Bearer " + logsToken}, {"SSWS " + logsToken, "SSWS " + logsToken}} {
		for _, p := range []string{"/api/v1/users/u1/grants", "/api/v1/users/nobody/grants/oagXXXXXXXXXXXXXXXXX", "/api/v1/users/u1/clients"} {
			w := e.grantsAPI(http.MethodGet, p, auth...) // {}: no Authorization
			var body oktaError
			if json.Unmarshal(w.Body.Bytes(), &body) != nil || w.Code != 401 || body.Code != "E0000011" || w.Header().Get("WWW-Authenticate") != "SSWS" {
				t.Fatalf("%s with %q: %d %s", p, auth, w.Code, w.Body)
			}
		}
	}
	oktaNotFound(t, e.grantsAPI(http.MethodGet, "/api/v1/users/nobody/grants"), "nobody (User)")
	oktaNotFound(t, e.grantsAPI(http.MethodDelete, "/api/v1/users/nobody/grants"), "nobody (User)")
	oktaNotFound(t, e.grantsAPI(http.MethodGet, "/api/v1/users/alice@example.com/grants"), "alice@example.com (User)")
	oktaNotFound(t, e.grantsAPI(http.MethodGet, "/api/v1/users/u1/clients/nope/grants"), "nope (Client)")
	oktaNotFound(t, e.grantsAPI(http.MethodDelete, "/api/v1/users/u1/clients/nope/grants"), "nope (Client)")
	oktaNotFound(t, e.grantsAPI(http.MethodGet, "/api/v1/users/u1/grants/oagXXXXXXXXXXXXXXXXX"), "(OAuth2ScopeConsentGrant)")
	for _, p := range []string{"/api/v1/users/u1", "/api/v1/users/u1/grants/", "/api/v1/users/u1/tokens", "/api/v1/users//grants"} {
		oktaNotFound(t, e.grantsAPI(http.MethodGet, p), "(Path)")
	}
	for _, c := range []struct{ method, path, allow string }{
		{http.MethodPost, "/api/v1/users/u1/grants", "GET, DELETE"},
		{http.MethodPut, "/api/v1/users/u1/grants/x", "GET, DELETE"},
		{http.MethodDelete, "/api/v1/users/u1/clients", "GET"},
	} {
		if w := e.grantsAPI(c.method, c.path); w.Code != 405 || w.Header().Get("Allow") != c.allow {
			t.Fatalf("%s %s: %d Allow %q", c.method, c.path, w.Code, w.Header().Get("Allow"))
		}
	}
	if w := e.grantsAPI(http.MethodGet, "/api/v1/users/u1/grants?limit=x"); w.Code != 400 || !strings.Contains(w.Body.String(), "E0000001") {
		t.Fatalf("limit=x: %d %s", w.Code, w.Body)
	}
}

// TestConsentRecordFormat: a consent is stored as a record with its
// time, and a record of the old form ("1") still counts: authorize
// does not ask, the API lists it without a creation time and revokes
// it. On both stores.
func TestConsentRecordFormat(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { testConsentRecordFormat(t, nil) })
	t.Run("postgres", func(t *testing.T) { testConsentRecordFormat(t, postgresStore(t)) })
}

func testConsentRecordFormat(t *testing.T, st store.Store) {
	e, _ := grantsEnv(t, st)
	alice := e.session("u1")
	e.consent(alice, "web", webCB, "pay")
	s, _ := e.iss.Server("default")
	key := func(client string) string { return consentKey(s, &clientauth.Client{ID: client}, "u1", "pay") }
	raw, err := e.st.GetRecord(context.Background(), store.NSConsent, key("web"))
	var rec consentRecord
	if err != nil || json.Unmarshal(raw, &rec) != nil || !rec.Created.Equal(e.clock.Now().UTC().Truncate(time.Millisecond)) {
		t.Fatalf("consent record %q: %v", raw, err)
	}

	if err := e.st.PutRecord(context.Background(), store.NSConsent, key("other"), []byte("1"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if asked, _ := e.asksConsent(alice, "other", otherCB, "pay"); asked {
		t.Fatal(`a consent stored as "1" is not remembered`)
	}
	gs := byClientScope(e.grants("/api/v1/users/u1/grants"))
	old, ok := gs["other pay"]
	if !ok || old.Created != "" || old.LastUpdated != "" || old.Status != "ACTIVE" || gs["web pay"].Created == "" {
		t.Fatalf("grants %+v", gs)
	}
	e.revoke204("/api/v1/users/u1/grants/" + old.ID)
	if asked, _ := e.asksConsent(alice, "other", otherCB, "pay"); !asked {
		t.Fatal(`a revoked "1" consent is still remembered`)
	}
}
