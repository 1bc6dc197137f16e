package tokenissuer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/caddyserver/caddy/v2"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/authserver"
)

// maxPreviewBody bounds a preview request's JSON body (413 beyond).
const maxPreviewBody = 64 << 10

// servePreview is `POST /token_issuer/{as}/preview`: the body is an
// authserver.PreviewRequest (client_id, grant_type, user, scopes), the
// answer an authserver.Preview: which policy and rule match (rule by
// rule), the claims and lifetimes of the tokens that would be issued,
// the inline hook. Nothing is signed, stored or logged to the System
// Log (no Okta event type for a token preview was found in its docs).
// Errors are Caddy's admin errors, `{"error": "..."}`: 404 for an
// unknown server, client or user, 400 for a request that cannot be
// made (a grant type the client may not use, an unknown scope, a body
// that is not one JSON object), 413 for a body over 64 KiB.
func (a *adminAPI) servePreview(w http.ResponseWriter, r *http.Request, iss *authserver.Issuer, as string) error {
	if r.Method != http.MethodPost {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed", r.Method)}
	}
	req, err := decodePreviewRequest(w, r)
	if err != nil {
		return err
	}
	p, err := iss.Preview(r.Context(), as, *req)
	if err != nil {
		var pe *authserver.PreviewError
		if errors.As(err, &pe) && pe.Status != 0 {
			return caddy.APIError{HTTPStatus: pe.Status, Err: pe}
		}
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	return json.NewEncoder(w).Encode(p)
}

// decodePreviewRequest reads the body: one JSON object (not null, not an
// array), no unknown fields, maxPreviewBody bytes at most.
func decodePreviewRequest(w http.ResponseWriter, r *http.Request) (*authserver.PreviewRequest, error) {
	bad := func(err error) error {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return caddy.APIError{HTTPStatus: http.StatusRequestEntityTooLarge,
				Err: fmt.Errorf("decoding the preview request: the body is larger than %d bytes", maxPreviewBody)}
		}
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("decoding the preview request: %w", err)}
	}
	var raw json.RawMessage
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxPreviewBody))
	if err := dec.Decode(&raw); err != nil {
		return nil, bad(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, bad(err)
		}
		return nil, bad(errors.New("one JSON object expected"))
	}
	if len(raw) == 0 || raw[0] != '{' {
		// null would decode to an empty request, an array or a string
		// to an error naming Go types.
		return nil, bad(errors.New("the body must be one JSON object"))
	}
	var req authserver.PreviewRequest
	strict := json.NewDecoder(bytes.NewReader(raw))
	strict.DisallowUnknownFields()
	if err := strict.Decode(&req); err != nil {
		return nil, bad(err)
	}
	return &req, nil
}
