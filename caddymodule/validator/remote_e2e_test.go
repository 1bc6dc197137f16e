package validator_test

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/apiaccess/caddy-apiaccess/caddymodule/keyset"
	"github.com/apiaccess/caddy-apiaccess/caddymodule/validator"
)

// TestValidateWithRemoteKeys runs the validator over keys fetched from an
// issuer on 127.0.0.1: genuine tokens pass, a flood of forged tokens with
// random kids costs at most a couple of JWKS fetches, and an issuer
// outage leaves known keys usable.
func TestValidateWithRemoteKeys(t *testing.T) {
	k := getKeys()
	var jwksHits atomic.Int64
	var mu sync.Mutex
	jwks, _ := json.Marshal(k.set)
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/oauth2/default/.well-known/openid-configuration":
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": srv.URL + "/oauth2/default", "jwks_uri": srv.URL + "/oauth2/default/v1/keys"})
		case "/oauth2/default/v1/keys":
			jwksHits.Add(1)
			mu.Lock()
			b := jwks
			mu.Unlock()
			_, _ = w.Write(b)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	iss := srv.URL + "/oauth2/default"
	clk := newClock()
	remote := &keyset.Remote{Issuer: iss, MinRefresh: time.Hour, Client: srv.Client(), Now: clk.Now}
	v := validator.New(validator.Config{
		Issuers:   []*validator.Issuer{{URL: iss, Audiences: []string{audience}, Algorithms: validator.DefaultAlgorithms, Keys: remote}},
		Skew:      30 * time.Second,
		CacheSize: 1000,
		Scopes:    []string{"read"},
		Now:       clk.Now,
	})

	goodTok := mint(t, jwa.ES256, k.ec1, "ec1", stdClaims(m{"iss": iss}))
	res, f := validate(t, v, goodTok, nil)
	wantOK(t, res, f)

	forgedToks := make([]string, 200)
	for g := range forgedToks {
		forgedToks[g] = mint(t, jwa.RS256, k.attacker, rand.Text(), stdClaims(m{"iss": iss, "jti": fmt.Sprint(g)}))
	}
	var wg sync.WaitGroup
	errs := make(chan string, 400)
	for _, tok := range forgedToks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, f := v.Validate(t.Context(), tok, nil); f == nil || f.Reason != validator.ReasonUnknownKID || f.Status != http.StatusUnauthorized {
				errs <- fmt.Sprintf("forged token: %+v", f)
			}
			if _, f := v.Validate(t.Context(), goodTok, nil); f != nil {
				errs <- fmt.Sprintf("genuine token during the flood: %+v", f)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	if n := jwksHits.Load(); n > 2 {
		t.Fatalf("%d JWKS fetches during the flood; want at most 2", n)
	}

	// Rotation at the issuer: a token with the new kid is accepted once
	// MinRefresh has passed.
	newKey := mustEC()
	mu.Lock()
	jwks, _ = json.Marshal(setOf(publicJWK(&newKey.PublicKey, "ec2", "ES256")))
	mu.Unlock()
	rotated := mint(t, jwa.ES256, newKey, "ec2", stdClaims(m{"iss": iss}))
	_, f = validate(t, v, rotated, nil)
	wantInvalid(t, f, validator.ReasonUnknownKID)
	clk.Set(t0.Add(time.Hour + time.Second))
	rotated = mint(t, jwa.ES256, newKey, "ec2", stdClaims(m{"iss": iss, "exp": t0.Add(2 * time.Hour).Unix()}))
	res, f = validate(t, v, rotated, nil)
	wantOK(t, res, f)

	// The issuer goes down: known keys keep working, unknown kids fail
	// fast as unknown.
	srv.Close()
	clk.Set(t0.Add(3 * time.Hour))
	again := mint(t, jwa.ES256, newKey, "ec2", stdClaims(m{"iss": iss, "exp": t0.Add(4 * time.Hour).Unix()}))
	res, f = validate(t, v, again, nil)
	wantOK(t, res, f)
	_, f = validate(t, v, mint(t, jwa.ES256, newKey, "ec3", stdClaims(m{"iss": iss, "exp": t0.Add(4 * time.Hour).Unix()})), nil)
	wantInvalid(t, f, validator.ReasonUnknownKID)
}
