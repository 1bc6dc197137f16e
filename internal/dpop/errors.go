package dpop

// Error codes (RFC 9449 section 12.2).
const (
	// CodeInvalidProof: the proof is missing, malformed or fails a check
	// (RFC 9449 sections 5 and 7.1).
	CodeInvalidProof = "invalid_dpop_proof"
	// CodeUseNonce: the server requires a nonce the proof lacks or has
	// let go stale (RFC 9449 sections 8 and 9); the client retries with
	// Error.Nonce, sent to it in the DPoP-Nonce header.
	CodeUseNonce = "use_dpop_nonce"
)

// Reasons: stable words for logs, metrics and placeholders. They never
// hold proof content.
const (
	ReasonTooLarge         = "too_large"
	ReasonMalformed        = "malformed"
	ReasonBadTyp           = "bad_typ"
	ReasonAlgNotAllowed    = "alg_not_allowed"
	ReasonHeaderNotAllowed = "header_not_allowed"
	ReasonNoJWK            = "missing_jwk"
	ReasonPrivateKey       = "private_key"
	ReasonBadKey           = "bad_key"
	ReasonWeakKey          = "weak_key"
	ReasonKeyAlgMismatch   = "key_alg_mismatch"
	ReasonBadSignature     = "bad_signature"
	ReasonMissingClaim     = "missing_claim"
	ReasonBadJTI           = "bad_jti"
	ReasonHTMMismatch      = "htm_mismatch"
	ReasonHTUMismatch      = "htu_mismatch"
	ReasonIATStale         = "iat_stale"
	ReasonIATFuture        = "iat_future"
	ReasonATHMissing       = "ath_missing"
	ReasonATHMismatch      = "ath_mismatch"
	ReasonNonceMissing     = "nonce_missing"
	ReasonNonceStale       = "nonce_stale"
	ReasonReplayed         = "replayed"
)

// Error is a refused proof. Any other error from Verify is the server's
// (a replay store that cannot answer, a request URL that cannot be
// parsed): the request must be refused then too, but it is not the
// client's fault.
type Error struct {
	// Code is CodeInvalidProof or CodeUseNonce.
	Code string
	// Reason is one of the Reason constants.
	Reason string
	// Nonce, with CodeUseNonce, is the nonce to send in DPoP-Nonce.
	Nonce string
}

func (e *Error) Error() string { return "dpop: " + e.Code + ": " + e.Reason }

// Description is a short human-readable text for error_description;
// like Reason it holds nothing of the proof.
func (e *Error) Description() string {
	if d, ok := descriptions[e.Reason]; ok {
		return d
	}
	return "invalid DPoP proof"
}

var descriptions = map[string]string{
	ReasonTooLarge:         "DPoP proof too large",
	ReasonMalformed:        "DPoP proof is not a well-formed compact JWS",
	ReasonBadTyp:           "DPoP proof typ must be dpop+jwt",
	ReasonAlgNotAllowed:    "DPoP proof algorithm not allowed",
	ReasonHeaderNotAllowed: "DPoP proof header not allowed",
	ReasonNoJWK:            "DPoP proof lacks a jwk header",
	ReasonPrivateKey:       "DPoP proof jwk must be a public key",
	ReasonBadKey:           "DPoP proof jwk is not a usable public key",
	ReasonWeakKey:          "DPoP proof key too small",
	ReasonKeyAlgMismatch:   "DPoP proof algorithm does not fit its key",
	ReasonBadSignature:     "DPoP proof signature invalid",
	ReasonMissingClaim:     "DPoP proof lacks a required claim",
	ReasonBadJTI:           "DPoP proof jti invalid",
	ReasonHTMMismatch:      "DPoP proof htm does not match the request method",
	ReasonHTUMismatch:      "DPoP proof htu does not match the request URI",
	ReasonIATStale:         "DPoP proof too old",
	ReasonIATFuture:        "DPoP proof issued in the future",
	ReasonATHMissing:       "DPoP proof lacks ath",
	ReasonATHMismatch:      "DPoP proof ath does not match the access token",
	ReasonNonceMissing:     "DPoP nonce required",
	ReasonNonceStale:       "DPoP nonce invalid or stale",
	ReasonReplayed:         "DPoP proof replayed",
}

func invalid(reason string) *Error { return &Error{Code: CodeInvalidProof, Reason: reason} }
