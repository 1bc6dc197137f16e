package clientauth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// publicWith is the public half of priv as a JWK object, with fields
// set or (nil) removed.
func publicWith(t *testing.T, priv jwk.Key, fields map[string]any) map[string]any {
	t.Helper()
	pub, err := priv.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(mustJSON(t, pub)), &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range fields {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return m
}

func edKey(t *testing.T, kid string) jwk.Key {
	t.Helper()
	_, raw, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := jwk.FromRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	_ = k.Set(jwk.KeyIDKey, kid)
	return k
}

// TestAssertionKeySelection: finding 18. A client's keys marked for
// encryption verified its assertions, and an assertion naming an unknown
// or another kid was tried against every key. Each case replays one
// such assertion against a crafted inline JWKS.
func TestAssertionKeySelection(t *testing.T) {
	a, b := ecKey(t, "a"), ecKey(t, "b")
	r, ed := rsaKey(t), edKey(t, "ed")
	for _, tc := range []struct {
		name   string
		keys   []map[string]any
		signer jwk.Key
		alg    jwa.SignatureAlgorithm
		kid    string
		ok     bool
	}{
		{"key_ops encrypt", []map[string]any{publicWith(t, a, map[string]any{"key_ops": []string{"encrypt"}}), publicWith(t, b, nil)}, a, jwa.ES256, "a", false},
		{"key_ops wrapKey", []map[string]any{publicWith(t, a, map[string]any{"key_ops": []string{"wrapKey", "encrypt"}}), publicWith(t, b, nil)}, a, jwa.ES256, "a", false},
		{"key_ops sign only", []map[string]any{publicWith(t, a, map[string]any{"key_ops": []string{"sign"}}), publicWith(t, b, nil)}, a, jwa.ES256, "a", false},
		{"use enc", []map[string]any{publicWith(t, a, map[string]any{"use": "enc"}), publicWith(t, b, nil)}, a, jwa.ES256, "a", false},
		{"use enc, no kid", []map[string]any{publicWith(t, a, map[string]any{"use": "enc"}), publicWith(t, b, nil)}, a, jwa.ES256, "", false},
		{"key_ops encrypt, no kid", []map[string]any{publicWith(t, a, map[string]any{"key_ops": []string{"encrypt"}}), publicWith(t, b, nil)}, a, jwa.ES256, "", false},
		{"kid names another key", []map[string]any{publicWith(t, a, nil), publicWith(t, b, nil)}, a, jwa.ES256, "b", false},
		{"unknown kid", []map[string]any{publicWith(t, a, nil), publicWith(t, b, nil)}, a, jwa.ES256, "nobody", false},
		{"no kid, two signature keys", []map[string]any{publicWith(t, a, nil), publicWith(t, b, nil)}, a, jwa.ES256, "", false},
		{"key alg differs from header alg", []map[string]any{publicWith(t, a, map[string]any{"alg": "ES384"})}, a, jwa.ES256, "a", false},
		{"RSA assertion naming an EC key's kid", []map[string]any{publicWith(t, r, nil), publicWith(t, a, nil)}, r, jwa.RS256, "a", false},
		{"EC assertion, kid of an RSA key", []map[string]any{publicWith(t, b, nil), publicWith(t, r, map[string]any{"kid": "b"})}, a, jwa.ES256, "b", false},
		{"ES384 on a P-256 key", []map[string]any{publicWith(t, a, map[string]any{"alg": nil})}, a, jwa.ES384, "a", false},
		{"ES256 assertion, kid of an Ed25519 key", []map[string]any{publicWith(t, ed, map[string]any{"kid": "a"}), publicWith(t, b, nil)}, a, jwa.ES256, "a", false},

		{"kid names the signing key", []map[string]any{publicWith(t, a, nil), publicWith(t, b, nil)}, a, jwa.ES256, "a", true},
		{"same kid on two key types", []map[string]any{publicWith(t, a, map[string]any{"kid": "x"}), publicWith(t, r, map[string]any{"kid": "x"})}, r, jwa.RS256, "x", true},
		{"key_ops verify", []map[string]any{publicWith(t, a, map[string]any{"key_ops": []string{"verify"}})}, a, jwa.ES256, "a", true},
		{"use sig", []map[string]any{publicWith(t, a, map[string]any{"use": "sig"})}, a, jwa.ES256, "a", true},
		{"no kid, one signature key beside an encryption key", []map[string]any{publicWith(t, b, map[string]any{"use": "enc"}), publicWith(t, a, nil)}, a, jwa.ES256, "", true},
		{"no kid, one key", []map[string]any{publicWith(t, a, nil)}, a, jwa.ES256, "", true},
		{"RSA PS256, alg inferred", []map[string]any{publicWith(t, r, nil)}, r, jwa.PS256, "rsa-1", true},
		{"EdDSA", []map[string]any{publicWith(t, ed, nil)}, ed, jwa.EdDSA, "ed", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := &Client{ID: "crafted", AuthMethod: PrivateKeyJWT, JWKS: json.RawMessage(mustJSON(t, map[string]any{"keys": tc.keys}))}
			auth := New(prepared(t, client), openStore(t), nil)
			c, id, e := auth.Authenticate(context.Background(), post(), assertionForm(sign(t, claimsFor("crafted", newClock().Now()), tc.alg, rawKey(t, tc.signer), tc.kid)), aud)
			if tc.ok {
				wantOK(t, c, id, e, "crafted")
			} else {
				wantErr(t, c, e, "invalid_client", http.StatusUnauthorized)
			}
		})
	}
}

// TestPrepareRefusesJWKSWithoutSignatureKey: an inline set of only
// encryption keys can never authenticate; say so at load.
func TestPrepareRefusesJWKSWithoutSignatureKey(t *testing.T) {
	a := ecKey(t, "a")
	for _, fields := range []map[string]any{{"use": "enc"}, {"key_ops": []string{"encrypt", "wrapKey"}}} {
		c := &Client{ID: "enc-only", AuthMethod: PrivateKeyJWT, JWKS: json.RawMessage(mustJSON(t, map[string]any{"keys": []any{publicWith(t, a, fields)}}))}
		if err := c.Prepare(); err == nil || !strings.Contains(err.Error(), `client "enc-only": jwks: no key for signatures`) {
			t.Fatalf("Prepare(%v): %v", fields, err)
		}
	}
}

// rawKey is the Go key inside k: signing with it puts no kid of its own
// in the header, so the test chooses the header's kid.
func rawKey(t *testing.T, k jwk.Key) any {
	t.Helper()
	var raw any
	if err := k.Raw(&raw); err != nil {
		t.Fatal(err)
	}
	return raw
}
