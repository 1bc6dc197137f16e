package validator_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/apiaccess/caddy-apiaccess/caddymodule/keyset"

	"github.com/apiaccess/caddy-apiaccess/caddymodule/validator"
)

// cachedConfig is baseConfig with a cache and a counting key source on
// issURL.
func cachedConfig(clk *clock, size int) (validator.Config, *countingSource) {
	cfg := baseConfig(clk)
	cs := &countingSource{src: cfg.Issuers[0].Keys}
	cfg.Issuers[0].Keys = cs
	cfg.CacheSize = size
	return cfg, cs
}

func TestCacheSkipsKeySourceOnSecondUse(t *testing.T) {
	cfg, cs := cachedConfig(newClock(), 100)
	v := validator.New(cfg)
	tok := good(t)
	for i := range 5 {
		res, f := validate(t, v, tok, nil)
		wantOK(t, res, f)
		if res.Subject != "user1" {
			t.Fatalf("round %d: subject %q", i, res.Subject)
		}
	}
	if n := cs.n.Load(); n != 1 {
		t.Fatalf("key source called %d times; want 1", n)
	}
}

func TestCacheDisabledWithSizeZero(t *testing.T) {
	cfg, cs := cachedConfig(newClock(), 0)
	v := validator.New(cfg)
	tok := good(t)
	for range 3 {
		res, f := validate(t, v, tok, nil)
		wantOK(t, res, f)
	}
	if n := cs.n.Load(); n != 3 {
		t.Fatalf("key source called %d times; want 3 (no cache)", n)
	}
}

// TestCacheEntryEndsAtExp: with no skew, a cached token is refused as
// expired the moment its exp is reached, not served from the cache.
func TestCacheEntryEndsAtExp(t *testing.T) {
	clk := newClock()
	cfg, cs := cachedConfig(clk, 100)
	cfg.Skew = 0
	v := validator.New(cfg)
	exp := t0.Add(time.Minute)
	tok := good(t, m{"exp": exp.Unix()})
	res, f := validate(t, v, tok, nil)
	wantOK(t, res, f)
	clk.Set(exp.Add(-time.Second))
	res, f = validate(t, v, tok, nil)
	wantOK(t, res, f)
	if n := cs.n.Load(); n != 1 {
		t.Fatalf("key source called %d times before exp; want 1", n)
	}
	clk.Set(exp)
	_, f = validate(t, v, tok, nil)
	wantInvalid(t, f, validator.ReasonExpired)
	clk.Set(exp.Add(time.Hour))
	_, f = validate(t, v, tok, nil)
	wantInvalid(t, f, validator.ReasonExpired)
}

// TestCacheEntryEndsAtExpWithSkew: with a skew, the cached entry ends at
// exp; the token is verified again (accepted within the skew) and is
// refused once exp+skew passes.
func TestCacheEntryEndsAtExpWithSkew(t *testing.T) {
	clk := newClock()
	cfg, cs := cachedConfig(clk, 100)
	cfg.Skew = 30 * time.Second
	v := validator.New(cfg)
	exp := t0.Add(time.Minute)
	tok := good(t, m{"exp": exp.Unix()})
	res, f := validate(t, v, tok, nil)
	wantOK(t, res, f)
	clk.Set(exp.Add(10 * time.Second))
	res, f = validate(t, v, tok, nil)
	wantOK(t, res, f)
	if n := cs.n.Load(); n != 2 {
		t.Fatalf("key source called %d times; want 2 (entry ended at exp, then verified again)", n)
	}
	clk.Set(exp.Add(30 * time.Second))
	_, f = validate(t, v, tok, nil)
	wantInvalid(t, f, validator.ReasonExpired)
	clk.Set(exp.Add(31 * time.Second))
	_, f = validate(t, v, tok, nil)
	wantInvalid(t, f, validator.ReasonExpired)
}

// TestCachedTokenStillGetsRouteChecks: scopes, claims and the
// expression run on every request, cached or not.
func TestCachedTokenStillGetsRouteChecks(t *testing.T) {
	clk := newClock()
	cfg, cs := cachedConfig(clk, 100)
	cfg.Scopes = []string{"admin"}
	v := validator.New(cfg)
	tok := good(t)
	for range 3 {
		_, f := validate(t, v, tok, nil)
		wantForbidden(t, f, validator.ReasonInsufficientScope)
	}
	if n := cs.n.Load(); n != 1 {
		t.Fatalf("key source called %d times; want 1", n)
	}

	cfg, cs = cachedConfig(clk, 100)
	cfg.Expression = mustExpr(t, `request.method == "GET"`)
	cfg.Claims = []validator.ClaimCondition{{Name: "dept", Value: "billing"}}
	v = validator.New(cfg)
	get := httptest.NewRequest(http.MethodGet, "/", nil)
	post := httptest.NewRequest(http.MethodPost, "/", nil)
	for _, r := range []*http.Request{get, post, get, post} {
		res, f := validate(t, v, tok, r)
		if r.Method == http.MethodGet {
			wantOK(t, res, f)
		} else {
			wantForbidden(t, f, validator.ReasonExpressionFalse)
		}
	}
	if n := cs.n.Load(); n != 1 {
		t.Fatalf("key source called %d times; want 1", n)
	}
	_, f := validate(t, v, good(t, m{"dept": "ops"}), get)
	wantForbidden(t, f, validator.ReasonClaimMismatch)
	_, f = validate(t, v, good(t, m{"dept": "ops"}), get)
	wantForbidden(t, f, validator.ReasonClaimMismatch)
}

// TestFailuresAreNotCached: a refused token is checked again each time
// (and a refused token never poisons the cache for a genuine one).
func TestFailuresAreNotCached(t *testing.T) {
	cfg, cs := cachedConfig(newClock(), 100)
	v := validator.New(cfg)
	bad := mint(t, jwa.RS256, getKeys().attacker, "rsa1", stdClaims())
	for range 3 {
		_, f := validate(t, v, bad, nil)
		wantInvalid(t, f, validator.ReasonBadSignature)
	}
	if n := cs.n.Load(); n != 3 {
		t.Fatalf("key source called %d times; want 3", n)
	}
	res, f := validate(t, v, good(t), nil)
	wantOK(t, res, f)
}

// TestCacheKeepsTokensApart: distinct tokens never share an entry, even
// under heavy eviction.
func TestCacheKeepsTokensApart(t *testing.T) {
	for _, size := range []int{1, 17, 1000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			cfg, _ := cachedConfig(newClock(), size)
			cfg.Scopes = []string{"read"}
			v := validator.New(cfg)
			var toks []string
			for i := range 40 {
				scp := []string{"read"}
				if i%3 == 0 {
					scp = []string{"write"}
				}
				toks = append(toks, good(t, m{"sub": fmt.Sprint("user-", i), "scp": scp}))
			}
			for round := range 3 {
				for i, tok := range toks {
					res, f := validate(t, v, tok, nil)
					if i%3 == 0 {
						wantForbidden(t, f, validator.ReasonInsufficientScope)
						if f.Subject != fmt.Sprint("user-", i) {
							t.Fatalf("round %d token %d: subject %q", round, i, f.Subject)
						}
						continue
					}
					wantOK(t, res, f)
					if res.Subject != fmt.Sprint("user-", i) {
						t.Fatalf("round %d token %d: subject %q", round, i, res.Subject)
					}
				}
			}
		})
	}
}

func TestCacheConcurrentUse(t *testing.T) {
	clk := newClock()
	cfg, cs := cachedConfig(clk, 64)
	v := validator.New(cfg)
	toks := make([]string, 8)
	for i := range toks {
		toks[i] = good(t, m{"sub": fmt.Sprint("u", i)})
	}
	bad := mint(t, jwa.RS256, getKeys().attacker, "rsa1", stdClaims())
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				tok := toks[(g+i)%len(toks)]
				res, f := v.Validate(t.Context(), tok, nil)
				if f != nil || res.Subject != fmt.Sprint("u", (g+i)%len(toks)) {
					errs <- fmt.Sprintf("goroutine %d: %+v %+v", g, res, f)
					return
				}
				if _, f := v.Validate(t.Context(), bad, nil); f == nil || f.Reason != validator.ReasonBadSignature {
					errs <- fmt.Sprintf("forged token: %+v", f)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	if n := cs.n.Load(); n < int64(len(toks)) {
		t.Fatalf("key source called %d times", n)
	}
}

// TestCachedTokenSurvivesKeyOutage documents that a cached token
// is served without consulting the key source (so it keeps working while
// the issuer's keys are unavailable, until its exp).
func TestCachedTokenSurvivesKeyOutage(t *testing.T) {
	clk := newClock()
	cfg := baseConfig(clk)
	cfg.CacheSize = 10
	var mu sync.Mutex
	set := getKeys().set
	cfg.Issuers[0].Keys = keyset.NewInProcess(func() jwk.Set { mu.Lock(); defer mu.Unlock(); return set }, false)
	v := validator.New(cfg)
	tok := good(t)
	res, f := validate(t, v, tok, nil)
	wantOK(t, res, f)
	mu.Lock()
	set = nil
	mu.Unlock()
	res, f = validate(t, v, tok, nil)
	wantOK(t, res, f)
	_, f = validate(t, v, good(t, m{"jti": "other"}), nil)
	if f == nil || f.Status != http.StatusServiceUnavailable {
		t.Fatalf("uncached token with no keys: %+v; want 503", f)
	}
}

// TestCacheHoldsWhatFits: a cache far from full evicts nothing (200
// tokens in room for 1600 spread over the shards), and a full one never
// holds more than its size.
func TestCacheHoldsWhatFits(t *testing.T) {
	for _, c := range []struct {
		size, tokens int
		all          bool // every token must stay cached
	}{{1600, 200, true}, {32, 400, false}} {
		cfg, cs := cachedConfig(newClock(), c.size)
		v := validator.New(cfg)
		toks := make([]string, c.tokens)
		for i := range toks {
			toks[i] = mint(t, jwa.EdDSA, getKeys().ed1, "ed1", stdClaims(m{"jti": fmt.Sprintf("id-%d", i)}))
			validate(t, v, toks[i], nil)
		}
		// Newest first: a pass can hit no more entries than the cache
		// held when it began, since each miss takes one place.
		hits := 0
		for i := len(toks) - 1; i >= 0; i-- {
			before := cs.n.Load()
			res, f := validate(t, v, toks[i], nil)
			wantOK(t, res, f)
			if cs.n.Load() == before {
				hits++
			}
		}
		switch {
		case c.all && hits != c.tokens:
			t.Fatalf("size %d: %d of %d tokens still cached; want all", c.size, hits, c.tokens)
		case !c.all && (hits == 0 || hits > c.size):
			t.Fatalf("size %d: %d cached after %d tokens; want between 1 and %d", c.size, hits, c.tokens, c.size)
		}
	}
}
