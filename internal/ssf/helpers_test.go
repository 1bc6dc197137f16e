package ssf

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

const (
	testIss = "https://issuer.example.com/oauth2/default"
	testAud = "https://gateway.example.com/ssf"
)

var t0 = time.Unix(1_750_000_000, 0)

// privateKey makes a private JWK of kind ("rsa", "ec", "ed25519") with kid.
func privateKey(t testing.TB, kind, kid string) jwk.Key {
	t.Helper()
	var raw any
	var err error
	switch kind {
	case "rsa":
		raw, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ec":
		raw, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ed25519":
		_, raw, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	k, err := jwk.FromRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Set(jwk.KeyIDKey, kid); err != nil {
		t.Fatal(err)
	}
	return k
}

// publicSet is the public JWKS of keys.
func publicSet(t testing.TB, keys ...jwk.Key) jwk.Set {
	t.Helper()
	set := jwk.NewSet()
	for _, k := range keys {
		pub, err := jwk.PublicKeyOf(k)
		if err != nil {
			t.Fatal(err)
		}
		if err := set.AddKey(pub); err != nil {
			t.Fatal(err)
		}
	}
	return set
}

func verifier(keys jwk.Set, now time.Time) *Verifier {
	return &Verifier{Issuer: testIss, Audience: testAud, Keys: keys,
		Algorithms: []jwa.SignatureAlgorithm{jwa.RS256, jwa.ES256, jwa.EdDSA},
		Now:        func() time.Time { return now }}
}

func tokenEvent(jti string, exp time.Time) Event {
	return Event{ID: "set-" + jti, Txn: "txn-" + jti, IssuedAt: t0, Time: t0,
		Subject: Subject{Kind: SubjectToken, Issuer: testIss, JTI: jti, Expiry: exp}}
}
