package caddymodule

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/google/uuid"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/apiaccess/caddy-apiaccess/caddymodule/validator"
	"github.com/apiaccess/caddy-apiaccess/internal/duration"
	"github.com/apiaccess/caddy-apiaccess/internal/ssf"
	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
)

// transmitter is a real SSF transmitter over HTTP on loopback, built
// from the protocol core (ssf.MemQueue, ssf.Sign): SSF metadata, OpenID
// discovery, a client_credentials token endpoint, the stream API and
// the poll endpoint (Okta's paths), and an access-token issuer under
// /oauth2/default whose tokens the gateway validates.
type transmitter struct {
	t        testing.TB
	q        *ssf.MemQueue
	setKey   jwk.Key // signs SETs
	atKey    jwk.Key // signs access tokens
	clientID string
	secret   string

	// onePerClient makes stream creation answer 409 while the client
	// has a stream (as Okta's transmitter does).
	onePerClient bool

	// clientKey, when set, is the client's public key for
	// private_key_jwt.
	clientKey jwk.Key

	// sign, when set, signs instead of the transmitter's key (for bad
	// SETs).
	sign atomic.Pointer[ssf.Signer]

	mu       sync.Mutex
	addr     string
	srv      *http.Server
	tokens   map[string]bool
	streams  []string
	setErrs  []ssf.SetErr
	tokenReq int
	polls    int
	// conflicts counts 409s at stream creation, the first at
	// firstConflict; deleted is when each stream was deleted.
	conflicts     int
	firstConflict time.Time
	deleted       map[string]time.Time
	// refuseDelete makes stream deletion answer 500.
	refuseDelete atomic.Bool
}

func newTransmitter(t testing.TB) *transmitter {
	t.Helper()
	feedLogger = zap.NewNop
	tx := &transmitter{t: t, setKey: ecKey(t, "set-1"), atKey: ecKey(t, "at-1"), clientID: "gateway", secret: "s3cret:with/odd chars", tokens: map[string]bool{}}
	tx.q = ssf.NewMemQueue(func(ev ssf.Event, aud string) (string, error) {
		if s := tx.sign.Load(); s != nil {
			return (*s)(ev, aud)
		}
		return ssf.Sign(ev, tx.setKey, tx.url(), aud)
	})
	tx.q.LongPoll = 200 * time.Millisecond
	tx.q.OnSetErr = func(_, _ string, e ssf.SetErr) {
		tx.mu.Lock()
		tx.setErrs = append(tx.setErrs, e)
		tx.mu.Unlock()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tx.addr = ln.Addr().String()
	tx.serve(ln)
	t.Cleanup(tx.stop)
	return tx
}

func ecKey(t testing.TB, kid string) jwk.Key {
	t.Helper()
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := jwk.FromRaw(raw)
	_ = k.Set(jwk.KeyIDKey, kid)
	_ = k.Set(jwk.AlgorithmKey, jwa.ES256)
	return k
}

func (tx *transmitter) url() string    { return "http://" + tx.addr }
func (tx *transmitter) issuer() string { return tx.url() + "/oauth2/default" }

func (tx *transmitter) serve(ln net.Listener) {
	srv := &http.Server{Handler: tx.handler()}
	tx.mu.Lock()
	tx.srv = srv
	tx.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// stop closes the listener and every connection (a poll in flight is
// cut).
func (tx *transmitter) stop() {
	tx.mu.Lock()
	srv := tx.srv
	tx.srv = nil
	tx.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// restart serves again on the same address.
func (tx *transmitter) restart() {
	ln, err := net.Listen("tcp", tx.addr)
	if err != nil {
		tx.t.Fatal(err)
	}
	tx.serve(ln)
}

func publicJWKS(t testing.TB, keys ...jwk.Key) []byte {
	set := jwk.NewSet()
	for _, k := range keys {
		pub, _ := k.PublicKey()
		_ = set.AddKey(pub)
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (tx *transmitter) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/ssf-configuration", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, ssf.TransmitterConfig{SpecVersion: ssf.SpecVersion, Issuer: tx.url(), JWKSURI: tx.url() + "/oauth2/v1/keys",
			DeliveryMethodsSupported: []string{ssf.DeliveryPoll}, ConfigurationEndpoint: tx.url() + "/api/v1/ssf/stream",
			AuthorizationSchemes: []ssf.AuthorizationScheme{ssf.OAuth2Scheme}})
	})
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"issuer": tx.url(), "token_endpoint": tx.url() + "/oauth2/v1/token", "jwks_uri": tx.url() + "/oauth2/v1/keys"})
	})
	mux.HandleFunc("GET /oauth2/v1/keys", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(publicJWKS(tx.t, tx.setKey))
	})
	mux.HandleFunc("GET /oauth2/default/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"issuer": tx.issuer(), "jwks_uri": tx.issuer() + "/v1/keys"})
	})
	mux.HandleFunc("GET /oauth2/default/v1/keys", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(publicJWKS(tx.t, tx.atKey))
	})
	mux.HandleFunc("POST /oauth2/v1/token", func(w http.ResponseWriter, r *http.Request) {
		tx.mu.Lock()
		tx.tokenReq++
		tx.mu.Unlock()
		id, secret, ok := r.BasicAuth()
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
		if a := r.PostFormValue("client_assertion"); a != "" && !ok {
			// private_key_jwt (RFC 7523 section 3).
			ok = r.PostFormValue("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" && tx.clientKey != nil
			if ok {
				_, err := jwt.Parse([]byte(a), jwt.WithKey(jwa.ES256, tx.clientKey), jwt.WithIssuer(tx.clientID), jwt.WithSubject(tx.clientID),
					jwt.WithAudience(tx.url()+"/oauth2/v1/token"), jwt.WithRequiredClaim("jti"), jwt.WithRequiredClaim("exp"))
				ok = err == nil && r.PostFormValue("client_id") == tx.clientID
			}
			id, secret = tx.clientID, tx.secret
		}
		if !ok || id != tx.clientID || subtle.ConstantTimeCompare([]byte(secret), []byte(tx.secret)) != 1 {
			writeJSON(w, 401, map[string]string{"error": "invalid_client"})
			return
		}
		if r.PostFormValue("grant_type") != "client_credentials" || r.PostFormValue("scope") != "ssf.read ssf.manage" {
			writeJSON(w, 400, map[string]string{"error": "invalid_request"})
			return
		}
		var b [16]byte
		_, _ = rand.Read(b[:])
		tok := hex.EncodeToString(b[:])
		tx.mu.Lock()
		tx.tokens[tok] = true
		tx.mu.Unlock()
		writeJSON(w, 200, map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600, "scope": "ssf.read ssf.manage"})
	})
	mux.HandleFunc("POST /api/v1/ssf/stream", func(w http.ResponseWriter, r *http.Request) {
		if !tx.authorized(r) {
			writeJSON(w, 401, map[string]string{"error": "invalid_token"})
			return
		}
		var sc ssf.StreamConfig
		if err := json.NewDecoder(r.Body).Decode(&sc); err != nil || sc.Delivery == nil || sc.Delivery.Method != ssf.DeliveryPoll {
			writeJSON(w, 400, map[string]string{"error": "invalid_request"})
			return
		}
		if tx.onePerClient && tx.liveStreams() > 0 {
			tx.mu.Lock()
			if tx.conflicts++; tx.conflicts == 1 {
				tx.firstConflict = time.Now()
			}
			tx.mu.Unlock()
			writeJSON(w, 409, map[string]string{"errorCode": "E0000001", "errorSummary": "stream exists"})
			return
		}
		id := uuid.NewString()
		if err := tx.q.AddStream(r.Context(), id, tx.clientID); err != nil {
			writeJSON(w, 500, map[string]string{"error": err.Error()})
			return
		}
		tx.mu.Lock()
		tx.streams = append(tx.streams, id)
		tx.mu.Unlock()
		writeJSON(w, 201, ssf.StreamConfig{StreamID: id, Iss: tx.url(), Aud: ssf.Audience{tx.clientID},
			EventsSupported: []string{ssf.EventSessionRevoked}, EventsRequested: sc.EventsRequested, EventsDelivered: []string{ssf.EventSessionRevoked},
			Delivery: &ssf.Delivery{Method: ssf.DeliveryPoll, EndpointURL: tx.url() + "/api/v1/ssf/poll/" + id}})
	})
	mux.HandleFunc("GET /api/v1/ssf/stream", func(w http.ResponseWriter, r *http.Request) {
		if !tx.authorized(r) {
			writeJSON(w, 401, map[string]string{"error": "invalid_token"})
			return
		}
		var out []ssf.StreamConfig
		for _, id := range tx.streamIDs() {
			if _, err := tx.q.Cursor(r.Context(), id); err == nil {
				out = append(out, ssf.StreamConfig{StreamID: id, Iss: tx.url(), Aud: ssf.Audience{tx.clientID}})
			}
		}
		writeJSON(w, 200, out)
	})
	mux.HandleFunc("DELETE /api/v1/ssf/stream", func(w http.ResponseWriter, r *http.Request) {
		if !tx.authorized(r) {
			writeJSON(w, 401, map[string]string{"error": "invalid_token"})
			return
		}
		if tx.refuseDelete.Load() {
			w.WriteHeader(500)
			return
		}
		id := r.URL.Query().Get("stream_id")
		if err := tx.q.RemoveStream(r.Context(), id); err != nil {
			w.WriteHeader(404)
			return
		}
		tx.mu.Lock()
		if tx.deleted == nil {
			tx.deleted = map[string]time.Time{}
		}
		tx.deleted[id] = time.Now()
		tx.mu.Unlock()
		w.WriteHeader(204)
	})
	mux.HandleFunc("POST /api/v1/ssf/poll/{id}", func(w http.ResponseWriter, r *http.Request) {
		if !tx.authorized(r) {
			writeJSON(w, 401, ssf.SetErr{Err: ssf.ErrCodeAuthenticationFailed})
			return
		}
		tx.mu.Lock()
		tx.polls++
		tx.mu.Unlock()
		var req ssf.PollRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeJSON(w, 400, ssf.SetErr{Err: ssf.ErrCodeInvalidRequest})
			return
		}
		resp, err := tx.q.Poll(r.Context(), r.PathValue("id"), req)
		switch {
		case errors.Is(err, ssf.ErrUnknownStream):
			writeJSON(w, 404, ssf.SetErr{Err: ssf.ErrCodeInvalidRequest, Description: "unknown stream"})
		case errors.Is(err, ssf.ErrInvalidRequest):
			writeJSON(w, 400, ssf.SetErr{Err: ssf.ErrCodeInvalidRequest})
		case err != nil:
			w.WriteHeader(500)
		default:
			writeJSON(w, 200, resp)
		}
	})
	return mux
}

func (tx *transmitter) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	tx.mu.Lock()
	defer tx.mu.Unlock()
	return ok && tx.tokens[tok]
}

// forgetTokens makes every access token issued so far invalid.
func (tx *transmitter) forgetTokens() {
	tx.mu.Lock()
	clear(tx.tokens)
	tx.mu.Unlock()
}

func (tx *transmitter) reportedSetErrs() []ssf.SetErr {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	return append([]ssf.SetErr(nil), tx.setErrs...)
}

// liveStreams is the number of streams the queue still has.
func (tx *transmitter) liveStreams() int {
	n := 0
	for _, id := range tx.streamIDs() {
		if _, err := tx.q.Cursor(context.Background(), id); err == nil {
			n++
		}
	}
	return n
}

func (tx *transmitter) streamIDs() []string {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	return append([]string(nil), tx.streams...)
}

// accessToken mints an access token of the transmitter's custom AS.
type atClaims struct{ sub, uid, cid string }

func (tx *transmitter) accessToken(t testing.TB, c atClaims) (tok, jti string) {
	t.Helper()
	jti = "AT." + uuid.NewString()
	b := jwt.NewBuilder().Issuer(tx.issuer()).Audience([]string{"api://default"}).JwtID(jti).
		IssuedAt(time.Now().Add(-time.Second)).Expiration(time.Now().Add(time.Hour)).Subject(c.sub).
		Claim("scp", []string{"read"}).Claim("cid", c.cid)
	if c.uid != "" {
		b = b.Claim("uid", c.uid)
	}
	j, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Sign(j, jwt.WithKey(jwa.ES256, tx.atKey))
	if err != nil {
		t.Fatal(err)
	}
	return string(s), jti
}

func (tx *transmitter) revokeToken(t testing.TB, jti string) {
	t.Helper()
	if err := tx.q.Publish(context.Background(), ssf.Event{Time: time.Now(), Subject: ssf.Subject{Kind: ssf.SubjectToken, Issuer: tx.issuer(), JTI: jti, Expiry: time.Now().Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
}

// feedRoute provisions a route for tx's custom AS following tx's feed.
func feedRoute(t testing.TB, tx *transmitter, rc RevocationsConfig) *RequireToken {
	t.Helper()
	rc.Feed, rc.ClientID = tx.url(), tx.clientID
	if rc.ClientSecret == "" && rc.PrivateKey == "" {
		rc.ClientSecret = tx.secret
	}
	if rc.backoffMax == 0 {
		rc.backoffMax = 200 * time.Millisecond
	}
	if rc.keyMinRefresh == 0 {
		rc.keyMinRefresh = 100 * time.Millisecond
	}
	rt := &RequireToken{Issuers: []*IssuerConfig{{URL: tx.issuer(), Audience: []string{"api://default"}}}, Revocations: &rc}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	err := rt.Provision(ctx)
	t.Cleanup(func() { _ = rt.Cleanup() })
	if err != nil {
		t.Fatal(err)
	}
	rt.log = zap.NewNop()
	rt.revocations.log = zap.NewNop()
	return rt
}

func call1(rt *RequireToken, tok string) outcome {
	r, repl := gwRequest("GET", "http://api.example.com/orders/1", "Authorization", "Bearer "+tok)
	return serve(rt, &reqRepl{r, repl})
}

func waitStatus(t *testing.T, rt *RequireToken, tok string, status int, reason string, within time.Duration) {
	t.Helper()
	testkit.WaitFor(t, "answer "+reason, within, func() bool {
		o := call1(rt, tok)
		return o.status == status && o.reason == reason
	})
}

func receiverOf(rt *RequireToken) *feedReceiver {
	for _, s := range rt.revocations.sources {
		if s.feed != nil {
			return s.feed
		}
	}
	return nil
}

func waitSynced(t *testing.T, rt *RequireToken) {
	t.Helper()
	fr := receiverOf(rt)
	testkit.WaitFor(t, "the feed to sync", 10*time.Second, func() bool { _, ok := fr.age(time.Now()); return ok })
}

func TestFeedRevokesQuickly(t *testing.T) {
	tx := newTransmitter(t)
	rt := feedRoute(t, tx, RevocationsConfig{})
	tok, jti := tx.accessToken(t, atClaims{sub: "jane@example.com", uid: "00u1", cid: "0oa1"})
	other, _ := tx.accessToken(t, atClaims{sub: "bob@example.com", uid: "00u2", cid: "0oa1"})
	waitSynced(t, rt)
	if o := call1(rt, tok); o.status != 200 {
		t.Fatalf("before revocation: %v", o)
	}
	start := time.Now()
	tx.revokeToken(t, jti)
	waitStatus(t, rt, tok, 401, ReasonRevoked, 3*time.Second)
	t.Logf("revocation seen by the route after %v", time.Since(start))
	if n := gaugeValue(t, feedHeld.WithLabelValues(tx.url(), "tokens")); n != 1 {
		t.Errorf("revocations_held{kind=tokens} %v, want 1", n)
	}
	if ts := gaugeValue(t, feedSynced.WithLabelValues(tx.url())); time.Since(time.Unix(int64(ts), 0)) > time.Minute {
		t.Errorf("revocation_feed_synced_timestamp_seconds %v", ts)
	}
	o := call1(rt, tok) // a cache hit is refused too
	if o.status != 401 || !strings.Contains(o.hdr.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("revoked token: %v", o)
	}
	if o := call1(rt, other); o.status != 200 {
		t.Fatalf("another token: %v", o)
	}
	// A user at one client: only that user's tokens at that client.
	atOther, _ := tx.accessToken(t, atClaims{sub: "bob@example.com", uid: "00u2", cid: "0oa2"})
	if err := tx.q.Publish(context.Background(), ssf.Event{Time: time.Now(), Subject: ssf.Subject{Kind: ssf.SubjectUser, UID: "00u2", ClientID: "0oa1"}}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, rt, other, 401, ReasonRevoked, 3*time.Second)
	if o := call1(rt, atOther); o.status != 200 {
		t.Fatalf("the user's token at another client: %v", o)
	}
	// A second route of the same feed and client shares the receiver.
	rt2 := feedRoute(t, tx, RevocationsConfig{})
	if receiverOf(rt2) != receiverOf(rt) || len(tx.streamIDs()) != 1 {
		t.Fatalf("second route: own receiver or stream (%d streams)", len(tx.streamIDs()))
	}
	if o := call1(rt2, tok); o.status != 401 || o.reason != ReasonRevoked {
		t.Fatalf("second route: %v", o)
	}
}

func TestFeedReconnect(t *testing.T) {
	tx := newTransmitter(t)
	rt := feedRoute(t, tx, RevocationsConfig{})
	toks := make([]string, 5)
	jtis := make([]string, 5)
	for i := range toks {
		toks[i], jtis[i] = tx.accessToken(t, atClaims{sub: "u", cid: "c"})
	}
	waitSynced(t, rt)
	for _, tok := range toks { // keys fetched while the issuer is up
		if o := call1(rt, tok); o.status != 200 {
			t.Fatalf("%v", o)
		}
	}
	tx.revokeToken(t, jtis[0])
	waitStatus(t, rt, toks[0], 401, ReasonRevoked, 3*time.Second)
	streams := tx.streamIDs()

	tx.stop()
	for _, j := range jtis[1:] { // published while the receiver cannot poll
		tx.revokeToken(t, j)
	}
	tx.restart()
	for _, tok := range toks[1:] {
		waitStatus(t, rt, tok, 401, ReasonRevoked, 5*time.Second)
	}
	if got := tx.streamIDs(); len(got) != len(streams) {
		t.Errorf("the receiver created a new stream on reconnect: %v", got)
	}
}

func TestFeedStreamLost(t *testing.T) {
	tx := newTransmitter(t)
	rt := feedRoute(t, tx, RevocationsConfig{})
	tok, jti := tx.accessToken(t, atClaims{sub: "u", cid: "c"})
	waitSynced(t, rt)
	if o := call1(rt, tok); o.status != 200 {
		t.Fatal(o)
	}
	first := tx.streamIDs()[0]
	// The transmitter loses the stream; the revocation is retained in
	// its log, so a new stream receives it.
	if err := tx.q.RemoveStream(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	tx.revokeToken(t, jti)
	waitStatus(t, rt, tok, 401, ReasonRevoked, 5*time.Second)
	if ids := tx.streamIDs(); len(ids) != 2 {
		t.Fatalf("streams %v, want a second one", ids)
	}
	// A refused bearer token makes the receiver get a new one.
	tok2, jti2 := tx.accessToken(t, atClaims{sub: "u2", cid: "c"})
	if o := call1(rt, tok2); o.status != 200 {
		t.Fatal(o)
	}
	tx.mu.Lock()
	before := tx.tokenReq
	tx.mu.Unlock()
	tx.forgetTokens()
	tx.revokeToken(t, jti2)
	waitStatus(t, rt, tok2, 401, ReasonRevoked, 5*time.Second)
	tx.mu.Lock()
	after := tx.tokenReq
	tx.mu.Unlock()
	if after <= before {
		t.Errorf("no new token after a 401")
	}
}

func TestFeedStaleness(t *testing.T) {
	tx := newTransmitter(t)
	warn := feedRoute(t, tx, RevocationsConfig{})
	fail := feedRoute(t, tx, RevocationsConfig{OnStale: OnStaleFail})
	stale := 500 * time.Millisecond
	warn.revocations.staleAfter, fail.revocations.staleAfter = stale, stale
	tok, _ := tx.accessToken(t, atClaims{sub: "u", cid: "c"})
	waitSynced(t, fail)
	if o := call1(fail, tok); o.status != 200 {
		t.Fatalf("fresh: %v", o)
	}
	tx.stop()
	waitStatus(t, fail, tok, 503, ReasonFeedStale, 5*time.Second)
	o := call1(fail, tok)
	if o.hdr.Get("Retry-After") == "" || o.hdr.Get("WWW-Authenticate") != "" {
		t.Errorf("stale 503: %v", o)
	}
	if o := call1(warn, tok); o.status != 200 {
		t.Fatalf("stale, on_stale warn: %v", o)
	}
	tx.restart()
	waitStatus(t, fail, tok, 200, "", 5*time.Second)
}

func TestFeedNeverSyncedIsStale(t *testing.T) {
	tx := newTransmitter(t)
	tx.stop() // never reachable
	fail := feedRoute(t, tx, RevocationsConfig{OnStale: OnStaleFail})
	// The issuer's keys are unreachable too, so check the route's
	// revocation step on a validated result.
	if f := fail.revocations.check(fakeResult(fail)); f == nil || f.Status != 503 || f.Reason != ReasonFeedStale {
		t.Fatalf("never synced, on_stale fail: %v", f)
	}
	warn := feedRoute(t, tx, RevocationsConfig{})
	if f := warn.revocations.check(fakeResult(warn)); f != nil {
		t.Fatalf("never synced, on_stale warn: %v", f)
	}
}

// fakeResult is what the validator hands over for a token of rt's
// first issuer.
func fakeResult(rt *RequireToken) *validator.Result {
	return &validator.Result{Issuer: rt.revocations.sources[0].issuer, Subject: "u",
		Claims: map[string]any{"jti": "AT.x", "sub": "u", "cid": "c", "iat": json.Number("1700000000")}}
}

func TestFeedBadSETs(t *testing.T) {
	tx := newTransmitter(t)
	rt := feedRoute(t, tx, RevocationsConfig{})
	waitSynced(t, rt)
	wrongKey := ecKey(t, "set-1")   // the transmitter's kid, another key
	unknownKey := ecKey(t, "set-9") // a kid the JWKS never lists
	cases := []struct {
		name string
		sign ssf.Signer
		want string
	}{
		{"another key", func(ev ssf.Event, aud string) (string, error) { return ssf.Sign(ev, wrongKey, tx.url(), aud) }, ssf.ErrCodeAuthenticationFailed},
		{"unknown kid", func(ev ssf.Event, aud string) (string, error) { return ssf.Sign(ev, unknownKey, tx.url(), aud) }, ssf.ErrCodeInvalidKey},
		{"wrong iss", func(ev ssf.Event, aud string) (string, error) {
			return ssf.Sign(ev, tx.setKey, "https://evil.example.com", aud)
		}, ssf.ErrCodeInvalidIssuer},
		{"wrong aud", func(ev ssf.Event, aud string) (string, error) {
			return ssf.Sign(ev, tx.setKey, tx.url(), "someone-else")
		}, ssf.ErrCodeInvalidAudience},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok, jti := tx.accessToken(t, atClaims{sub: "u", cid: "c"})
			if o := call1(rt, tok); o.status != 200 {
				t.Fatal(o)
			}
			n := len(tx.reportedSetErrs())
			sign := c.sign
			tx.sign.Store(&sign)
			tx.revokeToken(t, jti)
			testkit.WaitFor(t, "a setErr", 5*time.Second, func() bool { return len(tx.reportedSetErrs()) > n })
			tx.sign.Store(nil)
			if got := tx.reportedSetErrs()[n]; got.Err != c.want {
				t.Errorf("setErr %+v, want %s", got, c.want)
			}
			if o := call1(rt, tok); o.status != 200 {
				t.Errorf("a refused SET was applied: %v", o)
			}
			// The feed goes on: a good SET after it is applied.
			tok2, jti2 := tx.accessToken(t, atClaims{sub: "u", cid: "c"})
			tx.revokeToken(t, jti2)
			waitStatus(t, rt, tok2, 401, ReasonRevoked, 5*time.Second)
		})
	}
}

func TestFeedMemoryBound(t *testing.T) {
	tx := newTransmitter(t)
	fail := feedRoute(t, tx, RevocationsConfig{OnStale: OnStaleFail, maxTokens: 10})
	fail.revocations.staleAfter = 500 * time.Millisecond
	tok, jti := tx.accessToken(t, atClaims{sub: "u", cid: "c"})
	waitSynced(t, fail)
	for i := range 9 {
		tx.revokeToken(t, "AT.filler-"+string(rune('a'+i)))
	}
	fr := receiverOf(fail)
	testkit.WaitFor(t, "9 revocations held", 5*time.Second, func() bool { n, _ := fr.revs.Len(); return n == 9 })
	// The 10th fits, the 11th and later do not: they stay unacknowledged
	// at the transmitter and the feed counts as stale.
	tx.revokeToken(t, jti)
	waitStatus(t, fail, tok, 401, ReasonRevoked, 5*time.Second)
	over, _ := tx.accessToken(t, atClaims{sub: "u", cid: "c"})
	for i := range 5 {
		tx.revokeToken(t, "AT.over-"+string(rune('a'+i)))
	}
	waitStatus(t, fail, over, 503, ReasonFeedStale, 5*time.Second)
	if n, _ := fr.revs.Len(); n != 10 {
		t.Errorf("%d revocations held, bound 10", n)
	}
	if len(tx.reportedSetErrs()) != 0 {
		t.Errorf("unapplied SETs reported as errors: %v", tx.reportedSetErrs())
	}
}

// fakeIssuerApp is what the gateway asserts of a `token_issuer` app:
// keys in process and a revocation view with its age.
type fakeIssuerApp struct {
	issuers map[string]bool
	revs    *ssf.Revocations
	synced  atomic.Int64 // unix nanoseconds the view last caught up; 0: never
}

// RevocationViewAge is the app's, as tokenissuer computes it.
func (a *fakeIssuerApp) RevocationViewAge() (time.Duration, bool) {
	n := a.synced.Load()
	if n == 0 {
		return 0, false
	}
	return time.Since(time.Unix(0, n)), true
}

// fresh marks the view caught up now.
func (a *fakeIssuerApp) fresh() *fakeIssuerApp { a.synced.Store(time.Now().UnixNano()); return a }

func (a *fakeIssuerApp) PublicKeys(iss string) (func() jwk.Set, bool, bool) {
	return func() jwk.Set { return jwk.NewSet() }, false, a.issuers[iss]
}

func (a *fakeIssuerApp) RevocationView() (*ssf.Revocations, bool) { return a.revs, a.revs != nil }

func TestInProcessRevocationView(t *testing.T) {
	const local, remote = "https://id.example.com/oauth2/default", "https://partner.example.com/oauth2/default"
	app := (&fakeIssuerApp{issuers: map[string]bool{local: true}, revs: ssf.NewRevocations()}).fresh()
	rt := &RequireToken{log: zap.NewNop()}
	localIs, remoteIs := &validator.Issuer{URL: local}, &validator.Issuer{URL: remote}
	if err := rt.setupRevocations(app, nil, []*validator.Issuer{localIs, remoteIs}); err != nil {
		t.Fatal(err)
	}
	if rt.revocations == nil || len(rt.revocations.sources) != 1 || rt.revocations.sources[0].feed != nil {
		t.Fatalf("sources %+v", rt.revocations)
	}
	res := &validator.Result{Issuer: localIs, Subject: "jane", Claims: map[string]any{"jti": "AT.1", "sub": "jane", "uid": "00u1", "cid": "0oa1", "iat": json.Number("1700000000")}}
	if f := rt.revocations.check(res); f != nil {
		t.Fatalf("not revoked yet: %v", f)
	}
	_ = app.revs.RevokeToken("AT.1", time.Now().Add(time.Hour))
	if f := rt.revocations.check(res); f == nil || f.Reason != ReasonRevoked || f.Status != 401 || f.JTI != "AT.1" || f.UserID != "00u1" {
		t.Fatalf("revoked in process: %+v", f)
	}
	// Another issuer's tokens are not its business.
	if f := rt.revocations.check(&validator.Result{Issuer: remoteIs, Claims: res.Claims}); f != nil {
		t.Fatalf("remote issuer: %v", f)
	}
	// A feed naming a local issuer is a config error; one naming another
	// issuer sits beside the view.
	rt2 := &RequireToken{log: zap.NewNop(), Revocations: &RevocationsConfig{Feed: "https://id.example.com", ClientID: "gw", ClientSecret: "s"}}
	if err := rt2.setupRevocations(app, nil, []*validator.Issuer{localIs}); err == nil || !strings.Contains(err.Error(), "served by this Caddy") {
		t.Fatalf("feed over a local issuer: %v", err)
	}
	_ = rt2.Cleanup()
	// No view offered: nothing to check.
	rt3 := &RequireToken{log: zap.NewNop()}
	if err := rt3.setupRevocations(&fakeIssuerApp{issuers: app.issuers}, nil, []*validator.Issuer{localIs}); err != nil || rt3.revocations != nil {
		t.Fatalf("no view: %v %+v", err, rt3.revocations)
	}
}

// BenchmarkBearerRouteRevocations is BenchmarkBearerRoute on a route
// following a feed that holds revocations: the revocation check on a
// cache hit.
func BenchmarkBearerRouteRevocations(b *testing.B) {
	tx := newTransmitter(b)
	rt := feedRoute(b, tx, RevocationsConfig{})
	fr := receiverOf(rt)
	for i := range 1000 {
		_ = fr.revs.RevokeToken("AT.other-"+strconv.Itoa(i), time.Now().Add(time.Hour))
		_ = fr.revs.RevokeUserAt("user-"+strconv.Itoa(i), "", "c", time.Now().Add(-time.Hour))
	}
	testkit.WaitFor(b, "the feed to sync", 10*time.Second, func() bool { _, ok := fr.age(time.Now()); return ok })
	tok, _ := tx.accessToken(b, atClaims{sub: "u", uid: "00u1", cid: "c"})
	reqs := make([]*reqRepl, b.N+1)
	for i := range reqs {
		reqs[i] = benchRequest("Bearer " + tok)
	}
	if o := serve(rt, reqs[b.N]); o.status != http.StatusOK {
		b.Fatalf("%v", o)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if o := serve(rt, reqs[i]); o.status != http.StatusOK {
			b.Fatalf("%v", o)
		}
	}
}

// TestRevocationCheckAllocatesNothing: the route's check of a token
// that passes takes no allocation.
func TestRevocationCheckAllocatesNothing(t *testing.T) {
	app := (&fakeIssuerApp{issuers: map[string]bool{"https://id.example.com/oauth2/default": true}, revs: ssf.NewRevocations()}).fresh()
	_ = app.revs.RevokeToken("AT.2", time.Now().Add(time.Hour))
	_ = app.revs.RevokeUserAt("bob", "", "0oa1", time.Now())
	rt := &RequireToken{log: zap.NewNop()}
	is := &validator.Issuer{URL: "https://id.example.com/oauth2/default"}
	if err := rt.setupRevocations(app, nil, []*validator.Issuer{is}); err != nil {
		t.Fatal(err)
	}
	res := &validator.Result{Issuer: is, Subject: "jane", Claims: map[string]any{"jti": "AT.1", "sub": "jane", "uid": "00u1", "cid": "0oa1", "iat": json.Number("1700000000")}}
	if rt.revocations.sources[0].view == nil {
		t.Fatal("the in-process source does not read the view's age")
	}
	if n := testing.AllocsPerRun(1000, func() {
		if rt.revocations.check(res) != nil {
			t.Fatal("refused")
		}
	}); n != 0 {
		t.Fatalf("the revocation check allocates %v times", n)
	}
	// A stale view refused (on_stale fail) allocates only its Failure.
	rt.revocations.failStale = true
	app.synced.Store(time.Now().Add(-time.Hour).UnixNano())
	if n := testing.AllocsPerRun(1000, func() {
		if f := rt.revocations.check(res); f == nil || f.Reason != ReasonFeedStale {
			t.Fatal("a stale view served")
		}
	}); n > 1 {
		t.Fatalf("the stale check allocates %v times", n)
	}
}

// TestInProcessRevocationViewStaleness: the in-process view is as
// fresh as the issuer's last catch-up with the store's feed, under the
// route's stale_after and on_stale (defaults 30s, warn; a block
// without feed sets them).
func TestInProcessRevocationViewStaleness(t *testing.T) {
	const local = "https://id.example.com/oauth2/default"
	is := &validator.Issuer{URL: local}
	res := &validator.Result{Issuer: is, Subject: "jane", Claims: map[string]any{"jti": "AT.1", "sub": "jane", "cid": "0oa1", "iat": json.Number("1700000000")}}
	route := func(t *testing.T, app any, rc *RevocationsConfig) (*RequireToken, *observer.ObservedLogs) {
		t.Helper()
		core, logs := observer.New(zap.WarnLevel)
		rt := &RequireToken{log: zap.New(core), Revocations: rc}
		if err := rt.setupRevocations(app, nil, []*validator.Issuer{is}); err != nil {
			t.Fatal(err)
		}
		return rt, logs
	}
	staleWarnings := func(logs *observer.ObservedLogs) int {
		return logs.FilterMessageSnippet("revocation feed is stale").FilterField(zap.String("feed", inProcessName)).Len()
	}

	t.Run("defaults: fresh serves, stale and never synced warn", func(t *testing.T) {
		app := &fakeIssuerApp{issuers: map[string]bool{local: true}, revs: ssf.NewRevocations()}
		rt, logs := route(t, app, nil)
		if rt.revocations.staleAfter != DefaultStaleAfter || rt.revocations.failStale {
			t.Fatalf("defaults %v %v", rt.revocations.staleAfter, rt.revocations.failStale)
		}
		if f := rt.revocations.check(res); f != nil || staleWarnings(logs) != 1 {
			t.Fatalf("never synced: %v, %d warnings", f, staleWarnings(logs))
		}
		app.fresh()
		rt.revocations.lastWarn.Store(0)
		if f := rt.revocations.check(res); f != nil || staleWarnings(logs) != 1 {
			t.Fatalf("fresh: %v, %d warnings", f, staleWarnings(logs))
		}
		app.synced.Store(time.Now().Add(-DefaultStaleAfter - time.Second).UnixNano())
		if f := rt.revocations.check(res); f != nil || staleWarnings(logs) != 2 {
			t.Fatalf("stale, warn: %v, %d warnings", f, staleWarnings(logs))
		}
		// At most one warning per stale_after.
		if f := rt.revocations.check(res); f != nil || staleWarnings(logs) != 2 {
			t.Fatalf("second stale request: %v, %d warnings", f, staleWarnings(logs))
		}
	})

	t.Run("fail: stale and never synced answer 503", func(t *testing.T) {
		app := &fakeIssuerApp{issuers: map[string]bool{local: true}, revs: ssf.NewRevocations()}
		rt, _ := route(t, app, &RevocationsConfig{StaleAfter: duration.Duration(10 * time.Second), OnStale: OnStaleFail})
		if f := rt.revocations.check(res); f == nil || f.Status != http.StatusServiceUnavailable || f.Reason != ReasonFeedStale || f.Issuer != local {
			t.Fatalf("never synced: %+v", f)
		}
		app.synced.Store(time.Now().Add(-5 * time.Second).UnixNano())
		if f := rt.revocations.check(res); f != nil {
			t.Fatalf("fresh within stale_after: %v", f)
		}
		app.synced.Store(time.Now().Add(-11 * time.Second).UnixNano())
		if f := rt.revocations.check(res); f == nil || f.Status != http.StatusServiceUnavailable || f.Reason != ReasonFeedStale {
			t.Fatalf("stale: %+v", f)
		}
		// A revoked token stays 401 revoked, stale or not.
		_ = app.revs.RevokeToken("AT.1", time.Now().Add(time.Hour))
		if f := rt.revocations.check(res); f == nil || f.Reason != ReasonRevoked {
			t.Fatalf("revoked while stale: %+v", f)
		}
	})

	t.Run("an app without the age is fresh", func(t *testing.T) {
		app := fakeAgelessApp{&fakeIssuerApp{issuers: map[string]bool{local: true}, revs: ssf.NewRevocations()}}
		rt, _ := route(t, app, &RevocationsConfig{OnStale: OnStaleFail})
		if f := rt.revocations.check(res); f != nil {
			t.Fatalf("%v", f)
		}
	})

	t.Run("a block without feed needs a local issuer and no credentials", func(t *testing.T) {
		app := (&fakeIssuerApp{issuers: map[string]bool{local: true}, revs: ssf.NewRevocations()}).fresh()
		for _, rc := range []RevocationsConfig{{ClientID: "gw"}, {ClientSecret: "s"}, {PrivateKey: "/k.pem"}, {PrivateKeyID: "k"}} {
			rt := &RequireToken{log: zap.NewNop(), Revocations: &rc}
			if err := rt.setupRevocations(app, nil, []*validator.Issuer{is}); err == nil || !strings.Contains(err.Error(), "feed is not set") {
				t.Errorf("%+v: %v", rc, err)
			}
		}
		rt := &RequireToken{log: zap.NewNop(), Revocations: &RevocationsConfig{OnStale: OnStaleFail}}
		remote := &validator.Issuer{URL: "https://partner.example.com/oauth2/default"}
		if err := rt.setupRevocations(app, nil, []*validator.Issuer{remote}); err == nil || !strings.Contains(err.Error(), "no issuer of the route is served by a token_issuer app") {
			t.Errorf("no local issuer: %v", err)
		}
		if err := rt.setupRevocations(nil, nil, []*validator.Issuer{is}); err == nil {
			t.Error("no app: accepted")
		}
	})
}

// fakeAgelessApp offers a view without its age.
type fakeAgelessApp struct{ a *fakeIssuerApp }

func (f fakeAgelessApp) PublicKeys(iss string) (func() jwk.Set, bool, bool) {
	return f.a.PublicKeys(iss)
}
func (f fakeAgelessApp) RevocationView() (*ssf.Revocations, bool) { return f.a.RevocationView() }

func TestFeedPrivateKeyJWT(t *testing.T) {
	tx := newTransmitter(t)
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	path := filepath.Join(t.TempDir(), "gateway-key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	tx.clientKey, _ = jwk.FromRaw(priv.Public())
	rt := feedRoute(t, tx, RevocationsConfig{PrivateKey: path, PrivateKeyID: "gw-1"})
	tok, jti := tx.accessToken(t, atClaims{sub: "u", cid: "c"})
	waitSynced(t, rt)
	tx.revokeToken(t, jti)
	waitStatus(t, rt, tok, 401, ReasonRevoked, 5*time.Second)
}

func TestFeedSharedAcrossReloads(t *testing.T) {
	tx := newTransmitter(t)
	old := feedRoute(t, tx, RevocationsConfig{})
	tok, jti := tx.accessToken(t, atClaims{sub: "u", cid: "c"})
	waitSynced(t, old)
	tx.revokeToken(t, jti)
	waitStatus(t, old, tok, 401, ReasonRevoked, 5*time.Second)
	fr := receiverOf(old)
	// A reload provisions the new config, then cleans up the old one:
	// the receiver, its stream and what it learnt carry over.
	cur := feedRoute(t, tx, RevocationsConfig{OnStale: OnStaleFail})
	_ = old.Cleanup()
	if receiverOf(cur) != fr {
		t.Fatal("the reload started another receiver")
	}
	if o := call1(cur, tok); o.status != 401 || o.reason != ReasonRevoked {
		t.Fatalf("after reload: %v", o)
	}
	tok2, jti2 := tx.accessToken(t, atClaims{sub: "u", cid: "c"})
	tx.revokeToken(t, jti2)
	waitStatus(t, cur, tok2, 401, ReasonRevoked, 5*time.Second)
	streams := tx.streamIDs()
	if len(streams) != 1 {
		t.Fatalf("streams %v", streams)
	}
	// The last config gone, the receiver stops and deletes its stream.
	_ = cur.Cleanup()
	select {
	case <-fr.done:
	case <-time.After(5 * time.Second):
		t.Fatal("receiver still running")
	}
	if _, err := tx.q.Cursor(context.Background(), streams[0]); !errors.Is(err, ssf.ErrUnknownStream) {
		t.Errorf("stream not deleted on shutdown: %v", err)
	}
}

// addForeignStream adds a stream of the client that no receiver of
// this process created (a crashed gateway's, or another live one's).
func (tx *transmitter) addForeignStream(t *testing.T, id string) {
	t.Helper()
	if err := tx.q.AddStream(context.Background(), id, tx.clientID); err != nil {
		t.Fatal(err)
	}
	tx.mu.Lock()
	tx.streams = append(tx.streams, id)
	tx.mu.Unlock()
}

func (tx *transmitter) conflictCount() (int, time.Time) {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	return tx.conflicts, tx.firstConflict
}

// TestFeedReplacesAStaleStream: a transmitter keeping one stream per
// client still has the stream of a gateway that crashed; the restarted
// gateway replaces it once creation has answered 409 for takeoverAfter,
// not before, and catches up.
func TestFeedReplacesAStaleStream(t *testing.T) {
	tx := newTransmitter(t)
	tx.onePerClient = true
	tx.addForeignStream(t, "crashed")
	tok, jti := tx.accessToken(t, atClaims{sub: "u", cid: "c"})
	tx.revokeToken(t, jti) // before this gateway started: replayed to its new stream
	const takeover = 700 * time.Millisecond
	rt := feedRoute(t, tx, RevocationsConfig{takeoverAfter: takeover})
	waitStatus(t, rt, tok, 401, ReasonRevoked, 5*time.Second)
	if _, err := tx.q.Cursor(context.Background(), "crashed"); !errors.Is(err, ssf.ErrUnknownStream) {
		t.Errorf("the stale stream is still there: %v", err)
	}
	if n := tx.liveStreams(); n != 1 {
		t.Errorf("%d streams, want 1", n)
	}
	n, first := tx.conflictCount()
	tx.mu.Lock()
	at := tx.deleted["crashed"]
	tx.mu.Unlock()
	if n < 2 || at.Sub(first) < takeover {
		t.Errorf("replaced %v after the first of %d 409s, want at least %v of them", at.Sub(first), n, takeover)
	}
}

// TestFeedLeavesAnotherGatewaysStream: while stream creation answers
// 409 for less than takeoverAfter, the client's stream that this
// process did not create (maybe another live gateway's) is kept.
func TestFeedLeavesAnotherGatewaysStream(t *testing.T) {
	tx := newTransmitter(t)
	tx.onePerClient = true
	tx.addForeignStream(t, "other-gateway")
	rt := feedRoute(t, tx, RevocationsConfig{})
	testkit.WaitFor(t, "three 409s", 10*time.Second, func() bool { n, _ := tx.conflictCount(); return n >= 3 })
	if _, err := tx.q.Cursor(context.Background(), "other-gateway"); err != nil {
		t.Fatalf("another gateway's stream was deleted: %v", err)
	}
	if _, ok := receiverOf(rt).age(time.Now()); ok {
		t.Fatal("synced without a stream")
	}
}

// TestFeedDeletesItsOwnLeftoverStream: a stream a receiver of this
// process created and failed to delete at shutdown is deleted at once
// by the next receiver that meets a 409, without waiting.
func TestFeedDeletesItsOwnLeftoverStream(t *testing.T) {
	tx := newTransmitter(t)
	tx.onePerClient = true
	old := feedRoute(t, tx, RevocationsConfig{})
	waitSynced(t, old)
	leftover := tx.streamIDs()[0]
	fr := receiverOf(old)
	tx.refuseDelete.Store(true)
	_ = old.Cleanup()
	<-fr.done
	if _, err := tx.q.Cursor(context.Background(), leftover); err != nil {
		t.Fatalf("the stream was deleted although deletion was refused: %v", err)
	}
	tx.refuseDelete.Store(false)
	tok, jti := tx.accessToken(t, atClaims{sub: "u", cid: "c"})
	tx.revokeToken(t, jti)
	rt := feedRoute(t, tx, RevocationsConfig{}) // default takeoverAfter: minutes
	if receiverOf(rt) == fr {
		t.Fatal("the old receiver was reused")
	}
	waitStatus(t, rt, tok, 401, ReasonRevoked, 5*time.Second)
	if _, err := tx.q.Cursor(context.Background(), leftover); !errors.Is(err, ssf.ErrUnknownStream) {
		t.Errorf("the leftover stream is still there: %v", err)
	}
	if n := tx.liveStreams(); n != 1 {
		t.Errorf("%d streams, want 1", n)
	}
}

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}
