package ssf

import "errors"

// PollRequest is the body of a poll (RFC 8936 section 2.1).
type PollRequest struct {
	// MaxEvents caps the SETs returned; nil means the transmitter's
	// limit, 0 an acknowledge-only request.
	MaxEvents *int `json:"maxEvents,omitempty"`
	// ReturnImmediately false (the default) lets the transmitter hold the
	// request until a SET is available (long polling).
	ReturnImmediately bool `json:"returnImmediately,omitempty"`
	// Ack lists the jti of every SET processed since the last poll.
	Ack []string `json:"ack,omitempty"`
	// SetErrs reports SETs that failed, by jti (section 2.4.4).
	SetErrs map[string]SetErr `json:"setErrs,omitempty"`
}

// PollResponse is the answer to a poll (RFC 8936 section 2.2).
type PollResponse struct {
	// Sets maps each SET's jti to the SET; always present, maybe empty.
	Sets map[string]string `json:"sets"`
	// MoreAvailable tells that unacknowledged SETs remain beyond Sets.
	MoreAvailable bool `json:"moreAvailable,omitempty"`
}

// SetErr is one SET's error (RFC 8935 section 2.3, RFC 8936 2.4.4); the
// same shape is a poll endpoint's error body.
type SetErr struct {
	Err         string `json:"err"`
	Description string `json:"description,omitempty"`
}

// Security Event Token error codes (RFC 8935 section 2.4 and its IANA
// registry).
const (
	ErrCodeInvalidRequest       = "invalid_request"
	ErrCodeInvalidKey           = "invalid_key"
	ErrCodeInvalidIssuer        = "invalid_issuer"
	ErrCodeInvalidAudience      = "invalid_audience"
	ErrCodeAuthenticationFailed = "authentication_failed"
	ErrCodeAccessDenied         = "access_denied"
)

// SetErrFor is the setErrs entry a receiver reports for a SET Verify
// refused.
func SetErrFor(err error) SetErr {
	switch {
	case errors.Is(err, ErrIssuer):
		return SetErr{Err: ErrCodeInvalidIssuer, Description: "iss is not the stream's issuer"}
	case errors.Is(err, ErrAudience):
		return SetErr{Err: ErrCodeInvalidAudience, Description: "aud is not the stream's audience"}
	case errors.Is(err, ErrKey), errors.Is(err, ErrAlgorithm):
		return SetErr{Err: ErrCodeInvalidKey, Description: "no acceptable key"}
	case errors.Is(err, ErrSignature):
		return SetErr{Err: ErrCodeAuthenticationFailed, Description: "signature does not verify"}
	case errors.Is(err, ErrEvent), errors.Is(err, ErrSubject):
		return SetErr{Err: ErrCodeInvalidRequest, Description: "event not understood"}
	}
	return SetErr{Err: ErrCodeInvalidRequest, Description: "malformed SET"}
}
