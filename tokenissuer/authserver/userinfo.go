package authserver

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/internal/dpop"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/claims"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
)

// serveUserinfo is the UserInfo endpoint (OpenID Connect Core section
// 5.3): an access token of this server with scope openid, sent as a
// bearer token (RFC 6750 section 2.1), gets the user's claims for the
// granted scopes and the server's custom ID-token claims (Okta's
// custom claims guide: claims left out of a thin ID token are read
// here). Errors carry RFC 6750 section 3 challenges.
func (i *Issuer) serveUserinfo(w http.ResponseWriter, r *http.Request, s *Server) {
	scheme := "Bearer"
	challenge := func(status int, code, desc string) {
		h := scheme + ` realm=` + strconv.Quote(s.Issuer)
		if scheme == "DPoP" {
			h += ` algs="` + strings.Join(i.dpop.Algorithms(), " ") + `"`
		}
		if code != "" {
			h += `, error="` + code + `", error_description=` + strconv.Quote(desc)
		}
		w.Header().Set("WWW-Authenticate", h)
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		oauth.WriteJSON(w, http.StatusMethodNotAllowed, oauth.ErrInvalidRequest.WithDescription("The endpoint only accepts GET and POST requests."))
		return
	}
	auth := r.Header.Values("Authorization")
	if len(auth) == 0 {
		challenge(http.StatusUnauthorized, "", "")
		return
	}
	tok, ok := bearer(auth[0])
	if dtok, isDPoP := dpopAuth(auth[0]); isDPoP {
		tok, ok, scheme = dtok, true, "DPoP"
	}
	if len(auth) != 1 || !ok {
		challenge(http.StatusBadRequest, "invalid_request", "One bearer token in the Authorization header is required.")
		return
	}
	// Any access token of s with scope openid, whatever its aud (a
	// token hook may replace it): userinfo is the server's own endpoint.
	t, err := i.verifyIssuedToken(s, tok)
	if err != nil {
		challenge(http.StatusUnauthorized, "invalid_token", "The access token is invalid.")
		return
	}
	// A token bound to a DPoP key is used only with a proof of that key
	// (RFC 9449 section 7): never as a bearer token.
	jkt := boundKey(t.PrivateClaims())
	switch {
	case jkt != "" && scheme != "DPoP":
		scheme = "DPoP"
		challenge(http.StatusUnauthorized, "invalid_token", "The access token is bound to a DPoP key: use the DPoP scheme with a proof.")
		return
	case scheme == "DPoP":
		if jkt == "" {
			challenge(http.StatusUnauthorized, "invalid_dpop_proof", errOneProof.Error())
			return
		}
		err := i.proveBound(r, s.endpoints+"/userinfo", tok, jkt)
		var de *dpop.Error
		switch {
		case errors.As(err, &de):
			challenge(http.StatusUnauthorized, de.Code, de.Description())
			return
		case errors.Is(err, errOneProof), errors.Is(err, errProofOtherKey):
			challenge(http.StatusUnauthorized, "invalid_dpop_proof", err.Error())
			return
		case err != nil:
			oauth.WriteError(w, oauth.FromStore(err))
			return
		}
	}
	rev, err := i.accessRevoked(r.Context(), t)
	if err != nil {
		// The token may be good: a 401 would make SDKs drop it (or sign
		// the user out) over a store outage. 503 says retry.
		i.log.Error("userinfo: reading revocations failed", zap.Error(err))
		oauth.WriteError(w, oauth.FromStore(err))
		return
	}
	if rev {
		challenge(http.StatusUnauthorized, "invalid_token", "The access token is invalid.")
		return
	}
	var scopes []string
	if scp, ok := t.PrivateClaims()["scp"].([]any); ok {
		for _, v := range scp {
			if s, ok := v.(string); ok {
				scopes = append(scopes, s)
			}
		}
	}
	if !slices.Contains(scopes, "openid") {
		challenge(http.StatusForbidden, "insufficient_scope", "The access token must provide access to at least one of these scopes: openid.")
		return
	}
	uid, _ := t.PrivateClaims()["uid"].(string)
	if uid == "" || i.dir == nil {
		challenge(http.StatusUnauthorized, "invalid_token", "The access token is invalid.")
		return
	}
	u, err := i.dir.UserByID(r.Context(), uid)
	if err != nil || !u.Active() {
		challenge(http.StatusUnauthorized, "invalid_token", "The access token is invalid.")
		return
	}
	cid, _ := t.PrivateClaims()["cid"].(string)
	c, ok := i.auth.Client(cid)
	if !ok {
		// A client no longer configured: its claims cannot be computed.
		challenge(http.StatusUnauthorized, "invalid_token", "The access token is invalid.")
		return
	}
	m := scopeClaims(u, scopes)
	m["sub"] = u.ID
	s.userinfoClaims(c, u, scopes, m)
	oauth.WriteJSON(w, http.StatusOK, m)
}

// userinfoClaims adds the server's custom ID-token claims to m, as Okta
// returns them from userinfo, whether or not they are always included
// in the ID token, evaluated for the access token's scopes and the
// user's current profile; they do not replace a claim already in m.
func (s *Server) userinfoClaims(c *clientauth.Client, u *directory.User, scopes []string, m map[string]any) {
	if !s.claims.HasToken(claims.Userinfo) {
		return
	}
	in := claims.Input{ClientID: c.ID, ClientName: c.Name, Scopes: scopes, ServerID: s.ID, Issuer: s.Issuer, User: claimsUser(u)}
	custom := map[string]any{}
	s.logClaimFailures(c, s.claims.EvaluateFor(claims.Userinfo, in, custom))
	for k, v := range custom {
		if _, taken := m[k]; !taken {
			m[k] = v
		}
	}
}
