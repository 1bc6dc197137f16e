package validator

import "strings"

// idTokenClaims are claims only ID tokens carry (OpenID Connect Core
// sections 2, 3.1.3.6 and 3.3.2.11): `nonce` (sent back from the
// authentication request, required in every implicit-flow ID token),
// `at_hash` and `c_hash` (bind the ID token to the access token or code
// issued with it). RFC 9068 access tokens have no use for them, and Okta
// reserves all three for ID tokens, so an Okta access token never
// carries them.
var idTokenClaims = []string{"nonce", "at_hash", "c_hash"}

// isAccessToken tells an access token from an ID token (or any other
// JWT the issuer signs). An ID token's `aud` is a client id, and a route
// whose audience equals a client id would otherwise accept it: with
// another `sub`, its own lifetime, and no revocation.
//
//   - typ "at+jwt" (RFC 9068 section 2.1; "application/at+jwt" is the
//     same media type, compared case-insensitively per RFC 7515 section
//     4.1.9) declares an access token.
//   - Any typ but that and the generic "JWT" declares another kind of
//     token (RFC 8725 section 3.11): refused.
//   - typed: the issuer types every access token (RFC 9068 section 4),
//     so anything else is not one.
//   - Untyped or "JWT" tokens of other issuers (Okta types neither its
//     access nor its ID tokens) are refused when they carry a claim
//     only ID tokens carry.
func isAccessToken(hdr, claims map[string]any, typed bool) bool {
	if raw, present := hdr["typ"]; present {
		typ, ok := raw.(string)
		if !ok {
			return false
		}
		switch strings.TrimPrefix(strings.ToLower(typ), "application/") {
		case "at+jwt":
			return true
		case "jwt":
		default:
			return false
		}
	}
	if typed {
		return false
	}
	for _, c := range idTokenClaims {
		if _, ok := claims[c]; ok {
			return false
		}
	}
	return true
}
