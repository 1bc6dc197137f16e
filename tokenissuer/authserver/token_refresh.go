package authserver

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

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
		if err := i.republishIfNeeded(ctx, rt); err != nil {
			return nil, oauth.FromStore(err)
		}
		return nil, errBadRefresh.WithReason("refresh token family revoked")
	}
	if cut, err := i.refreshCutOff(ctx, rt); err != nil {
		return nil, oauth.FromStore(err)
	} else if cut {
		return nil, errBadRefresh.WithReason("all tokens of the user or client revoked")
	}
	// A refresh token bound to a DPoP key needs a proof of that key
	// (RFC 9449 section 5).
	if rt.JKT != "" && rt.JKT != d.jkt {
		return nil, dpopError("The refresh token is bound to another DPoP key.", "refresh token bound to another key")
	}
	if !static && !rt.Rotated.IsZero() && now.Sub(rt.Rotated) > leeway {
		d.reused = true
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
	u, e := i.activeUser(ctx, rt.UserID, errBadRefresh)
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
		authTime: rt.AuthTime, amr: refreshAmr(rt), family: &rt, keepRefresh: keep}, d)
	if e != nil {
		return nil, e
	}
	// Commit: mark the presented token used (or extend a static one),
	// judged again atomically against a concurrent use.
	committed, err := i.store.UpdateRefresh(ctx, rt.Hash, func(cur *store.RefreshToken) error {
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
		d.reused = true
		return nil, i.refreshReused(ctx, rt)
	case errors.Is(err, store.ErrNotFound):
		return nil, errBadRefresh.WithReason("refresh token expired or removed while refreshing")
	case err != nil:
		return nil, oauth.FromStore(err)
	}
	// A cut-off made while this refresh was issuing: the family goes
	// (its new tokens carry a later time than the cut-off).
	if cut, err := i.refreshCutOff(ctx, rt); err != nil || cut {
		if rerr := i.revokeFamily(ctx, rt); rerr != nil {
			return nil, oauth.FromStore(rerr)
		}
		if err != nil {
			return nil, oauth.FromStore(err)
		}
		return nil, errBadRefresh.WithReason("all tokens of the user or client revoked while refreshing")
	}
	// Committed: the token APIs' index follows (tokens_api.go), never
	// failing the refresh.
	if static {
		i.indexSuccessor(ctx, &committed)
	} else if d.refreshed != nil {
		i.indexSuccessor(ctx, d.refreshed)
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

// refreshAmr is how the family's user signed in; families stored before
// the methods were kept signed in with a password.
func refreshAmr(rt store.RefreshToken) []string {
	if len(rt.Amr) == 0 {
		return []string{amrPassword}
	}
	return rt.Amr
}
