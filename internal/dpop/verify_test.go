package dpop

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
)

func TestValidProofs(t *testing.T) {
	ks := signers()
	for _, name := range []string{"ES256", "ES384", "RS256", "PS256", "EdDSA"} {
		t.Run(name, func(t *testing.T) {
			s := ks[name]
			clk := testkit.NewClock(t0)
			v := verifier(t, clk, Options{Algorithms: Allowed, Replay: NewMemoryReplay(10).WithClock(clk.Now)})
			claims := stdClaims(map[string]any{"ath": ATH("tok")})
			p, err := v.Verify(context.Background(), s.proof(t, claims), reqMethod, reqURL, "tok")
			if err != nil {
				t.Fatal(err)
			}
			jkt, err := Thumbprint(s.pub)
			if err != nil {
				t.Fatal(err)
			}
			if p.JKT != jkt || p.JTI != claims["jti"] || !p.IAT.Equal(t0) || p.HTM != reqMethod ||
				p.HTU != reqURL || p.ATH != ATH("tok") || p.Nonce != "" {
				t.Fatalf("proof = %+v", p)
			}
			if got, _ := Thumbprint(p.Key); got != jkt {
				t.Fatalf("key thumbprint %s, want %s", got, jkt)
			}
			var raw any
			if err := p.Key.Raw(&raw); err != nil {
				t.Fatal(err)
			}
			if _, err := jwk.PublicRawKeyOf(raw); err != nil {
				t.Fatal(err)
			}
			switch p.Key.(type) {
			case jwk.RSAPublicKey, jwk.ECDSAPublicKey, jwk.OKPPublicKey:
			default:
				t.Fatalf("key %T is not a public key", p.Key)
			}
		})
	}
}

// TestDefaultAlgorithms: ES384 is allowed only when listed.
func TestDefaultAlgorithms(t *testing.T) {
	clk := testkit.NewClock(t0)
	v := verifier(t, clk, Options{})
	if got := strings.Join(v.Algorithms(), " "); got != "ES256 RS256 PS256 EdDSA" {
		t.Fatalf("Algorithms() = %q", got)
	}
	for _, name := range []string{"ES256", "RS256", "PS256", "EdDSA"} {
		if _, err := v.Verify(context.Background(), signers()[name].proof(t, stdClaims()), reqMethod, reqURL, ""); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	_, err := v.Verify(context.Background(), signers()["ES384"].proof(t, stdClaims()), reqMethod, reqURL, "")
	wantError(t, err, CodeInvalidProof, ReasonAlgNotAllowed)
}

// TestForgedProofs is issue 14's forged-proof table for the proof itself.
func TestForgedProofs(t *testing.T) {
	ks := signers()
	es, es2, rs := ks["ES256"], ks["ES256b"], ks["RS256"]
	ecPriv := es.priv.(*ecdsa.PrivateKey)
	rsaPriv := rs.priv.(*rsa.PrivateKey)
	privEC, err := jwk.FromRaw(ecPriv)
	must(err)
	privRSA, err := jwk.FromRaw(rsaPriv)
	must(err)
	secret := []byte("0123456789abcdef0123456789abcdef")
	oct, err := jwk.FromRaw(secret)
	must(err)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	must(err)
	smallPub, err := jwk.FromRaw(&small.PublicKey)
	must(err)
	const token = "an-access-token"
	good := func(mods ...map[string]any) map[string]any {
		return stdClaims(append([]map[string]any{{"ath": ATH(token)}}, mods...)...)
	}
	head := string(mustJSON(es.header())) // the header of es's proofs
	valid := es.proof(t, good())
	parts := strings.Split(valid, ".")

	tests := []struct {
		name   string
		proof  string
		method string // default reqMethod
		url    string // default reqURL
		token  string // "-" for none; default token
		reason string
	}{
		// htm and htu (RFC 9449 section 4.3, checks 8 and 9).
		{name: "another method", proof: es.proof(t, good(map[string]any{"htm": "GET"})), reason: ReasonHTMMismatch},
		{name: "method in lower case", proof: es.proof(t, good(map[string]any{"htm": "post"})), reason: ReasonHTMMismatch},
		{name: "request of another method", proof: valid, method: "PUT", reason: ReasonHTMMismatch},
		{name: "another path", proof: es.proof(t, good(map[string]any{"htu": "https://api.example.com/oauth2/other/v1/token"})), reason: ReasonHTUMismatch},
		{name: "longer path", proof: es.proof(t, good(map[string]any{"htu": reqURL + "/x"})), reason: ReasonHTUMismatch},
		{name: "trailing slash", proof: es.proof(t, good(map[string]any{"htu": reqURL + "/"})), reason: ReasonHTUMismatch},
		{name: "path case", proof: es.proof(t, good(map[string]any{"htu": "https://api.example.com/OAuth2/default/v1/token"})), reason: ReasonHTUMismatch},
		{name: "another host", proof: es.proof(t, good(map[string]any{"htu": "https://evil.example.com/oauth2/default/v1/token"})), reason: ReasonHTUMismatch},
		{name: "another scheme", proof: es.proof(t, good(map[string]any{"htu": "http://api.example.com/oauth2/default/v1/token"})), reason: ReasonHTUMismatch},
		{name: "another port", proof: es.proof(t, good(map[string]any{"htu": "https://api.example.com:8443/oauth2/default/v1/token"})), reason: ReasonHTUMismatch},
		{name: "https on port 80", proof: es.proof(t, good(map[string]any{"htu": "https://api.example.com:80/oauth2/default/v1/token"})), reason: ReasonHTUMismatch},
		{name: "relative htu", proof: es.proof(t, good(map[string]any{"htu": "/oauth2/default/v1/token"})), reason: ReasonHTUMismatch},
		{name: "ftp htu", proof: es.proof(t, good(map[string]any{"htu": "ftp://api.example.com/oauth2/default/v1/token"})), reason: ReasonHTUMismatch},
		{name: "encoded slash", proof: es.proof(t, good(map[string]any{"htu": "https://api.example.com/oauth2%2Fdefault/v1/token"})), reason: ReasonHTUMismatch},
		{name: "unparsable htu", proof: es.proof(t, good(map[string]any{"htu": "https://api.example.com/%zz"})), reason: ReasonHTUMismatch},
		{name: "request to another URL", proof: valid, url: "https://api.example.com/oauth2/default/v1/userinfo", reason: ReasonHTUMismatch},
		// iat (check 11).
		{name: "stale iat", proof: es.proof(t, good(map[string]any{"iat": t0.Add(-DefaultMaxAge - time.Second).Unix()})), reason: ReasonIATStale},
		{name: "future iat", proof: es.proof(t, good(map[string]any{"iat": t0.Add(DefaultMaxFuture + time.Second).Unix()})), reason: ReasonIATFuture},
		{name: "iat as string", proof: es.proof(t, good(map[string]any{"iat": "1772366400"})), reason: ReasonMalformed},
		{name: "negative iat", proof: es.proof(t, good(map[string]any{"iat": -1})), reason: ReasonMalformed},
		// Required claims (check 3).
		{name: "no jti", proof: es.proof(t, good(map[string]any{"jti": nil})), reason: ReasonMissingClaim},
		{name: "empty jti", proof: es.proof(t, good(map[string]any{"jti": ""})), reason: ReasonMissingClaim},
		{name: "jti not a string", proof: es.proof(t, good(map[string]any{"jti": 7})), reason: ReasonMalformed},
		{name: "long jti", proof: es.proof(t, good(map[string]any{"jti": strings.Repeat("j", MaxJTI+1)})), reason: ReasonBadJTI},
		{name: "no htm", proof: es.proof(t, good(map[string]any{"htm": nil})), reason: ReasonMissingClaim},
		{name: "no htu", proof: es.proof(t, good(map[string]any{"htu": nil})), reason: ReasonMissingClaim},
		{name: "no iat", proof: es.proof(t, good(map[string]any{"iat": nil})), reason: ReasonMissingClaim},
		// ath (check 12).
		{name: "no ath", proof: es.proof(t, stdClaims()), reason: ReasonATHMissing},
		{name: "ath of another token", proof: es.proof(t, good(map[string]any{"ath": ATH("another-token")})), reason: ReasonATHMismatch},
		{name: "ath of the token, not hashed", proof: es.proof(t, good(map[string]any{"ath": token})), reason: ReasonATHMismatch},
		{name: "ath padded", proof: es.proof(t, good(map[string]any{"ath": ATH(token) + "="})), reason: ReasonATHMismatch},
		{name: "ath not a string", proof: es.proof(t, good(map[string]any{"ath": 1})), reason: ReasonMalformed},
		// Signature and key (checks 5 to 7).
		{name: "signed with another key than its jwk", proof: signRaw(t, jwa.ES256, es2.priv, []byte(head), mustJSON(good())), reason: ReasonBadSignature},
		{name: "payload changed after signing", proof: parts[0] + "." + b64(mustJSON(good())) + "." + parts[2], reason: ReasonBadSignature},
		{name: "EC private key in jwk", proof: es.proof(t, good(), map[string]any{"jwk": jwkMap(privEC)}), reason: ReasonPrivateKey},
		{name: "RSA private key in jwk", proof: rs.proof(t, good(), map[string]any{"jwk": jwkMap(privRSA)}), reason: ReasonPrivateKey},
		{name: "d alone in jwk", proof: es.proof(t, good(), map[string]any{"jwk": apply(jwkMap(es.pub), []map[string]any{{"d": "AAAA"}})}), reason: ReasonPrivateKey},
		{name: "alg none", proof: b64([]byte(`{"typ":"dpop+jwt","alg":"none","jwk":`+string(mustJSON(es.pub))+`}`)) + "." + b64(mustJSON(good())) + "." + b64([]byte("x")), reason: ReasonAlgNotAllowed},
		{name: "alg none, no signature", proof: b64([]byte(`{"typ":"dpop+jwt","alg":"none","jwk":`+string(mustJSON(es.pub))+`}`)) + "." + b64(mustJSON(good())) + ".", reason: ReasonMalformed},
		{name: "HS256 with a symmetric jwk", proof: signRaw(t, jwa.HS256, secret, mustJSON(map[string]any{"typ": Typ, "alg": "HS256", "jwk": jwkMap(oct)}), mustJSON(good())), reason: ReasonAlgNotAllowed},
		{name: "ES256 with a symmetric jwk", proof: es.proof(t, good(), map[string]any{"jwk": jwkMap(oct)}), reason: ReasonPrivateKey},
		{name: "oct jwk without k", proof: es.proof(t, good(), map[string]any{"jwk": map[string]any{"kty": "oct"}}), reason: ReasonBadKey},
		{name: "no jwk", proof: es.proof(t, good(), map[string]any{"jwk": nil}), reason: ReasonNoJWK},
		{name: "kid instead of jwk", proof: es.proof(t, good(), map[string]any{"jwk": nil, "kid": "k1"}), reason: ReasonNoJWK},
		{name: "jwk as a string", proof: es.proof(t, good(), map[string]any{"jwk": string(mustJSON(es.pub))}), reason: ReasonBadKey},
		{name: "jwk EC point off the curve", proof: es.proof(t, good(), map[string]any{"jwk": apply(jwkMap(es.pub), []map[string]any{{"y": jwkMap(es2.pub)["y"]}})}), reason: ReasonBadSignature},
		{name: "jwk for encryption", proof: es.proof(t, good(), map[string]any{"jwk": apply(jwkMap(es.pub), []map[string]any{{"use": "enc"}})}), reason: ReasonBadKey},
		{name: "jwk for another alg", proof: es.proof(t, good(), map[string]any{"jwk": apply(jwkMap(es.pub), []map[string]any{{"alg": "ES384"}})}), reason: ReasonKeyAlgMismatch},
		{name: "RS256 header with an EC jwk", proof: signRaw(t, jwa.RS256, rsaPriv, mustJSON(es.header(map[string]any{"alg": "RS256"})), mustJSON(good())), reason: ReasonKeyAlgMismatch},
		{name: "ES256 header with a P-384 jwk", proof: signRaw(t, jwa.ES384, ks["ES384"].priv, mustJSON(ks["ES384"].header(map[string]any{"alg": "ES256"})), mustJSON(good())), reason: ReasonKeyAlgMismatch},
		{name: "EdDSA header with an EC jwk", proof: es.proof(t, good(), map[string]any{"alg": "EdDSA"}), reason: ReasonKeyAlgMismatch},
		{name: "RSA key of 1024 bits", proof: signRaw(t, jwa.RS256, small, mustJSON(map[string]any{"typ": Typ, "alg": "RS256", "jwk": jwkMap(smallPub)}), mustJSON(good())), reason: ReasonWeakKey},
		{name: "Ed25519 jwk of 3 bytes", proof: b64([]byte(`{"alg":"EdDSA","jwk":{"crv":"Ed25519","kty":"OKP","x":"_4cM"},"typ":"dpop+jwt"}`)) + ".e30.AA", reason: ReasonBadKey},
		{name: "X25519 jwk", proof: b64([]byte(`{"alg":"EdDSA","jwk":{"crv":"X25519","kty":"OKP","x":"`+b64(make([]byte, 32))+`"},"typ":"dpop+jwt"}`)) + ".e30.AA", reason: ReasonKeyAlgMismatch},
		{name: "RSA key of 8200 bits", proof: b64(mustJSON(map[string]any{"alg": "RS256", "typ": Typ, "jwk": map[string]any{"kty": "RSA", "e": "AQAB", "n": b64(append([]byte{1}, make([]byte, 1025)...))}})) + ".e30.AA", reason: ReasonBadKey},
		{name: "jku header", proof: es.proof(t, good(), map[string]any{"jku": "https://evil.example.com/jwks"}), reason: ReasonHeaderNotAllowed},
		{name: "x5u header", proof: es.proof(t, good(), map[string]any{"x5u": "https://evil.example.com/cert"}), reason: ReasonHeaderNotAllowed},
		{name: "x5c header", proof: es.proof(t, good(), map[string]any{"x5c": []string{"MIIB"}}), reason: ReasonHeaderNotAllowed},
		{name: "unknown crit", proof: es.proof(t, good(), map[string]any{"crit": []string{"exp"}, "exp": 1}), reason: ReasonHeaderNotAllowed},
		{name: "b64 false", proof: es.proof(t, good(), map[string]any{"b64": false}), reason: ReasonHeaderNotAllowed},
		// typ (check 4).
		{name: "typ JWT", proof: es.proof(t, good(), map[string]any{"typ": "JWT"}), reason: ReasonBadTyp},
		{name: "typ at+jwt", proof: es.proof(t, good(), map[string]any{"typ": "at+jwt"}), reason: ReasonBadTyp},
		{name: "typ in upper case", proof: es.proof(t, good(), map[string]any{"typ": "DPOP+JWT"}), reason: ReasonBadTyp},
		{name: "no typ", proof: es.proof(t, good(), map[string]any{"typ": nil}), reason: ReasonBadTyp},
		// Form (check 2).
		{name: "oversized", proof: es.proof(t, good(map[string]any{"pad": strings.Repeat("p", DefaultMaxSize)})), reason: ReasonTooLarge},
		{name: "empty", proof: "", reason: ReasonMalformed},
		{name: "standard base64", proof: strings.Replace(valid, parts[2][:1], "+", 1), reason: ReasonMalformed},
		{name: "padding", proof: valid + "=", reason: ReasonMalformed},
		{name: "line break", proof: parts[0] + "\n." + parts[1] + "." + parts[2], reason: ReasonMalformed},
		{name: "space", proof: " " + valid, reason: ReasonMalformed},
		{name: "extra dot", proof: valid + ".", reason: ReasonMalformed},
		{name: "extra part", proof: valid + "." + parts[2], reason: ReasonMalformed},
		{name: "two parts", proof: parts[0] + "." + parts[1], reason: ReasonMalformed},
		{name: "empty payload", proof: parts[0] + ".." + parts[2], reason: ReasonMalformed},
		{name: "non-canonical base64", proof: parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-1] + "B", reason: ReasonMalformed},
		{name: "JSON serialization", proof: `{"payload":"` + parts[1] + `","signatures":[]}`, reason: ReasonMalformed},
		{name: "header not JSON", proof: b64([]byte("not json")) + "." + parts[1] + "." + parts[2], reason: ReasonMalformed},
		{name: "duplicate alg", proof: b64([]byte(`{"typ":"dpop+jwt","alg":"ES256","alg":"none","jwk":`+string(mustJSON(es.pub))+`}`)) + "." + parts[1] + "." + parts[2], reason: ReasonMalformed},
		{name: "claims not JSON", proof: signRaw(t, jwa.ES256, es.priv, []byte(head), []byte("[1]")), reason: ReasonMalformed},
		{name: "duplicate htu", proof: signRaw(t, jwa.ES256, es.priv, []byte(head), []byte(`{"jti":"j","htm":"POST","htu":"`+reqURL+`","htu":"https://evil.example.com/","iat":1772366400}`)), reason: ReasonMalformed},
	}
	// Cold: a new Verifier. Warm: a Verifier that accepted a proof of
	// es's key and keeps its header parsed.
	for _, warm := range []bool{false, true} {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%s/warm=%v", tc.name, warm), func(t *testing.T) {
				clk := testkit.NewClock(t0)
				v := verifier(t, clk, Options{Replay: NewMemoryReplay(10).WithClock(clk.Now)})
				if warm {
					if _, err := v.Verify(context.Background(), es.proof(t, good()), reqMethod, reqURL, token); err != nil {
						t.Fatal(err)
					}
					if v.headers.get(parts[0]) == nil {
						t.Fatal("header not cached")
					}
				}
				method, url, tok := tc.method, tc.url, tc.token
				if method == "" {
					method = reqMethod
				}
				if url == "" {
					url = reqURL
				}
				switch tok {
				case "":
					tok = token
				case "-":
					tok = ""
				}
				p, err := v.Verify(context.Background(), tc.proof, method, url, tok)
				if p != nil {
					t.Fatalf("accepted: %+v", p)
				}
				e := wantError(t, err, CodeInvalidProof, tc.reason)
				if e.Description() == "" || strings.Contains(e.Description(), token) {
					t.Fatalf("description %q", e.Description())
				}
			})
		}
	}
	// The valid proof the table forged from is accepted.
	clk := testkit.NewClock(t0)
	if _, err := verifier(t, clk, Options{}).Verify(context.Background(), valid, reqMethod, reqURL, token); err != nil {
		t.Fatalf("valid proof: %v", err)
	}
}

// TestEquivalentHTU: spellings of one URI that RFC 3986 section 6.2.2
// and 6.2.3 make equal are accepted, on either side; the request's query
// and fragment are ignored (RFC 9449 section 4.3).
func TestEquivalentHTU(t *testing.T) {
	es := signers()["ES256"]
	tests := []struct{ htu, url string }{
		{reqURL, reqURL + "?state=1&x=y"},
		{reqURL, reqURL + "#frag"},
		{reqURL, "HTTPS://API.Example.COM/oauth2/default/v1/token"},
		{"HTTPS://API.EXAMPLE.COM/oauth2/default/v1/token", reqURL},
		{reqURL, "https://api.example.com:443/oauth2/default/v1/token"},
		{"https://api.example.com:443/oauth2/default/v1/token", reqURL},
		{"http://api.example.com:80/a", "http://api.example.com/a"},
		{"https://api.example.com:8443/a", "https://api.example.com:8443/a?q"},
		{"https://api.example.com", "https://api.example.com/"},
		{"https://api.example.com/a%2fb", "https://api.example.com/a%2Fb"},
		{"https://api.example.com/%7Euser", "https://api.example.com/~user"},
		{"https://api.example.com/a/./b/../c", "https://api.example.com/a/c"},
		{"https://user:pass@api.example.com/a", "https://api.example.com/a"},
		{"https://[::1]:8443/a", "https://[::1]:8443/a"},
		// A query or fragment in htu is ignored too (the client should
		// not send one; the request's would be ignored anyway).
		{reqURL + "?q=1", reqURL},
		{reqURL + "#f", reqURL + "?other"},
	}
	for _, tc := range tests {
		clk := testkit.NewClock(t0)
		v := verifier(t, clk, Options{})
		if _, err := v.Verify(context.Background(), es.proof(t, stdClaims(map[string]any{"htu": tc.htu})), reqMethod, tc.url, ""); err != nil {
			t.Errorf("htu %s, request %s: %v", tc.htu, tc.url, err)
		}
	}
}

// TestIATWindow: the window's edges are inclusive; fractional iat is a
// NumericDate too.
func TestIATWindow(t *testing.T) {
	es := signers()["ES256"]
	clk := testkit.NewClock(t0)
	v := verifier(t, clk, Options{MaxAge: time.Minute, MaxFuture: 5 * time.Second})
	for _, iat := range []any{t0.Add(-time.Minute).Unix(), t0.Add(5 * time.Second).Unix(), 1772366400.5} {
		if _, err := v.Verify(context.Background(), es.proof(t, stdClaims(map[string]any{"iat": iat})), reqMethod, reqURL, ""); err != nil {
			t.Errorf("iat %v: %v", iat, err)
		}
	}
	_, err := v.Verify(context.Background(), es.proof(t, stdClaims(map[string]any{"iat": t0.Add(-time.Minute - time.Second).Unix()})), reqMethod, reqURL, "")
	wantError(t, err, CodeInvalidProof, ReasonIATStale)
	_, err = v.Verify(context.Background(), es.proof(t, stdClaims(map[string]any{"iat": t0.Add(6 * time.Second).Unix()})), reqMethod, reqURL, "")
	wantError(t, err, CodeInvalidProof, ReasonIATFuture)
}

// TestKidIgnored: a kid header is never used for a lookup; the jwk is
// the key.
func TestKidIgnored(t *testing.T) {
	es := signers()["ES256"]
	clk := testkit.NewClock(t0)
	p, err := verifier(t, clk, Options{}).Verify(context.Background(), es.proof(t, stdClaims(), map[string]any{"kid": "other"}), reqMethod, reqURL, "")
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := Thumbprint(es.pub); p.JKT != want {
		t.Fatalf("jkt %s, want %s", p.JKT, want)
	}
}

func TestReplay(t *testing.T) {
	ks := signers()
	es, es2 := ks["ES256"], ks["ES256b"]
	clk := testkit.NewClock(t0)
	replay := NewMemoryReplay(100).WithClock(clk.Now)
	v := verifier(t, clk, Options{Replay: replay})
	ctx := context.Background()
	claims := stdClaims()
	proof := es.proof(t, claims)
	if _, err := v.Verify(ctx, proof, reqMethod, reqURL, ""); err != nil {
		t.Fatal(err)
	}
	_, err := v.Verify(ctx, proof, reqMethod, reqURL, "")
	wantError(t, err, CodeInvalidProof, ReasonReplayed)
	// Another proof with the same jti and the same key: a replay too.
	_, err = v.Verify(ctx, es.proof(t, apply(stdClaims(), []map[string]any{{"jti": claims["jti"]}})), reqMethod, reqURL, "")
	wantError(t, err, CodeInvalidProof, ReasonReplayed)
	// ... also when htu is spelt another way.
	_, err = v.Verify(ctx, es.proof(t, stdClaims(map[string]any{"jti": claims["jti"], "htu": "HTTPS://api.example.com:443/oauth2/default/v1/token"})), reqMethod, reqURL, "")
	wantError(t, err, CodeInvalidProof, ReasonReplayed)
	// The same jti with another key is another client's: no replay.
	if _, err := v.Verify(ctx, es2.proof(t, stdClaims(map[string]any{"jti": claims["jti"]})), reqMethod, reqURL, ""); err != nil {
		t.Fatalf("same jti, other key: %v", err)
	}
	// The same jti for another URI is no replay either.
	other := "https://api.example.com/other"
	if _, err := v.Verify(ctx, es.proof(t, stdClaims(map[string]any{"jti": claims["jti"], "htu": other})), reqMethod, other, ""); err != nil {
		t.Fatalf("same jti, other htu: %v", err)
	}
	// A refused proof takes no place.
	n := replay.Len()
	_, err = v.Verify(ctx, es.proof(t, stdClaims(map[string]any{"htm": "GET"})), reqMethod, reqURL, "")
	wantError(t, err, CodeInvalidProof, ReasonHTMMismatch)
	if replay.Len() != n {
		t.Fatalf("refused proof remembered: %d entries, want %d", replay.Len(), n)
	}
	// Once the proof is stale it is refused as stale, and forgotten.
	clk.Advance(DefaultMaxAge + DefaultMaxFuture + time.Second)
	_, err = v.Verify(ctx, proof, reqMethod, reqURL, "")
	wantError(t, err, CodeInvalidProof, ReasonIATStale)
}

// TestReplayUntil: the jti is remembered until iat + MaxAge + MaxFuture.
func TestReplayUntil(t *testing.T) {
	clk := testkit.NewClock(t0)
	rec := &recordingReplay{}
	v := verifier(t, clk, Options{MaxAge: time.Minute, MaxFuture: 10 * time.Second, Replay: rec})
	iat := t0.Add(-20 * time.Second)
	claims := stdClaims(map[string]any{"iat": iat.Unix()})
	p, err := v.Verify(context.Background(), signers()["ES256"].proof(t, claims), reqMethod, reqURL, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := iat.Add(70 * time.Second); !rec.until.Equal(want) {
		t.Fatalf("until %v, want %v", rec.until, want)
	}
	if rec.key != ReplayKey(p.JKT, reqURL, p.JTI) || len(rec.key) != 43 {
		t.Fatalf("key %q", rec.key)
	}
}

type recordingReplay struct {
	key   string
	until time.Time
	err   error
}

func (r *recordingReplay) Seen(_ context.Context, key string, until time.Time) (bool, error) {
	r.key, r.until = key, until
	return false, r.err
}

// TestReplayFailsClosed: a replay store that cannot answer refuses the
// proof with a server error, not an *Error.
func TestReplayFailsClosed(t *testing.T) {
	es := signers()["ES256"]
	clk := testkit.NewClock(t0)
	down := errors.New("store down")
	v := verifier(t, clk, Options{Replay: &recordingReplay{err: down}})
	p, err := v.Verify(context.Background(), es.proof(t, stdClaims()), reqMethod, reqURL, "")
	var e *Error
	if p != nil || !errors.Is(err, down) || errors.As(err, &e) {
		t.Fatalf("Verify = %v, %v; want the store's error", p, err)
	}
	v = verifier(t, clk, Options{Replay: NewMemoryReplay(1).WithClock(clk.Now)})
	if _, err := v.Verify(context.Background(), es.proof(t, stdClaims()), reqMethod, reqURL, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), es.proof(t, stdClaims()), reqMethod, reqURL, ""); !errors.Is(err, ErrReplayFull) {
		t.Fatalf("full cache: %v", err)
	}
}

func TestNonceRequired(t *testing.T) {
	es := signers()["ES256"]
	// t0 starts a one-minute window; the first nonce is handed out in
	// its middle.
	clk := testkit.NewClock(t0.Add(30 * time.Second))
	nonces := NewNonces([]byte("a secret of thirty-two bytes....."), time.Minute, clk.Now)
	v := verifier(t, clk, Options{Nonces: nonces, Replay: NewMemoryReplay(100).WithClock(clk.Now)})
	ctx := context.Background()
	if v.Nonce() != nonces.Current() || v.Nonce() == "" {
		t.Fatalf("Nonce() = %q", v.Nonce())
	}

	iat := func() map[string]any { return map[string]any{"iat": clk.Now().Unix()} }
	_, err := v.Verify(ctx, es.proof(t, stdClaims(iat())), reqMethod, reqURL, "")
	e := wantError(t, err, CodeUseNonce, ReasonNonceMissing)
	if e.Nonce != nonces.Current() {
		t.Fatalf("error nonce %q, want %q", e.Nonce, nonces.Current())
	}
	n := e.Nonce
	p, err := v.Verify(ctx, es.proof(t, stdClaims(iat(), map[string]any{"nonce": n})), reqMethod, reqURL, "")
	if err != nil {
		t.Fatal(err)
	}
	if p.Nonce != n {
		t.Fatalf("proof nonce %q", p.Nonce)
	}
	// Across the window boundary the previous nonce is still valid.
	for _, at := range []time.Duration{59*time.Second + 999*time.Millisecond, time.Minute, 2*time.Minute - time.Nanosecond} {
		clk.Set(t0.Add(at))
		if !nonces.Valid(n) {
			t.Fatalf("nonce refused at t0+%v", at)
		}
	}
	clk.Set(t0.Add(time.Minute)) // the next window's start
	if _, err := v.Verify(ctx, es.proof(t, stdClaims(map[string]any{"nonce": n, "iat": clk.Now().Unix()})), reqMethod, reqURL, ""); err != nil {
		t.Fatalf("previous window's nonce: %v", err)
	}
	// Two windows on it is stale.
	clk.Set(t0.Add(2 * time.Minute))
	_, err = v.Verify(ctx, es.proof(t, stdClaims(map[string]any{"nonce": n, "iat": clk.Now().Unix()})), reqMethod, reqURL, "")
	e = wantError(t, err, CodeUseNonce, ReasonNonceStale)
	if e.Nonce != nonces.Current() || e.Nonce == n {
		t.Fatalf("stale error nonce %q", e.Nonce)
	}
	// A nonce of another secret, or garbage, is stale.
	other := NewNonces([]byte("another secret of 32 bytes......"), time.Minute, clk.Now)
	for _, bad := range []string{other.Current(), "x", nonces.Current() + "x"} {
		_, err = v.Verify(ctx, es.proof(t, stdClaims(map[string]any{"nonce": bad, "iat": clk.Now().Unix()})), reqMethod, reqURL, "")
		wantError(t, err, CodeUseNonce, ReasonNonceStale)
	}
	// A nonce not a string is malformed.
	_, err = v.Verify(ctx, es.proof(t, stdClaims(map[string]any{"nonce": 5, "iat": clk.Now().Unix()})), reqMethod, reqURL, "")
	wantError(t, err, CodeInvalidProof, ReasonMalformed)
	// Another failure wins over a missing nonce: the client's retry with
	// the nonce would fail anyway.
	_, err = v.Verify(ctx, es.proof(t, stdClaims(map[string]any{"htm": "GET", "iat": clk.Now().Unix()})), reqMethod, reqURL, "")
	wantError(t, err, CodeInvalidProof, ReasonHTMMismatch)
}

// TestNoNonceSource: without Nonces a proof's nonce is reported, not
// checked.
func TestNoNonceSource(t *testing.T) {
	clk := testkit.NewClock(t0)
	v := verifier(t, clk, Options{})
	if v.Nonce() != "" {
		t.Fatalf("Nonce() = %q", v.Nonce())
	}
	p, err := v.Verify(context.Background(), signers()["ES256"].proof(t, stdClaims(map[string]any{"nonce": "n"})), reqMethod, reqURL, "")
	if err != nil || p.Nonce != "n" {
		t.Fatalf("Verify = %+v, %v", p, err)
	}
}

func TestNew(t *testing.T) {
	for _, o := range []Options{
		{Algorithms: []jwa.SignatureAlgorithm{jwa.ES256, jwa.NoSignature}},
		{Algorithms: []jwa.SignatureAlgorithm{jwa.HS256}},
		{Algorithms: []jwa.SignatureAlgorithm{jwa.HS512, jwa.RS256}},
		{Algorithms: []jwa.SignatureAlgorithm{"ES256K"}},
		{MaxAge: -time.Second},
		{MaxFuture: -time.Second},
		{MaxSize: -1},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
	v, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if v.maxAge != DefaultMaxAge || v.maxFuture != DefaultMaxFuture || v.maxSize != DefaultMaxSize || v.now == nil {
		t.Fatalf("defaults: %+v", v)
	}
	// Options.Algorithms is copied.
	algs := []jwa.SignatureAlgorithm{jwa.ES256}
	v, _ = New(Options{Algorithms: algs})
	algs[0] = jwa.RS256
	if v.Algorithms()[0] != "ES256" {
		t.Fatal("algorithms not copied")
	}
}

func TestBadRequestURL(t *testing.T) {
	clk := testkit.NewClock(t0)
	v := verifier(t, clk, Options{})
	for _, u := range []string{"/oauth2/default/v1/token", "", "ftp://x/y", "https:///x", "https://%zz/"} {
		_, err := v.Verify(context.Background(), signers()["ES256"].proof(t, stdClaims()), reqMethod, u, "")
		var e *Error
		if err == nil || errors.As(err, &e) {
			t.Errorf("request URL %q: %v, want a server error", u, err)
		}
	}
}

// TestOtherCurveKeyGenerated guards the test fixtures: ES256b is
// another P-256 key.
func TestOtherCurveKeyGenerated(t *testing.T) {
	a, b := signers()["ES256"].priv.(*ecdsa.PrivateKey), signers()["ES256b"].priv.(*ecdsa.PrivateKey)
	if a.Curve != elliptic.P256() || b.Curve != elliptic.P256() || a.Equal(b) {
		t.Fatal("fixtures")
	}
}

// TestHeaderCache: a header is kept after its signature verified, the
// signature is checked on every hit, and the cache is bounded.
func TestHeaderCache(t *testing.T) {
	ks := signers()
	clk := testkit.NewClock(t0)
	v := verifier(t, clk, Options{KeyCacheSize: 2})
	ctx := context.Background()
	es := ks["ES256"]
	// A forged signature does not put the header.
	forged := signRaw(t, jwa.ES256, ks["ES256b"].priv, mustJSON(es.header()), mustJSON(stdClaims()))
	_, err := v.Verify(ctx, forged, reqMethod, reqURL, "")
	wantError(t, err, CodeInvalidProof, ReasonBadSignature)
	if v.headers.len() != 0 {
		t.Fatal("header of a bad signature cached")
	}
	p1, err := v.Verify(ctx, es.proof(t, stdClaims()), reqMethod, reqURL, "")
	if err != nil {
		t.Fatal(err)
	}
	// A hit: same key and thumbprint; a forged signature is still refused.
	p2, err := v.Verify(ctx, es.proof(t, stdClaims()), reqMethod, reqURL, "")
	if err != nil || p2.JKT != p1.JKT || v.headers.len() != 1 {
		t.Fatalf("hit: %v, %d entries", err, v.headers.len())
	}
	_, err = v.Verify(ctx, forged, reqMethod, reqURL, "")
	wantError(t, err, CodeInvalidProof, ReasonBadSignature)
	for _, name := range []string{"RS256", "EdDSA", "PS256", "ES256b"} {
		p, err := v.Verify(ctx, ks[name].proof(t, stdClaims()), reqMethod, reqURL, "")
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := Thumbprint(ks[name].pub); p.JKT != want {
			t.Fatalf("%s: jkt %s, want %s", name, p.JKT, want)
		}
		if v.headers.len() > 2 {
			t.Fatalf("%d entries, max 2", v.headers.len())
		}
	}
	// Disabled.
	v = verifier(t, clk, Options{KeyCacheSize: -1})
	if _, err := v.Verify(ctx, es.proof(t, stdClaims()), reqMethod, reqURL, ""); err != nil || v.headers != nil {
		t.Fatalf("no cache: %v", err)
	}
}
