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

// ParseForm reads an application/x-www-form-urlencoded POST body
// strictly: POST only, the right media type, a bounded size, no
// parameters in the query string (credentials must not travel in URLs,
// RFC 6749 section 2.3.1), and no parameter more than once (RFC 6749
// section 3.2). It returns each parameter's single value.
func ParseForm(w http.ResponseWriter, r *http.Request) (map[string]string, *Error) {
	if r.Method != http.MethodPost {
		return nil, ErrMethodNotAllowed
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, ErrInvalidRequest.WithDescription("The request must have Content-Type application/x-www-form-urlencoded.")
	}
	if r.URL.RawQuery != "" {
		return nil, ErrInvalidRequest.WithDescription("Parameters must be sent in the request body, not the query string.")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, ErrTooLarge
		}
		return nil, ErrInvalidRequest.WithDescription("The request body could not be read.")
	}
	vals, err := url.ParseQuery(string(body))
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
