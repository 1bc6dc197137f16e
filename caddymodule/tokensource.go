package caddymodule

import (
	"net/http"
	"strings"

	"github.com/apiaccess/caddy-apiaccess/caddymodule/validator"
)

// invalidRequest is RFC 6750 section 3.1's answer to a request that
// carries its token ambiguously.
func invalidRequest(reason string) *validator.Failure {
	return &validator.Failure{Status: http.StatusBadRequest, Code: "invalid_request", Reason: reason}
}

// extract finds the request's token: the Authorization header (RFC 6750
// section 2.1) and, only when configured, a cookie or query parameter.
// A token in two places, or a header or parameter given twice, is
// refused: clients must use exactly one method (section 2). Unless DPoP
// is off, the header may also be `DPoP <token>` (RFC 9449 section 7.1,
// token68: the b64token syntax).
func (rt *RequireToken) extract(r *http.Request) (string, tokenScheme, *validator.Failure) {
	scheme := schemeOther
	var found []string
	auth := r.Header.Values("Authorization")
	switch {
	case len(auth) > 1:
		return "", scheme, invalidRequest(validator.ReasonMultipleTokens)
	case len(auth) == 1:
		name, tok, ok := strings.Cut(auth[0], " ")
		// The auth-scheme is case-insensitive (RFC 7235 section 2.1).
		switch {
		case ok && strings.EqualFold(name, "Bearer"):
			scheme = schemeBearer
		case ok && rt.dpop != nil && strings.EqualFold(name, "DPoP"):
			scheme = schemeDPoP
		default:
			ok = false
		}
		if ok {
			if !isB64Token(tok) {
				return "", scheme, &validator.Failure{Status: http.StatusUnauthorized, Code: "invalid_token", Reason: validator.ReasonMalformed}
			}
			found = append(found, tok)
		}
	}
	if rt.TokenCookie != "" {
		var vals []string
		for _, c := range r.Cookies() {
			if c.Name == rt.TokenCookie {
				vals = append(vals, c.Value)
			}
		}
		if len(vals) > 1 {
			return "", scheme, invalidRequest(validator.ReasonMultipleTokens)
		}
		found = append(found, vals...)
	}
	if rt.TokenQuery != "" {
		vals := r.URL.Query()[rt.TokenQuery]
		if len(vals) > 1 {
			return "", scheme, invalidRequest(validator.ReasonMultipleTokens)
		}
		found = append(found, vals...)
	}
	switch len(found) {
	case 0:
		return "", scheme, &validator.Failure{Status: http.StatusUnauthorized, Reason: validator.ReasonNoToken}
	case 1:
		if found[0] == "" {
			return "", scheme, &validator.Failure{Status: http.StatusUnauthorized, Code: "invalid_token", Reason: validator.ReasonMalformed}
		}
		return found[0], scheme, nil
	}
	return "", scheme, invalidRequest(validator.ReasonMultipleTokens)
}

// isB64Token checks RFC 6750 section 2.1's b64token syntax:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	i := 0
	for i < len(s) && b64tokenChar[s[i]] {
		i++
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

// b64tokenChar marks the characters of a b64token before its padding.
var b64tokenChar = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/") {
		t[c] = true
	}
	return t
}()
