package authserver

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/claims"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// grantInfo is what a grant decided, for issue to turn into tokens.
type grantInfo struct {
	scopes []string
	rule   *policy.Rule
	policy string
	// grant is the grant type that started the session (a refresh keeps
	// its family's).
	grant    string
	authTime time.Time
	amr      []string
	// acrValues the client asked for (ID token acr).
	acrValues []string
	nonce     string
	// family continues a refresh-token family; nil starts a new one.
	family *store.RefreshToken
	// keepRefresh is returned as is (static refresh tokens).
	keepRefresh string
}

// issue signs the access token and, for a user, the ID token (scope
// openid) and a refresh token (scope offline_access, when the client
// may refresh).
func (i *Issuer) issue(r *http.Request, s *Server, c *clientauth.Client, u *directory.User, g grantInfo, d *decision) (*tokenResponse, *oauth.Error) {
	in := claims.Input{ClientID: c.ID, ClientName: c.Name, Scopes: g.scopes, ServerID: s.ID, Issuer: s.Issuer}
	at := accessClaims{Cid: c.ID, Sub: c.ID, Scp: g.scopes}
	if u != nil {
		in.User = claimsUser(u)
		at.Sub, at.UID, at.AuthTime = u.Login, u.ID, g.authTime.Unix()
		// How the user signed in, so a gateway can ask for it
		// (`"mfa" in claims.amr`).
		at.Amr = g.amr
		if s.subject != nil {
			if sub, err := s.subject.Evaluate(in); err != nil {
				s.log.Warn("subject expression failed: sub is the login", zap.String("client_id", c.ID), zap.Error(err))
			} else {
				at.Sub = sub
			}
		}
	}
	if d.jkt != "" {
		at.Cnf = &cnfClaim{JKT: d.jkt}
	}
	var custom map[string]any
	if s.claims.HasToken(claims.AccessToken) {
		custom = map[string]any{}
		s.logClaimFailures(c, s.claims.Evaluate(in, custom))
	}
	lifetime := g.rule.Lifetime()
	tok, jti, e := i.signAccessToken(r.Context(), s, at, lifetime, custom)
	if e != nil {
		return nil, e
	}
	d.jti = jti
	resp := &tokenResponse{TokenType: "Bearer", ExpiresIn: int64(lifetime.Seconds()), AccessToken: tok, Scope: strings.Join(g.scopes, " ")}
	if d.jkt != "" {
		resp.TokenType = "DPoP" // RFC 9449 section 5
	}
	if u == nil {
		return resp, nil
	}
	if slices.Contains(g.scopes, "openid") {
		if resp.IDToken, e = i.signIDToken(r.Context(), s, c, u, g, in, tok); e != nil {
			return nil, e
		}
	}
	// A refresh always continues its family, whatever narrower scope it
	// asked for (the presented token is rotated).
	if (g.family != nil || slices.Contains(g.scopes, "offline_access")) && c.AllowsGrant(GrantRefreshToken) {
		if resp.RefreshToken, e = i.refreshTokenFor(r, s, c, u, g, d, jti, i.now().Add(lifetime)); e != nil {
			return nil, e
		}
	}
	return resp, nil
}

func claimsUser(u *directory.User) *claims.User {
	return &claims.User{ID: u.ID, Login: u.Login, Profile: u.Profile, Groups: u.Groups}
}

func policyUser(u *directory.User) *policy.User {
	return &policy.User{ID: u.ID, Login: u.Login, Groups: u.Groups}
}

// logClaimFailures warns about claims left out of a token because their
// expression failed at run time; the token is issued without them.
func (s *Server) logClaimFailures(c *clientauth.Client, failed []claims.Failure) {
	for _, f := range failed {
		s.log.Warn("claim left out: its expression failed", zap.String("claim", f.Claim), zap.String("client_id", c.ID), zap.Error(f.Err))
	}
}
