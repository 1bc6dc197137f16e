package authserver

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/apiaccess/caddy-apiaccess/internal/ssf"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/embedded"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/postgres"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/postgres/pgtest"
)

// The SSF receivers of these tests: feed (both scopes), reader
// (ssf.read only), and svc (no Okta API scope).
func init() {
	secrets["feed"], secrets["feed2"], secrets["reader"] = "feed-secret", "feed2-secret", "reader-secret"
}

const issBase = "https://id.example.com"

func feedEnv(t *testing.T, st store.Store) *flowEnv {
	t.Helper()
	return newFlowEnvWith(t, issBase, func(o *Options) {
		o.APITokens = []string{logsToken}
		o.Clients = append(o.Clients,
			&clientauth.Client{ID: "feed", Secret: "feed-secret", OktaAPIScopes: []string{"ssf.read", "ssf.manage"}},
			&clientauth.Client{ID: "feed2", Secret: "feed2-secret", OktaAPIScopes: []string{"ssf.read", "ssf.manage"}},
			&clientauth.Client{ID: "reader", Secret: "reader-secret", OktaAPIScopes: []string{"ssf.read"}})
	}, st)
}

// orgToken gets an org access token by client_credentials.
func (e *flowEnv) orgToken(client, scope string) string {
	e.t.Helper()
	status, body := e.post("/oauth2/v1/token", client, url.Values{"grant_type": {"client_credentials"}, "scope": {scope}})
	tok, _ := body["access_token"].(string)
	if status != 200 || tok == "" {
		e.t.Fatalf("org client_credentials for %s (%s): %d %v", client, scope, status, body)
	}
	return tok
}

// ssfCall calls the SSF API with a bearer token and a JSON body.
func (e *flowEnv) ssfCall(method, path, tok string, body any) *httptest.ResponseRecorder {
	e.t.Helper()
	var r *http.Request
	if body != nil {
		b, _ := json.Marshal(body)
		r = httptest.NewRequest(method, issBase+path, strings.NewReader(string(b)))
		r.Header.Set("Content-Type", "application/json")
	} else {
		r = httptest.NewRequest(method, issBase+path, nil)
	}
	if tok != "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	w := httptest.NewRecorder()
	if !e.iss.ServeHTTP(w, r) {
		e.t.Fatalf("%s %s: not served", method, path)
	}
	return w
}

func (e *flowEnv) createStream(tok string) ssf.StreamConfig {
	e.t.Helper()
	w := e.ssfCall(http.MethodPost, "/api/v1/ssf/stream", tok, map[string]any{
		"delivery": map[string]any{"method": ssf.DeliveryPoll}, "events_requested": []string{ssf.EventSessionRevoked}})
	var cfg ssf.StreamConfig
	if w.Code != http.StatusCreated || json.Unmarshal(w.Body.Bytes(), &cfg) != nil || cfg.StreamID == "" {
		e.t.Fatalf("create stream: %d %s", w.Code, w.Body)
	}
	return cfg
}

// pollEvents polls a stream (returnImmediately), acknowledging ack, and
// verifies every SET with the org's published keys.
func (e *flowEnv) pollEvents(cfg ssf.StreamConfig, tok string, ack []string) (map[string]ssf.Event, bool) {
	e.t.Helper()
	path := strings.TrimPrefix(cfg.Delivery.EndpointURL, issBase)
	w := e.ssfCall(http.MethodPost, path, tok, ssf.PollRequest{ReturnImmediately: true, Ack: ack})
	var resp ssf.PollResponse
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &resp) != nil || resp.Sets == nil {
		e.t.Fatalf("poll: %d %s", w.Code, w.Body)
	}
	v := &ssf.Verifier{Issuer: issBase, Audience: cfg.Aud[0], Keys: e.iss.org.Keys().Current().Public, Now: e.clock.Now}
	out := map[string]ssf.Event{}
	for jti, set := range resp.Sets {
		ev, err := v.Verify(set)
		if err != nil || ev.ID != jti {
			e.t.Fatalf("SET %s does not verify: %v", jti, err)
		}
		out[jti] = ev
	}
	return out, resp.MoreAvailable
}

func jtiExp(t *testing.T, tok string) (string, time.Time) {
	t.Helper()
	p, err := jwt.ParseInsecure([]byte(tok))
	if err != nil {
		t.Fatal(err)
	}
	return p.JwtID(), p.Expiration()
}

// TestOrgTokenForOktaAPIScopes: the org server grants a client the Okta
// API scopes given to it by client_credentials, and nothing else; its
// token is not a custom server's.
func TestOrgTokenForOktaAPIScopes(t *testing.T) {
	e := feedEnv(t, nil)
	tok := e.orgToken("feed", "ssf.read ssf.manage")
	p, _ := jwt.ParseInsecure([]byte(tok))
	if p.Issuer() != issBase || !slices.Equal(p.Audience(), []string{issBase}) || p.Subject() != "feed" || p.Expiration().Sub(p.IssuedAt()) != time.Hour {
		t.Fatalf("org token claims: iss %s aud %v sub %s lifetime %s", p.Issuer(), p.Audience(), p.Subject(), p.Expiration().Sub(p.IssuedAt()))
	}
	for _, c := range []struct{ client, scope string }{
		{"reader", "ssf.manage"}, {"svc", "ssf.read"}, {"feed", "okta.users.read"}, {"feed", ""}, {"feed", "openid"},
	} {
		status, body := e.post("/oauth2/v1/token", c.client, url.Values{"grant_type": {"client_credentials"}, "scope": {c.scope}})
		if status != 400 || body["error"] != "invalid_scope" {
			t.Errorf("%s asking %q: %d %v, want invalid_scope", c.client, c.scope, status, body)
		}
	}
	// The custom server does not take it.
	if e.active(tok) {
		t.Fatal("an org token introspects active at the custom server")
	}
	// Discovery of the org lists client_credentials now.
	r := httptest.NewRequest(http.MethodGet, issBase+"/.well-known/openid-configuration", nil)
	w := httptest.NewRecorder()
	e.iss.ServeHTTP(w, r)
	if !strings.Contains(w.Body.String(), `"client_credentials"`) {
		t.Fatalf("org discovery lacks client_credentials: %s", w.Body)
	}
}

// TestSSFConfiguration: the transmitter metadata (SSF 7.1) at the org.
func TestSSFConfiguration(t *testing.T) {
	e := feedEnv(t, nil)
	w := e.ssfCall(http.MethodGet, "/.well-known/ssf-configuration", "", nil)
	var md ssf.TransmitterConfig
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &md) != nil {
		t.Fatalf("metadata: %d %s", w.Code, w.Body)
	}
	if md.Issuer != issBase || md.JWKSURI != issBase+"/oauth2/v1/keys" || md.ConfigurationEndpoint != issBase+"/api/v1/ssf/stream" ||
		md.StatusEndpoint != issBase+"/api/v1/ssf/stream/status" || md.VerificationEndpoint != issBase+"/api/v1/ssf/stream/verification" ||
		!slices.Equal(md.DeliveryMethodsSupported, []string{ssf.DeliveryPoll}) || md.SpecVersion != "1_0" ||
		len(md.AuthorizationSchemes) != 1 || md.AuthorizationSchemes[0].SpecURN != "urn:ietf:rfc:6749" {
		t.Fatalf("metadata: %+v", md)
	}
	if w := e.ssfCall(http.MethodPost, "/.well-known/ssf-configuration", "", nil); w.Code != 405 {
		t.Fatalf("POST metadata: %d", w.Code)
	}
}

// TestSSFStreamAPI: Okta's SSF Transmitter API with org tokens: create,
// read, list, change, delete; a stream is its client's alone; scopes and
// tokens are checked with Okta's errors.
func TestSSFStreamAPI(t *testing.T) {
	e := feedEnv(t, nil)
	manage := e.orgToken("feed", "ssf.read ssf.manage")
	cfg := e.createStream(manage)
	if cfg.Iss != issBase || !slices.Equal(cfg.Aud, []string{"feed"}) || cfg.Delivery.Method != ssf.DeliveryPoll ||
		cfg.Delivery.EndpointURL != issBase+"/api/v1/ssf/poll/"+cfg.StreamID ||
		!slices.Equal(cfg.EventsDelivered, []string{ssf.EventSessionRevoked}) || cfg.InactivityTimeout != 900 {
		t.Fatalf("stream: %+v", cfg)
	}
	read := e.orgToken("reader", "ssf.read")
	other := e.orgToken("feed2", "ssf.read ssf.manage")

	// Reading: one by id, and the list of the caller's.
	if w := e.ssfCall(http.MethodGet, "/api/v1/ssf/stream?stream_id="+cfg.StreamID, manage, nil); w.Code != 200 || !strings.Contains(w.Body.String(), cfg.StreamID) {
		t.Fatalf("GET stream: %d %s", w.Code, w.Body)
	}
	if w := e.ssfCall(http.MethodGet, "/api/v1/ssf/stream", manage, nil); w.Code != 200 || !strings.HasPrefix(w.Body.String(), "[") || !strings.Contains(w.Body.String(), cfg.StreamID) {
		t.Fatalf("list streams: %d %s", w.Code, w.Body)
	}
	// Another client sees none of it.
	if w := e.ssfCall(http.MethodGet, "/api/v1/ssf/stream?stream_id="+cfg.StreamID, other, nil); w.Code != 404 || !strings.Contains(w.Body.String(), "E0000007") {
		t.Fatalf("another client's stream: %d %s", w.Code, w.Body)
	}
	if w := e.ssfCall(http.MethodGet, "/api/v1/ssf/stream", other, nil); w.Code != 200 || strings.TrimSpace(w.Body.String()) != "[]" {
		t.Fatalf("another client's list: %d %s", w.Code, w.Body)
	}
	if w := e.ssfCall(http.MethodDelete, "/api/v1/ssf/stream?stream_id="+cfg.StreamID, other, nil); w.Code != 404 {
		t.Fatalf("another client deleting: %d %s", w.Code, w.Body)
	}
	if w := e.ssfCall(http.MethodPost, strings.TrimPrefix(cfg.Delivery.EndpointURL, issBase), other, ssf.PollRequest{ReturnImmediately: true}); w.Code != 404 {
		t.Fatalf("another client polling: %d %s", w.Code, w.Body)
	}

	// Tokens and scopes.
	svcCustom := func() string {
		_, body := e.post(tokenEP, "svc", url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}})
		return body["access_token"].(string)
	}()
	userTok := e.login("u1", "web", webCB).access
	for name, tok := range map[string]string{"none": "", "garbage": "x.y.z", "custom server": svcCustom, "user token": userTok} {
		w := e.ssfCall(http.MethodGet, "/api/v1/ssf/stream", tok, nil)
		if w.Code != 401 || !strings.Contains(w.Body.String(), "E0000011") || !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: %d %s %q", name, w.Code, w.Body, w.Header().Get("WWW-Authenticate"))
		}
	}
	if w := e.ssfCall(http.MethodPost, "/api/v1/ssf/stream", read, map[string]any{"delivery": map[string]any{"method": ssf.DeliveryPoll}}); w.Code != 403 ||
		!strings.Contains(w.Body.String(), "E0000006") || !strings.Contains(w.Header().Get("WWW-Authenticate"), `insufficient_scope`) {
		t.Fatalf("create with ssf.read only: %d %s", w.Code, w.Body)
	}
	// A revoked org token is refused.
	revoked := e.orgToken("feed", "ssf.read ssf.manage")
	if status, body := e.post("/oauth2/v1/revoke", "feed", url.Values{"token": {revoked}}); status != 200 {
		t.Fatalf("revoke org token: %d %v", status, body)
	}
	if w := e.ssfCall(http.MethodGet, "/api/v1/ssf/stream", revoked, nil); w.Code != 401 {
		t.Fatalf("revoked org token: %d", w.Code)
	}

	// Bad bodies.
	for name, body := range map[string]any{
		"push":          map[string]any{"delivery": map[string]any{"method": ssf.DeliveryPush, "endpoint_url": "https://r.test/"}},
		"no delivery":   map[string]any{"events_requested": []string{ssf.EventSessionRevoked}},
		"bad event":     map[string]any{"delivery": map[string]any{"method": ssf.DeliveryPoll}, "events_requested": []string{"session-revoked"}},
		"bad format":    map[string]any{"delivery": map[string]any{"method": ssf.DeliveryPoll}, "format": "email"},
		"not an object": []int{1},
	} {
		if w := e.ssfCall(http.MethodPost, "/api/v1/ssf/stream", manage, body); w.Code != 400 || !strings.Contains(w.Body.String(), "E0000001") {
			t.Errorf("%s: %d %s", name, w.Code, w.Body)
		}
	}

	// PATCH changes what is sent; PUT replaces.
	w := e.ssfCall(http.MethodPatch, "/api/v1/ssf/stream", manage, map[string]any{"stream_id": cfg.StreamID, "description": "gateway 1"})
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"gateway 1"`) || !strings.Contains(w.Body.String(), ssf.EventSessionRevoked) {
		t.Fatalf("PATCH: %d %s", w.Code, w.Body)
	}
	w = e.ssfCall(http.MethodPut, "/api/v1/ssf/stream", manage, map[string]any{"stream_id": cfg.StreamID, "delivery": map[string]any{"method": ssf.DeliveryPoll},
		"events_requested": []string{ssf.EventVerification}})
	var put ssf.StreamConfig
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &put) != nil || put.Description != "" || !slices.Equal(put.EventsDelivered, []string{ssf.EventVerification}) {
		t.Fatalf("PUT: %d %s", w.Code, w.Body)
	}
	if w := e.ssfCall(http.MethodGet, "/api/v1/ssf/stream/status?stream_id="+cfg.StreamID, read, nil); w.Code != 404 {
		t.Fatalf("status of another client's stream: %d", w.Code)
	}
	if w := e.ssfCall(http.MethodGet, "/api/v1/ssf/stream/status?stream_id="+cfg.StreamID, manage, nil); w.Code != 200 || !strings.Contains(w.Body.String(), `"enabled"`) {
		t.Fatalf("status: %d %s", w.Code, w.Body)
	}

	// DELETE without stream_id: the client's only stream.
	if w := e.ssfCall(http.MethodDelete, "/api/v1/ssf/stream", manage, nil); w.Code != 204 {
		t.Fatalf("DELETE: %d %s", w.Code, w.Body)
	}
	if w := e.ssfCall(http.MethodGet, "/api/v1/ssf/stream?stream_id="+cfg.StreamID, manage, nil); w.Code != 404 {
		t.Fatalf("GET after DELETE: %d", w.Code)
	}

	// At most maxStreamsPerClient streams; an idle one makes room.
	for range maxStreamsPerClient {
		e.createStream(manage)
	}
	if w := e.ssfCall(http.MethodPost, "/api/v1/ssf/stream", manage, map[string]any{"delivery": map[string]any{"method": ssf.DeliveryPoll}}); w.Code != 409 {
		t.Fatalf("stream over the limit: %d %s", w.Code, w.Body)
	}
	e.clock.Advance(streamInactivity + time.Second)
	manage = e.orgToken("feed", "ssf.read ssf.manage")
	e.createStream(manage)
	if w := e.ssfCall(http.MethodGet, "/api/v1/ssf/stream", manage, nil); strings.Count(w.Body.String(), `"stream_id"`) != 1 {
		t.Fatalf("idle streams still listed: %s", w.Body)
	}
}

// TestFeedPublishesRevocations: every way a token is revoked reaches a
// stream as a verified SET, and the in-process view at once; acked SETs
// do not come again.
func TestFeedPublishesRevocations(t *testing.T) {
	e := feedEnv(t, nil)
	tok := e.orgToken("feed", "ssf.read ssf.manage")
	cfg := e.createStream(tok)
	view := e.iss.RevocationView()

	// One access token.
	pair := e.login("u1", "web", webCB)
	jti, exp := jtiExp(t, pair.access)
	if view.Revoked(jti, "", "u1", "web", e.clock.Now().Add(-time.Second)) {
		t.Fatal("revoked before the revocation")
	}
	e.revoke("web", pair.access)
	if !view.Revoked(jti, "", "", "", time.Time{}) {
		t.Fatal("the in-process view does not hold the revoked token")
	}
	evs, _ := e.pollEvents(cfg, tok, nil)
	if len(evs) != 1 {
		t.Fatalf("events after one revocation: %v", evs)
	}
	var acks []string
	for id, ev := range evs {
		acks = append(acks, id)
		if ev.Subject.Kind != ssf.SubjectToken || ev.Subject.JTI != jti || ev.Subject.Issuer != issBase+"/oauth2/default" || !ev.Subject.Expiry.Equal(exp) || ev.Type != ssf.EventSessionRevoked {
			t.Fatalf("token event: %+v", ev)
		}
	}
	if evs, _ := e.pollEvents(cfg, tok, acks); len(evs) != 0 {
		t.Fatalf("acknowledged events came again: %v", evs)
	}

	// A refresh family: every unexpired access token issued from it.
	first := e.login("u1", "web", webCB)
	status, body := e.refresh("web", first.refresh)
	second := e.grantOf(status, body, "refresh")
	e.revoke("web", second.refresh)
	evs, _ = e.pollEvents(cfg, tok, nil)
	var got []string
	acks = acks[:0]
	for id, ev := range evs {
		got, acks = append(got, ev.Subject.JTI), append(acks, id)
	}
	j1, _ := jtiExp(t, first.access)
	j2, _ := jtiExp(t, second.access)
	slices.Sort(got)
	want := []string{j1, j2}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("family events name %v, want %v", got, want)
	}
	for _, j := range want {
		if !view.Revoked(j, "", "", "", time.Time{}) {
			t.Fatalf("view lacks family token %s", j)
		}
	}

	// Cut-offs: a client, a user at a client, a user.
	e.clock.Advance(2 * time.Second)
	for _, path := range []string{"/api/v1/apps/svc/tokens", "/api/v1/users/u1/clients/web/tokens", "/api/v1/users/u2/sessions?oauthTokens=true"} {
		if w := e.grantsAPI(http.MethodDelete, path); w.Code != http.StatusNoContent {
			t.Fatalf("DELETE %s: %d %s", path, w.Code, w.Body)
		}
	}
	evs, _ = e.pollEvents(cfg, tok, acks)
	kinds := map[string]ssf.Subject{}
	for _, ev := range evs {
		switch {
		case ev.Subject.Kind == ssf.SubjectClient:
			kinds["client"] = ev.Subject
		case ev.Subject.Kind == ssf.SubjectUser && ev.Subject.ClientID != "":
			kinds["user at client"] = ev.Subject
		case ev.Subject.Kind == ssf.SubjectUser:
			kinds["user"] = ev.Subject
		}
		if want := e.clock.Now().Add(cutOffMargin).Truncate(time.Second); !ev.Time.Equal(want) {
			t.Errorf("cut-off at %s, want %s", ev.Time, want)
		}
	}
	if kinds["client"].ClientID != "svc" || kinds["user at client"].UID != "u1" || kinds["user at client"].ClientID != "web" || kinds["user"].UID != "u2" || len(evs) != 3 {
		t.Fatalf("cut-off events: %+v", evs)
	}
	before := e.clock.Now().Add(-time.Minute)
	if !view.Revoked("x", "", "", "svc", before) || !view.Revoked("x", "", "u1", "web", before) || !view.Revoked("x", "", "u2", "other", before) {
		t.Fatal("the view does not apply the cut-offs")
	}
	if view.Revoked("x", "", "u1", "other", before) {
		t.Fatal("u1's cut-off at web revokes u1 at another client")
	}
	if view.Revoked("x", "", "", "svc", e.clock.Now().Add(time.Minute)) {
		t.Fatal("a cut-off revokes tokens issued after it")
	}

	// Verification events go to the asking stream only.
	other := e.orgToken("feed2", "ssf.read ssf.manage")
	cfg2 := e.createStream(other)
	if w := e.ssfCall(http.MethodPost, "/api/v1/ssf/stream/verification", tok, ssf.VerificationRequest{StreamID: cfg.StreamID, State: "s-1"}); w.Code != 204 {
		t.Fatalf("verification: %d %s", w.Code, w.Body)
	}
	if w := e.ssfCall(http.MethodPost, "/api/v1/ssf/stream/verification", tok, ssf.VerificationRequest{StreamID: cfg.StreamID}); w.Code != 429 {
		t.Fatalf("second verification at once: %d", w.Code)
	}
	evs, _ = e.pollEvents(cfg, tok, nil)
	found := false
	for _, ev := range evs {
		found = found || (ev.Type == ssf.EventVerification && ev.State == "s-1")
	}
	if !found {
		t.Fatalf("no verification event: %+v", evs)
	}
	// The new stream starts at the oldest event in force: it gets every
	// revocation above (1 + 2 + 3), and not the other's verification.
	evs2, _ := e.pollEvents(cfg2, other, nil)
	for _, ev := range evs2 {
		if ev.Type != ssf.EventSessionRevoked {
			t.Fatalf("stream 2 got %+v", ev)
		}
	}
	if len(evs2) != 6 {
		t.Fatalf("a new stream got %d events, want the 6 in force", len(evs2))
	}
}

// TestSSFPollErrors: RFC 8936's error answers.
func TestSSFPollErrors(t *testing.T) {
	e := feedEnv(t, nil)
	tok := e.orgToken("feed", "ssf.read ssf.manage")
	cfg := e.createStream(tok)
	path := strings.TrimPrefix(cfg.Delivery.EndpointURL, issBase)
	cases := []struct {
		name, tok string
		body      any
		status    int
		err       string
	}{
		{"no token", "", ssf.PollRequest{}, 401, "authentication_failed"},
		{"bad maxEvents", tok, map[string]any{"maxEvents": -1}, 400, "invalid_request"},
		{"not JSON", tok, "nope", 400, "invalid_request"},
		{"ack of nothing", tok, ssf.PollRequest{ReturnImmediately: true, Ack: []string{"unknown"}}, 200, ""},
	}
	for _, c := range cases {
		w := e.ssfCall(http.MethodPost, path, c.tok, c.body)
		var se ssf.SetErr
		_ = json.Unmarshal(w.Body.Bytes(), &se)
		if w.Code != c.status || se.Err != c.err {
			t.Errorf("%s: %d %s", c.name, w.Code, w.Body)
		}
	}
	if w := e.ssfCall(http.MethodPost, "/api/v1/ssf/poll/nope", tok, ssf.PollRequest{}); w.Code != 404 {
		t.Fatalf("unknown stream: %d", w.Code)
	}
	if w := e.ssfCall(http.MethodGet, path, tok, nil); w.Code != 405 {
		t.Fatalf("GET poll: %d", w.Code)
	}
	// An idle stream is dropped: polling it answers 404, and the
	// receiver creates a new one.
	e.clock.Advance(streamInactivity + time.Second)
	tok = e.orgToken("feed", "ssf.read ssf.manage")
	if w := e.ssfCall(http.MethodPost, path, tok, ssf.PollRequest{ReturnImmediately: true}); w.Code != 404 {
		t.Fatalf("idle stream: %d", w.Code)
	}
}

// TestFeedAcrossNodes: two nodes on one PostgreSQL database (two pools):
// a revocation at either reaches the other's in-process view and a
// stream polled at the other.
func TestFeedAcrossNodes(t *testing.T) {
	schema := pgtest.FreshSchema(t, "apiaccess_feed_")
	open := func() store.Store {
		st, err := postgres.Open(context.Background(), postgres.Config{DSN: pgtest.DSN(t), Schema: schema, MaxConns: 8})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	a, b := feedEnv(t, open()), feedEnv(t, open())
	tok := b.orgToken("feed", "ssf.read ssf.manage")
	cfg := b.createStream(tok)

	pair := a.login("u1", "web", webCB)
	jti, _ := jtiExp(t, pair.access)
	a.revoke("web", pair.access)
	await(t, "node B's view holds node A's revocation", func() bool { return b.iss.RevocationView().Revoked(jti, "", "", "", time.Time{}) })
	evs, _ := b.pollEvents(cfg, tok, nil)
	if len(evs) != 1 {
		t.Fatalf("node B's stream: %v", evs)
	}
	for _, ev := range evs {
		if ev.Subject.JTI != jti {
			t.Fatalf("node B's stream: %+v", ev)
		}
	}
	// And the other way: a cut-off at B reaches A's view.
	b.clock.Advance(2 * time.Second)
	if w := b.grantsAPI(http.MethodDelete, "/api/v1/apps/svc/tokens"); w.Code != http.StatusNoContent {
		t.Fatalf("cut-off at B: %d %s", w.Code, w.Body)
	}
	await(t, "node A's view holds node B's cut-off", func() bool {
		return a.iss.RevocationView().Revoked("x", "", "", "svc", time.Now().Add(-time.Minute))
	})
}

// await polls cond until it holds, failing after 10 s.
func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSSFAPIWithDPoPBoundToken: an org token bound to a DPoP key (as
// Okta's Node SDK gets them in PrivateKey mode) works at the stream API
// only as `DPoP <token>` with a proof of its key for that request.
func TestSSFAPIWithDPoPBoundToken(t *testing.T) {
	e := feedEnv(t, nil)
	k := newDPoPKey(t)
	orgTokenURL := issBase + "/oauth2/v1/token"
	ask := func(nonce string) *httptest.ResponseRecorder {
		form := url.Values{"grant_type": {"client_credentials"}, "scope": {"ssf.read"}}
		r := httptest.NewRequest(http.MethodPost, "/oauth2/v1/token", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.SetBasicAuth("feed", "feed-secret")
		r.Header.Set("DPoP", k.proofFor(t, "POST", orgTokenURL, nonce, ""))
		w := httptest.NewRecorder()
		e.iss.ServeHTTP(w, r)
		return w
	}
	w := ask("")
	w = ask(w.Header().Get("DPoP-Nonce"))
	var body map[string]any
	if json.Unmarshal(w.Body.Bytes(), &body); w.Code != 200 || body["token_type"] != "DPoP" {
		t.Fatalf("org token with DPoP: %d %s", w.Code, w.Body)
	}
	tok := body["access_token"].(string)
	streamURL := issBase + "/api/v1/ssf/stream"
	call := func(auth string, proofs ...string) int {
		r := httptest.NewRequest(http.MethodGet, streamURL, nil)
		r.Header.Set("Authorization", auth)
		for _, p := range proofs {
			r.Header.Add("DPoP", p)
		}
		w := httptest.NewRecorder()
		e.iss.ServeHTTP(w, r)
		return w.Code
	}
	if c := call("Bearer " + tok); c != 401 {
		t.Fatalf("a bound token as a bearer token: %d", c)
	}
	if c := call("DPoP " + tok); c != 401 {
		t.Fatalf("without a proof: %d", c)
	}
	if c := call("DPoP "+tok, newDPoPKey(t).proofFor(t, "GET", streamURL, "", tok)); c != 401 {
		t.Fatalf("another key's proof: %d", c)
	}
	if c := call("DPoP "+tok, k.proofFor(t, "POST", streamURL, "", tok)); c != 401 {
		t.Fatalf("a proof for another method: %d", c)
	}
	proof := k.proofFor(t, "GET", streamURL+"?stream_id=x", "", tok)
	if c := call("DPoP "+tok, proof); c != 200 {
		t.Fatalf("with the key's proof: %d", c)
	}
	if c := call("DPoP "+tok, proof); c != 401 {
		t.Fatalf("a replayed proof: %d", c)
	}
	// A bearer token sent with the DPoP scheme is refused too.
	plain := e.orgToken("feed", "ssf.read")
	if c := call("DPoP "+plain, k.proofFor(t, "GET", streamURL, "", plain)); c != 401 {
		t.Fatalf("an unbound token as DPoP: %d", c)
	}
}

// famHookStore runs before() once, just before a family index write:
// the interleaving "a revocation reads the index, a refresh writes it".
type famHookStore struct {
	*embedded.DB
	armed  atomic.Bool
	before func()
}

func (h *famHookStore) UpdateRecord(ctx context.Context, ns, key string, fn func([]byte) ([]byte, error)) ([]byte, error) {
	if ns == store.NSFamilyTokens && h.armed.CompareAndSwap(true, false) {
		h.before()
	}
	return h.DB.UpdateRecord(ctx, ns, key, fn)
}

// TestFamilyRevocationRacingRefresh (found in review): a family revoked
// while a refresh is between its family check and its index write. The
// refresh must not hand out an access token the feed never names: it
// fails, and every token in the family's index is in the view.
func TestFamilyRevocationRacingRefresh(t *testing.T) {
	db, err := embedded.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	h := &famHookStore{DB: db}
	e := feedEnv(t, h)
	first := e.login("u1", "web", webCB)
	h.before = func() {
		if status, body := e.post(revokeEP, "web", url.Values{"token": {first.refresh}}); status != http.StatusOK {
			t.Errorf("revoke: %d %v", status, body)
		}
	}
	h.armed.Store(true)
	if status, body := e.refresh("web", first.refresh); status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("a refresh racing its family's revocation: %d %v", status, body)
	}
	b, err := db.GetRecord(context.Background(), store.NSFamilyTokens, familyOfToken(t, e, first.access))
	if err != nil {
		t.Fatal(err)
	}
	var list []familyToken
	if err := json.Unmarshal(b, &list); err != nil || len(list) != 2 {
		t.Fatalf("family index: %s %v", b, err)
	}
	for _, ft := range list {
		if !e.iss.RevocationView().Revoked(ft.JTI, "", "", "", time.Time{}) {
			t.Errorf("family token %s is on no feed", ft.JTI)
		}
	}
}

func familyOfToken(t *testing.T, e *flowEnv, access string) string {
	t.Helper()
	jti, _ := jtiExp(t, access)
	fam, err := e.iss.familyOf(context.Background(), jti)
	if err != nil || fam == "" {
		t.Fatalf("family of %s: %q %v", jti, fam, err)
	}
	return fam
}

// failFeedStore fails the next feed append when armed.
type failFeedStore struct {
	*embedded.DB
	fail atomic.Bool
}

func (f *failFeedStore) AppendFeed(ctx context.Context, entries []store.FeedEntry) (uint64, error) {
	if f.fail.CompareAndSwap(true, false) {
		return 0, store.ErrUnavailable
	}
	return f.DB.AppendFeed(ctx, entries)
}

// TestFamilyRevocationPublishRetried: a family revocation whose publish
// failed answers 503; the family is revoked at the issuer (and in this
// Caddy's view), and the client's retry puts its tokens on the feed.
func TestFamilyRevocationPublishRetried(t *testing.T) {
	db, err := embedded.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	f := &failFeedStore{DB: db}
	e := feedEnv(t, f)
	tok := e.orgToken("feed", "ssf.read ssf.manage")
	cfg := e.createStream(tok)
	pair := e.login("u1", "web", webCB)
	jti, _ := jtiExp(t, pair.access)
	f.fail.Store(true)
	if status, body := e.post(revokeEP, "web", url.Values{"token": {pair.refresh}}); status != http.StatusServiceUnavailable {
		t.Fatalf("revocation with the feed down: %d %v", status, body)
	}
	if e.active(pair.access) || !e.iss.RevocationView().Revoked(jti, "", "", "", time.Time{}) {
		t.Fatal("the family is not revoked at the issuer and in the view")
	}
	if evs, _ := e.pollEvents(cfg, tok, nil); len(evs) != 0 {
		t.Fatalf("events before the retry: %v", evs)
	}
	e.revoke("web", pair.refresh)
	evs, _ := e.pollEvents(cfg, tok, nil)
	if len(evs) != 1 {
		t.Fatalf("events after the retry: %v", evs)
	}
	for _, ev := range evs {
		if ev.Subject.JTI != jti {
			t.Fatalf("event after the retry: %+v", ev)
		}
	}
	// Published now: a third revocation publishes nothing more.
	e.revoke("web", pair.refresh)
	if evs, _ := e.pollEvents(cfg, tok, nil); len(evs) != 1 {
		t.Fatalf("events after a third revocation: %d", len(evs))
	}
}

// skipCounter is an Observer counting skipped feed entries.
type skipCounter struct {
	noObserver
	n atomic.Int64
}

func (s *skipCounter) FeedEntrySkipped() { s.n.Add(1) }

// TestFeedEntrySkippedObserved: an entry the issuer cannot decode (from a
// newer version, or damage) is skipped by the in-process view, counted
// once for the metric, and later events still arrive.
func TestFeedEntrySkippedObserved(t *testing.T) {
	db, err := embedded.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	obs := &skipCounter{}
	e := newFlowEnvWith(t, issBase, func(o *Options) { o.Observer = obs }, db)
	if _, err := db.AppendFeed(context.Background(), []store.FeedEntry{{Data: []byte("not an event"), Until: time.Now().Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	await(t, "the skipped entry counted", func() bool { return obs.n.Load() == 1 })
	pair := e.login("u1", "web", webCB)
	jti, _ := jtiExp(t, pair.access)
	e.revoke("web", pair.access)
	if !e.iss.RevocationView().Revoked(jti, "", "", "", time.Time{}) {
		t.Fatal("a revocation after the skipped entry is not in the view")
	}
	if age, ok := e.iss.RevocationViewAge(); !ok || age > 10*time.Second {
		t.Fatalf("view age %s %v after a skipped entry", age, ok)
	}
	if n := obs.n.Load(); n != 1 {
		t.Fatalf("skipped entry counted %d times", n)
	}
}
