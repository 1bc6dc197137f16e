package authserver

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/ssf"
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
// family when refreshing, the first of a new one otherwise. The access
// token issued beside it (at, valid until atExp) is linked to the
// family first, so no grant answers with an access token that revoking
// its family would miss; a failed write fails the grant.
func (i *Issuer) refreshTokenFor(r *http.Request, s *Server, c *clientauth.Client, u *directory.User, g grantInfo, d *decision, at string, atExp time.Time) (string, *oauth.Error) {
	if g.keepRefresh != "" {
		if err := i.linkFamily(r.Context(), s.Issuer, at, g.family.Family, atExp, g.family.FamilyExpires); err != nil {
			return "", linkFailure(err)
		}
		return g.keepRefresh, nil
	}
	now := i.now()
	tok := randomToken()
	rt := store.RefreshToken{Hash: refreshHash(tok), Server: s.ID, ClientID: c.ID, UserID: u.ID, Scopes: g.scopes,
		Policy: g.policy, Rule: g.rule.Name, Grant: g.grant, AuthTime: g.authTime, Amr: g.amr, JKT: refreshKeyBound(c, d.jkt), Issued: now}
	if g.family != nil {
		// RFC 6749 section 6: the successor's scope is the presented
		// token's, even when this refresh asked for less.
		rt.Scopes = g.family.Scopes
		rt.Family, rt.FamilyExpires = g.family.Family, g.family.FamilyExpires
	} else {
		rt.Family, rt.FamilyExpires = randomToken(), now.Add(g.rule.RefreshLifetime())
	}
	rt.IdleExpires = minTime(now.Add(g.rule.RefreshIdle()), rt.FamilyExpires)
	if err := i.linkFamily(r.Context(), s.Issuer, at, rt.Family, atExp, rt.FamilyExpires); err != nil {
		return "", linkFailure(err)
	}
	// The token APIs' index (tokens_api.go): written with a family's
	// first token, before it (a grant that fails after leaves a record
	// that lists nothing), and pointed at each successor by the refresh
	// grant once it committed (d.refreshed, token_refresh.go).
	if g.family == nil {
		if err := i.indexFamily(r.Context(), &rt); err != nil {
			return "", oauth.FromStore(err)
		}
	}
	if err := i.store.PutRefresh(r.Context(), rt); err != nil {
		return "", oauth.FromStore(err)
	}
	d.family, d.refreshed = rt.Family, &rt
	return tok, nil
}

// linkFailure is the grant's answer when linkFamily failed.
func linkFailure(err error) *oauth.Error {
	switch {
	case errors.Is(err, errFamilyRevokedMeanwhile):
		return errBadRefresh.WithReason(err.Error())
	case errors.Is(err, errFamilyFull):
		return oauth.ErrInvalidRequest.WithDescription("Too many access tokens of this refresh token are still valid; use one of them.").WithReason(err.Error())
	}
	return oauth.FromStore(err)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
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

// revokeFamily revokes every refresh token of rt's family and every
// access token issued from it.
func (i *Issuer) revokeFamily(ctx context.Context, rt store.RefreshToken) error {
	// Mark, then read the index (revokeFamilyOf says why).
	if _, err := i.store.Mark(ctx, store.NSFamily, rt.Family, familyMarkUntil(rt)); err != nil {
		return err
	}
	if err := i.publishRevokedFamily(ctx, rt.Family, familyMarkUntil(rt)); err != nil {
		return err // the index record stays: a retried DELETE publishes
	}
	i.dropIndex(ctx, &rt) // tokens_api.go
	return nil
}

// publishRevokedFamily publishes a marked family's access tokens and
// records that it did (store.NSFamilyPublished), so a failure is made
// good by the next request that finds the family revoked.
func (i *Issuer) publishRevokedFamily(ctx context.Context, family string, until time.Time) error {
	if i.feed == nil {
		return nil
	}
	if err := i.publishFamily(ctx, family, ssf.InitiatedBySystem); err != nil {
		return err
	}
	_, err := i.store.Mark(ctx, store.NSFamilyPublished, family, until)
	return err
}

// republishIfNeeded publishes a revoked family whose earlier publish
// failed (no NSFamilyPublished mark); rt's family is marked revoked.
func (i *Issuer) republishIfNeeded(ctx context.Context, rt store.RefreshToken) error {
	if i.feed == nil {
		return nil
	}
	if done, err := i.store.Marked(ctx, store.NSFamilyPublished, rt.Family); err != nil || done {
		return err
	}
	return i.publishRevokedFamily(ctx, rt.Family, familyMarkUntil(rt))
}

// familyMarkUntil is how long the revocation mark of rt's family must
// last: past the family's end by the longest access-token lifetime, as
// a token issued from it at its last moment lives that long.
func familyMarkUntil(rt store.RefreshToken) time.Time {
	return rt.FamilyExpires.Add(policy.MaxAccessTokenLifetime + time.Minute)
}

// linkFamily records that the access token jti of issuer iss (valid
// until exp) was issued from family (which ends at familyExp), and, with
// a revocation feed, adds it to the family's index. Only tokens issued
// beside a refresh token are linked: client_credentials and other
// family-less grants write nothing.
func (i *Issuer) linkFamily(ctx context.Context, iss, jti, family string, exp, familyExp time.Time) error {
	if err := i.store.PutRecord(ctx, store.NSAccessFamily, jti, []byte(family), exp.Add(time.Minute)); err != nil {
		return err
	}
	if i.feed == nil {
		return nil
	}
	if err := i.indexFamilyToken(ctx, family, iss, jti, exp, familyExp); err != nil {
		return err
	}
	// Index written, then the mark read (revokeFamilyOf): a revocation
	// that read the index before this token was in it has marked the
	// family by now, and the token is published here and not handed out.
	if revoked, err := i.store.Marked(ctx, store.NSFamily, family); err != nil || !revoked {
		return err
	}
	if err := i.publish(ctx, tokenEvent(iss, jti, exp, ssf.InitiatedBySystem)); err != nil {
		return err
	}
	return errFamilyRevokedMeanwhile
}

// errFamilyRevokedMeanwhile: the family was revoked while the grant was
// issuing; the grant fails as for a revoked refresh token.
var errFamilyRevokedMeanwhile = errors.New("the refresh-token family was revoked while issuing")

// familyOf returns the refresh-token family an access token was issued
// from, or "" for a token issued without one.
func (i *Issuer) familyOf(ctx context.Context, jti string) (string, error) {
	v, err := i.store.GetRecord(ctx, store.NSAccessFamily, jti)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	return string(v), err
}

// activeUser loads a user who may still get tokens (not suspended,
// deactivated or deleted); bad is the grant's answer otherwise (the
// reason says which).
func (i *Issuer) activeUser(ctx context.Context, id string, bad *oauth.Error) (*directory.User, *oauth.Error) {
	if i.dir == nil {
		return nil, bad.WithReason("no directory")
	}
	u, err := i.dir.UserByID(ctx, id)
	if err != nil || !u.Active() {
		return nil, bad.WithReason("user missing or not active")
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
	if err != nil || revoked || !rt.Rotated.IsZero() {
		return false, err
	}
	cut, err := i.refreshCutOff(ctx, rt)
	return err == nil && !cut, err
}
