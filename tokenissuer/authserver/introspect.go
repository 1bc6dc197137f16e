package authserver

import (
	"errors"
	"net/http"
	"strings"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// inactive is the whole answer for any token that is not active: RFC
// 7662 section 2.2 forbids saying why.
var inactive = map[string]bool{"active": false}

// serveIntrospect is the introspection endpoint (RFC 7662). A
// confidential client may introspect any token of the server, as
// resource servers must; a public client proves only its client_id, so
// it sees only tokens issued to it (RFC 7662 section 4: the server must
// decide who may learn what about a token).
func (i *Issuer) serveIntrospect(w http.ResponseWriter, r *http.Request, s *Server) {
	d := decision{server: s}
	fail := func(e *oauth.Error) {
		i.logFailure(EventIntrospect, d, e)
		oauth.WriteError(w, e)
	}
	tok, ok := i.tokenParam(w, r, s, "introspect", &d, fail)
	if !ok {
		return
	}
	// token_type_hint is only a hint (RFC 7662 section 2.1): every token
	// is looked up as an access token, the only kind this server issues.
	// mayKnow says whether the caller may learn about a token issued to
	// client cid.
	mayKnow := func(cid string) bool {
		c, ok := i.auth.Client(d.clientID)
		return ok && (c.AuthMethod != clientauth.None || cid == c.ID)
	}
	t, err := i.verifyAccessToken(s, tok)
	if err != nil {
		rt, err := i.lookupRefresh(r.Context(), s, tok)
		usable := false
		if err == nil && mayKnow(rt.ClientID) {
			usable, err = i.refreshUsable(r.Context(), rt)
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			fail(oauth.FromStore(err))
			return
		}
		i.obs.Introspection(s.ID, usable)
		if usable {
			oauth.WriteJSON(w, http.StatusOK, map[string]any{
				"active": true, "token_type": "refresh_token", "scope": strings.Join(rt.Scopes, " "),
				"client_id": rt.ClientID, "uid": rt.UserID, "iat": rt.Issued.Unix(), "exp": rt.IdleExpires.Unix(), "iss": s.Issuer,
			})
			return
		}
		oauth.WriteJSON(w, http.StatusOK, inactive)
		return
	}
	priv := t.PrivateClaims()
	if cid, _ := priv["cid"].(string); !mayKnow(cid) {
		i.obs.Introspection(s.ID, false)
		oauth.WriteJSON(w, http.StatusOK, inactive)
		return
	}
	rev, err := i.revoked(r.Context(), t.JwtID())
	if err != nil {
		fail(oauth.FromStore(err))
		return
	}
	i.obs.Introspection(s.ID, !rev)
	if rev {
		oauth.WriteJSON(w, http.StatusOK, inactive)
		return
	}
	resp := map[string]any{
		"active":     true,
		"token_type": "Bearer",
		"client_id":  priv["cid"],
		"sub":        t.Subject(),
		"username":   t.Subject(),
		"iss":        t.Issuer(),
		"aud":        strings.Join(t.Audience(), " "),
		"exp":        t.Expiration().Unix(),
		"iat":        t.IssuedAt().Unix(),
		"jti":        t.JwtID(),
	}
	if scp, ok := priv["scp"].([]any); ok {
		parts := make([]string, 0, len(scp))
		for _, v := range scp {
			if s, ok := v.(string); ok {
				parts = append(parts, s)
			}
		}
		resp["scope"] = strings.Join(parts, " ")
	}
	if uid, ok := priv["uid"]; ok {
		resp["uid"] = uid
	}
	d.jti = t.JwtID()
	i.logSuccess(EventIntrospect, d)
	oauth.WriteJSON(w, http.StatusOK, resp)
}
