package caddymodule

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/google/uuid"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/internal/dpop"
)

// gwIssuer is an issuer the gateway fetches keys from (an httptest
// server), signing tokens with one EC key.
type gwIssuer struct {
	url  string
	priv jwk.Key
}

const gwAudience = "api://dpop"

func newGWIssuer(t testing.TB) *gwIssuer {
	t.Helper()
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := jwk.FromRaw(raw)
	_ = priv.Set(jwk.KeyIDKey, "k1")
	_ = priv.Set(jwk.AlgorithmKey, jwa.ES256)
	pub, _ := priv.PublicKey()
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	keys, _ := json.Marshal(set)
	var iss string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/.well-known/openid-configuration" {
			_, _ = fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q}`, iss, iss+"/keys")
			return
		}
		_, _ = w.Write(keys)
	}))
	t.Cleanup(srv.Close)
	iss = srv.URL
	return &gwIssuer{url: srv.URL, priv: priv}
}

// token mints an access token; jkt "" leaves it unbound (a bearer token).
func (is *gwIssuer) token(t testing.TB, jkt string) string {
	t.Helper()
	tok := jwt.New()
	_ = tok.Set(jwt.IssuerKey, is.url)
	_ = tok.Set(jwt.AudienceKey, gwAudience)
	_ = tok.Set(jwt.ExpirationKey, time.Now().Add(time.Hour))
	_ = tok.Set(jwt.SubjectKey, "user-1")
	_ = tok.Set(jwt.JwtIDKey, uuid.NewString())
	_ = tok.Set("scp", []string{"read"})
	if jkt != "" {
		_ = tok.Set("cnf", map[string]any{"jkt": jkt})
	}
	b, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, is.priv))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// clientKey is a client's DPoP key.
type clientKey struct {
	priv *ecdsa.PrivateKey
	jwk  map[string]any // public
	jkt  string
}

func newClientKey(t testing.TB) *clientKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := jwk.FromRaw(priv.Public())
	jkt, err := dpop.Thumbprint(pub)
	if err != nil {
		t.Fatal(err)
	}
	return &clientKey{priv: priv, jwk: jwkMap(t, pub), jkt: jkt}
}

func jwkMap(t testing.TB, k jwk.Key) map[string]any {
	t.Helper()
	b, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// proof builds a DPoP proof for method and u with the token's ath;
// edit changes the header and claims before signing.
func (k *clientKey) proof(t testing.TB, method, u, tok string, edit func(hdr, claims map[string]any)) string {
	t.Helper()
	hdr := map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": k.jwk}
	claims := map[string]any{"jti": uuid.NewString(), "htm": method, "htu": u, "iat": time.Now().Unix()}
	if tok != "" {
		claims["ath"] = dpop.ATH(tok)
	}
	if edit != nil {
		edit(hdr, claims)
	}
	return k.sign(t, hdr, claims)
}

func (k *clientKey) sign(t testing.TB, hdr, claims map[string]any) string {
	t.Helper()
	hb, _ := json.Marshal(hdr)
	cb, _ := json.Marshal(claims)
	input := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(cb)
	var sig []byte
	switch hdr["alg"] {
	case "none":
	case "HS256":
		s, _ := jws.NewSigner(jwa.HS256)
		sig, _ = s.Sign([]byte(input), []byte("a shared secret of 32 bytes long"))
	default:
		s, _ := jws.NewSigner(jwa.ES256)
		var err error
		if sig, err = s.Sign([]byte(input), k.priv); err != nil {
			t.Fatal(err)
		}
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// newGW provisions rt for is with a caddy.Context of its own.
func newGW(t testing.TB, is *gwIssuer, rt *RequireToken) *RequireToken {
	t.Helper()
	if err := provisionGW(t, is, rt); err != nil {
		t.Fatal(err)
	}
	return rt
}

func provisionGW(t testing.TB, is *gwIssuer, rt *RequireToken) error {
	t.Helper()
	rt.Issuers = []*IssuerConfig{{URL: is.url, Audience: []string{gwAudience}, JWKSURI: is.url + "/keys"}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	err := rt.Provision(ctx)
	t.Cleanup(func() { _ = rt.Cleanup() })
	if err != nil {
		return err
	}
	rt.log = zap.NewNop()
	if rt.dpop != nil {
		rt.dpop.log = zap.NewNop()
	}
	return nil
}

// gwRequest is a request as Caddy hands it to a handler.
func gwRequest(method, target string, hdr ...string) (*http.Request, *caddy.Replacer) {
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	repl := caddy.NewReplacer()
	return caddyhttp.PrepareRequest(r, repl, nil, nil), repl
}

// outcome is what the handler did with a request.
type outcome struct {
	status int
	reason string
	hdr    http.Header
}

func (o outcome) String() string {
	return fmt.Sprintf("%d %s %q", o.status, o.reason, o.hdr.Values("WWW-Authenticate"))
}

var nextOK = caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
	w.WriteHeader(http.StatusOK)
	return nil
})

// reqRepl is a request and its replacer (for the placeholders).
type reqRepl struct {
	r    *http.Request
	repl *caddy.Replacer
}

func serve(rt *RequireToken, rr *reqRepl) outcome {
	w := httptest.NewRecorder()
	err := rt.ServeHTTP(w, rr.r, nextOK)
	o := outcome{status: w.Code, hdr: w.Header()}
	var he caddyhttp.HandlerError
	if errors.As(err, &he) {
		o.status = he.StatusCode
	}
	o.reason, _ = rr.repl.GetString("http.auth.token.error")
	return o
}
