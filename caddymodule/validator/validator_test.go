package validator_test

import (
	"context"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/apiaccess/caddy-apiaccess/caddymodule/validator"
)

type m = map[string]any

func parts(t testing.TB, tok string) (h, p, s string) {
	t.Helper()
	x := strings.Split(tok, ".")
	if len(x) != 3 {
		t.Fatalf("not a compact JWS: %q", tok)
	}
	return x[0], x[1], x[2]
}

// insertMember adds raw JSON members right after the opening brace.
func insertMember(obj []byte, member string) []byte {
	return append([]byte("{"+member+","), obj[1:]...)
}

// appendMember adds raw JSON members right before the closing brace.
func appendMember(obj []byte, member string) []byte {
	return append(append(obj[:len(obj)-1:len(obj)-1], []byte(","+member)...), '}')
}

func rs256Header(kid string) []byte { return mustJSON(m{"alg": "RS256", "kid": kid}) }

type forged struct {
	name string
	tok  func(t *testing.T, k *testKeys) string
	cfg  func(c *validator.Config)
	// status: 0 accepted, 401 invalid_token, 403 insufficient_scope.
	status int
	reason string
	// bug, when set, is a known bug: the case is skipped until fixed.
	bug string
}

func onlyAlgs(algs ...jwa.SignatureAlgorithm) func(c *validator.Config) {
	return func(c *validator.Config) { c.Issuers[0].Algorithms = algs }
}

func needScopes(s ...string) func(c *validator.Config) {
	return func(c *validator.Config) { c.Scopes = s }
}

func forgedCases() []forged {
	return []forged{
		// --- control: a genuine token of each key type is accepted.
		{name: "control RS256", tok: func(t *testing.T, k *testKeys) string { return good(t) }},
		{name: "control ES256", tok: func(t *testing.T, k *testKeys) string {
			return mint(t, jwa.ES256, k.ec1, "ec1", stdClaims())
		}},
		{name: "control EdDSA", tok: func(t *testing.T, k *testKeys) string {
			return mint(t, jwa.EdDSA, k.ed1, "ed1", stdClaims())
		}},
		{name: "control token built with jwx jwt", tok: func(t *testing.T, k *testKeys) string {
			tok, err := jwt.NewBuilder().Issuer(issURL).Audience([]string{audience}).Subject("user1").
				Expiration(t0.Add(time.Hour)).IssuedAt(t0).Claim("scp", []string{"read"}).Build()
			if err != nil {
				t.Fatal(err)
			}
			h := jws.NewHeaders()
			_ = h.Set(jws.KeyIDKey, "rsa1")
			b, err := jwt.Sign(tok, jwt.WithKey(jwa.RS256, k.rsa1, jws.WithProtectedHeaders(h)))
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}},

		// --- alg none.
		{name: "alg none, empty signature part", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string {
				return b64(mustJSON(m{"alg": "none", "kid": "rsa1"})) + "." + b64(mustJSON(stdClaims())) + "."
			}},
		{name: "alg none, with a signature part", status: 401, reason: validator.ReasonAlgNotAllowed,
			tok: func(t *testing.T, k *testKeys) string {
				_, _, s := parts(t, good(t))
				return b64(mustJSON(m{"alg": "none", "kid": "rsa1"})) + "." + b64(mustJSON(stdClaims())) + "." + s
			}},
		{name: "alg None (case variant), no kid", status: 401, reason: validator.ReasonAlgNotAllowed,
			tok: func(t *testing.T, k *testKeys) string {
				return b64(mustJSON(m{"alg": "None"})) + "." + b64(mustJSON(stdClaims())) + ".AAAA"
			}},
		{name: "alg none even when the issuer's list wrongly includes it", status: 401, reason: validator.ReasonAlgNotAllowed,
			cfg: onlyAlgs("none", jwa.RS256),
			tok: func(t *testing.T, k *testKeys) string {
				return b64(mustJSON(m{"alg": "none", "kid": "rsa1"})) + "." + b64(mustJSON(stdClaims())) + ".AAAA"
			}},
		{name: "alg missing", status: 401, reason: validator.ReasonAlgNotAllowed,
			tok: func(t *testing.T, k *testKeys) string {
				return signRaw(t, jwa.RS256, k.rsa1, mustJSON(m{"kid": "rsa1"}), mustJSON(stdClaims()))
			}},
		{name: "alg not a string", status: 401, reason: validator.ReasonAlgNotAllowed,
			tok: func(t *testing.T, k *testKeys) string {
				return signRaw(t, jwa.RS256, k.rsa1, mustJSON(m{"alg": []string{"RS256"}, "kid": "rsa1"}), mustJSON(stdClaims()))
			}},
		{name: "alg rs256 lower case", status: 401, reason: validator.ReasonAlgNotAllowed,
			tok: func(t *testing.T, k *testKeys) string {
				return signRaw(t, jwa.RS256, k.rsa1, mustJSON(m{"alg": "rs256", "kid": "rsa1"}), mustJSON(stdClaims()))
			}},

		// --- HMAC keyed with the RSA public key (algorithm confusion).
		{name: "HS256 keyed with the public key's PKIX DER", status: 401, reason: validator.ReasonAlgNotAllowed,
			tok: func(t *testing.T, k *testKeys) string {
				der, _ := x509.MarshalPKIXPublicKey(&k.rsa1.PublicKey)
				return mint(t, jwa.HS256, der, "rsa1", stdClaims())
			}},
		{name: "HS256 keyed with the public key's PEM", status: 401, reason: validator.ReasonAlgNotAllowed,
			tok: func(t *testing.T, k *testKeys) string {
				der, _ := x509.MarshalPKIXPublicKey(&k.rsa1.PublicKey)
				return mint(t, jwa.HS256, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), "rsa1", stdClaims())
			}},
		{name: "HS256 keyed with the public key's JWK JSON", status: 401, reason: validator.ReasonAlgNotAllowed,
			tok: func(t *testing.T, k *testKeys) string {
				return mint(t, jwa.HS256, mustJSON(publicJWK(&k.rsa1.PublicKey, "rsa1", "")), "rsa1", stdClaims())
			}},
		{name: "HS256 keyed with PKCS1 DER, issuer list wrongly allowing HS256", status: 401, reason: validator.ReasonAlgNotAllowed,
			cfg: onlyAlgs(jwa.HS256, jwa.RS256),
			tok: func(t *testing.T, k *testKeys) string {
				return mint(t, jwa.HS256, x509.MarshalPKCS1PublicKey(&k.rsa1.PublicKey), "rsa1", stdClaims())
			}},
		{name: "HS512 keyed with the EC public key's PEM, list wrongly allowing HS512", status: 401, reason: validator.ReasonAlgNotAllowed,
			cfg: onlyAlgs(jwa.HS512, jwa.ES256),
			tok: func(t *testing.T, k *testKeys) string {
				der, _ := x509.MarshalPKIXPublicKey(&k.ec1.PublicKey)
				return mint(t, jwa.HS512, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), "ec1", stdClaims())
			}},

		// --- wrong keys.
		{name: "attacker RSA key reusing a real kid", status: 401, reason: validator.ReasonBadSignature,
			tok: func(t *testing.T, k *testKeys) string { return mint(t, jwa.RS256, k.attacker, "rsa1", stdClaims()) }},
		{name: "attacker EC key reusing a real kid", status: 401, reason: validator.ReasonBadSignature,
			tok: func(t *testing.T, k *testKeys) string { return mint(t, jwa.ES256, k.attackEC, "ec1", stdClaims()) }},
		{name: "attacker Ed25519 key reusing a real kid", status: 401, reason: validator.ReasonBadSignature,
			tok: func(t *testing.T, k *testKeys) string { return mint(t, jwa.EdDSA, k.attackEd, "ed1", stdClaims()) }},
		{name: "unknown kid", status: 401, reason: validator.ReasonUnknownKID,
			tok: func(t *testing.T, k *testKeys) string {
				return mint(t, jwa.RS256, k.attacker, "attacker-1", stdClaims())
			}},
		{name: "missing kid", status: 401, reason: validator.ReasonNoKID,
			tok: func(t *testing.T, k *testKeys) string { return mint(t, jwa.RS256, k.rsa1, "", stdClaims()) }},
		{name: "empty kid", status: 401, reason: validator.ReasonNoKID,
			tok: func(t *testing.T, k *testKeys) string {
				return mint(t, jwa.RS256, k.rsa1, "", stdClaims(), m{"kid": ""})
			}},
		{name: "kid not a string", status: 401, reason: validator.ReasonNoKID,
			tok: func(t *testing.T, k *testKeys) string {
				return mint(t, jwa.RS256, k.rsa1, "", stdClaims(), m{"kid": 1})
			}},
		{name: "RS256 signed by attacker with the kid of the EC key", status: 401, reason: validator.ReasonAlgNotAllowed,
			tok: func(t *testing.T, k *testKeys) string { return mint(t, jwa.RS256, k.attacker, "ec1", stdClaims()) }},
		{name: "ES256 signed by attacker with the kid of the RSA key", status: 401, reason: validator.ReasonAlgNotAllowed,
			tok: func(t *testing.T, k *testKeys) string { return mint(t, jwa.ES256, k.attackEC, "rsa1", stdClaims()) }},
		{name: "EdDSA with the kid of the EC key", status: 401, reason: validator.ReasonAlgNotAllowed,
			tok: func(t *testing.T, k *testKeys) string { return mint(t, jwa.EdDSA, k.attackEd, "ec1", stdClaims()) }},
		{name: "RS384 when only RS256 is allowed", status: 401, reason: validator.ReasonAlgNotAllowed,
			cfg: onlyAlgs(jwa.RS256),
			tok: func(t *testing.T, k *testKeys) string { return mint(t, jwa.RS384, k.rsa1, "rsa1", stdClaims()) }},
		{name: "RS384 when allowed", cfg: onlyAlgs(jwa.RS384),
			tok: func(t *testing.T, k *testKeys) string { return mint(t, jwa.RS384, k.rsa1, "rsa1", stdClaims()) }},
		{name: "PS256 with an RSA key, allowed", cfg: onlyAlgs(jwa.RS256, jwa.PS256),
			tok: func(t *testing.T, k *testKeys) string { return mint(t, jwa.PS256, k.rsa1, "rsa1", stdClaims()) }},
		{name: "PS256 with a key published as alg RS256", status: 401, reason: validator.ReasonAlgNotAllowed,
			cfg: onlyAlgs(jwa.RS256, jwa.PS256),
			tok: func(t *testing.T, k *testKeys) string { return mint(t, jwa.PS256, k.rsa2, "rsa2", stdClaims()) }},
		{name: "PS256 signature labelled RS256", status: 401, reason: validator.ReasonBadSignature,
			tok: func(t *testing.T, k *testKeys) string {
				h := rs256Header("rsa1")
				p := mustJSON(stdClaims())
				ps := signRaw(t, jwa.PS256, k.rsa1, h, p) // header says RS256, signature is PSS
				return ps
			}},

		// --- another issuer.
		{name: "token of the other configured issuer", tok: func(t *testing.T, k *testKeys) string {
			return mint(t, jwa.RS256, k.other, "rsa1", stdClaims(m{"iss": otherURL}))
		}},
		{name: "other issuer's key signing for our iss (same kid)", status: 401, reason: validator.ReasonBadSignature,
			tok: func(t *testing.T, k *testKeys) string { return mint(t, jwa.RS256, k.other, "rsa1", stdClaims()) }},
		{name: "our key signing for the other issuer's iss", status: 401, reason: validator.ReasonBadSignature,
			tok: func(t *testing.T, k *testKeys) string {
				return mint(t, jwa.RS256, k.rsa1, "rsa1", stdClaims(m{"iss": otherURL}))
			}},
		{name: "our kid rsa2 claimed for the other issuer", status: 401, reason: validator.ReasonUnknownKID,
			tok: func(t *testing.T, k *testKeys) string {
				return mint(t, jwa.RS256, k.rsa2, "rsa2", stdClaims(m{"iss": otherURL}))
			}},
		{name: "other issuer not configured on this route", status: 401, reason: validator.ReasonWrongIssuer,
			cfg: func(c *validator.Config) { c.Issuers = c.Issuers[:1] },
			tok: func(t *testing.T, k *testKeys) string {
				return mint(t, jwa.RS256, k.other, "rsa1", stdClaims(m{"iss": otherURL}))
			}},

		// --- tampering.
		{name: "payload tampered after signing (scp widened)", status: 401, reason: validator.ReasonBadSignature,
			tok: func(t *testing.T, k *testKeys) string {
				h, _, s := parts(t, good(t))
				return h + "." + b64(mustJSON(stdClaims(m{"scp": []string{"read", "write", "admin"}}))) + "." + s
			}},
		{name: "payload swapped with another genuine token's", status: 401, reason: validator.ReasonBadSignature,
			tok: func(t *testing.T, k *testKeys) string {
				h, _, s := parts(t, good(t))
				_, p2, _ := parts(t, good(t, m{"sub": "admin"}))
				return h + "." + p2 + "." + s
			}},
		{name: "header tampered (kid moved to another RSA key)", status: 401, reason: validator.ReasonBadSignature,
			tok: func(t *testing.T, k *testKeys) string {
				_, p, s := parts(t, good(t))
				return b64(rs256Header("rsa2")) + "." + p + "." + s
			}},
		{name: "header tampered (typ removed)", status: 401, reason: validator.ReasonBadSignature,
			tok: func(t *testing.T, k *testKeys) string {
				_, p, s := parts(t, good(t))
				return b64(rs256Header("rsa1")) + "." + p + "." + s
			}},
		{name: "signature truncated", status: 401, reason: validator.ReasonBadSignature,
			tok: func(t *testing.T, k *testKeys) string {
				h, p, s := parts(t, good(t))
				sig, _ := decodeB64(s)
				return h + "." + p + "." + b64(sig[:len(sig)-3])
			}},
		{name: "RSA signature with a leading zero byte", status: 401, reason: validator.ReasonBadSignature,
			tok: func(t *testing.T, k *testKeys) string {
				h, p, s := parts(t, good(t))
				sig, _ := decodeB64(s)
				return h + "." + p + "." + b64(append([]byte{0}, sig...))
			}},
		{name: "ES256 signature with an extra byte", status: 401, reason: validator.ReasonBadSignature,
			tok: func(t *testing.T, k *testKeys) string {
				h, p, s := parts(t, mint(t, jwa.ES256, k.ec1, "ec1", stdClaims()))
				sig, _ := decodeB64(s)
				return h + "." + p + "." + b64(append(sig, 0))
			}},
		{name: "ES256 signature in ASN.1 DER instead of r||s", status: 401, reason: validator.ReasonBadSignature,
			tok: func(t *testing.T, k *testKeys) string {
				h, p, s := parts(t, mint(t, jwa.ES256, k.ec1, "ec1", stdClaims()))
				sig, _ := decodeB64(s)
				der, _ := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])})
				return h + "." + p + "." + b64(der)
			}},
		{name: "EdDSA signature all zero", status: 401, reason: validator.ReasonBadSignature,
			tok: func(t *testing.T, k *testKeys) string {
				h, p, _ := parts(t, mint(t, jwa.EdDSA, k.ed1, "ed1", stdClaims()))
				return h + "." + p + "." + b64(make([]byte, 64))
			}},

		// --- headers naming keys, crit, b64 (each with a valid signature).
		{name: "jku header", status: 401, reason: validator.ReasonHeaderNotAllowed,
			tok: func(t *testing.T, k *testKeys) string {
				return mint(t, jwa.RS256, k.rsa1, "rsa1", stdClaims(), m{"jku": "https://evil.example/jwks.json"})
			}},
		{name: "jwk header embedding the attacker's key", status: 401, reason: validator.ReasonHeaderNotAllowed,
			tok: func(t *testing.T, k *testKeys) string {
				return mint(t, jwa.RS256, k.attacker, "rsa1", stdClaims(), m{"jwk": publicJWK(&k.attacker.PublicKey, "rsa1", "")})
			}},
		{name: "jwk header embedding the real key", status: 401, reason: validator.ReasonHeaderNotAllowed,
			tok: func(t *testing.T, k *testKeys) string {
				return mint(t, jwa.RS256, k.rsa1, "rsa1", stdClaims(), m{"jwk": publicJWK(&k.rsa1.PublicKey, "rsa1", "")})
			}},
		{name: "x5u header", status: 401, reason: validator.ReasonHeaderNotAllowed,
			tok: func(t *testing.T, k *testKeys) string {
				return mint(t, jwa.RS256, k.rsa1, "rsa1", stdClaims(), m{"x5u": "https://evil.example/cert.pem"})
			}},
		{name: "x5c header", status: 401, reason: validator.ReasonHeaderNotAllowed,
			tok: func(t *testing.T, k *testKeys) string {
				return mint(t, jwa.RS256, k.rsa1, "rsa1", stdClaims(), m{"x5c": []string{"MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"}})
			}},
		{name: "x5c header null", status: 401, reason: validator.ReasonHeaderNotAllowed,
			tok: func(t *testing.T, k *testKeys) string {
				return signRaw(t, jwa.RS256, k.rsa1, []byte(`{"alg":"RS256","kid":"rsa1","x5c":null}`), mustJSON(stdClaims()))
			}},
		{name: "crit header", status: 401, reason: validator.ReasonHeaderNotAllowed,
			tok: func(t *testing.T, k *testKeys) string {
				return mint(t, jwa.RS256, k.rsa1, "rsa1", stdClaims(), m{"crit": []string{"exp"}, "exp": 1})
			}},
		{name: "crit header empty", status: 401, reason: validator.ReasonHeaderNotAllowed,
			tok: func(t *testing.T, k *testKeys) string {
				return mint(t, jwa.RS256, k.rsa1, "rsa1", stdClaims(), m{"crit": []string{}})
			}},
		{name: "b64 false with crit", status: 401, reason: validator.ReasonHeaderNotAllowed,
			tok: func(t *testing.T, k *testKeys) string {
				return mint(t, jwa.RS256, k.rsa1, "rsa1", stdClaims(), m{"b64": false, "crit": []string{"b64"}})
			}},
		{name: "b64 false without crit", status: 401, reason: validator.ReasonHeaderNotAllowed,
			tok: func(t *testing.T, k *testKeys) string {
				return mint(t, jwa.RS256, k.rsa1, "rsa1", stdClaims(), m{"b64": false})
			}},
		{name: "b64 as the string false", status: 401, reason: validator.ReasonHeaderNotAllowed,
			tok: func(t *testing.T, k *testKeys) string {
				return mint(t, jwa.RS256, k.rsa1, "rsa1", stdClaims(), m{"b64": "false"})
			}},

		// --- lifetime (skew 30s).
		{name: "expired beyond skew", status: 401, reason: validator.ReasonExpired,
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"exp": t0.Add(-31 * time.Second).Unix()}) }},
		{name: "expired exactly skew ago", status: 401, reason: validator.ReasonExpired,
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"exp": t0.Add(-30 * time.Second).Unix()}) }},
		{name: "just expired, within skew: accepted",
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"exp": t0.Add(-29 * time.Second).Unix()}) }},
		{name: "expired long ago", status: 401, reason: validator.ReasonExpired,
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"exp": 1}) }},
		{name: "exp negative", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"exp": -1}) }},
		{name: "exp fractional: accepted",
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"exp": float64(t0.Unix()) + 60.5}) }},
		{name: "exp fractional, half a second inside the skew: accepted",
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"exp": float64(t0.Unix()-30) + 0.5}) }},
		{name: "exp fractional, at the end of the skew", status: 401, reason: validator.ReasonExpired,
			tok: func(t *testing.T, k *testKeys) string {
				return good(t, m{"exp": json.Number(fmt.Sprint(t0.Unix()-30) + ".0")})
			}},
		{name: "exp missing", status: 401, reason: validator.ReasonMissingClaim,
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"exp": nil}) }},
		{name: "exp as a string", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string {
				return good(t, m{"exp": fmt.Sprint(t0.Add(time.Hour).Unix())})
			}},
		{name: "exp as a bool", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"exp": true}) }},
		{name: "exp overflowing float64", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string {
				return signRaw(t, jwa.RS256, k.rsa1, rs256Header("rsa1"), appendMember(mustJSON(stdClaims(m{"exp": nil})), `"exp":1e400`))
			}},
		{name: "nbf in the future beyond skew", status: 401, reason: validator.ReasonNotYetValid,
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"nbf": t0.Add(31 * time.Second).Unix()}) }},
		{name: "nbf in the future within skew: accepted",
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"nbf": t0.Add(30 * time.Second).Unix()}) }},
		{name: "nbf as a string", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"nbf": "0"}) }},
		{name: "nbf at the end of int64 (never valid)", status: 401, reason: validator.ReasonMalformed,
			bug: "numericDate: an integer NumericDate near MaxInt64 overflows time.Unix and an nbf/iat that far in the future passes as past",
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"nbf": int64(math.MaxInt64)}) }},
		{name: "nbf fractional in the year 2286", status: 401, reason: validator.ReasonNotYetValid,
			bug: "numericDate: a fractional NumericDate above ~9.22e9 overflows int64 nanoseconds (the 1e11 bound is too loose), so such an nbf wraps to 1677 and passes",
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"nbf": 9999999999.5}) }},
		{name: "exp fractional in the year 2286: accepted",
			bug: "numericDate: a fractional NumericDate above ~9.22e9 overflows int64 nanoseconds, so a far-future exp wraps to 1677 and the token is refused as expired",
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"exp": 9999999999.5}) }},
		// The NumericDate range, 0 to 9999-12-31T23:59:59Z, at both ends
		// and in both number forms.
		{name: "nbf at the epoch, fractional form: accepted",
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"nbf": json.Number("0.0")}) }},
		{name: "nbf just before the epoch, fractional form", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"nbf": json.Number("-0.5")}) }},
		{name: "nbf at the epoch: accepted",
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"nbf": 0}) }},
		{name: "exp at the last second of 9999, fractional form: accepted",
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"exp": json.Number("253402300799.0")}) }},
		{name: "exp past the last second of 9999, fractional form", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"exp": json.Number("253402300799.5")}) }},
		{name: "exp at the last second of 9999: accepted",
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"exp": int64(253402300799)}) }},
		{name: "exp past the last second of 9999", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"exp": int64(253402300800)}) }},
		{name: "exp integer in the year 2286: accepted",
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"exp": int64(9999999999)}) }},
		{name: "iat in the future", status: 401, reason: validator.ReasonIssuedInFuture,
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"iat": t0.Add(5 * time.Minute).Unix()}) }},
		{name: "iat at the end of int64", status: 401, reason: validator.ReasonMalformed,
			bug: "numericDate: an integer NumericDate near MaxInt64 overflows time.Unix and an nbf/iat that far in the future passes as past",
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"iat": int64(math.MaxInt64)}) }},
		{name: "iat as an object", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"iat": m{"s": 1}}) }},

		// --- issuer.
		{name: "iss missing", status: 401, reason: validator.ReasonMissingClaim,
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"iss": nil}) }},
		{name: "iss empty", status: 401, reason: validator.ReasonMissingClaim,
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"iss": ""}) }},
		{name: "iss as an array", status: 401, reason: validator.ReasonMissingClaim,
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"iss": []string{issURL}}) }},
		{name: "wrong issuer", status: 401, reason: validator.ReasonWrongIssuer,
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"iss": "https://evil.example"}) }},
		{name: "issuer with a trailing slash", status: 401, reason: validator.ReasonWrongIssuer,
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"iss": issURL + "/"}) }},
		{name: "issuer in upper case", status: 401, reason: validator.ReasonWrongIssuer,
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"iss": strings.ToUpper(issURL)}) }},
		{name: "issuer with trailing whitespace", status: 401, reason: validator.ReasonWrongIssuer,
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"iss": issURL + " "}) }},
		{name: "org authorization server token (iss = base URL)", status: 401, reason: validator.ReasonWrongIssuer,
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"iss": orgURL}) }},

		// --- audience.
		{name: "wrong audience", status: 401, reason: validator.ReasonWrongAudience,
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"aud": "api://other"}) }},
		{name: "audience missing", status: 401, reason: validator.ReasonWrongAudience,
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"aud": nil}) }},
		{name: "audience prefix", status: 401, reason: validator.ReasonWrongAudience,
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"aud": audience + "x"}) }},
		{name: "aud array containing the right one: accepted",
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"aud": []string{"api://other", audience}}) }},
		{name: "aud array without the right one", status: 401, reason: validator.ReasonWrongAudience,
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"aud": []any{"api://other", 1, nil}}) }},
		{name: "aud as an object", status: 401, reason: validator.ReasonWrongAudience,
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"aud": m{audience: true}}) }},

		// --- scopes (route requires "read").
		{name: "scope superstring", status: 403, reason: validator.ReasonInsufficientScope, cfg: needScopes("read"),
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"scp": []string{"read_all"}}) }},
		{name: "scope string superstring", status: 403, reason: validator.ReasonInsufficientScope, cfg: needScopes("read"),
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"scp": nil, "scope": "read_all write"}) }},
		{name: "scope prefix", status: 403, reason: validator.ReasonInsufficientScope, cfg: needScopes("read"),
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"scp": []string{"rea"}}) }},
		{name: "scope of a different case", status: 403, reason: validator.ReasonInsufficientScope, cfg: needScopes("read"),
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"scp": []string{"READ"}}) }},
		{name: "scp element containing a space", status: 403, reason: validator.ReasonInsufficientScope, cfg: needScopes("read"),
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"scp": []string{"read write"}}) }},
		{name: "no scope claim at all", status: 403, reason: validator.ReasonInsufficientScope, cfg: needScopes("read"),
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"scp": nil}) }},
		{name: "two scopes required, only the first held", status: 403, reason: validator.ReasonInsufficientScope, cfg: needScopes("read", "write"),
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"scp": []string{"read"}}) }},
		{name: "two scopes required, only the second held", status: 403, reason: validator.ReasonInsufficientScope, cfg: needScopes("read", "write"),
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"scp": []string{"write"}}) }},
		{name: "two scopes required, both held", cfg: needScopes("read", "write"),
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"scp": []string{"write", "read"}}) }},
		{name: "scope as a space-separated string: accepted", cfg: needScopes("read", "write"),
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"scp": nil, "scope": " read  write "}) }},
		{name: "both scp and scope", status: 401, reason: validator.ReasonMalformed, cfg: needScopes("read"),
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"scope": "read"}) }},
		{name: "scp containing a non-string", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"scp": []any{"read", 1}}) }},
		{name: "scp as a space-separated string (Azure AD style): accepted",
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"scp": "write read"}) }},
		{name: "scope as an array", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"scp": nil, "scope": []string{"read"}}) }},

		// --- duplicate members (validly signed).
		{name: "two scp members", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string {
				return signRaw(t, jwa.RS256, k.rsa1, rs256Header("rsa1"), appendMember(mustJSON(stdClaims()), `"scp":["admin"]`))
			}},
		{name: "two iss members, attacker's second", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string {
				return signRaw(t, jwa.RS256, k.rsa1, rs256Header("rsa1"), appendMember(mustJSON(stdClaims()), `"iss":"https://evil.example"`))
			}},
		{name: "two iss members, attacker's first", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string {
				return signRaw(t, jwa.RS256, k.rsa1, rs256Header("rsa1"), insertMember(mustJSON(stdClaims()), `"iss":"https://evil.example"`))
			}},
		{name: "duplicate spelled with a JSON escape", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string {
				return signRaw(t, jwa.RS256, k.rsa1, rs256Header("rsa1"), appendMember(mustJSON(stdClaims()), `"\u0073ub":"admin"`))
			}},
		{name: "duplicate in a nested object", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string {
				return signRaw(t, jwa.RS256, k.rsa1, rs256Header("rsa1"), appendMember(mustJSON(stdClaims()), `"ext":{"a":1,"a":2}`))
			}},
		{name: "two alg members in the header", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string {
				return signRaw(t, jwa.RS256, k.rsa1, []byte(`{"alg":"RS256","kid":"rsa1","alg":"none"}`), mustJSON(stdClaims()))
			}},
		{name: "two kid members in the header", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string {
				return signRaw(t, jwa.RS256, k.rsa1, []byte(`{"kid":"attacker","alg":"RS256","kid":"rsa1"}`), mustJSON(stdClaims()))
			}},

		// --- serialization and encoding.
		{name: "JSON serialization (flattened)", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string {
				h, p, s := parts(t, good(t))
				return fmt.Sprintf(`{"payload":%q,"protected":%q,"signature":%q}`, p, h, s)
			}},
		{name: "JSON serialization (general)", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string {
				h, p, s := parts(t, good(t))
				return fmt.Sprintf(`{"payload":%q,"signatures":[{"protected":%q,"signature":%q}]}`, p, h, s)
			}},
		{name: "four parts", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string { return good(t) + ".AAAA" }},
		{name: "trailing dot", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string { return good(t) + "." }},
		{name: "two parts", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string { h, p, _ := parts(t, good(t)); return h + "." + p }},
		{name: "five-part JWE shape", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string {
				return b64([]byte(`{"alg":"RSA-OAEP","enc":"A256GCM","kid":"rsa1"}`)) + ".AAAA.AAAA.AAAA.AAAA"
			}},
		{name: "detached payload", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string { h, _, s := parts(t, good(t)); return h + ".." + s }},
		{name: "empty header part", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string { _, p, s := parts(t, good(t)); return "." + p + "." + s }},
		{name: "oversized", status: 401, reason: validator.ReasonTooLarge,
			tok: func(t *testing.T, k *testKeys) string { return good(t, m{"pad": strings.Repeat("x", 9000)}) }},
		{name: "oversized garbage", status: 401, reason: validator.ReasonTooLarge,
			tok: func(t *testing.T, k *testKeys) string { return strings.Repeat("A", validator.DefaultMaxTokenSize+1) }},
		{name: "garbage", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string { return "this is not a token" }},
		{name: "empty", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string { return "" }},
		{name: "only dots", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string { return ".." }},
		{name: "Bearer prefix left on", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string { return "Bearer " + good(t) }},
		{name: "standard base64 alphabet (+ and /)", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string {
				tok := good(t)
				return strings.NewReplacer("-", "+", "_", "/").Replace(tok) + "+/"
			}},
		{name: "base64 with padding", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string {
				pad := ""
				for {
					h, p, s := parts(t, mint(t, jwa.RS256, k.rsa1, "rsa1", stdClaims(), m{"x": pad}))
					if len(h)%4 != 0 {
						return h + strings.Repeat("=", 4-len(h)%4) + "." + p + "." + s
					}
					pad += "a"
				}
			}},
		{name: "padded signature", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string { return good(t) + "==" }},
		{name: "non-canonical base64 (trailing bits set)", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string {
				h, p, s := parts(t, good(t)) // 256-byte signature: last char carries 4 unused bits
				last := strings.IndexByte(b64alphabet, s[len(s)-1])
				return h + "." + p + "." + s[:len(s)-1] + string(b64alphabet[last|1])
			}},
		{name: "percent-encoded character", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string { h, p, s := parts(t, good(t)); return h + "." + p + "%2E." + s }},
		{name: "space inside", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string { h, p, s := parts(t, good(t)); return h + "." + p + ". " + s }},
		{name: "newline inside the signature part", status: 401, reason: validator.ReasonMalformed,
			bug: "base64.Strict() still ignores CR/LF: a token with a newline inside a part is accepted (token malleability)",
			tok: func(t *testing.T, k *testKeys) string {
				h, p, s := parts(t, good(t))
				return h + "." + p + "." + s[:20] + "\n" + s[20:]
			}},
		{name: "carriage return at the end", status: 401, reason: validator.ReasonMalformed,
			bug: "base64.Strict() still ignores CR/LF: a token with a newline inside a part is accepted (token malleability)",
			tok: func(t *testing.T, k *testKeys) string { return good(t) + "\r" }},
		{name: "trailing data after the payload object", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string {
				return signRaw(t, jwa.RS256, k.rsa1, rs256Header("rsa1"), append(mustJSON(stdClaims()), []byte(`{"iss":"x"}`)...))
			}},
		{name: "trailing garbage after the header object", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string {
				return signRaw(t, jwa.RS256, k.rsa1, append(rs256Header("rsa1"), 'x'), mustJSON(stdClaims()))
			}},
		{name: "payload is an array", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string {
				return signRaw(t, jwa.RS256, k.rsa1, rs256Header("rsa1"), mustJSON([]any{stdClaims()}))
			}},
		{name: "payload is null", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string {
				return signRaw(t, jwa.RS256, k.rsa1, rs256Header("rsa1"), []byte("null"))
			}},
		{name: "payload with a trailing comma", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string {
				p := mustJSON(stdClaims())
				return signRaw(t, jwa.RS256, k.rsa1, rs256Header("rsa1"), append(p[:len(p)-1:len(p)-1], ",}"...))
			}},
		{name: "header with a UTF-8 BOM", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string {
				return signRaw(t, jwa.RS256, k.rsa1, append([]byte("\xef\xbb\xbf"), rs256Header("rsa1")...), mustJSON(stdClaims()))
			}},
		{name: "header not JSON", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string {
				return signRaw(t, jwa.RS256, k.rsa1, []byte("RS256"), mustJSON(stdClaims()))
			}},
		{name: "payload nested 40 deep", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string {
				return signRaw(t, jwa.RS256, k.rsa1, rs256Header("rsa1"),
					appendMember(mustJSON(stdClaims()), `"x":`+strings.Repeat("[", 40)+strings.Repeat("]", 40)))
			}},
		{name: "payload objects nested 40 deep", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string {
				return signRaw(t, jwa.RS256, k.rsa1, rs256Header("rsa1"),
					appendMember(mustJSON(stdClaims()), `"x":`+strings.Repeat(`{"a":`, 40)+"1"+strings.Repeat("}", 40)))
			}},
		{name: "header nested 40 deep", status: 401, reason: validator.ReasonMalformed,
			tok: func(t *testing.T, k *testKeys) string {
				return signRaw(t, jwa.RS256, k.rsa1, appendMember(rs256Header("rsa1"), `"x":`+strings.Repeat("[", 40)+strings.Repeat("]", 40)),
					mustJSON(stdClaims()))
			}},
		{name: "payload nested 10 deep: accepted",
			tok: func(t *testing.T, k *testKeys) string {
				return signRaw(t, jwa.RS256, k.rsa1, rs256Header("rsa1"),
					appendMember(mustJSON(stdClaims()), `"x":`+strings.Repeat("[", 10)+strings.Repeat("]", 10)))
			}},
		{name: "nested a million deep (unsigned, large size limit)", status: 401, reason: validator.ReasonMalformed,
			cfg: func(c *validator.Config) { c.MaxTokenSize = 8 << 20 },
			tok: func(t *testing.T, k *testKeys) string {
				return b64(rs256Header("rsa1")) + "." + b64([]byte(`{"x":`+strings.Repeat("[", 1_000_000))) + ".AAAA"
			}},
	}
}

const b64alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

func decodeB64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

func TestForgedAndMalformedTokens(t *testing.T) {
	k := getKeys()
	cases := forgedCases()
	if len(cases) < 30 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := newClock()
			cfg := baseConfig(clk)
			if c.cfg != nil {
				c.cfg(&cfg)
			}
			v := validator.New(cfg)
			tok := c.tok(t, k)
			res, f := validate(t, v, tok, nil)
			switch c.status {
			case 0:
				wantOK(t, res, f)
			case 401:
				wantInvalid(t, f, c.reason)
			case 403:
				wantForbidden(t, f, c.reason)
			default:
				t.Fatalf("bad case status %d", c.status)
			}
			if f != nil && strings.Contains(f.Reason+f.Scope+f.Subject+f.ClientID, tok) && tok != "" {
				t.Fatalf("failure carries token content")
			}
		})
	}
}

// TestNewlineVariantsAreRejected: whatever the reason, a token with a
// CR/LF inside its header or payload never verifies (its signing input
// changed).
func TestNewlineVariantsAreRejected(t *testing.T) {
	v := validator.New(baseConfig(newClock()))
	h, p, s := parts(t, good(t))
	for _, tok := range []string{h[:5] + "\n" + h[5:] + "." + p + "." + s, h + "." + p[:7] + "\r\n" + p[7:] + "." + s} {
		if _, f := validate(t, v, tok, nil); f == nil || f.Status != http.StatusUnauthorized {
			t.Fatalf("accepted or not 401: %+v", f)
		}
	}
}

// TestEverySingleCharacterMutationIsRejected changes each character of
// genuine tokens to another base64url character (or a dot): none may
// be accepted, and none may panic.
func TestEverySingleCharacterMutationIsRejected(t *testing.T) {
	k := getKeys()
	v := validator.New(baseConfig(newClock()))
	toks := []string{
		good(t),
		mint(t, jwa.ES256, k.ec1, "ec1", stdClaims()),
		mint(t, jwa.EdDSA, k.ed1, "ed1", stdClaims()),
	}
	for _, tok := range toks {
		if _, f := validate(t, v, tok, nil); f != nil {
			t.Fatalf("control token refused: %s", f.Reason)
		}
		for i := range len(tok) {
			for _, repl := range []byte{'.', b64alphabet[(strings.IndexByte(b64alphabet, tok[i])+1)%64], b64alphabet[(strings.IndexByte(b64alphabet, tok[i])+32)%64]} {
				if tok[i] == '.' && repl == '.' {
					continue
				}
				mut := tok[:i] + string(repl) + tok[i+1:]
				if mut == tok {
					continue
				}
				if res, f := validate(t, v, mut, nil); f == nil {
					t.Fatalf("mutation at %d (%q→%q) accepted: %v", i, tok[i], repl, res.Claims)
				} else if f.Status != http.StatusUnauthorized || f.Code != "invalid_token" {
					t.Fatalf("mutation at %d: got %d %q %q", i, f.Status, f.Code, f.Reason)
				}
			}
		}
	}
}

func TestMaxTokenSizeBoundary(t *testing.T) {
	tok := good(t)
	cfg := baseConfig(newClock())
	cfg.MaxTokenSize = len(tok)
	if _, f := validate(t, validator.New(cfg), tok, nil); f != nil {
		t.Fatalf("token of exactly the limit refused: %s", f.Reason)
	}
	cfg.MaxTokenSize = len(tok) - 1
	_, f := validate(t, validator.New(cfg), tok, nil)
	wantInvalid(t, f, validator.ReasonTooLarge)
}

func TestKeysUnavailableIs503(t *testing.T) {
	cfg := baseConfig(newClock())
	cfg.Issuers[0].Keys = inProcess(nil)
	_, f := validate(t, validator.New(cfg), good(t), nil)
	if f == nil || f.Status != http.StatusServiceUnavailable || f.Reason != validator.ReasonKeysUnavailable || f.Issuer != issURL {
		t.Fatalf("got %+v; want 503 keys_unavailable for %s", f, issURL)
	}
	if f.Code == "invalid_token" {
		t.Fatalf("a 503 must not blame the token")
	}
}

func TestResultAndFailureDetails(t *testing.T) {
	cfg := baseConfig(newClock())
	v := validator.New(cfg)
	res, f := validate(t, v, good(t), nil)
	wantOK(t, res, f)
	if res.Issuer.URL != issURL || res.Subject != "user1" || strings.Join(res.Scopes, " ") != "read write" || res.Claims["jti"] != "id-1" {
		t.Fatalf("result %+v", res)
	}
	if _, ok := res.Claims["level"].(json.Number); !ok {
		t.Fatalf("numbers must stay json.Number, got %T", res.Claims["level"])
	}

	// A 403 names the scopes needed, the issuer, subject and client.
	cfg.Scopes = []string{"admin"}
	cfg.AnyScope = []string{"ops", "root"}
	_, f = validate(t, validator.New(cfg), good(t), nil)
	wantForbidden(t, f, validator.ReasonInsufficientScope)
	if f.Scope != "admin ops root" || f.Issuer != issURL || f.Subject != "user1" || f.ClientID != "client1" {
		t.Fatalf("failure %+v", f)
	}
	// client_id is used when cid is absent.
	_, f = validate(t, validator.New(cfg), good(t, m{"cid": nil, "client_id": "client2"}), nil)
	if f == nil || f.ClientID != "client2" {
		t.Fatalf("failure %+v; want client_id client2", f)
	}

	// A 401 after the issuer matched names the issuer; before, it does not.
	_, f = validate(t, v, good(t, m{"aud": "x"}), nil)
	if f == nil || f.Issuer != issURL {
		t.Fatalf("failure %+v", f)
	}
	_, f = validate(t, v, good(t, m{"iss": "https://evil.example"}), nil)
	if f == nil || f.Issuer != "" {
		t.Fatalf("failure %+v: an unknown issuer must not be reported as ours", f)
	}
}

func TestAnyScope(t *testing.T) {
	cfg := baseConfig(newClock())
	cfg.AnyScope = []string{"admin", "write"}
	v := validator.New(cfg)
	res, f := validate(t, v, good(t, m{"scp": []string{"write"}}), nil)
	wantOK(t, res, f)
	_, f = validate(t, v, good(t, m{"scp": []string{"read", "writer"}}), nil)
	wantForbidden(t, f, validator.ReasonInsufficientScope)
	if f.Scope != "admin write" {
		t.Fatalf("scope %q", f.Scope)
	}
	_, f = validate(t, v, good(t, m{"scp": nil}), nil)
	wantForbidden(t, f, validator.ReasonInsufficientScope)

	// Scopes and AnyScope together: both must hold.
	cfg.Scopes = []string{"read"}
	v = validator.New(cfg)
	res, f = validate(t, v, good(t, m{"scp": []string{"read", "admin"}}), nil)
	wantOK(t, res, f)
	_, f = validate(t, v, good(t, m{"scp": []string{"admin"}}), nil)
	wantForbidden(t, f, validator.ReasonInsufficientScope)
	_, f = validate(t, v, good(t, m{"scp": []string{"read"}}), nil)
	wantForbidden(t, f, validator.ReasonInsufficientScope)
}

// TestIssuerKeysAreNotShared: with two issuers, each issuer's tokens are
// checked only against its own keys even when kids collide.
func TestIssuerKeysAreNotShared(t *testing.T) {
	k := getKeys()
	v := validator.New(baseConfig(newClock()))
	res, f := validate(t, v, mint(t, jwa.RS256, k.other, "rsa1", stdClaims(m{"iss": otherURL})), nil)
	wantOK(t, res, f)
	if res.Issuer.URL != otherURL {
		t.Fatalf("issuer %s", res.Issuer.URL)
	}
	// The other issuer allows only RS256: our ES256 key's alg is not
	// allowed for it even if it published one.
	_, f = validate(t, v, mint(t, jwa.ES256, k.ec1, "ec1", stdClaims(m{"iss": otherURL})), nil)
	wantInvalid(t, f, validator.ReasonAlgNotAllowed)
}

// TestCancelledContextDoesNotPanic: an in-process source ignores the
// context; a cancelled request context must still give an answer.
func TestCancelledContextDoesNotPanic(t *testing.T) {
	v := validator.New(baseConfig(newClock()))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, f := v.Validate(ctx, good(t), nil); f != nil {
		t.Fatalf("refused: %s", f.Reason)
	}
}

// TestMalformedPublishedEd25519Key: a published Ed25519 key of the
// wrong length must not let a token crash the validator.
func TestMalformedPublishedEd25519Key(t *testing.T) {
	set, err := jwk.Parse([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"short","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHUR"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig(newClock())
	cfg.Issuers[0].Keys = inProcess(set)
	tok := mint(t, jwa.EdDSA, getKeys().attackEd, "short", stdClaims())
	_, f := validate(t, validator.New(cfg), tok, nil)
	if f == nil || f.Status != http.StatusUnauthorized {
		t.Fatalf("got %+v; want a 401", f)
	}
}

func FuzzValidate(f *testing.F) {
	k := getKeys()
	f.Add(good(f))
	f.Add(mint(f, jwa.ES256, k.ec1, "ec1", stdClaims()))
	f.Add(mint(f, jwa.EdDSA, k.ed1, "ed1", stdClaims()))
	f.Add("")
	f.Add("..")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add(b64([]byte(`{"alg":"RS256","kid":"rsa1"}`)) + "." + b64([]byte(`{"iss":"`+issURL+`","x":[[[[{}]]]]}`)) + ".AAAA")
	v := validator.New(baseConfig(newClock()))
	f.Fuzz(func(t *testing.T, tok string) {
		res, fl := validate(t, v, tok, nil)
		if fl != nil {
			if fl.Reason == "" || (fl.Status != 401 && fl.Status != 403 && fl.Status != 503) {
				t.Fatalf("bad failure %+v", fl)
			}
			return
		}
		if res.Subject != "user1" {
			t.Fatalf("accepted a token nobody signed: %v", res.Claims)
		}
	})
}
