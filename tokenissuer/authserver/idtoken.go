package authserver

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/claims"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
)

// IDTokenLifetime is Okta's fixed ID-token lifetime.
const IDTokenLifetime = time.Hour

// idClaims are the ID token's claims (OpenID Connect Core section 2)
// but at_hash, which binds the access token once it is signed (section
// 3.1.3.6): sub is the user id, aud the client, identity claims follow
// the granted scopes. It is always issued beside an access token, so
// custom ID-token claims are those Okta puts in such an ID token: the
// ones with always_include_in_token (claims.IDToken); the others are
// given at userinfo.
func (i *Issuer) idClaims(s *Server, c *clientauth.Client, u *directory.User, g grantInfo, in claims.Input) (map[string]any, []claims.Failure) {
	now := i.now()
	m := scopeClaims(u, g.scopes)
	m["ver"], m["jti"], m["iss"], m["aud"] = 1, "ID."+newJTI()[3:], s.Issuer, c.ID
	m["sub"], m["iat"], m["exp"] = u.ID, now.Unix(), now.Add(IDTokenLifetime).Unix()
	m["auth_time"], m["amr"], m["idp"] = g.authTime.Unix(), g.amr, s.Issuer
	m["acr"] = acrOf(g.amr, g.acrValues)
	if g.nonce != "" {
		m["nonce"] = g.nonce
	}
	var failed []claims.Failure
	if s.claims.HasToken(claims.IDToken) {
		custom := map[string]any{}
		failed = s.claims.EvaluateFor(claims.IDToken, in, custom)
		for k, v := range custom {
			if _, taken := m[k]; !taken {
				m[k] = v
			}
		}
	}
	return m, failed
}

// signIDToken signs the ID token's claims m with at_hash of accessToken.
func (i *Issuer) signIDToken(ctx context.Context, s *Server, m map[string]any, accessToken string) (string, *oauth.Error) {
	set := s.keys.Current()
	m["at_hash"] = tokenHash(set.ActiveAlg, accessToken)
	payload, err := json.Marshal(m)
	if err != nil {
		return "", oauth.ErrServer.WithReason("encoding ID token").WithCause(err)
	}
	return i.sign(ctx, s, set, set.IDHeader, payload)
}

// tokenHash is at_hash: the left half of the hash of the token's ASCII
// octets, with the hash of the signing algorithm (SHA-512 for Ed25519).
func tokenHash(alg jwa.SignatureAlgorithm, tok string) string {
	var sum []byte
	if alg == jwa.EdDSA {
		h := sha512.Sum512([]byte(tok))
		sum = h[:]
	} else {
		h := sha256.Sum256([]byte(tok))
		sum = h[:]
	}
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

// profileClaims are the standard claims of scope profile (OpenID
// Connect Core section 5.4) taken from the user's profile.
var profileClaims = []string{"name", "family_name", "given_name", "middle_name", "nickname", "profile", "picture",
	"website", "gender", "birthdate", "zoneinfo", "locale", "updated_at"}

// scopeClaims returns the identity claims the scopes grant.
func scopeClaims(u *directory.User, scopes []string) map[string]any {
	m := map[string]any{}
	has := func(s string) bool {
		for _, x := range scopes {
			if x == s {
				return true
			}
		}
		return false
	}
	copyProfile := func(names ...string) {
		for _, n := range names {
			if v, ok := u.Profile[n]; ok {
				m[n] = v
			}
		}
	}
	if has("profile") {
		copyProfile(profileClaims...)
		m["preferred_username"] = u.Login
	}
	if has("email") {
		copyProfile("email", "email_verified")
	}
	if has("address") {
		copyProfile("address")
	}
	if has("phone") {
		copyProfile("phone_number", "phone_number_verified")
	}
	if has("groups") {
		g := u.Groups
		if g == nil {
			g = []string{}
		}
		m["groups"] = g
	}
	return m
}

// dpopAuth reads `Authorization: DPoP <token>` (RFC 9449 section 7.1).
func dpopAuth(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	return tok, ok && strings.EqualFold(scheme, "DPoP") && tok != "" && !strings.ContainsAny(tok, " \t")
}

// bearer extracts an RFC 6750 section 2.1 bearer token.
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	return tok, ok && strings.EqualFold(scheme, "Bearer") && tok != "" && !strings.ContainsAny(tok, " \t")
}
