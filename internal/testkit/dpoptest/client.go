// Package dpoptest makes DPoP proofs (RFC 9449) for tests of both
// halves. It is apart from testkit, which internal/dpop's own tests use.
package dpoptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/apiaccess/caddy-apiaccess/internal/dpop"
)

// Client is a client's DPoP key (ES256) making proofs (RFC 9449
// section 4), for tests of both halves.
type Client struct {
	priv, pub jwk.Key
	// JKT is the key's RFC 7638 thumbprint (a bound token's cnf.jkt).
	JKT string
	n   atomic.Int64
}

// New makes a client with a fresh key.
func New(t testing.TB) *Client {
	t.Helper()
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := jwk.FromRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := priv.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	jkt, err := dpop.Thumbprint(pub)
	if err != nil {
		t.Fatal(err)
	}
	return &Client{priv: priv, pub: pub, JKT: jkt}
}

// Proof is a fresh proof (new jti, iat now) for method and url, with
// nonce and the ath of accessToken when not empty.
func (c *Client) Proof(t testing.TB, method, url, nonce, accessToken string) string {
	t.Helper()
	claims := map[string]any{"jti": fmt.Sprintf("p%d-%d", time.Now().UnixNano(), c.n.Add(1)), "htm": method, "htu": url, "iat": time.Now().Unix()}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	if accessToken != "" {
		claims["ath"] = dpop.ATH(accessToken)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.TypeKey, "dpop+jwt")
	_ = hdr.Set(jws.JWKKey, c.pub)
	b, err := jws.Sign(payload, jws.WithKey(jwa.ES256, c.priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
