package tokenissuer_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// reconfigure returns cfg with another key_encryption_secret and the
// signing_alg of the org server (whose keys start first) and of "es"
// set to alg.
func reconfigure(t *testing.T, cfg, secret, alg string) string {
	t.Helper()
	var c map[string]any
	if err := json.Unmarshal([]byte(cfg), &c); err != nil {
		t.Fatal(err)
	}
	app := c["apps"].(map[string]any)["token_issuer"].(map[string]any)
	app["key_encryption_secret"] = secret
	app["org"] = map[string]any{"signing_alg": alg}
	app["authorization_servers"].(map[string]any)["es"].(map[string]any)["signing_alg"] = alg
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// orgKids are the kids the org server publishes.
func orgKids(t *testing.T) []string {
	t.Helper()
	set, err := jwk.Fetch(context.Background(), base+"/oauth2/v1/keys")
	if err != nil {
		t.Fatal(err)
	}
	return kids(set)
}

// loadRefused posts cfg to the admin API and returns the error Caddy
// answers, failing when the config is accepted.
func loadRefused(t *testing.T, cfg string) string {
	t.Helper()
	res, err := http.Post(adminURL+"/load", "application/json", strings.NewReader(cfg))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode == http.StatusOK {
		t.Fatal("Caddy accepted a config whose key_encryption_secret does not open the stored keys")
	}
	return string(body)
}

// TestWrongSecretRefusedAtStart replays the finding through Caddy: a
// config with a wrong key_encryption_secret and a changed signing_alg is
// refused, on a reload and on a cold start, with a message naming the
// setting and not the secret; it writes nothing, so the right secret
// still starts on the same keys and can then change the algorithm.
// Before the fix the refused start left keys sealed with the wrong
// secret and the right config no longer started.
func TestWrongSecretRefusedAtStart(t *testing.T) {
	e := newEnv(t)
	esKeys, orgKeys := kids(fetchKeys(t, "es")), orgKids(t)
	const wrongSecret = "not-the-secret-that-sealed-these-keys-0123"
	bad := reconfigure(t, e.config, wrongSecret, "EdDSA")
	for _, step := range []string{"reload", "cold start"} {
		if step == "cold start" {
			e.tester.InitServer(`{"admin":{"listen":"localhost:2899"}}`, "json")
		}
		msg := loadRefused(t, bad)
		if !strings.Contains(msg, "key_encryption_secret does not open the signing keys already in the store") {
			t.Fatalf("%s: refusal does not say what is wrong: %s", step, msg)
		}
		if strings.Contains(msg, wrongSecret) || strings.Contains(msg, sealSecret) {
			t.Fatalf("%s: refusal shows a secret: %s", step, msg)
		}
		if step == "reload" && kidOf(t, token(t, "es", "read")) != esKeys[0] {
			t.Fatal("the running config stopped signing with its key after a refused reload")
		}
	}

	e.tester.InitServer(e.config, "json")
	if got := kids(fetchKeys(t, "es")); !slices.Equal(got, esKeys) {
		t.Fatalf("keys after the refused starts: %v, want %v", got, esKeys)
	}
	if got := orgKids(t); !slices.Equal(got, orgKeys) {
		t.Fatalf("org keys after the refused starts: %v, want %v", got, orgKeys)
	}
	if kidOf(t, token(t, "es", "read")) != esKeys[0] {
		t.Fatal("the right secret does not sign with the key it had")
	}
	// The right secret changes the algorithm like a scheduled rotation:
	// an EdDSA key is published as NEXT, the ES256 key keeps signing
	// until it has been published for keys.Publication.
	e.tester.InitServer(reconfigure(t, e.config, sealSecret, "EdDSA"), "json")
	if _, h := verify(t, "es", token(t, "es", "read")); h.Algorithm() != jwa.ES256 || h.KeyID() != esKeys[0] {
		t.Fatalf("right after the algorithm change tokens are %s by %s, want ES256 by %s until the EdDSA key is published", h.Algorithm(), h.KeyID(), esKeys[0])
	}
	set := fetchKeys(t, "es")
	eddsa := 0
	for i := range set.Len() {
		k, _ := set.Key(i)
		if k.Algorithm() == jwa.EdDSA {
			eddsa++
		}
	}
	if eddsa != 1 {
		t.Fatalf("after the algorithm change the JWKS publishes %d EdDSA keys, want 1 (the NEXT): %v", eddsa, kids(set))
	}
}
