package authserver

import (
	"errors"
	"net/http"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// serveRevoke is the revocation endpoint (RFC 7009). Unknown, invalid
// and expired tokens are answered 200 (section 2.2); a token issued to
// another client is refused (section 2.1).
func (i *Issuer) serveRevoke(w http.ResponseWriter, r *http.Request, s *Server) {
	d := decision{server: s}
	fail := func(e *oauth.Error) {
		i.logFailure(EventRevoke, d, e)
		oauth.WriteError(w, e)
	}
	tok, ok := i.tokenParam(w, r, s, "revoke", &d, fail)
	if !ok {
		return
	}
	t, err := i.verifyAccessToken(s, tok)
	if err != nil {
		// Not an access token: a refresh token revokes its family.
		rt, err := i.lookupRefresh(r.Context(), s, tok)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			fail(oauth.FromStore(err))
			return
		}
		if err == nil {
			if rt.ClientID != d.clientID {
				fail(oauth.ErrInvalidRequest.WithDescription("The token was not issued to the requesting client.").WithReason("refresh token belongs to client " + rt.ClientID))
				return
			}
			if err := i.revokeFamily(r.Context(), rt); err != nil {
				fail(oauth.FromStore(err))
				return
			}
			i.logSuccess(EventRevoke, d)
		}
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		return
	}
	d.jti = t.JwtID()
	if cid, _ := t.PrivateClaims()["cid"].(string); cid != d.clientID {
		fail(oauth.ErrInvalidRequest.WithDescription("The token was not issued to the requesting client.").WithReason("token belongs to client " + cid))
		return
	}
	if err := i.revoke(r.Context(), t.JwtID(), t.Expiration()); err != nil {
		fail(oauth.FromStore(err))
		return
	}
	i.logSuccess(EventRevoke, d)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}
