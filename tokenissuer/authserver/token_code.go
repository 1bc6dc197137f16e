package authserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/ssf"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"go.uber.org/zap"
)

var errCodeRefused = errors.New("authorization code not bound to this request")

// errBadCode is Okta's answer for any unusable authorization code.
var errBadCode = &oauth.Error{Code: "invalid_grant", Status: http.StatusBadRequest,
	Description: "The authorization code is invalid or has expired."}

// authorizationCode is the authorization code grant (RFC 6749 section 4.1.3)
// with PKCE (RFC 7636 section 4.6).
func (i *Issuer) authorizationCode(r *http.Request, s *Server, c *clientauth.Client, form map[string]string, d *decision) (*tokenResponse, *oauth.Error) {
	code := form["code"]
	if code == "" || form["redirect_uri"] == "" {
		return nil, oauth.ErrInvalidRequest.WithDescription("The 'code' and 'redirect_uri' parameters are required.")
	}
	ctx := r.Context()
	key := refreshHash(code)
	var g codeGrant
	var refused *oauth.Error
	var replayed bool
	_, err := i.store.UpdateRecord(ctx, store.NSCode, key, func(v []byte) ([]byte, error) {
		g, refused, replayed = codeGrant{}, nil, false
		if err := json.Unmarshal(v, &g); err != nil {
			return nil, err
		}
		// Only the request the code is bound to may consume it, or
		// revoke what it issued when replayed (RFC 6749 sections 4.1.3
		// and 10.5): a code sent by another client, for another
		// redirect URI or with a wrong verifier changes nothing, so it
		// cannot burn a fresh code or revoke another client's tokens.
		if refused = g.refuse(s, c, form); refused != nil {
			return nil, errCodeRefused
		}
		if g.Used {
			// Noted in the record, so that a first use still issuing
			// revokes what it issues when it records it.
			replayed, g.Replayed = true, true
			return json.Marshal(g)
		}
		g.Used = true
		return json.Marshal(g)
	})
	switch {
	case errors.Is(err, errCodeRefused):
		return nil, refused
	case err == nil && replayed:
		// A second use: revoke what the first one issued.
		i.revokeIssued(ctx, g)
		return nil, errBadCode.WithReason("authorization code reused: tokens issued from it revoked")
	case errors.Is(err, store.ErrNotFound):
		return nil, errBadCode.WithReason("unknown or expired authorization code")
	case errors.Is(err, store.ErrUnavailable):
		// Not consumed: the client may retry with the same code.
		return nil, oauth.FromStore(err)
	case err != nil:
		return nil, errBadCode.WithReason("unreadable authorization code record").WithCause(err)
	}
	d.userID = g.UserID
	u, e := i.activeUser(ctx, g.UserID, errBadRefresh)
	if e != nil {
		return nil, errBadCode.WithReason("user missing or not active")
	}
	if e := i.codeCutOff(ctx, g); e != nil {
		return nil, e
	}
	d.scopes = g.Scopes
	m, e := s.evaluate(policy.Request{ClientID: c.ID, GrantType: GrantAuthorizationCode, Scopes: g.Scopes, User: policyUser(u)}, d)
	if e != nil {
		return nil, e
	}
	resp, e := i.issue(r, s, c, u, grantInfo{scopes: g.Scopes, rule: m.Rule, policy: m.Policy.Name, grant: GrantAuthorizationCode,
		authTime: g.AuthTime, amr: g.Amr, acrValues: g.ACRValues, nonce: g.Nonce}, d)
	if e != nil {
		if e.Code == oauth.ErrTemporarilyUnavailable.Code {
			// Nothing was issued and the answer says "retry": give the
			// code back rather than make the user sign in again.
			_, _ = i.store.UpdateRecord(ctx, store.NSCode, key, func(v []byte) ([]byte, error) {
				var cur codeGrant
				if err := json.Unmarshal(v, &cur); err != nil || cur.IssuedJTI != "" {
					return v, err
				}
				cur.Used = false
				return json.Marshal(cur)
			})
		}
		return nil, e
	}
	// Remember what the code issued, for revocation on replay.
	var cur codeGrant
	_, err = i.store.UpdateRecord(ctx, store.NSCode, key, func(v []byte) ([]byte, error) {
		cur = codeGrant{}
		if err := json.Unmarshal(v, &cur); err != nil {
			return nil, err
		}
		// The token's own exp: a token hook may have changed its lifetime.
		cur.IssuedJTI, cur.IssuedExp, cur.Family = d.jti, time.Unix(d.accessExp, 0), d.family
		if d.family != "" {
			cur.FamilyExp = i.now().Add(m.Rule.RefreshLifetime())
		}
		return json.Marshal(cur)
	})
	if err != nil {
		// A later replay could then revoke nothing; say so (never the code).
		i.log.Warn("recording what an authorization code issued failed", zap.String("jti", d.jti), zap.Error(err))
	}
	if err == nil && cur.Replayed {
		// The code was replayed while this use was issuing (RFC 6749
		// section 10.5): what it issued is revoked, not handed out.
		i.revokeIssued(ctx, cur)
		return nil, errBadCode.WithReason("authorization code reused while being redeemed: tokens issued from it revoked")
	}
	// A cut-off made while this use was issuing: what it issued is
	// revoked too (its tokens carry a later time than the cut-off).
	if e := i.codeCutOff(ctx, g); e != nil {
		g.IssuedJTI, g.IssuedExp, g.Family, g.FamilyExp = cur.IssuedJTI, cur.IssuedExp, cur.Family, cur.FamilyExp
		i.revokeIssued(ctx, g)
		return nil, e
	}
	return resp, nil
}

// codeCutOff refuses a code issued before a cut-off of its user's or
// client's tokens or of the user's sessions (the code came from one).
func (i *Issuer) codeCutOff(ctx context.Context, g codeGrant) *oauth.Error {
	issued := g.Issued
	if issued.IsZero() { // a code stored before codes kept the time
		issued = g.AuthTime
	}
	cut, err := i.cutOffs(ctx, issued, append(tokenKeys(g.UserID, g.ClientID), cutUserSessions+g.UserID)...)
	switch {
	case err != nil:
		return oauth.FromStore(err)
	case cut:
		return errBadCode.WithReason("issued before the user's or client's tokens or sessions were revoked")
	}
	return nil
}

// revokeIssued revokes the access token and refresh-token family that a
// code's first use produced.
func (i *Issuer) revokeIssued(ctx context.Context, g codeGrant) {
	if g.IssuedJTI != "" {
		if err := i.publish(ctx, tokenEvent(i.issuerOf(g.Server), g.IssuedJTI, g.IssuedExp, ssf.InitiatedBySystem)); err != nil {
			i.log.Error("publishing the revocation of the access token of a replayed code failed", zap.String("jti", g.IssuedJTI), zap.Error(err))
		}
		if err := i.revoke(ctx, g.IssuedJTI, g.IssuedExp); err != nil {
			i.log.Error("revoking the access token of a replayed code failed", zap.String("jti", g.IssuedJTI), zap.Error(err))
		}
	}
	if g.Family != "" {
		exp := g.FamilyExp
		if exp.IsZero() { // a code redeemed before FamilyExp was kept
			exp = i.now().Add(policy.DefaultRefreshLifetime)
		}
		// Mark, then read the index (revokeFamilyOf says why).
		if _, err := i.store.Mark(ctx, store.NSFamily, g.Family, familyMarkUntil(store.RefreshToken{FamilyExpires: exp})); err != nil {
			i.log.Error("revoking the refresh tokens of a replayed code failed", zap.String("jti", g.IssuedJTI), zap.Error(err))
		}
		if err := i.publishRevokedFamily(ctx, g.Family, familyMarkUntil(store.RefreshToken{FamilyExpires: exp})); err != nil {
			i.log.Error("publishing the revocation of the tokens of a replayed code failed", zap.String("jti", g.IssuedJTI), zap.Error(err))
		}
	}
}

// refuse checks that a token request matches what the code was issued
// for: server, client, redirect URI (RFC 6749 section 4.1.3) and the
// PKCE verifier (RFC 7636 section 4.6).
func (g *codeGrant) refuse(s *Server, c *clientauth.Client, form map[string]string) *oauth.Error {
	if g.Server != s.ID || g.ClientID != c.ID || g.RedirectURI != form["redirect_uri"] {
		return errBadCode.WithReason("code issued to another client, server or redirect URI")
	}
	verifier := form["code_verifier"]
	switch {
	case g.Challenge == "" && verifier != "":
		return oauth.ErrInvalidRequest.WithDescription("PKCE verification failed: no code_challenge was sent.")
	case g.Challenge != "" && (!pkceChars.MatchString(verifier) ||
		subtle.ConstantTimeCompare([]byte(s256(verifier)), []byte(g.Challenge)) != 1):
		return errBadCode.WithDescription("PKCE verification failed.").WithReason("code_verifier does not match")
	}
	return nil
}

// s256 is PKCE's S256 transformation (RFC 7636 section 4.2).
func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
