package validator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/apiaccess/caddy-apiaccess/caddymodule/validator"
)

const (
	introClientID = "gateway client:1"
	introSecret   = "s3cr%t+/&=é"
)

// introServer is an RFC 7662 endpoint answering from a table of tokens.
type introServer struct {
	srv  *httptest.Server
	hits atomic.Int64

	mu      sync.Mutex
	answers map[string]string // token -> raw JSON body
	status  int
	bad     []string // protocol violations seen
}

func newIntroServer(t *testing.T) *introServer {
	s := &introServer{answers: map[string]string{}, status: http.StatusOK}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *introServer) complain(msg string) {
	s.mu.Lock()
	s.bad = append(s.bad, msg)
	s.mu.Unlock()
}

func (s *introServer) serve(w http.ResponseWriter, r *http.Request) {
	s.hits.Add(1)
	if r.Method != http.MethodPost {
		s.complain("method " + r.Method)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		s.complain("content type " + ct)
	}
	user, pass, ok := r.BasicAuth()
	// RFC 6749 section 2.3.1: client id and secret are form-urlencoded
	// before Basic encoding.
	u, _ := url.QueryUnescape(user)
	p, _ := url.QueryUnescape(pass)
	if !ok || u != introClientID || p != introSecret {
		s.complain("basic auth " + user + ":" + pass)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if err := r.ParseForm(); err != nil {
		s.complain("form: " + err.Error())
	}
	if r.URL.RawQuery != "" {
		s.complain("token in the query string")
	}
	tok := r.PostForm.Get("token")
	if hint := r.PostForm.Get("token_type_hint"); hint != "" && hint != "access_token" {
		s.complain("hint " + hint)
	}
	s.mu.Lock()
	body, ok := s.answers[tok]
	status := s.status
	s.mu.Unlock()
	if !ok {
		body = `{"active":false}`
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

func (s *introServer) answer(tok string, body any) {
	b, ok := body.(string)
	if !ok {
		b = string(mustJSON(body))
	}
	s.mu.Lock()
	s.answers[tok] = b
	s.mu.Unlock()
}

func (s *introServer) check(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.bad {
		t.Errorf("introspection request: %s", b)
	}
}

func activeAnswer(mods ...map[string]any) map[string]any {
	a := map[string]any{
		"active":    true,
		"iss":       issURL,
		"aud":       audience,
		"sub":       "user1",
		"client_id": "client1",
		"scope":     "read write",
		"exp":       t0.Add(time.Hour).Unix(),
		"iat":       t0.Unix(),
	}
	for _, m := range mods {
		for k, v := range m {
			if v == nil {
				delete(a, k)
			} else {
				a[k] = v
			}
		}
	}
	return a
}

func introConfig(s *introServer, clk *clock, ttl time.Duration, cacheSize int) validator.Config {
	return validator.Config{
		Issuers: []*validator.Issuer{{URL: issURL, Audiences: []string{audience}, Algorithms: []jwa.SignatureAlgorithm{jwa.RS256}}},
		Skew:    30 * time.Second,
		Introspection: &validator.Introspector{
			Endpoint: s.srv.URL + "/introspect", ClientID: introClientID, ClientSecret: introSecret,
			CacheTTL: ttl, Client: s.srv.Client(),
		},
		CacheSize: cacheSize,
		Now:       clk.Now,
	}
}

func TestIntrospection(t *testing.T) {
	cases := []struct {
		name   string
		answer any
		status int // 0 accepted, 401, 403, 503
		reason string
		scopes []string
	}{
		{name: "active", answer: activeAnswer()},
		{name: "active without iss", answer: activeAnswer(m{"iss": nil})},
		{name: "aud as an array", answer: activeAnswer(m{"aud": []string{"x", audience}})},
		{name: "aud joined with spaces", answer: activeAnswer(m{"aud": "x " + audience})},
		{name: "inactive", answer: m{"active": false}, status: 401, reason: validator.ReasonInactive},
		{name: "inactive with claims", answer: activeAnswer(m{"active": false}), status: 401, reason: validator.ReasonInactive},
		{name: "active as a string", answer: activeAnswer(m{"active": "true"}), status: 401, reason: validator.ReasonInactive},
		{name: "active as 1", answer: activeAnswer(m{"active": 1}), status: 401, reason: validator.ReasonInactive},
		{name: "active missing", answer: activeAnswer(m{"active": nil}), status: 401, reason: validator.ReasonInactive},
		{name: "duplicate active, true last", answer: `{"active":false,"active":true,"iss":"` + issURL + `","aud":"` + audience + `","exp":1800000000}`,
			status: 503, reason: validator.ReasonKeysUnavailable},
		{name: "wrong issuer", answer: activeAnswer(m{"iss": orgURL}), status: 401, reason: validator.ReasonWrongIssuer},
		{name: "issuer with trailing slash", answer: activeAnswer(m{"iss": issURL + "/"}), status: 401, reason: validator.ReasonWrongIssuer},
		{name: "issuer not a string", answer: activeAnswer(m{"iss": 1}), status: 401, reason: validator.ReasonWrongIssuer},
		{name: "wrong audience", answer: activeAnswer(m{"aud": "api://other"}), status: 401, reason: validator.ReasonWrongAudience},
		{name: "audience missing", answer: activeAnswer(m{"aud": nil}), status: 401, reason: validator.ReasonWrongAudience},
		{name: "expired", answer: activeAnswer(m{"exp": t0.Add(-time.Minute).Unix()}), status: 401, reason: validator.ReasonExpired},
		{name: "exp missing", answer: activeAnswer(m{"exp": nil}), status: 401, reason: validator.ReasonMissingClaim},
		{name: "exp a string", answer: activeAnswer(m{"exp": "1800000000"}), status: 401, reason: validator.ReasonMissingClaim},
		{name: "not JSON", answer: `active=true`, status: 503, reason: validator.ReasonKeysUnavailable},
		{name: "trailing data", answer: string(mustJSON(activeAnswer())) + `{"active":false}`, status: 503, reason: validator.ReasonKeysUnavailable},
		{name: "empty body", answer: ``, status: 503, reason: validator.ReasonKeysUnavailable},
		{name: "a JSON array", answer: `[{"active":true}]`, status: 503, reason: validator.ReasonKeysUnavailable},
		{name: "more than 1 MiB", answer: string(appendMember(mustJSON(activeAnswer()), `"pad":"`+strings.Repeat("x", 1<<20)+`"`)),
			status: 503, reason: validator.ReasonKeysUnavailable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newIntroServer(t)
			tok := "opaque-" + c.name
			s.answer(tok, c.answer)
			v := validator.New(introConfig(s, newClock(), 0, 100))
			res, f := validate(t, v, tok, nil)
			switch c.status {
			case 0:
				wantOK(t, res, f)
				if res.Subject != "user1" || strings.Join(res.Scopes, " ") != "read write" {
					t.Fatalf("result %+v", res)
				}
				if _, ok := res.Claims["active"]; ok {
					t.Fatalf("claims keep `active`")
				}
			case 401:
				wantInvalid(t, f, c.reason)
			case 503:
				if f == nil || f.Status != http.StatusServiceUnavailable || f.Reason != c.reason {
					t.Fatalf("got %+v; want 503 %s", f, c.reason)
				}
			}
			if s.hits.Load() != 1 {
				t.Fatalf("%d requests", s.hits.Load())
			}
			s.check(t)
		})
	}
}

func TestIntrospectionScopes(t *testing.T) {
	s := newIntroServer(t)
	s.answer("read-only", activeAnswer(m{"scope": "read"}))
	s.answer("scp-only", activeAnswer(m{"scope": nil, "scp": []string{"read", "write"}}))
	cfg := introConfig(s, newClock(), 0, 100)
	cfg.Scopes = []string{"write"}
	v := validator.New(cfg)
	_, f := validate(t, v, "read-only", nil)
	wantForbidden(t, f, validator.ReasonInsufficientScope)
	// RFC 7662 carries scopes in `scope` only.
	_, f = validate(t, v, "scp-only", nil)
	wantForbidden(t, f, validator.ReasonInsufficientScope)
	if f.ClientID != "client1" || f.Subject != "user1" {
		t.Fatalf("failure %+v", f)
	}
	s.check(t)
}

func TestIntrospectionServerErrors(t *testing.T) {
	for _, status := range []int{http.StatusInternalServerError, http.StatusUnauthorized, http.StatusNotFound, http.StatusFound} {
		s := newIntroServer(t)
		s.status = status
		s.answer("tok", activeAnswer())
		_, f := validate(t, validator.New(introConfig(s, newClock(), 0, 0)), "tok", nil)
		if f == nil || f.Status != http.StatusServiceUnavailable || f.Reason != validator.ReasonKeysUnavailable {
			t.Fatalf("status %d: got %+v; want 503", status, f)
		}
	}

	// Server down.
	s := newIntroServer(t)
	cfg := introConfig(s, newClock(), 0, 0)
	s.srv.Close()
	_, f := validate(t, validator.New(cfg), "tok", nil)
	if f == nil || f.Status != http.StatusServiceUnavailable || f.Reason != validator.ReasonKeysUnavailable || f.Issuer != issURL {
		t.Fatalf("server down: got %+v; want 503", f)
	}

	// Bad endpoint URL.
	cfg.Introspection.Endpoint = "http://[::1"
	_, f = validate(t, validator.New(cfg), "tok", nil)
	if f == nil || f.Status != http.StatusServiceUnavailable {
		t.Fatalf("bad endpoint: got %+v; want 503", f)
	}

	// Wrong credentials: the server answers 401 to us, which is not the
	// token's fault.
	s = newIntroServer(t)
	s.answer("tok", activeAnswer())
	cfg = introConfig(s, newClock(), 0, 0)
	cfg.Introspection.ClientSecret = "wrong"
	_, f = validate(t, validator.New(cfg), "tok", nil)
	if f == nil || f.Status != http.StatusServiceUnavailable {
		t.Fatalf("wrong credentials: got %+v; want 503", f)
	}
}

func TestIntrospectionCancelledContext(t *testing.T) {
	s := newIntroServer(t)
	s.answer("tok", activeAnswer())
	v := validator.New(introConfig(s, newClock(), 0, 0))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, f := v.Validate(ctx, "tok", nil); f == nil || f.Status != http.StatusServiceUnavailable {
		t.Fatalf("got %+v; want 503", f)
	}
}

func TestIntrospectionTooLargeNotSent(t *testing.T) {
	s := newIntroServer(t)
	_, f := validate(t, validator.New(introConfig(s, newClock(), 0, 0)), strings.Repeat("a", validator.DefaultMaxTokenSize+1), nil)
	wantInvalid(t, f, validator.ReasonTooLarge)
	if s.hits.Load() != 0 {
		t.Fatalf("an oversized token was sent to the server")
	}
}

// TestIntrospectionTokenIsFormEncoded: a token full of form syntax
// reaches the server intact.
func TestIntrospectionTokenIsFormEncoded(t *testing.T) {
	s := newIntroServer(t)
	tok := "a&token=evil&b=c+d%20e"
	s.answer(tok, activeAnswer())
	res, f := validate(t, validator.New(introConfig(s, newClock(), 0, 0)), tok, nil)
	wantOK(t, res, f)
	s.check(t)
}

func TestIntrospectionCacheTTLZeroAsksEveryTime(t *testing.T) {
	s := newIntroServer(t)
	s.answer("tok", activeAnswer())
	v := validator.New(introConfig(s, newClock(), 0, 100))
	for range 3 {
		res, f := validate(t, v, "tok", nil)
		wantOK(t, res, f)
	}
	if n := s.hits.Load(); n != 3 {
		t.Fatalf("%d requests; want 3", n)
	}
	// And a revocation is seen at once.
	s.answer("tok", m{"active": false})
	_, f := validate(t, v, "tok", nil)
	wantInvalid(t, f, validator.ReasonInactive)
}

func TestIntrospectionCacheTTLReuses(t *testing.T) {
	s := newIntroServer(t)
	s.answer("tok", activeAnswer())
	clk := newClock()
	v := validator.New(introConfig(s, clk, time.Minute, 100))
	for range 3 {
		res, f := validate(t, v, "tok", nil)
		wantOK(t, res, f)
	}
	if n := s.hits.Load(); n != 1 {
		t.Fatalf("%d requests; want 1", n)
	}
	clk.Set(t0.Add(59 * time.Second))
	validate(t, v, "tok", nil)
	if n := s.hits.Load(); n != 1 {
		t.Fatalf("%d requests before the TTL; want 1", n)
	}
	s.answer("tok", m{"active": false})
	clk.Set(t0.Add(time.Minute))
	_, f := validate(t, v, "tok", nil)
	wantInvalid(t, f, validator.ReasonInactive)
	if n := s.hits.Load(); n != 2 {
		t.Fatalf("%d requests after the TTL; want 2", n)
	}
	// Refusals are not cached.
	validate(t, v, "tok", nil)
	if n := s.hits.Load(); n != 3 {
		t.Fatalf("%d requests; want 3", n)
	}
}

// TestIntrospectionCacheNeverOutlivesExp: an answer is reused until the
// TTL or the token's exp, whichever comes first.
func TestIntrospectionCacheNeverOutlivesExp(t *testing.T) {
	s := newIntroServer(t)
	exp := t0.Add(10 * time.Second)
	s.answer("tok", activeAnswer(m{"exp": exp.Unix()}))
	clk := newClock()
	cfg := introConfig(s, clk, time.Hour, 100)
	cfg.Skew = 0
	v := validator.New(cfg)
	res, f := validate(t, v, "tok", nil)
	wantOK(t, res, f)
	clk.Set(exp.Add(-time.Second))
	res, f = validate(t, v, "tok", nil)
	wantOK(t, res, f)
	if n := s.hits.Load(); n != 1 {
		t.Fatalf("%d requests; want 1", n)
	}
	clk.Set(exp)
	_, f = validate(t, v, "tok", nil)
	wantInvalid(t, f, validator.ReasonExpired)
	if n := s.hits.Load(); n != 2 {
		t.Fatalf("%d requests; want 2", n)
	}
}

func TestIntrospectionCacheSizeZeroAsksEveryTime(t *testing.T) {
	s := newIntroServer(t)
	s.answer("tok", activeAnswer())
	v := validator.New(introConfig(s, newClock(), time.Hour, 0))
	for range 3 {
		validate(t, v, "tok", nil)
	}
	if n := s.hits.Load(); n != 3 {
		t.Fatalf("%d requests; want 3", n)
	}
}

// TestIntrospectionNumbersStayExact: introspection claims are decoded
// like token claims (json.Number), so claim conditions behave the same.
func TestIntrospectionNumbersStayExact(t *testing.T) {
	s := newIntroServer(t)
	s.answer("tok", activeAnswer(m{"level": 5}))
	cfg := introConfig(s, newClock(), 0, 0)
	cfg.Claims = []validator.ClaimCondition{{Name: "level", Value: "5.0"}}
	res, f := validate(t, validator.New(cfg), "tok", nil)
	wantOK(t, res, f)
	if _, ok := res.Claims["level"].(json.Number); !ok {
		t.Fatalf("level is %T", res.Claims["level"])
	}
}

// negConfig is introConfig with a negative TTL.
func negConfig(s *introServer, clk *clock, neg time.Duration, cacheSize int) validator.Config {
	cfg := introConfig(s, clk, 0, cacheSize)
	cfg.Introspection.NegativeTTL = neg
	return cfg
}

// TestIntrospectionNegativeCache replays the review's finding: every
// repeat of a bad token cost the issuer a call. Within the negative TTL,
// N repeats of each kind of refusal the answer decides cost one call;
// once it has passed, the issuer is asked again.
func TestIntrospectionNegativeCache(t *testing.T) {
	const n = 20
	cases := []struct {
		name   string
		answer any
		reason string
	}{
		{"inactive", m{"active": false}, validator.ReasonInactive},
		{"unknown token", nil, validator.ReasonInactive},
		{"wrong audience", activeAnswer(m{"aud": "api://other"}), validator.ReasonWrongAudience},
		{"wrong issuer", activeAnswer(m{"iss": orgURL}), validator.ReasonWrongIssuer},
		{"expired", activeAnswer(m{"exp": t0.Add(-time.Hour).Unix()}), validator.ReasonExpired},
		{"refresh token", activeAnswer(m{"token_type": "refresh_token"}), validator.ReasonNotAccessToken},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newIntroServer(t)
			if c.answer != nil {
				s.answer("bad", c.answer)
			}
			s.answer("good", activeAnswer())
			clk := newClock()
			v := validator.New(negConfig(s, clk, 10*time.Second, 100))
			for i := range n {
				clk.Set(t0.Add(time.Duration(i) * 400 * time.Millisecond)) // all within 10s
				_, f := validate(t, v, "bad", nil)
				wantInvalid(t, f, c.reason)
				if f.Issuer != issURL {
					t.Fatalf("repeat %d: issuer %q", i, f.Issuer)
				}
			}
			if got := s.hits.Load(); got != 1 {
				t.Fatalf("%d repeats of a bad token cost %d issuer calls; want 1", n, got)
			}
			// The cached refusal is a copy: a caller changing it changes
			// no later answer.
			_, f := validate(t, v, "bad", nil)
			f.Reason, f.Status = "changed", 200
			_, f = validate(t, v, "bad", nil)
			wantInvalid(t, f, c.reason)
			// Another token is still asked about, and accepted.
			res, f := validate(t, v, "good", nil)
			wantOK(t, res, f)
			if got := s.hits.Load(); got != 2 {
				t.Fatalf("%d calls after a good token; want 2", got)
			}
			// At the TTL the entry is gone: the issuer is asked again.
			clk.Set(t0.Add(10 * time.Second))
			_, f = validate(t, v, "bad", nil)
			wantInvalid(t, f, c.reason)
			if got := s.hits.Load(); got != 3 {
				t.Fatalf("%d calls after the negative TTL; want 3", got)
			}
			s.check(t)
		})
	}
}

// TestIntrospectionNegativeCacheSkipsServerErrors: a 5xx, another
// non-200 status, an unreadable answer or no answer at all says nothing
// about the token and is never kept: each repeat asks again, and the
// token is accepted as soon as the issuer answers.
func TestIntrospectionNegativeCacheSkipsServerErrors(t *testing.T) {
	for _, c := range []struct {
		name   string
		status int
		body   string
	}{
		{"500", http.StatusInternalServerError, `{"active":false}`},
		{"503", http.StatusServiceUnavailable, ``},
		{"401 to the gateway", http.StatusUnauthorized, `{"error":"invalid_client"}`},
		{"200 not JSON", http.StatusOK, `<html>`},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newIntroServer(t)
			s.answer("tok", c.body)
			s.status = c.status
			clk := newClock()
			v := validator.New(negConfig(s, clk, time.Minute, 100))
			for i := range 3 {
				_, f := validate(t, v, "tok", nil)
				if f == nil || f.Status != http.StatusServiceUnavailable {
					t.Fatalf("try %d: got %+v; want 503", i, f)
				}
			}
			if got := s.hits.Load(); got != 3 {
				t.Fatalf("%d calls for 3 tries; a failed answer must not be cached", got)
			}
			s.mu.Lock()
			s.status = http.StatusOK
			s.mu.Unlock()
			s.answer("tok", activeAnswer())
			res, f := validate(t, v, "tok", nil)
			wantOK(t, res, f)
		})
	}

	// The issuer unreachable: not cached either.
	s := newIntroServer(t)
	s.answer("tok", activeAnswer())
	cfg := negConfig(s, newClock(), time.Minute, 100)
	good := cfg.Introspection.Endpoint
	cfg.Introspection.Endpoint = "http://127.0.0.1:1/introspect"
	v := validator.New(cfg)
	if _, f := validate(t, v, "tok", nil); f == nil || f.Status != http.StatusServiceUnavailable {
		t.Fatalf("unreachable: got %+v; want 503", f)
	}
	cfg.Introspection.Endpoint = good
	if res, f := validate(t, v, "tok", nil); f != nil || res == nil {
		t.Fatalf("after the issuer came back: %+v", f)
	}
}

// TestIntrospectionNegativeCacheBounded: refusals never take more than
// the route's cache size, a flood of distinct bad tokens evicts no
// accepted one, and a zero TTL or a disabled cache keeps none.
func TestIntrospectionNegativeCacheBounded(t *testing.T) {
	s := newIntroServer(t)
	s.answer("good", activeAnswer())
	clk := newClock()
	cfg := negConfig(s, clk, time.Minute, 32)
	cfg.Introspection.CacheTTL = time.Minute
	v := validator.New(cfg)
	if res, f := validate(t, v, "good", nil); f != nil || res == nil {
		t.Fatalf("good: %+v", f)
	}
	const flood = 2000
	for i := range flood {
		validate(t, v, fmt.Sprintf("bad-%d", i), nil)
	}
	// Newest first: the last refusal is still kept, and a pass can hit
	// no more entries than the cache held when it began (each miss
	// takes one place).
	before := s.hits.Load()
	kept := 0
	for i := flood - 1; i >= 0; i-- {
		validate(t, v, fmt.Sprintf("bad-%d", i), nil)
		if s.hits.Load() == before {
			kept++
		}
		before = s.hits.Load()
	}
	if kept == 0 || kept > 32 {
		t.Fatalf("%d refusals kept; want between 1 and the cache size 32", kept)
	}
	before = s.hits.Load()
	if res, f := validate(t, v, "good", nil); f != nil || res == nil {
		t.Fatalf("good after the flood: %+v", f)
	}
	if s.hits.Load() != before {
		t.Fatal("a flood of bad tokens evicted an accepted one")
	}

	for _, c := range []struct {
		name      string
		neg       time.Duration
		cacheSize int
	}{{"zero TTL", 0, 100}, {"cache disabled", time.Minute, 0}} {
		s := newIntroServer(t)
		v := validator.New(negConfig(s, newClock(), c.neg, c.cacheSize))
		for range 3 {
			_, f := validate(t, v, "bad", nil)
			wantInvalid(t, f, validator.ReasonInactive)
		}
		if got := s.hits.Load(); got != 3 {
			t.Fatalf("%s: %d calls for 3 tries; want 3", c.name, got)
		}
	}
}

// TestIntrospectionMaxSizeTokenIsSent: a token of exactly the size cap
// is asked about; one byte more is refused unsent.
func TestIntrospectionMaxSizeTokenIsSent(t *testing.T) {
	s := newIntroServer(t)
	tok := strings.Repeat("a", validator.DefaultMaxTokenSize)
	s.answer(tok, activeAnswer())
	res, f := validate(t, validator.New(introConfig(s, newClock(), 0, 0)), tok, nil)
	wantOK(t, res, f)
	if s.hits.Load() != 1 {
		t.Fatalf("%d requests; want 1", s.hits.Load())
	}
}

// TestIntrospectionDefaultClient: without a client of its own the
// introspector uses http.DefaultClient.
func TestIntrospectionDefaultClient(t *testing.T) {
	s := newIntroServer(t)
	s.answer("tok", activeAnswer())
	cfg := introConfig(s, newClock(), 0, 0)
	cfg.Introspection.Client = nil
	res, f := validate(t, validator.New(cfg), "tok", nil)
	wantOK(t, res, f)
	s.check(t)
}
