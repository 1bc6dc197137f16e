package authserver

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// payload decodes a JWS's claims without verifying it.
func payload(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", tok)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	var m map[string]any
	if err != nil || json.Unmarshal(raw, &m) != nil {
		t.Fatalf("payload of %q: %v", tok, err)
	}
	return m
}

// TestIDTokenNonceAndScopeClaims: the nonce of the authorization
// request comes back in the ID token and only then (OpenID Connect Core
// 3.1.3.7), at_hash binds the access token, and identity claims follow
// the granted scopes (section 5.4): preferred_username with profile,
// not without.
func TestIDTokenNonceAndScopeClaims(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	sess := e.session("u1")
	idToken := func(scope, nonce string) (map[string]any, string) {
		t.Helper()
		q := url.Values{"client_id": {"web"}, "response_type": {"code"}, "scope": {scope}, "state": {"s"}, "redirect_uri": {webCB}}
		if nonce != "" {
			q.Set("nonce", nonce)
		}
		loc, _ := url.Parse(e.browse(http.MethodGet, "/oauth2/default/v1/authorize?"+q.Encode(), nil, sess).Header().Get("Location"))
		status, tok := e.redeem("web", loc.Query().Get("code"), webCB, "")
		if status != 200 {
			t.Fatalf("redeem: %d %v", status, tok)
		}
		return payload(t, tok["id_token"].(string)), tok["access_token"].(string)
	}
	withNonce, at := idToken("openid profile", "n-0S6_WzA2Mj")
	if withNonce["nonce"] != "n-0S6_WzA2Mj" || withNonce["preferred_username"] != "alice@example.com" {
		t.Fatalf("ID token with nonce and profile: %v", withNonce)
	}
	if withNonce["at_hash"] != tokenHash(jwa.ES256, at) {
		t.Fatalf("at_hash %v does not bind the access token", withNonce["at_hash"])
	}
	without, _ := idToken("openid", "")
	if _, ok := without["nonce"]; ok {
		t.Fatalf("nonce in an ID token whose request had none: %v", without)
	}
	if _, ok := without["preferred_username"]; ok {
		t.Fatalf("profile claims without the profile scope: %v", without)
	}
}

// TestTokenHash: at_hash is the left half of the token's hash, SHA-256
// for RS256 and ES256, SHA-512 for Ed25519.
func TestTokenHash(t *testing.T) {
	s256, s512 := sha256.Sum256([]byte("tok")), sha512.Sum512([]byte("tok"))
	for alg, want := range map[jwa.SignatureAlgorithm][]byte{jwa.RS256: s256[:16], jwa.ES256: s256[:16], jwa.EdDSA: s512[:32]} {
		if got := tokenHash(alg, "tok"); got != base64.RawURLEncoding.EncodeToString(want) {
			t.Errorf("%s: %s", alg, got)
		}
	}
}

// TestAccessTokenShape: Okta's access token claims for a user flow, with
// the server's default audience api://{id} when none is configured.
func TestAccessTokenShape(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	_, tok := e.redeem("web", e.code("web", webCB, ""), webCB, "")
	at := payload(t, tok["access_token"].(string))
	for k, want := range map[string]any{"ver": float64(1), "iss": "https://id.example.com/oauth2/default", "aud": "api://default",
		"cid": "web", "uid": "u1", "sub": "alice@example.com"} {
		if at[k] != want {
			t.Errorf("%s = %v, want %v", k, at[k], want)
		}
	}
	if scp, _ := at["scp"].([]any); len(scp) != 3 {
		t.Errorf("scp = %v", at["scp"])
	}
}
