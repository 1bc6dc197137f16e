package authserver

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// codeGrant is an authorization code's record. After its one use it is
// kept (marked used, with what it issued) until it expires, so a
// replay can revoke those tokens (RFC 6749 section 4.1.2).
type codeGrant struct {
	authzRequest
	Used      bool      `json:"used,omitempty"`
	IssuedJTI string    `json:"jti,omitempty"`
	IssuedExp time.Time `json:"jti_exp,omitzero"`
	Family    string    `json:"family,omitempty"`
	// FamilyExp is when that family ends: a replay marks it revoked
	// until then (plus the longest access token), however long the
	// rule lets refresh tokens live.
	FamilyExp time.Time `json:"family_exp,omitzero"`
	// Replayed is set by a use after the first; the first use, if still
	// issuing, then revokes what it issued.
	Replayed bool `json:"replayed,omitempty"`
	// Issued is when the code was issued: one issued before a cut-off of
	// its user or client (subject_revoke.go) redeems nothing.
	Issued time.Time `json:"issued,omitzero"`
}

// issueCode ends the authorization: a single-use code, valid for
// CodeLifetime, sent to the redirect URI with state and iss.
func (i *Issuer) issueCode(w http.ResponseWriter, r *http.Request, s *Server, req *authzRequest) {
	code := randomToken()
	b, _ := json.Marshal(codeGrant{authzRequest: *req, Issued: i.now()})
	if err := i.store.PutRecord(r.Context(), store.NSCode, refreshHash(code), b, i.now().Add(CodeLifetime)); err != nil {
		i.log.Error("storing an authorization code failed", zap.Error(err))
		if errors.Is(err, store.ErrUnavailable) {
			// RFC 6749 section 4.1.2.1.
			e := oauth.ErrTemporarilyUnavailable
			i.redirectError(w, r, s, req, e.Code, e.Description)
			return
		}
		i.redirectError(w, r, s, req, "server_error", "The authorization server encountered an unexpected condition.")
		return
	}
	i.logSuccess(EventAuthorize, decision{server: s, clientID: req.ClientID, userID: req.UserID, scopes: req.Scopes, req: r})
	i.respond(w, r, s, req, map[string]string{"code": code})
}
