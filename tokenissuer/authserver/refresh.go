package authserver

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// errBadRefresh is Okta's answer for any unusable refresh token.
var errBadRefresh = &oauth.Error{Code: "invalid_grant", Status: http.StatusBadRequest,
	Description: "The refresh token is invalid or expired."}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// refreshHash is how a refresh token is stored: never in the clear.
func refreshHash(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// refreshTokenFor stores and returns a refresh token: the next of a
// family when refreshing, the first of a new one otherwise.
func (i *Issuer) refreshTokenFor(r *http.Request, s *Server, c *clientauth.Client, u *directory.User, g grantInfo, d *decision) (string, *oauth.Error) {
	if g.keepRefresh != "" {
		return g.keepRefresh, nil
	}
	now := i.now()
	tok := randomToken()
	rt := store.RefreshToken{Hash: refreshHash(tok), Server: s.ID, ClientID: c.ID, UserID: u.ID, Scopes: g.scopes,
		Policy: g.policy, Rule: g.rule.Name, Grant: g.grant, AuthTime: g.authTime, Issued: now}
	if g.family != nil {
		// RFC 6749 section 6: the successor's scope is the presented
		// token's, even when this refresh asked for less.
		rt.Scopes = g.family.Scopes
		rt.Family, rt.FamilyExpires = g.family.Family, g.family.FamilyExpires
	} else {
		rt.Family, rt.FamilyExpires = randomToken(), now.Add(g.rule.RefreshLifetime())
	}
	rt.IdleExpires = minTime(now.Add(g.rule.RefreshIdle()), rt.FamilyExpires)
	if err := i.store.PutRefresh(r.Context(), rt); err != nil {
		return "", oauth.FromStore(err)
	}
	d.family = rt.Family
	return tok, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

var errReuse = errors.New("refresh token reused")

// refreshGrant is the refresh token grant (RFC 6749 section 6), with
// rotation and reuse detection (OAuth 2.0 Security BCP, RFC 9700
// section 4.14.2): a replaced token used after the client's leeway
// revokes its whole family.
//
// The presented token is read first and marked as used only after its
// successor is stored: if the store fails in between, the client gets
// temporarily_unavailable and its token still works, so an outage never
// turns a retry into "reuse" and never strands a client.
func (i *Issuer) refreshGrant(r *http.Request, s *Server, c *clientauth.Client, form map[string]string, d *decision) (*tokenResponse, *oauth.Error) {
	tok := form["refresh_token"]
	if tok == "" {
		return nil, oauth.ErrInvalidRequest.WithDescription("The 'refresh_token' parameter is required.")
	}
	ctx := r.Context()
	now := i.now()
	leeway := time.Duration(c.RefreshTokenLeeway)
	static := c.RefreshTokenRotation == clientauth.StaticRefresh
	rt, err := i.lookupRefresh(ctx, s, tok)
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && rt.ClientID != c.ID):
		return nil, errBadRefresh.WithReason("unknown, expired or foreign refresh token")
	case err != nil:
		return nil, oauth.FromStore(err)
	}
	if revoked, err := i.store.Marked(ctx, store.NSFamily, rt.Family); err != nil {
		return nil, oauth.FromStore(err)
	} else if revoked {
		return nil, errBadRefresh.WithReason("refresh token family revoked")
	}
	if !static && !rt.Rotated.IsZero() && now.Sub(rt.Rotated) > leeway {
		return nil, i.refreshReused(ctx, rt)
	}
	// A narrower scope may be asked (RFC 6749 section 6), never a wider one.
	scopes := rt.Scopes
	if form["scope"] != "" {
		asked, ok := parseScope(form["scope"])
		if !ok {
			return nil, errMalformedScopes
		}
		for _, sc := range asked {
			if !slices.Contains(rt.Scopes, sc) {
				return nil, oauth.ErrInvalidScope.WithDescription("The requested scope exceeds the scope granted by the resource owner.")
			}
		}
		scopes = asked
	}
	d.scopes = scopes
	u, e := i.activeUser(ctx, rt.UserID)
	if e != nil {
		return nil, e
	}
	// The user's access is judged again: a user removed from a group
	// loses the right to refresh.
	m, e := s.evaluate(policy.Request{ClientID: c.ID, GrantType: rt.Grant, Scopes: scopes, User: policyUser(u)}, d)
	if e != nil {
		return nil, e
	}
	keep := ""
	if static {
		keep = tok
	}
	resp, e := i.issue(r, s, c, u, grantInfo{scopes: scopes, rule: m.Rule, policy: m.Policy.Name, grant: rt.Grant,
		authTime: rt.AuthTime, amr: []string{"pwd"}, family: &rt, keepRefresh: keep}, d)
	if e != nil {
		return nil, e
	}
	// Commit: mark the presented token used (or extend a static one),
	// judged again atomically against a concurrent use.
	_, err = i.store.UpdateRefresh(ctx, rt.Hash, func(cur *store.RefreshToken) error {
		switch {
		case cur.Family != rt.Family || !now.Before(cur.IdleExpires) || !now.Before(cur.FamilyExpires):
			return store.ErrNotFound
		case static:
			cur.IdleExpires = minTime(now.Add(i.idleOf(s, cur)), cur.FamilyExpires)
		case cur.Rotated.IsZero():
			cur.Rotated = now
		case now.Sub(cur.Rotated) > leeway:
			return errReuse
		}
		return nil
	})
	switch {
	case errors.Is(err, errReuse):
		return nil, i.refreshReused(ctx, rt)
	case errors.Is(err, store.ErrNotFound):
		return nil, errBadRefresh.WithReason("refresh token expired or removed while refreshing")
	case err != nil:
		return nil, oauth.FromStore(err)
	}
	return resp, nil
}

// refreshReused revokes the family of a replaced token presented again.
func (i *Issuer) refreshReused(ctx context.Context, rt store.RefreshToken) *oauth.Error {
	if err := i.revokeFamily(ctx, rt); err != nil {
		return oauth.FromStore(err)
	}
	return errBadRefresh.WithReason("reuse of a rotated refresh token: family revoked")
}

// idleOf is the idle window of the rule that issued rt, or the default.
func (i *Issuer) idleOf(s *Server, rt *store.RefreshToken) time.Duration {
	for _, p := range s.policies.Policies() {
		if p.Name != rt.Policy {
			continue
		}
		for _, r := range p.Rules {
			if r.Name == rt.Rule {
				return r.RefreshIdle()
			}
		}
	}
	return policy.DefaultRefreshIdle
}

// revokeFamily revokes every refresh token of rt's family.
func (i *Issuer) revokeFamily(ctx context.Context, rt store.RefreshToken) error {
	_, err := i.store.Mark(ctx, store.NSFamily, rt.Family, rt.FamilyExpires.Add(time.Minute))
	return err
}

// activeUser loads a user who may still get tokens.
func (i *Issuer) activeUser(ctx context.Context, id string) (*directory.User, *oauth.Error) {
	if i.dir == nil {
		return nil, errBadRefresh.WithReason("no directory")
	}
	u, err := i.dir.UserByID(ctx, id)
	if err != nil || !u.Active() {
		return nil, errBadRefresh.WithReason("user missing or not active")
	}
	return u, nil
}

// lookupRefresh finds a refresh token of server s (unexpired, in any
// state) without changing it: ErrNotFound for an unknown, expired or
// foreign one, another error when the store failed.
func (i *Issuer) lookupRefresh(ctx context.Context, s *Server, tok string) (store.RefreshToken, error) {
	if tok == "" || len(tok) > 512 {
		return store.RefreshToken{}, store.ErrNotFound
	}
	now := i.now()
	rt, err := i.store.GetRefresh(ctx, refreshHash(tok))
	if err != nil {
		return rt, err
	}
	if rt.Server != s.ID || !now.Before(rt.IdleExpires) || !now.Before(rt.FamilyExpires) {
		return store.RefreshToken{}, store.ErrNotFound
	}
	return rt, nil
}

// refreshUsable reports whether a found refresh token could still be
// exchanged: its family is not revoked and it was not replaced.
func (i *Issuer) refreshUsable(ctx context.Context, rt store.RefreshToken) (bool, error) {
	revoked, err := i.store.Marked(ctx, store.NSFamily, rt.Family)
	if err != nil {
		return false, err
	}
	return !revoked && rt.Rotated.IsZero(), nil
}
