package validator_test

import (
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/apiaccess/caddy-apiaccess/caddymodule/keyset"
	"github.com/apiaccess/caddy-apiaccess/caddymodule/validator"
)

// reportsClient is a client id that is also an audience the route
// accepts: the setup in which an ID token (aud = client id) passes the
// audience check.
const reportsClient = "reports"

// oktaAccess is an Okta access token's claim set (Okta signs it with a
// header of alg and kid only).
func oktaAccess(mods ...map[string]any) map[string]any {
	c := map[string]any{
		"ver": 1, "jti": "AT.x1", "iss": issURL, "aud": reportsClient,
		"iat": t0.Add(-time.Minute).Unix(), "exp": t0.Add(time.Hour).Unix(),
		"cid": reportsClient, "uid": "00u1", "scp": []string{"read"},
		"auth_time": t0.Add(-time.Hour).Unix(), "sub": "alice@example.com",
	}
	return apply(c, mods)
}

// oktaID is an Okta ID token's claim set for client `reports`: its aud
// is the client, its sub the user id.
func oktaID(mods ...map[string]any) map[string]any {
	c := map[string]any{
		"ver": 1, "jti": "ID.x1", "iss": issURL, "aud": reportsClient, "sub": "00u1",
		"iat": t0.Add(-time.Minute).Unix(), "exp": t0.Add(time.Hour).Unix(),
		"amr": []string{"pwd"}, "idp": "00o1", "auth_time": t0.Add(-time.Hour).Unix(),
		"at_hash": "fPlsvVszI29LU2UhDyJ9vg", "preferred_username": "alice@example.com",
	}
	return apply(c, mods)
}

func apply(c map[string]any, mods []map[string]any) map[string]any {
	for _, m := range mods {
		for k, v := range m {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
	}
	return c
}

// untypedHeader is Okta's header: no typ.
var untypedHeader = m{"typ": nil}

// reportsRoute accepts audience `reports` (a client id too) from issURL,
// whose key source is typed or not.
func reportsRoute(typed bool) *validator.Validator {
	cfg := baseConfig(newClock())
	cfg.Issuers[0].Audiences = []string{reportsClient}
	set := getKeys().set
	cfg.Issuers[0].Keys = keyset.NewInProcess(func() jwk.Set { return set }, typed)
	return validator.New(cfg)
}

// TestIDTokenIsNotAnAccessToken replays the review's finding: with
// audience `reports` and a client named `reports`, the client's ID token
// passed as an access token. Every kind of ID token is refused, for an
// issuer that types its access tokens and for one that does not (Okta),
// while Okta's untyped access tokens still pass.
func TestIDTokenIsNotAnAccessToken(t *testing.T) {
	k := getKeys()
	sign := func(claims map[string]any, hdr ...map[string]any) string {
		return mint(t, jwa.RS256, k.rsa1, "rsa1", claims, hdr...)
	}
	cases := []struct {
		name  string
		tok   string
		typed bool // the issuer types every access token
		ok    bool
	}{
		{name: "Okta access token, untyped", tok: sign(oktaAccess(), untypedHeader), ok: true},
		{name: "access token typed at+jwt", tok: sign(oktaAccess()), ok: true},
		{name: "access token typed application/at+jwt", tok: sign(oktaAccess(), m{"typ": "application/at+jwt"}), ok: true},
		{name: "access token typed AT+JWT (media types are case-insensitive)", tok: sign(oktaAccess(), m{"typ": "AT+JWT"}), ok: true},
		{name: "access token typed JWT", tok: sign(oktaAccess(), m{"typ": "JWT"}), ok: true},
		{name: "typed issuer, access token typed at+jwt", typed: true, tok: sign(oktaAccess()), ok: true},
		{name: "typed issuer, access token typed application/at+jwt", typed: true, tok: sign(oktaAccess(), m{"typ": "application/at+jwt"}), ok: true},

		{name: "Okta ID token (code flow: at_hash), untyped", tok: sign(oktaID(), untypedHeader)},
		{name: "ID token typed JWT (our issuer's shape)", tok: sign(oktaID(), m{"typ": "JWT"})},
		{name: "ID token typed application/jwt", tok: sign(oktaID(), m{"typ": "application/jwt"})},
		{name: "implicit-flow ID token: nonce, no at_hash", tok: sign(oktaID(m{"at_hash": nil, "nonce": "n-0S6"}), untypedHeader)},
		{name: "hybrid-flow ID token: c_hash only", tok: sign(oktaID(m{"at_hash": nil, "c_hash": "LDktKdoQak3Pk0cnXxCltA"}), untypedHeader)},
		{name: "ID token with access-token claims added (cid, scp)", tok: sign(oktaID(m{"cid": reportsClient, "scp": []string{"read"}}), untypedHeader)},
		{name: "ID-token claim with a null value", tok: sign(oktaID(m{"at_hash": nil, "nonce": nilJSON{}}), untypedHeader)},
		{name: "typed issuer, ID token without typ or ID claims", typed: true, tok: sign(oktaID(m{"at_hash": nil}), untypedHeader)},
		{name: "typed issuer, ID token typed JWT without ID claims", typed: true, tok: sign(oktaID(m{"at_hash": nil}), m{"typ": "JWT"})},
		{name: "typed issuer, access-token claims but typed JWT", typed: true, tok: sign(oktaAccess(), m{"typ": "JWT"})},
		{name: "logout token (typ logout+jwt)", tok: sign(oktaAccess(), m{"typ": "logout+jwt"})},
		{name: "DPoP proof (typ dpop+jwt)", tok: sign(oktaAccess(), m{"typ": "dpop+jwt"})},
		{name: "typ at+jwt with a suffix", tok: sign(oktaAccess(), m{"typ": "at+jwt2"})},
		{name: "typ empty", tok: sign(oktaAccess(), m{"typ": ""})},
		{name: "typ not a string", tok: sign(oktaAccess(), m{"typ": []string{"at+jwt"}})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, f := validate(t, reportsRoute(c.typed), c.tok, nil)
			if c.ok {
				wantOK(t, res, f)
				return
			}
			wantInvalid(t, f, validator.ReasonNotAccessToken)
			if f.Issuer != issURL {
				t.Fatalf("failure issuer %q, want %q for the log", f.Issuer, issURL)
			}
		})
	}
}

// nilJSON marshals as JSON null: a claim present with a null value.
type nilJSON struct{}

func (nilJSON) MarshalJSON() ([]byte, error) { return []byte("null"), nil }

// TestIDTokenRefusedBeforeTheCache: a refused ID token is not cached as
// verified, so it stays refused on every try.
func TestIDTokenRefusedBeforeTheCache(t *testing.T) {
	cfg := baseConfig(newClock())
	cfg.Issuers[0].Audiences = []string{reportsClient}
	cfg.CacheSize = 100
	v := validator.New(cfg)
	tok := mint(t, jwa.RS256, getKeys().rsa1, "rsa1", oktaID(), untypedHeader)
	for range 3 {
		_, f := validate(t, v, tok, nil)
		wantInvalid(t, f, validator.ReasonNotAccessToken)
	}
}

// TestIntrospectedIDTokenRefused: an issuer that introspects ID and
// refresh tokens too (RFC 7662 token_type) does not get them past an
// introspecting route either.
func TestIntrospectedIDTokenRefused(t *testing.T) {
	cases := []struct {
		name   string
		answer map[string]any
		ok     bool
	}{
		{name: "access token", answer: activeAnswer(), ok: true},
		{name: "token_type Bearer", answer: activeAnswer(m{"token_type": "Bearer"}), ok: true},
		{name: "token_type id_token", answer: activeAnswer(m{"token_type": "id_token"})},
		{name: "token_type ID_Token", answer: activeAnswer(m{"token_type": "ID_Token"})},
		{name: "token_type refresh_token", answer: activeAnswer(m{"token_type": "refresh_token"})},
		{name: "ID-token claims: nonce", answer: activeAnswer(m{"nonce": "n-0S6"})},
		{name: "ID-token claims: at_hash", answer: activeAnswer(m{"at_hash": "x"})},
		{name: "ID-token claims: c_hash", answer: activeAnswer(m{"c_hash": "x"})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newIntroServer(t)
			s.answer("tok", c.answer)
			res, f := validate(t, validator.New(introConfig(s, newClock(), 0, 0)), "tok", nil)
			if c.ok {
				wantOK(t, res, f)
				return
			}
			wantInvalid(t, f, validator.ReasonNotAccessToken)
		})
	}
}
