package oauth

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
)

// MaxBodyBytes caps request bodies of the form endpoints; a client
// assertion with a certificate chain fits with room to spare.
const MaxBodyBytes = 64 << 10

// assertionGrantQuery reports whether q is exactly what Okta's Go SDK
// (okta-sdk-golang v5, PrivateKey mode) sends in the query string of its
// token request, with an empty body: a client_credentials grant whose
// client authenticates by a signed assertion (RFC 7523), never a secret.
// The assertion is single-use (its jti is marked) and short-lived, so a
// URL that holds it, once logged, cannot be replayed.
func assertionGrantQuery(q string) bool {
	vals, err := url.ParseQuery(q)
	if err != nil || vals.Get("grant_type") != "client_credentials" ||
		vals.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" || vals.Get("client_assertion") == "" {
		return false
	}
	for k := range vals {
		switch k {
		case "grant_type", "scope", "client_assertion_type", "client_assertion":
		default:
			return false
		}
	}
	return true
}

// ParseForm reads an application/x-www-form-urlencoded POST body
// strictly: POST only, the right media type, a bounded size, no
// parameters in the query string (credentials must not travel in URLs,
// RFC 6749 section 2.3.1; the one exception is assertionGrantQuery's), and no parameter more than once (RFC 6749
// section 3.2). It returns each parameter's single value.
func ParseForm(w http.ResponseWriter, r *http.Request) (map[string]string, *Error) {
	if r.Method != http.MethodPost {
		return nil, ErrMethodNotAllowed
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, ErrInvalidRequest.WithDescription("The request must have Content-Type application/x-www-form-urlencoded.")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, ErrTooLarge
		}
		return nil, ErrInvalidRequest.WithDescription("The request body could not be read.")
	}
	raw := string(body)
	if r.URL.RawQuery != "" {
		if len(body) > 0 || !assertionGrantQuery(r.URL.RawQuery) {
			return nil, ErrInvalidRequest.WithDescription("Parameters must be sent in the request body, not the query string.")
		}
		raw = r.URL.RawQuery
	}
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return nil, ErrInvalidRequest.WithDescription("The request body is not valid form encoding.")
	}
	out := make(map[string]string, len(vals))
	for k, v := range vals {
		if len(v) != 1 {
			return nil, ErrInvalidRequest.WithDescription("The '" + k + "' parameter was included more than once.")
		}
		out[k] = v[0]
	}
	return out, nil
}
