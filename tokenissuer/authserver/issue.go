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
	// act is the access token's act claim (token exchange).
	act map[string]any
	// notAfter caps the access token's exp (token exchange: the subject
	// token's exp); zero: no cap.
	notAfter time.Time
}

// mint is what a grant issues, decided before anything is signed: the
// token preview shows it, and a token inline hook may patch it between
// plan and sign.
type mint struct {
	// access is the access token's claim set, complete (jti, iat, exp).
	access accessClaims
	// custom are its custom claims: names accessClaims does not have.
	custom map[string]any
	// id is the ID token's claim set but at_hash; nil: no ID token.
	id map[string]any
	// refresh: a refresh token is issued beside (scope offline_access,
	// or a refresh continuing its family).
	refresh bool
	// in is what the claims were computed from.
	in claims.Input
	// failed are the claims left out because their expression failed at
	// run time, and a failed subject expression (sub is then the login):
	// issue logs them, a preview shows them.
	failed []planFailure
}

// planFailure is one expression of a plan that failed.
type planFailure struct {
	token string // claims.AccessToken, claims.IDToken, or "subject"
	claims.Failure
}

// issue signs the access token and, for a user, the ID token (scope
// openid) and a refresh token (scope offline_access, when the client
// may refresh).
func (i *Issuer) issue(r *http.Request, s *Server, c *clientauth.Client, u *directory.User, g grantInfo, d *decision) (*tokenResponse, *oauth.Error) {
	m := i.plan(s, c, u, g, d)
	s.logPlanFailures(c, m.failed)
	if g.rule.InlineHook != "" {
		if e := i.runTokenHook(r, s, c, u, g, d, m); e != nil {
			return nil, e
		}
	}
	return i.signMint(r, s, c, u, g, d, m)
}

// plan decides the claims and lifetimes of what a grant issues.
func (i *Issuer) plan(s *Server, c *clientauth.Client, u *directory.User, g grantInfo, d *decision) *mint {
	m := &mint{in: claims.Input{ClientID: c.ID, ClientName: c.Name, Scopes: g.scopes, ServerID: s.ID, Issuer: s.Issuer}}
	at := accessClaims{Cid: c.ID, Sub: c.ID, Scp: g.scopes}
	if u != nil {
		m.in.User = claimsUser(u)
		at.Sub, at.UID = u.Login, u.ID
		if !g.authTime.IsZero() {
			at.AuthTime = g.authTime.Unix()
		}
		// How the user signed in, so a gateway can ask for it
		// (`"mfa" in claims.amr`).
		at.Amr = g.amr
		if s.subject != nil {
			if sub, err := s.subject.Evaluate(m.in); err != nil {
				m.failed = append(m.failed, planFailure{"subject", claims.Failure{Claim: "sub", Err: err}})
			} else {
				at.Sub = sub
			}
		}
	}
	if d.jkt != "" {
		at.Cnf = &cnfClaim{JKT: d.jkt}
	}
	at.Act = g.act
	if s.claims.HasToken(claims.AccessToken) {
		m.custom = map[string]any{}
		m.addFailures(claims.AccessToken, s.claims.Evaluate(m.in, m.custom))
	}
	i.completeAccess(s, &at, g.rule.Lifetime())
	capExp(&at, g.notAfter)
	m.access = at
	if u == nil {
		return m
	}
	if slices.Contains(g.scopes, "openid") {
		var failed []claims.Failure
		m.id, failed = i.idClaims(s, c, u, g, m.in)
		m.addFailures(claims.IDToken, failed)
	}
	// A refresh always continues its family, whatever narrower scope it
	// asked for (the presented token is rotated).
	m.refresh = (g.family != nil || slices.Contains(g.scopes, "offline_access")) && c.AllowsGrant(GrantRefreshToken)
	return m
}

// signMint signs what m plans and stores the refresh token.
func (i *Issuer) signMint(r *http.Request, s *Server, c *clientauth.Client, u *directory.User, g grantInfo, d *decision, m *mint) (*tokenResponse, *oauth.Error) {
	capExp(&m.access, g.notAfter) // again: a token hook may have lengthened it
	tok, e := i.signAccess(r.Context(), s, m.access, m.custom)
	if e != nil {
		return nil, e
	}
	d.jti, d.accessExp = m.access.JTI, m.access.Exp
	lifetime := time.Duration(m.access.Exp-m.access.Iat) * time.Second
	resp := &tokenResponse{TokenType: "Bearer", ExpiresIn: int64(lifetime.Seconds()), AccessToken: tok, Scope: strings.Join(g.scopes, " ")}
	if d.jkt != "" {
		resp.TokenType = "DPoP" // RFC 9449 section 5
	}
	if m.id != nil {
		if resp.IDToken, e = i.signIDToken(r.Context(), s, m.id, tok); e != nil {
			return nil, e
		}
	}
	if m.refresh {
		if resp.RefreshToken, e = i.refreshTokenFor(r, s, c, u, g, d, m.access.JTI, time.Unix(m.access.Exp, 0)); e != nil {
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

func (m *mint) addFailures(token string, fs []claims.Failure) {
	for _, f := range fs {
		m.failed = append(m.failed, planFailure{token, f})
	}
}

// logPlanFailures warns about a plan's failed expressions; the tokens
// are issued without the claims (sub: with the login).
func (s *Server) logPlanFailures(c *clientauth.Client, failed []planFailure) {
	for _, f := range failed {
		if f.token == "subject" {
			s.log.Warn("subject expression failed: sub is the login", zap.String("client_id", c.ID), zap.Error(f.Err))
		} else {
			s.logClaimFailures(c, []claims.Failure{f.Failure})
		}
	}
}

// logClaimFailures warns about claims left out of a token because their
// expression failed at run time; the token is issued without them.
func (s *Server) logClaimFailures(c *clientauth.Client, failed []claims.Failure) {
	for _, f := range failed {
		s.log.Warn("claim left out: its expression failed", zap.String("claim", f.Claim), zap.String("client_id", c.ID), zap.Error(f.Err))
	}
}
