package inlinehook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Response is the service's answer (Token inline hook reference,
// "Objects in the response that you send").
type Response struct {
	Commands []Command `json:"commands"`
	// Error denies the request: the client gets server_error with its
	// errorSummary.
	Error *ErrorObject `json:"error"`
	// DebugContext is free-form data for the System Log
	// (inline_hook.response.processed).
	DebugContext json.RawMessage `json:"debugContext,omitempty"`
}

// Command is one command: its type and its JSON Patch operations.
type Command struct {
	Type  string      `json:"type"`
	Value []Operation `json:"value"`
}

// Operation is one JSON Patch operation (RFC 6902 subset: add,
// replace, remove). Value is kept raw so that an absent value can be
// told from null.
type Operation struct {
	Op    string          `json:"op"`
	Path  string          `json:"path"`
	Value json.RawMessage `json:"value,omitempty"`
}

// ErrorObject is the answer's error.
type ErrorObject struct {
	ErrorSummary string            `json:"errorSummary"`
	ErrorCauses  []json.RawMessage `json:"errorCauses,omitempty"`
}

// DefaultErrorSummary is what the client is told when the error object
// has no errorSummary (Okta: "the following common default message is
// returned to the end user: The callback service returned an error").
const DefaultErrorSummary = "The callback service returned an error"

// maxSummary bounds the errorSummary passed to the client.
const maxSummary = 1024

// Summary is the error_description the client gets: the errorSummary,
// bounded and valid UTF-8, or Okta's default message.
func (e *ErrorObject) Summary() string {
	s := strings.TrimSpace(e.ErrorSummary)
	if s == "" {
		return DefaultErrorSummary
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) > maxSummary {
		// Cut at a rune boundary, so the bound holds and no rune is
		// split into a replacement character.
		n := maxSummary
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n]
	}
	return s
}

// Failure kinds: why a call gave no usable answer. Okta issues the
// token unchanged in every case ("When there's a communication failure
// with the external service, a timeout for example, the inline hook
// operation is skipped. The token is generated without any modification
// from the inline hook.").
const (
	// Call failures (Okta's inline_hook.executed with outcome FAILURE).
	FailTimeout     = "TIMEOUT"
	FailUnreachable = "UNREACHABLE"
	FailStatus      = "HTTP_STATUS"
	// Answer failures (inline_hook.response.processed FAILURE).
	FailTooLarge  = "RESPONSE_TOO_LARGE"
	FailMalformed = "INVALID_RESPONSE"
	FailPatch     = "INVALID_COMMAND"
	FailError     = "ERROR_RESPONSE"
	// FailEncode: the request could not be encoded, so no call was
	// made (neither event of Okta's applies; the issuer logs an error).
	FailEncode = "REQUEST_NOT_ENCODED"
)

// MaxResponseHeaderBytes bounds the answer's headers as MaxResponseSize
// bounds its body.
const MaxResponseHeaderBytes = 64 << 10

// Result is what one call did, for the log: never a header value or
// the body.
type Result struct {
	// Status is the last HTTP status received (0: none).
	Status int
	// Attempts made (Okta retries at most once).
	Attempts int
	// Elapsed is the call's duration, retry included.
	Elapsed time.Duration
	// Failure is one of the Fail* kinds, "" when the answer was read
	// and parsed; Detail says more (no secret, no URL query).
	Failure, Detail string
}

// Executed reports whether the service answered 200 (what Okta's
// inline_hook.executed records as a success).
func (r Result) Executed() bool {
	return r.Failure == "" || r.Failure == FailTooLarge || r.Failure == FailMalformed
}

// Called reports whether a call was attempted at all (false: the
// request could not be encoded and nothing was sent).
func (r Result) Called() bool { return r.Attempts > 0 }

// Hook calls one external service.
type Hook struct {
	cfg     Config
	client  *http.Client
	timeout time.Duration
}

// New validates c and makes its Hook. c's values are used as given:
// placeholders must be resolved before.
func New(c *Config) (*Hook, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	tr.MaxResponseHeaderBytes = MaxResponseHeaderBytes
	if u, err := url.Parse(c.URL); err == nil && u.Scheme == "http" {
		// Plain http goes to a loopback host only (CheckURL): never
		// through HTTP_PROXY, which would see the secret header.
		tr.Proxy = nil
	}
	return &Hook{cfg: *c, timeout: c.timeout(), client: &http.Client{
		Transport: tr,
		// "If the external service endpoint responds with a redirect,
		// it isn't followed."
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

// Name is the hook's name.
func (h *Hook) Name() string { return h.cfg.Name }

// URL is the endpoint without query (for logs).
func (h *Hook) URL() string { return redact(h.cfg.URL) }

// Call POSTs req and reads the answer. resp is nil unless the service
// answered 200 with a well-formed body under 256 KB. As in Okta, a
// call that fails quickly (no connection, an answer other than 2xx or
// 4xx) is retried once, here within the same timeout; a redirect is
// not followed.
func (h *Hook) Call(ctx context.Context, req *Request) (*Response, Result) {
	start := time.Now()
	var res Result
	body, err := json.Marshal(req)
	if err != nil {
		res.Failure, res.Detail = FailEncode, "encoding the request: "+err.Error()
		return nil, res
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	var resp *Response
	for res.Attempts < 2 {
		res.Attempts++
		var retry bool
		resp, retry = h.attempt(ctx, body, &res)
		if !retry || ctx.Err() != nil {
			break
		}
	}
	res.Elapsed = time.Since(start)
	return resp, res
}

// attempt makes one POST; retry is true when Okta would retry.
func (h *Hook) attempt(ctx context.Context, body []byte, res *Result) (*Response, bool) {
	res.Failure, res.Detail, res.Status = "", "", 0
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, h.cfg.URL, bytes.NewReader(body))
	if err != nil {
		res.Failure, res.Detail = FailUnreachable, "bad url"
		return nil, false
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Accept", "application/json")
	for k, v := range h.cfg.Headers {
		hr.Header.Set(k, v)
	}
	if h.cfg.Authorization != "" {
		hr.Header.Set(h.cfg.authHeader(), h.cfg.Authorization)
	}
	r, err := h.client.Do(hr)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			res.Failure, res.Detail = FailTimeout, fmt.Sprintf("no answer within %s", h.timeout)
			return nil, false
		}
		res.Failure, res.Detail = FailUnreachable, transportError(err)
		return nil, true
	}
	defer r.Body.Close()
	res.Status = r.StatusCode
	if r.StatusCode != http.StatusOK {
		// "When the external service returns a response with any other
		// HTTP status code besides 200, the inline hook operation is
		// skipped." Retried unless 2xx or 4xx.
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, MaxResponseSize))
		res.Failure, res.Detail = FailStatus, fmt.Sprintf("HTTP status %d", r.StatusCode)
		return nil, r.StatusCode < 200 || (r.StatusCode >= 300 && r.StatusCode < 400) || r.StatusCode >= 500
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, MaxResponseSize))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			res.Failure, res.Detail = FailTimeout, fmt.Sprintf("answer not complete within %s", h.timeout)
		} else {
			res.Failure, res.Detail = FailUnreachable, "reading the answer: "+transportError(err)
		}
		return nil, false
	}
	if len(data) >= MaxResponseSize {
		res.Failure, res.Detail = FailTooLarge, fmt.Sprintf("the answer is not under %d bytes", MaxResponseSize)
		return nil, false
	}
	resp, err := ParseResponse(data)
	if err != nil {
		res.Failure, res.Detail = FailMalformed, err.Error()
		return nil, false
	}
	return resp, false
}

// ParseResponse decodes an answer: one JSON object whose commands and
// error have Okta's shape.
func ParseResponse(data []byte) (*Response, error) {
	if !utf8.Valid(data) {
		return nil, errors.New("the answer is not UTF-8 JSON")
	}
	// null (or any non-object) would decode into an empty Response.
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, errors.New("the answer is not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var resp Response
	if err := dec.Decode(&resp); err != nil {
		return nil, fmt.Errorf("the answer is not a JSON object of Okta's shape: %s", jsonError(err))
	}
	if dec.More() {
		return nil, errors.New("the answer has data after its JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("the answer has data after its JSON object")
	}
	return &resp, nil
}

// jsonError names a decoding error without echoing the document.
func jsonError(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("%s is not of type %s", te.Field, te.Type)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "empty or cut short"
	}
	return "invalid JSON"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// transportError is err without the URL url.Error adds (its query may
// hold a secret).
func transportError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}
