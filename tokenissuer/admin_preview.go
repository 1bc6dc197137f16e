package tokenissuer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/caddyserver/caddy/v2"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/authserver"
)

// maxPreviewBody bounds a preview request's JSON body.
const maxPreviewBody = 64 << 10

// servePreview is `POST /token_issuer/{as}/preview`: the body is an
// authserver.PreviewRequest (client_id, grant_type, user, scopes), the
// answer an authserver.Preview: which policy and rule match (rule by
// rule), the claims and lifetimes of the tokens that would be issued,
// the inline hook. Nothing is signed, stored or logged to the System
// Log (no Okta event type for a token preview was found in its docs).
// Errors are Caddy's admin errors, `{"error": "..."}`: 404 for an
// unknown server, client or user, 400 for a request that cannot be
// made (a grant type the client may not use, an unknown scope).
func (a *adminAPI) servePreview(w http.ResponseWriter, r *http.Request, iss *authserver.Issuer, as string) error {
	if r.Method != http.MethodPost {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed", r.Method)}
	}
	var req authserver.PreviewRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxPreviewBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("decoding the preview request: %w", err)}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: errors.New("decoding the preview request: one JSON object expected")}
	}
	p, err := iss.Preview(r.Context(), as, req)
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
