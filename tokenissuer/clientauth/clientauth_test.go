package clientauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"golang.org/x/crypto/bcrypt"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientip"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/embedded"
)

const (
	tokenURL  = "https://id.example.com/oauth2/default/v1/token"
	issuerURL = "https://id.example.com/oauth2/default"
)

var aud = Audiences{tokenURL, issuerURL}

// clock is a settable time source. It starts at the real time because
// stores compare mark expiry with the real clock.
type clock = testkit.Clock

func newClock() *clock { return testkit.NewClock(time.Now().Truncate(time.Second)) }

func openStore(t *testing.T) store.Store {
	t.Helper()
	db, err := embedded.Open(filepath.Join(t.TempDir(), "auth.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func prepared(t *testing.T, cs ...*Client) []*Client {
	t.Helper()
	for _, c := range cs {
		if err := c.Prepare(); err != nil {
			t.Fatalf("Prepare(%s): %v", c.ID, err)
		}
	}
	return cs
}

// post is a token request from an address of its own (198.18.0.0/16,
// in turn), so tests of other behaviour do not meet the address
// throttle; throttle tests set addresses with from.
func post() *http.Request {
	n := requestAddr.Add(1)
	return from(httptest.NewRequest(http.MethodPost, "/oauth2/default/v1/token", nil), fmt.Sprintf("198.18.%d.%d", byte(n>>8), byte(n)))
}

var requestAddr atomic.Uint32

// from sets the request's client address as the Caddy glue does.
func from(r *http.Request, ip string) *http.Request {
	return r.WithContext(clientip.With(r.Context(), ip))
}

// basicAuth sets the Authorization header the RFC 6749 2.3.1 way: both
// parts form-encoded, then Basic.
func basicAuth(r *http.Request, id, secret string) *http.Request {
	r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	return r
}

func wantOK(t *testing.T, c *Client, id string, e *oauth.Error, wantID string) {
	t.Helper()
	if e != nil {
		t.Fatalf("authentication failed: %v (reason %q)", e, e.Reason)
	}
	if c == nil || c.ID != wantID || id != wantID {
		t.Fatalf("authenticated %v / %q, want client %q", c, id, wantID)
	}
}

func wantErr(t *testing.T, c *Client, e *oauth.Error, code string, status int) {
	t.Helper()
	if e == nil {
		t.Fatalf("authentication succeeded as %q, want %s", c.ID, code)
	}
	if c != nil {
		t.Fatalf("a client was returned with an error: %v", c.ID)
	}
	if e.Code != code || e.Status != status {
		t.Fatalf("error %s/%d (%q, reason %q), want %s/%d", e.Code, e.Status, e.Description, e.Reason, code, status)
	}
}

// --- Prepare ---

func TestPrepareErrors(t *testing.T) {
	ecPub := publicJWKS(t, ecKey(t, "ec-1"))
	rsaPriv := mustJSON(t, map[string]any{"keys": []any{rsaKey(t)}})
	oct := `{"keys":[{"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}]}`
	tests := []struct {
		name string
		c    Client
		want string
	}{
		{"no id", Client{Secret: "s"}, "client_id is required"},
		{"colon in id", Client{ID: "a:b", Secret: "s"}, "may not contain"},
		{"NUL in id", Client{ID: "a\x00b", Secret: "s"}, "may not contain"},
		{"no secret", Client{ID: "a"}, "exactly one of client_secret and client_secret_hash"},
		{"secret and hash", Client{ID: "a", Secret: "s", SecretHash: bcryptHash(t, "s")}, "exactly one of client_secret and client_secret_hash"},
		{"post without secret", Client{ID: "a", AuthMethod: SecretPost}, "exactly one of client_secret and client_secret_hash"},
		{"hash not bcrypt", Client{ID: "a", SecretHash: "5f4dcc3b5aa765d61d8327deb882cf99"}, "not a bcrypt hash"},
		{"basic with jwks", Client{ID: "a", Secret: "s", JWKS: json.RawMessage(ecPub)}, "only apply to private_key_jwt"},
		{"basic with jwks_uri", Client{ID: "a", Secret: "s", JWKSURI: "https://a.example/jwks"}, "only apply to private_key_jwt"},
		{"pkjwt with secret", Client{ID: "a", AuthMethod: PrivateKeyJWT, Secret: "s", JWKS: json.RawMessage(ecPub)}, "has no secret"},
		{"pkjwt with hash", Client{ID: "a", AuthMethod: PrivateKeyJWT, SecretHash: bcryptHash(t, "s"), JWKS: json.RawMessage(ecPub)}, "has no secret"},
		{"pkjwt without keys", Client{ID: "a", AuthMethod: PrivateKeyJWT}, "exactly one of jwks and jwks_uri"},
		{"pkjwt with both", Client{ID: "a", AuthMethod: PrivateKeyJWT, JWKS: json.RawMessage(ecPub), JWKSURI: "https://a.example/jwks"}, "exactly one of jwks and jwks_uri"},
		{"jwks not JSON", Client{ID: "a", AuthMethod: PrivateKeyJWT, JWKS: json.RawMessage(`{"keys":[`)}, "jwks"},
		{"jwks empty", Client{ID: "a", AuthMethod: PrivateKeyJWT, JWKS: json.RawMessage(`{"keys":[]}`)}, "no keys"},
		{"jwks private key", Client{ID: "a", AuthMethod: PrivateKeyJWT, JWKS: json.RawMessage(rsaPriv)}, "private key material"},
		{"jwks oct key", Client{ID: "a", AuthMethod: PrivateKeyJWT, JWKS: json.RawMessage(oct)}, `key type "oct"`},
		{"jwks_uri relative", Client{ID: "a", AuthMethod: PrivateKeyJWT, JWKSURI: "/jwks.json"}, "absolute http(s) URL"},
		{"jwks_uri ftp", Client{ID: "a", AuthMethod: PrivateKeyJWT, JWKSURI: "ftp://a.example/jwks"}, "absolute http(s) URL"},
		{"jwks_uri no host", Client{ID: "a", AuthMethod: PrivateKeyJWT, JWKSURI: "https:///jwks"}, "absolute http(s) URL"},
		{"jwks_uri plain http to a public host", Client{ID: "a", AuthMethod: PrivateKeyJWT, JWKSURI: "http://keys.example/jwks"}, "only to a loopback host"},
		{"jwks_uri plain http to an internal address", Client{ID: "a", AuthMethod: PrivateKeyJWT, JWKSURI: "http://10.0.0.5/jwks"}, "only to a loopback host"},
		{"public client with client_credentials", Client{ID: "a", AuthMethod: None}, "cannot use client_credentials"},
		{"method unknown", Client{ID: "a", AuthMethod: "client_secret_jwt", Secret: "s"}, "unsupported token_endpoint_auth_method"},
		{"empty grant type", Client{ID: "a", Secret: "s", GrantTypes: []string{"client_credentials", ""}}, "empty grant type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			err := c.Prepare()
			if err == nil {
				t.Fatalf("Prepare succeeded, want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Prepare error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestPrepareDefaults(t *testing.T) {
	c := &Client{ID: "svc", Secret: "s"}
	if err := c.Prepare(); err != nil {
		t.Fatal(err)
	}
	if c.Name != "svc" || c.AuthMethod != SecretBasic || len(c.GrantTypes) != 1 || c.GrantTypes[0] != "client_credentials" {
		t.Fatalf("defaults: %+v", c)
	}
	if !c.AllowsGrant("client_credentials") || c.AllowsGrant("authorization_code") || c.AllowsGrant("") {
		t.Fatal("AllowsGrant does not follow GrantTypes")
	}
	c = &Client{ID: "svc", Name: "Service", Secret: "s", AuthMethod: SecretPost, GrantTypes: []string{"authorization_code"}}
	if err := c.Prepare(); err != nil {
		t.Fatal(err)
	}
	if c.Name != "Service" || c.AuthMethod != SecretPost || c.AllowsGrant("client_credentials") {
		t.Fatalf("explicit values overridden: %+v", c)
	}
	// Accepted key sets and URLs.
	for _, c := range []*Client{
		{ID: "k1", AuthMethod: PrivateKeyJWT, JWKS: json.RawMessage(publicJWKS(t, ecKey(t, "e")))},
		{ID: "k2", AuthMethod: PrivateKeyJWT, JWKSURI: "https://client.example/jwks.json"},
		{ID: "k3", AuthMethod: PrivateKeyJWT, JWKSURI: "http://127.0.0.1:8080/jwks"},
		{ID: "h", SecretHash: bcryptHash(t, "s")},
	} {
		if err := c.Prepare(); err != nil {
			t.Errorf("Prepare(%s): %v", c.ID, err)
		}
	}
}

// --- keys and assertions ---

var rsaRaw = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// rsaKey is a private RSA JWK (kid rsa-1, no alg: the algorithm is
// inferred from the key).
func rsaKey(t *testing.T) jwk.Key {
	t.Helper()
	k, err := jwk.FromRaw(rsaRaw())
	if err != nil {
		t.Fatal(err)
	}
	_ = k.Set(jwk.KeyIDKey, "rsa-1")
	return k
}

// ecKey is a fresh private P-256 JWK with alg ES256.
func ecKey(t *testing.T, kid string) jwk.Key {
	t.Helper()
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := jwk.FromRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	_ = k.Set(jwk.KeyIDKey, kid)
	_ = k.Set(jwk.AlgorithmKey, jwa.ES256)
	return k
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// publicJWKS renders the public halves of private keys as a JWK Set.
func publicJWKS(t *testing.T, privs ...jwk.Key) string {
	t.Helper()
	set := jwk.NewSet()
	for _, p := range privs {
		pub, err := p.PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		if err := set.AddKey(pub); err != nil {
			t.Fatal(err)
		}
	}
	return mustJSON(t, set)
}

func bcryptHash(t *testing.T, secret string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(secret), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// claimsFor is a valid RFC 7523 claim set for client id at time now.
func claimsFor(id string, now time.Time) map[string]any {
	return map[string]any{
		"iss": id,
		"sub": id,
		"aud": tokenURL,
		"iat": now.Unix(),
		"exp": now.Add(5 * time.Minute).Unix(),
		"jti": randomID(),
	}
}

// sign signs claims as a compact JWS with alg and key, kid in the header
// when not empty.
func sign(t *testing.T, claims map[string]any, alg jwa.SignatureAlgorithm, key any, kid string) string {
	t.Helper()
	h := jws.NewHeaders()
	_ = h.Set(jws.TypeKey, "JWT")
	if kid != "" {
		_ = h.Set(jws.KeyIDKey, kid)
	}
	b, err := jws.Sign([]byte(mustJSON(t, claims)), jws.WithKey(alg, key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatalf("signing assertion: %v", err)
	}
	return string(b)
}

func assertionForm(assertion string) map[string]string {
	return map[string]string{
		"grant_type":            "client_credentials",
		"client_assertion_type": AssertionType,
		"client_assertion":      assertion,
	}
}

// --- client secrets ---

type secretFixture struct {
	a     *Authenticator
	clk   *clock
	basic *Client // "svc one", secret "a b:c%", client_secret_basic
	post  *Client // "poster", secret "p0st-secret", client_secret_post
	hash  *Client // "hashed", bcrypt of "h4sh-secret", client_secret_basic
	hash2 *Client // "hashed2", bcrypt of "other-secret", client_secret_post
}

func newSecretFixture(t *testing.T) *secretFixture {
	f := &secretFixture{
		clk:   newClock(),
		basic: &Client{ID: "svc one", Secret: "a b:c%"},
		post:  &Client{ID: "poster", Secret: "p0st-secret", AuthMethod: SecretPost},
		hash:  &Client{ID: "hashed", SecretHash: bcryptHash(t, "h4sh-secret")},
		hash2: &Client{ID: "hashed2", SecretHash: bcryptHash(t, "other-secret"), AuthMethod: SecretPost},
	}
	f.a = New(prepared(t, f.basic, f.post, f.hash, f.hash2), openStore(t), f.clk.Now)
	return f
}

func (f *secretFixture) auth(r *http.Request, form map[string]string) (*Client, string, *oauth.Error) {
	if form == nil {
		form = map[string]string{"grant_type": "client_credentials"}
	}
	return f.a.Authenticate(context.Background(), r, form, aud)
}

func TestClientSecretBasic(t *testing.T) {
	f := newSecretFixture(t)
	// RFC 6749 2.3.1: the id and secret are form-encoded before Basic, so
	// spaces, colons and percent signs survive.
	c, id, e := f.auth(basicAuth(post(), "svc one", "a b:c%"), nil)
	wantOK(t, c, id, e, "svc one")
	if enc := post(); true {
		enc.SetBasicAuth("svc+one", "a+b%3Ac%25")
		c, id, e = f.auth(enc, nil)
		wantOK(t, c, id, e, "svc one")
	}
	// client_id repeated in the body is allowed when it agrees.
	c, id, e = f.auth(basicAuth(post(), "svc one", "a b:c%"), map[string]string{"client_id": "svc one"})
	wantOK(t, c, id, e, "svc one")
	// ... and refused when it does not.
	c, id, e = f.auth(basicAuth(post(), "svc one", "a b:c%"), map[string]string{"client_id": "poster"})
	wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
	if id != "svc one" {
		t.Errorf("claimed id %q, want the header's", id)
	}
}

func TestClientSecretPost(t *testing.T) {
	f := newSecretFixture(t)
	c, id, e := f.auth(post(), map[string]string{"client_id": "poster", "client_secret": "p0st-secret"})
	wantOK(t, c, id, e, "poster")
}

func TestWrongSecret(t *testing.T) {
	f := newSecretFixture(t)
	for _, s := range []string{"a b:c", "a b:c%x", "", "A B:C%", "a+b:c%"} {
		c, id, e := f.auth(basicAuth(post(), "svc one", s), nil)
		wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
		if id != "svc one" {
			t.Errorf("claimed id on failure = %q, want %q", id, "svc one")
		}
	}
	c, id, e := f.auth(post(), map[string]string{"client_id": "poster", "client_secret": "p0st-secreT"})
	wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
	if id != "poster" {
		t.Errorf("claimed id on failure = %q, want poster", id)
	}
	// The answer does not tell a wrong secret from an unknown client.
	_, _, unknown := f.auth(post(), map[string]string{"client_id": "nobody", "client_secret": "p0st-secret"})
	if unknown == nil || unknown.Description != e.Description || unknown.Code != e.Code {
		t.Errorf("unknown client answer %v differs from wrong secret answer %v", unknown, e)
	}
}

func TestUnknownClient(t *testing.T) {
	f := newSecretFixture(t)
	c, id, e := f.auth(basicAuth(post(), "nobody", "x"), nil)
	wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
	if id != "nobody" {
		t.Errorf("claimed id = %q, want nobody", id)
	}
	c, _, e = f.auth(post(), map[string]string{"client_id": "nobody", "client_secret": "x"})
	wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
	// No client_id at all.
	c, _, e = f.auth(post(), map[string]string{"client_secret": "p0st-secret"})
	wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
}

func TestMethodMismatch(t *testing.T) {
	f := newSecretFixture(t)
	// A basic client sending its (correct) secret in the body.
	c, _, e := f.auth(post(), map[string]string{"client_id": "svc one", "client_secret": "a b:c%"})
	wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
	// A post client sending its (correct) secret in the header.
	c, _, e = f.auth(basicAuth(post(), "poster", "p0st-secret"), nil)
	wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
}

func TestNoCredentials(t *testing.T) {
	f := newSecretFixture(t)
	c, id, e := f.auth(post(), map[string]string{"grant_type": "client_credentials"})
	wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
	if id != "" {
		t.Errorf("claimed id = %q, want empty", id)
	}
	// A client id alone is no credential.
	c, id, e = f.auth(post(), map[string]string{"client_id": "poster"})
	wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
	if id != "poster" {
		t.Errorf("claimed id = %q, want poster", id)
	}
	// Bearer is not client authentication.
	r := post()
	r.Header.Set("Authorization", "Bearer abc")
	c, _, e = f.auth(r, nil)
	wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
	// Malformed Basic.
	r = post()
	r.Header.Set("Authorization", "Basic !!!")
	c, _, e = f.auth(r, nil)
	wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
}

func TestMultipleCredentials(t *testing.T) {
	f := newSecretFixture(t)
	const okta = "Cannot supply multiple client credentials"
	cases := map[string]struct {
		r    *http.Request
		form map[string]string
	}{
		"header and body secret": {basicAuth(post(), "svc one", "a b:c%"),
			map[string]string{"client_id": "svc one", "client_secret": "a b:c%"}},
		"header and assertion": {basicAuth(post(), "svc one", "a b:c%"),
			map[string]string{"client_assertion_type": AssertionType, "client_assertion": "a.b.c"}},
		"header and assertion type only": {basicAuth(post(), "svc one", "a b:c%"),
			map[string]string{"client_assertion_type": AssertionType}},
		"body secret and assertion": {post(),
			map[string]string{"client_id": "poster", "client_secret": "p0st-secret", "client_assertion_type": AssertionType, "client_assertion": "a.b.c"}},
		"empty body secret and header": {basicAuth(post(), "svc one", "a b:c%"),
			map[string]string{"client_secret": ""}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c, _, e := f.auth(tc.r, tc.form)
			wantErr(t, c, e, "invalid_request", http.StatusBadRequest)
			if !strings.HasPrefix(e.Description, okta) {
				t.Fatalf("description %q, want Okta's %q", e.Description, okta)
			}
		})
	}
}

func TestTwoAuthorizationHeaders(t *testing.T) {
	f := newSecretFixture(t)
	r := basicAuth(post(), "svc one", "a b:c%")
	r.Header.Add("Authorization", r.Header.Get("Authorization"))
	c, _, e := f.auth(r, nil)
	wantErr(t, c, e, "invalid_request", http.StatusBadRequest)
	// Even when the second one is for another client.
	r = basicAuth(post(), "svc one", "a b:c%")
	r.Header.Add("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("poster:p0st-secret")))
	c, _, e = f.auth(r, nil)
	wantErr(t, c, e, "invalid_request", http.StatusBadRequest)
}

func TestBcryptSecret(t *testing.T) {
	f := newSecretFixture(t)
	// Wrong first: nothing is cached.
	c, _, e := f.auth(basicAuth(post(), "hashed", "wrong"), nil)
	wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)

	c, id, e := f.auth(basicAuth(post(), "hashed", "h4sh-secret"), nil)
	wantOK(t, c, id, e, "hashed")

	// Second time the verified secret is recognised without bcrypt: to
	// observe that, the hash is replaced by one of another secret.
	f.hash.SecretHash = bcryptHash(t, "rotated-away")
	c, id, e = f.auth(basicAuth(post(), "hashed", "h4sh-secret"), nil)
	wantOK(t, c, id, e, "hashed")

	// A wrong secret after a cached right one still fails.
	for _, s := range []string{"h4sh-secre", "h4sh-secret ", "H4SH-SECRET", ""} {
		c, _, e = f.auth(basicAuth(post(), "hashed", s), nil)
		wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
	}
	// ... and does not evict the right one.
	c, id, e = f.auth(basicAuth(post(), "hashed", "h4sh-secret"), nil)
	wantOK(t, c, id, e, "hashed")
}

func TestBcryptCacheIsPerClient(t *testing.T) {
	f := newSecretFixture(t)
	c, id, e := f.auth(basicAuth(post(), "hashed", "h4sh-secret"), nil)
	wantOK(t, c, id, e, "hashed")
	// hashed's verified secret is not good for hashed2.
	c, _, e = f.auth(post(), map[string]string{"client_id": "hashed2", "client_secret": "h4sh-secret"})
	wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
	c, id, e = f.auth(post(), map[string]string{"client_id": "hashed2", "client_secret": "other-secret"})
	wantOK(t, c, id, e, "hashed2")
}

func TestConcurrentSecretChecks(t *testing.T) {
	f := newSecretFixture(t)
	var wg sync.WaitGroup
	var bad atomic.Int32
	for i := range 16 {
		wg.Go(func() {
			secret := "h4sh-secret"
			if i%2 == 1 {
				secret = "wrong"
			}
			c, _, e := f.auth(basicAuth(post(), "hashed", secret), nil)
			if (e == nil) != (i%2 == 0) || (e == nil && c.ID != "hashed") {
				bad.Add(1)
			}
		})
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d of 16 concurrent checks gave the wrong answer", bad.Load())
	}
}

// --- private_key_jwt, inline keys ---

type jwtFixture struct {
	a      *Authenticator
	clk    *clock
	rsa    jwk.Key // private key of client "rsa-client"
	ec     jwk.Key // private key of client "ec-client"
	stored store.Store
}

func newJWTFixture(t *testing.T) *jwtFixture {
	f := &jwtFixture{clk: newClock(), rsa: rsaKey(t), ec: ecKey(t, "ec-1"), stored: openStore(t)}
	clients := prepared(t,
		&Client{ID: "rsa-client", AuthMethod: PrivateKeyJWT, JWKS: json.RawMessage(publicJWKS(t, f.rsa))},
		&Client{ID: "ec-client", AuthMethod: PrivateKeyJWT, JWKS: json.RawMessage(publicJWKS(t, f.ec))},
		&Client{ID: "basic-client", Secret: "s3cret"},
	)
	f.a = New(clients, f.stored, f.clk.Now)
	return f
}

func (f *jwtFixture) auth(form map[string]string) (*Client, string, *oauth.Error) {
	return f.a.Authenticate(context.Background(), post(), form, aud)
}

func (f *jwtFixture) rsaAssertion(t *testing.T, mutate func(map[string]any)) string {
	cl := claimsFor("rsa-client", f.clk.Now())
	if mutate != nil {
		mutate(cl)
	}
	return sign(t, cl, jwa.RS256, f.rsa, "rsa-1")
}

func TestPrivateKeyJWTValid(t *testing.T) {
	f := newJWTFixture(t)
	c, id, e := f.auth(assertionForm(f.rsaAssertion(t, nil)))
	wantOK(t, c, id, e, "rsa-client")

	ec := sign(t, claimsFor("ec-client", f.clk.Now()), jwa.ES256, f.ec, "ec-1")
	c, id, e = f.auth(assertionForm(ec))
	wantOK(t, c, id, e, "ec-client")

	// Without kid the key is still found; with client_id in the body too.
	form := assertionForm(sign(t, claimsFor("ec-client", f.clk.Now()), jwa.ES256, f.ec, ""))
	form["client_id"] = "ec-client"
	c, id, e = f.auth(form)
	wantOK(t, c, id, e, "ec-client")

	// Any of the acceptable audiences, also inside an array.
	for _, a := range []any{issuerURL, []string{"https://other.example", tokenURL}} {
		c, id, e = f.auth(assertionForm(f.rsaAssertion(t, func(m map[string]any) { m["aud"] = a })))
		wantOK(t, c, id, e, "rsa-client")
	}
	// exp just under the one hour bound.
	c, id, e = f.auth(assertionForm(f.rsaAssertion(t, func(m map[string]any) {
		m["exp"] = f.clk.Now().Add(59 * time.Minute).Unix()
	})))
	wantOK(t, c, id, e, "rsa-client")
}

func TestPrivateKeyJWTReplay(t *testing.T) {
	f := newJWTFixture(t)
	a := f.rsaAssertion(t, func(m map[string]any) { m["jti"] = "once" })
	c, id, e := f.auth(assertionForm(a))
	wantOK(t, c, id, e, "rsa-client")
	c, id, e = f.auth(assertionForm(a))
	wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
	if id != "rsa-client" {
		t.Errorf("claimed id of a replay = %q, want rsa-client", id)
	}
	// A fresh assertion reusing the jti is a replay too.
	c, _, e = f.auth(assertionForm(f.rsaAssertion(t, func(m map[string]any) { m["jti"] = "once" })))
	wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
	// Another client may use the same jti value.
	cl := claimsFor("ec-client", f.clk.Now())
	cl["jti"] = "once"
	c, id, e = f.auth(assertionForm(sign(t, cl, jwa.ES256, f.ec, "ec-1")))
	wantOK(t, c, id, e, "ec-client")

	// Without a jti (RFC 7523 makes it optional; Okta's Go SDK sends
	// none) the assertion itself is used once; another one works.
	bare := f.rsaAssertion(t, func(m map[string]any) { delete(m, "jti") })
	c, id, e = f.auth(assertionForm(bare))
	wantOK(t, c, id, e, "rsa-client")
	c, _, e = f.auth(assertionForm(bare))
	wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
	// The same claims with the signature spelled otherwise (the last
	// base64url character's spare bits) verify, and are the same
	// assertion: used once in all spellings.
	f.clk.Advance(time.Second)
	other := f.rsaAssertion(t, func(m map[string]any) { delete(m, "jti") })
	respelled := respell(t, other)
	if respelled == other {
		t.Fatal("could not respell the signature")
	}
	c, id, e = f.auth(assertionForm(respelled))
	wantOK(t, c, id, e, "rsa-client")
	c, _, e = f.auth(assertionForm(other))
	wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
	f.clk.Advance(time.Second)
	c, id, e = f.auth(assertionForm(f.rsaAssertion(t, func(m map[string]any) { delete(m, "jti") })))
	wantOK(t, c, id, e, "rsa-client")
}

// respell changes the last character of tok's signature to another with
// the same significant bits (RFC 4648 section 3.5: the spare bits of the
// last character are not part of the value), when it has spare bits.
func respell(t *testing.T, tok string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, tok[len(tok)-1])
	spare := map[int]int{2: 4, 3: 2}[len(tok[strings.LastIndexByte(tok, '.')+1:])%4] // bits unused
	if last < 0 || spare == 0 {
		return tok
	}
	return tok[:len(tok)-1] + string(alphabet[last^1])
}

func TestPrivateKeyJWTConcurrentReplay(t *testing.T) {
	f := newJWTFixture(t)
	a := sign(t, claimsFor("ec-client", f.clk.Now()), jwa.ES256, f.ec, "ec-1")
	var wg sync.WaitGroup
	var wins atomic.Int32
	for range 16 {
		wg.Go(func() {
			if _, _, e := f.auth(assertionForm(a)); e == nil {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("one assertion sent 16 times at once was accepted %d times, want 1", wins.Load())
	}
}

func TestPrivateKeyJWTRejected(t *testing.T) {
	f := newJWTFixture(t)
	now := f.clk.Now()
	other := ecKey(t, "ec-1") // same kid as ec-client's key, different key
	hmacKey := []byte(publicJWKS(t, f.rsa))
	cases := map[string]string{
		"wrong aud":          f.rsaAssertion(t, func(m map[string]any) { m["aud"] = "https://evil.example/token" }),
		"aud array no match": f.rsaAssertion(t, func(m map[string]any) { m["aud"] = []string{"a", "b"} }),
		"no aud":             f.rsaAssertion(t, func(m map[string]any) { delete(m, "aud") }),
		"expired": f.rsaAssertion(t, func(m map[string]any) {
			m["iat"], m["exp"] = now.Add(-10*time.Minute).Unix(), now.Add(-time.Minute).Unix()
		}),
		"exp over an hour ahead":          f.rsaAssertion(t, func(m map[string]any) { m["exp"] = now.Add(time.Hour + time.Minute).Unix() }),
		"no exp":                          f.rsaAssertion(t, func(m map[string]any) { delete(m, "exp") }),
		"nbf in future":                   f.rsaAssertion(t, func(m map[string]any) { m["nbf"] = now.Add(2 * time.Minute).Unix() }),
		"iat in future":                   f.rsaAssertion(t, func(m map[string]any) { m["iat"] = now.Add(2 * time.Minute).Unix() }),
		"iss differs from sub":            f.rsaAssertion(t, func(m map[string]any) { m["iss"] = "ec-client" }),
		"no iss":                          f.rsaAssertion(t, func(m map[string]any) { delete(m, "iss") }),
		"sub of another client":           f.rsaAssertion(t, func(m map[string]any) { m["iss"], m["sub"] = "ec-client", "ec-client" }),
		"unknown client":                  sign(t, claimsFor("nobody", now), jwa.ES256, other, "ec-1"),
		"unknown key":                     sign(t, claimsFor("ec-client", now), jwa.ES256, other, "ec-1"),
		"unknown key no kid":              sign(t, claimsFor("ec-client", now), jwa.ES256, other, ""),
		"HS256 with public key as secret": sign(t, claimsFor("rsa-client", now), jwa.HS256, hmacKey, "rsa-1"),
		"none": func() string {
			enc := base64.RawURLEncoding.EncodeToString
			return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc([]byte(mustJSON(t, claimsFor("rsa-client", now)))) + "."
		}(),
		"none with a signature": func() string {
			enc := base64.RawURLEncoding.EncodeToString
			return enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(mustJSON(t, claimsFor("rsa-client", now)))) + "." + enc([]byte("x"))
		}(),
		"signature stripped": func() string {
			a := f.rsaAssertion(t, nil)
			return a[:strings.LastIndex(a, ".")+1]
		}(),
		"payload swapped": func() string {
			a := strings.Split(f.rsaAssertion(t, nil), ".")
			cl := claimsFor("rsa-client", now)
			cl["aud"] = []string{tokenURL, "x"}
			a[1] = base64.RawURLEncoding.EncodeToString([]byte(mustJSON(t, cl)))
			return strings.Join(a, ".")
		}(),
		"ES256 header on RSA key": func() string {
			// Signed with a foreign EC key but naming the RSA client's kid.
			return sign(t, claimsFor("rsa-client", now), jwa.ES256, other, "rsa-1")
		}(),
		"not a JWS":  "not-a-jwt",
		"empty":      "",
		"JWE-shaped": "a.b.c.d.e",
	}
	for name, a := range cases {
		t.Run(name, func(t *testing.T) {
			c, _, e := f.auth(assertionForm(a))
			wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
		})
	}
}

func TestPrivateKeyJWTFormChecks(t *testing.T) {
	f := newJWTFixture(t)
	// Wrong client_assertion_type.
	form := assertionForm(f.rsaAssertion(t, nil))
	form["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"
	c, _, e := f.auth(form)
	wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
	// Assertion without a type.
	form = map[string]string{"client_assertion": f.rsaAssertion(t, nil)}
	c, _, e = f.auth(form)
	wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
	// Type without an assertion.
	c, _, e = f.auth(map[string]string{"client_assertion_type": AssertionType})
	wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
	// client_id in the body naming another client.
	form = assertionForm(f.rsaAssertion(t, nil))
	form["client_id"] = "ec-client"
	c, id, e := f.auth(form)
	wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
	if id != "ec-client" {
		// The body's client_id is what the request claims.
		t.Errorf("claimed id = %q, want ec-client", id)
	}
}

func TestPrivateKeyJWTMethodMismatch(t *testing.T) {
	f := newJWTFixture(t)
	// A secret client cannot switch to assertions (it has no keys, but
	// the check must not depend on that).
	c, _, e := f.auth(assertionForm(sign(t, claimsFor("basic-client", f.clk.Now()), jwa.RS256, f.rsa, "rsa-1")))
	wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
	// A private_key_jwt client cannot use a secret.
	c, _, e = f.auth(map[string]string{"client_id": "rsa-client", "client_secret": ""})
	wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
	r := basicAuth(post(), "rsa-client", "")
	c, _, e = f.a.Authenticate(context.Background(), r, map[string]string{}, aud)
	wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
}

func TestPrivateKeyJWTClaimedID(t *testing.T) {
	f := newJWTFixture(t)
	_, id, e := f.auth(assertionForm(f.rsaAssertion(t, func(m map[string]any) { m["aud"] = "x" })))
	if e == nil || id != "rsa-client" {
		t.Fatalf("failed assertion: claimed id %q (err %v), want the assertion's sub", id, e)
	}
}

func TestPrivateKeyJWTClockSkew(t *testing.T) {
	f := newJWTFixture(t)
	// Issued by a client whose clock runs 20s ahead: within the skew.
	c, id, e := f.auth(assertionForm(f.rsaAssertion(t, func(m map[string]any) {
		m["iat"] = f.clk.Now().Add(20 * time.Second).Unix()
	})))
	wantOK(t, c, id, e, "rsa-client")
	// Moving our clock past exp (plus skew) makes a valid-looking
	// assertion expire: the injected clock is used, not the wall clock.
	a := f.rsaAssertion(t, nil)
	f.clk.Advance(6 * time.Minute)
	c, _, e = f.auth(assertionForm(a))
	wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
}

// --- private_key_jwt, jwks_uri ---

type jwksServer struct {
	mu       sync.Mutex
	body     string
	requests atomic.Int32
	srv      *httptest.Server
}

func newJWKSServer(t *testing.T, body string) *jwksServer {
	s := &jwksServer{body: body}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.mu.Lock()
		b := s.body
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=3600")
		fmt.Fprint(w, b)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *jwksServer) set(body string) {
	s.mu.Lock()
	s.body = body
	s.mu.Unlock()
}

func TestJWKSURI(t *testing.T) {
	key := ecKey(t, "k1")
	js := newJWKSServer(t, publicJWKS(t, key))
	clk := newClock()
	client := &Client{ID: "remote", AuthMethod: PrivateKeyJWT, JWKSURI: js.srv.URL + "/jwks.json"}
	a := New(prepared(t, client), openStore(t), clk.Now)
	auth := func(assertion string) (*Client, string, *oauth.Error) {
		return a.Authenticate(context.Background(), post(), assertionForm(assertion), aud)
	}
	if n := js.requests.Load(); n != 0 {
		t.Fatalf("jwks_uri fetched %d times before first use", n)
	}
	c, id, e := auth(sign(t, claimsFor("remote", clk.Now()), jwa.ES256, key, "k1"))
	wantOK(t, c, id, e, "remote")
	c, id, e = auth(sign(t, claimsFor("remote", clk.Now()), jwa.ES256, key, "k1"))
	wantOK(t, c, id, e, "remote")
	if n := js.requests.Load(); n != 1 {
		t.Fatalf("jwks_uri fetched %d times for two assertions with a known kid, want 1 (cached)", n)
	}

	// A flood of assertions with unknown kids (signed by a key the
	// client never published) refetches at most once per minute.
	forger := ecKey(t, "forged")
	var wg sync.WaitGroup
	var accepted atomic.Int32
	for range 20 {
		wg.Go(func() {
			if c, _, e := auth(sign(t, claimsFor("remote", clk.Now()), jwa.ES256, forger, randomID())); e == nil || c != nil {
				accepted.Add(1)
			}
		})
	}
	wg.Wait()
	if accepted.Load() != 0 {
		t.Fatalf("%d forged assertions accepted", accepted.Load())
	}
	if n := js.requests.Load(); n > 2 {
		t.Fatalf("20 unknown-kid assertions caused %d fetches in total, want at most one refetch (2)", n)
	}
	afterFlood := js.requests.Load()

	// The client rotates to a new key. Within the minute it is not
	// fetched again ...
	key2 := ecKey(t, "k2")
	js.set(publicJWKS(t, key, key2))
	c, _, e = auth(sign(t, claimsFor("remote", clk.Now()), jwa.ES256, key2, "k2"))
	wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
	if n := js.requests.Load(); n != afterFlood {
		t.Fatalf("refetched within the minute: %d fetches, was %d", n, afterFlood)
	}
	// ... a minute later the unknown kid triggers one refetch and the new
	// key works.
	clk.Advance(time.Minute)
	c, id, e = auth(sign(t, claimsFor("remote", clk.Now()), jwa.ES256, key2, "k2"))
	wantOK(t, c, id, e, "remote")
	if n := js.requests.Load(); n != afterFlood+1 {
		t.Fatalf("fetches after a minute: %d, want %d", n, afterFlood+1)
	}
	// The old key keeps working without a fetch.
	c, id, e = auth(sign(t, claimsFor("remote", clk.Now()), jwa.ES256, key, "k1"))
	wantOK(t, c, id, e, "remote")
	if n := js.requests.Load(); n != afterFlood+1 {
		t.Fatalf("known kid caused a fetch: %d", n)
	}
}

func TestJWKSURIRefusesPrivateAndSymmetricKeys(t *testing.T) {
	for name, body := range map[string]string{
		"private": mustJSON(t, map[string]any{"keys": []any{rsaKey(t)}}),
		"oct":     `{"keys":[{"kty":"oct","kid":"rsa-1","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}]}`,
		"empty":   `{"keys":[]}`,
	} {
		t.Run(name, func(t *testing.T) {
			js := newJWKSServer(t, body)
			client := &Client{ID: "remote", AuthMethod: PrivateKeyJWT, JWKSURI: js.srv.URL + "/jwks.json"}
			a := New(prepared(t, client), openStore(t), nil)
			now := time.Now()
			for _, tok := range []string{
				sign(t, claimsFor("remote", now), jwa.RS256, rsaKey(t), "rsa-1"),
				sign(t, claimsFor("remote", now), jwa.HS256, []byte("secret-secret-secret-secret"), "rsa-1"),
			} {
				c, _, e := a.Authenticate(context.Background(), post(), assertionForm(tok), aud)
				wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
			}
		})
	}
}

func TestJWKSURIUnreachable(t *testing.T) {
	client := &Client{ID: "remote", AuthMethod: PrivateKeyJWT, JWKSURI: "http://127.0.0.1:1/jwks.json"}
	a := New(prepared(t, client), openStore(t), nil)
	c, _, e := a.Authenticate(context.Background(), post(), assertionForm(sign(t, claimsFor("remote", time.Now()), jwa.ES256, ecKey(t, "k"), "k")), aud)
	wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
}

func TestClientLookup(t *testing.T) {
	f := newSecretFixture(t)
	if c, ok := f.a.Client("poster"); !ok || c != f.post {
		t.Fatal("Client(poster) not found")
	}
	if _, ok := f.a.Client("nobody"); ok {
		t.Fatal("Client(nobody) found")
	}
}

// TestPrivateKeyJWTBuiltWithJWT builds assertions the way a Go client
// library would: jwt.Builder and jwt.Sign.
func TestPrivateKeyJWTBuiltWithJWT(t *testing.T) {
	f := newJWTFixture(t)
	for _, tc := range []struct {
		id  string
		alg jwa.SignatureAlgorithm
		key jwk.Key
	}{{"rsa-client", jwa.RS256, f.rsa}, {"ec-client", jwa.ES256, f.ec}} {
		now := f.clk.Now()
		tok, err := jwt.NewBuilder().Issuer(tc.id).Subject(tc.id).Audience([]string{tokenURL}).
			IssuedAt(now).Expiration(now.Add(2 * time.Minute)).JwtID(randomID()).Build()
		if err != nil {
			t.Fatal(err)
		}
		signed, err := jwt.Sign(tok, jwt.WithKey(tc.alg, tc.key))
		if err != nil {
			t.Fatal(err)
		}
		c, id, e := f.auth(assertionForm(string(signed)))
		wantOK(t, c, id, e, tc.id)
		c, _, e = f.auth(assertionForm(string(signed)))
		wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
	}
}

// TestJWKSURIRecoversFromFailedFirstFetch: a client whose key server was
// down at its first use is not locked out once the server is back (a
// refetch is forced, rate-limited like unknown kids).
func TestJWKSURIRecoversFromFailedFirstFetch(t *testing.T) {
	key := ecKey(t, "k1")
	good := publicJWKS(t, key)
	var fail atomic.Bool
	fail.Store(true)
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if fail.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, good)
	}))
	t.Cleanup(srv.Close)
	clk := newClock()
	client := &Client{ID: "remote", AuthMethod: PrivateKeyJWT, JWKSURI: srv.URL + "/jwks.json"}
	a := New(prepared(t, client), openStore(t), clk.Now)
	auth := func() (*Client, string, *oauth.Error) {
		return a.Authenticate(context.Background(), post(), assertionForm(sign(t, claimsFor("remote", clk.Now()), jwa.ES256, key, "k1")), aud)
	}
	c, _, e := auth()
	if c != nil || e == nil {
		t.Fatal("authenticated while the key server was down")
	}
	fail.Store(false)
	clk.Advance(2 * time.Minute)
	c, id, e := auth()
	wantOK(t, c, id, e, "remote")
	if n := requests.Load(); n > 3 {
		t.Fatalf("%d requests to the key server, want at most 3", n)
	}
}

// TestAssertionJTILength: an over-long jti is refused as invalid_client,
// not stored.
func TestAssertionJTILength(t *testing.T) {
	f := newJWTFixture(t)
	_, _, e := f.auth(assertionForm(f.rsaAssertion(t, func(m map[string]any) { m["jti"] = strings.Repeat("j", 300) })))
	wantErr(t, nil, e, "invalid_client", 401)
}

// TestAssertionJTILengthBoundary: a jti of exactly maxJTILen is fine.
func TestAssertionJTILengthBoundary(t *testing.T) {
	f := newJWTFixture(t)
	c, id, e := f.auth(assertionForm(f.rsaAssertion(t, func(m map[string]any) { m["jti"] = strings.Repeat("j", maxJTILen) })))
	wantOK(t, c, id, e, "rsa-client")
	_, _, e = f.auth(assertionForm(f.rsaAssertion(t, func(m map[string]any) { m["jti"] = strings.Repeat("k", maxJTILen+1) })))
	wantErr(t, nil, e, "invalid_client", 401)
}

// TestClaimedIDAssertionSize: the log's claimed id is read from an
// assertion only below 16 KiB (parsing is not free).
func TestClaimedIDAssertionSize(t *testing.T) {
	f := newJWTFixture(t)
	raw := rawKey(t, f.rsa)
	// sized pads a claim and the kid until the assertion is n bytes
	// long (base64 skips some lengths, so both are varied).
	sized := func(n int) string {
		claims := claimsFor("rsa-client", f.clk.Now())
		for kid := range 4 {
			claims["pad"] = ""
			base := len(sign(t, claims, jwa.RS256, raw, strings.Repeat("k", kid+1)))
			guess := (n - base) * 3 / 4
			for pad := max(guess-4, 0); pad <= guess+4; pad++ {
				claims["pad"] = strings.Repeat("p", pad)
				if s := sign(t, claims, jwa.RS256, raw, strings.Repeat("k", kid+1)); len(s) == n {
					return s
				}
			}
		}
		t.Fatalf("no assertion of %d bytes", n)
		return ""
	}
	for n, want := range map[int]string{16<<10 - 1: "rsa-client", 16 << 10: ""} {
		_, id, e := f.auth(assertionForm(sized(n)))
		if e == nil || id != want {
			t.Errorf("assertion of %d bytes: claimed id %q (error %v), want %q", n, id, e, want)
		}
	}
}
