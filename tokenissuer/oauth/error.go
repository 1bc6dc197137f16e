// Package oauth holds the wire forms shared by the issuer's endpoints:
// RFC 6749 section 5.2 errors and strict form parsing.
package oauth

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// Error is an OAuth 2.0 error response (RFC 6749 section 5.2). Values
// are templates: copy them with WithDescription before changing.
type Error struct {
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
	// Status is the HTTP status to answer with.
	Status int `json:"-"`
	// Reason is what the log records; never sent to the client.
	Reason string `json:"-"`
	// Cause is the underlying failure (a store or directory error), for
	// the log only; errors.Is and errors.As see it through Unwrap.
	Cause error `json:"-"`
	// RetryAfter, when set, is sent as Retry-After (RFC 9110 section
	// 10.2.3), on 429 and 503 answers.
	RetryAfter time.Duration `json:"-"`
}

func (e *Error) Error() string {
	if e.Description == "" {
		return e.Code
	}
	return e.Code + ": " + e.Description
}

// WithDescription returns a copy with another description.
func (e *Error) WithDescription(d string) *Error {
	c := *e
	c.Description = d
	return &c
}

// Unwrap returns the underlying cause, if any.
func (e *Error) Unwrap() error { return e.Cause }

// WithCause returns a copy carrying the underlying failure, for the log
// only; the reason defaults to its text.
func (e *Error) WithCause(err error) *Error {
	c := *e
	c.Cause = err
	if c.Reason == "" && err != nil {
		c.Reason = err.Error()
	}
	return &c
}

// WithReason returns a copy carrying a log-only reason.
func (e *Error) WithReason(r string) *Error {
	c := *e
	c.Reason = r
	return &c
}

// WithRetryAfter returns a copy answered with Retry-After d.
func (e *Error) WithRetryAfter(d time.Duration) *Error {
	c := *e
	c.RetryAfter = d
	return &c
}

// Error templates. Descriptions follow Okta's wording where Okta has one,
// so clients written against Okta see the same text.
var (
	ErrInvalidRequest = &Error{Code: "invalid_request", Status: http.StatusBadRequest,
		Description: "The request is missing a required parameter, includes an invalid parameter value, includes a parameter more than once, or is otherwise malformed."}
	ErrInvalidClient = &Error{Code: "invalid_client", Status: http.StatusUnauthorized,
		Description: "Client authentication failed. Either the client or the client credentials are invalid."}
	ErrUnauthorizedClient = &Error{Code: "unauthorized_client", Status: http.StatusBadRequest,
		Description: "The client is not authorized to use the provided grant type. Configured grant types: [%s]."}
	ErrUnsupportedGrantType = &Error{Code: "unsupported_grant_type", Status: http.StatusBadRequest,
		Description: "The authorization grant type is not supported by the authorization server."}
	ErrInvalidScope = &Error{Code: "invalid_scope", Status: http.StatusBadRequest,
		Description: "One or more scopes are not configured for the authorization server resource."}
	ErrAccessDenied = &Error{Code: "access_denied", Status: http.StatusBadRequest,
		Description: "Policy evaluation failed for this request, please check the policy configurations."}
	ErrUnsupportedTokenType = &Error{Code: "unsupported_token_type", Status: http.StatusBadRequest,
		Description: "The authorization server does not support the revocation of the presented token type."}
	ErrServer = &Error{Code: "server_error", Status: http.StatusInternalServerError,
		Description: "The authorization server encountered an unexpected condition that prevented it from fulfilling the request."}
	// ErrTemporarilyUnavailable: the state store cannot be reached, so
	// nothing was issued; retry shortly (RFC 6749 section 4.1.2.1 names
	// the code; the token endpoint answers it as a 503 too).
	ErrTemporarilyUnavailable = &Error{Code: "temporarily_unavailable", Status: http.StatusServiceUnavailable,
		Description: "The authorization server is temporarily unable to handle the request. Try again shortly."}
	ErrMethodNotAllowed = &Error{Code: "invalid_request", Status: http.StatusMethodNotAllowed,
		Description: "The endpoint only accepts POST requests."}
	ErrTooLarge = &Error{Code: "invalid_request", Status: http.StatusRequestEntityTooLarge,
		Description: "The request body is too large."}
)

// FromStore answers a failed store operation: 503
// temporarily_unavailable when the store cannot be reached now, else
// 500. The cause goes to the log only.
func FromStore(err error) *Error {
	if errors.Is(err, store.ErrUnavailable) {
		return ErrTemporarilyUnavailable.WithReason("store: " + err.Error()).WithCause(err)
	}
	return ErrServer.WithReason("store: " + err.Error()).WithCause(err)
}

// RetryAfter is the Retry-After (seconds) of 503 answers.
const RetryAfter = "2"

// WriteError answers with err in RFC 6749 JSON form. Client
// authentication failures carry a challenge (RFC 6749 section 5.2).
func WriteError(w http.ResponseWriter, err *Error) {
	h := w.Header()
	if err.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Basic realm="token_issuer"`)
	}
	if err.Status == http.StatusMethodNotAllowed {
		h.Set("Allow", http.MethodPost)
	}
	if err.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((err.RetryAfter+time.Second-1)/time.Second)))
	} else if err.Status == http.StatusServiceUnavailable {
		h.Set("Retry-After", RetryAfter)
	}
	WriteJSON(w, err.Status, err)
}

// WriteJSON answers with v as JSON. Every issuer answer is uncacheable:
// tokens and token metadata must not be stored (RFC 6749 section 5.1).
func WriteJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	b, err := json.Marshal(v)
	if err != nil {
		b, status = []byte(`{"error":"server_error"}`), http.StatusInternalServerError
	}
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
