package authserver

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// Device token errors (RFC 8628 section 3.5).
var (
	errPending  = &oauth.Error{Code: "authorization_pending", Status: http.StatusBadRequest, Description: "The device authorization is pending. Please try again later."}
	errSlowDown = &oauth.Error{Code: "slow_down", Status: http.StatusBadRequest, Description: "The client is polling too fast. Increase the interval."}
	errExpired  = &oauth.Error{Code: "expired_token", Status: http.StatusBadRequest, Description: "The device code has expired."}
	errDenied   = &oauth.Error{Code: "access_denied", Status: http.StatusBadRequest, Description: "The resource owner denied the request."}
)

// deviceCodeGrant is the token request of RFC 8628 section 3.4.
func (i *Issuer) deviceCodeGrant(r *http.Request, s *Server, c *clientauth.Client, form map[string]string, d *decision) (*tokenResponse, *oauth.Error) {
	dc := form["device_code"]
	if dc == "" {
		return nil, oauth.ErrInvalidRequest.WithDescription("The 'device_code' parameter is required.")
	}
	now := i.now()
	var g deviceGrant
	var verdict *oauth.Error
	_, err := i.store.UpdateRecord(r.Context(), store.NSDevice, refreshHash(dc), func(v []byte) ([]byte, error) {
		if err := json.Unmarshal(v, &g); err != nil {
			return nil, err
		}
		if g.Server != s.ID || g.ClientID != c.ID {
			verdict = errExpired.WithReason("device code of another client or server")
			return v, nil
		}
		// Section 3.5: polling faster than the interval earns slow_down
		// and a longer interval.
		if !g.LastPoll.IsZero() && now.Sub(g.LastPoll) < time.Duration(g.Interval)*time.Second {
			g.Interval += 5
			g.LastPoll = now
			verdict = errSlowDown
			return json.Marshal(g)
		}
		g.LastPoll = now
		switch g.Status {
		case devicePending:
			verdict = errPending
			return json.Marshal(g)
		case deviceDenied:
			verdict = errDenied
			return nil, nil // used up
		}
		return nil, nil // approved: single use
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, errExpired
	}
	if err != nil {
		return nil, oauth.FromStore(err)
	}
	if verdict != nil {
		return nil, verdict
	}
	d.scopes, d.userID = g.Scopes, g.UserID
	u, e := i.activeUser(r.Context(), g.UserID, errBadRefresh)
	if e != nil {
		return nil, errDenied.WithReason("user missing or not active")
	}
	approved := g.Approved
	if approved.IsZero() {
		approved = g.AuthTime
	}
	if cut, err := i.cutOffs(r.Context(), approved, append(tokenKeys(g.UserID, g.ClientID), cutUserSessions+g.UserID)...); err != nil {
		return nil, oauth.FromStore(err)
	} else if cut {
		return nil, errDenied.WithReason("approved before the user's or client's tokens or sessions were revoked")
	}
	m, e := s.evaluate(policy.Request{ClientID: c.ID, GrantType: GrantDeviceCode, Scopes: g.Scopes, User: policyUser(u)}, d)
	if e != nil {
		return nil, e
	}
	resp, e := i.issue(r, s, c, u, grantInfo{scopes: g.Scopes, rule: m.Rule, policy: m.Policy.Name, grant: GrantDeviceCode,
		authTime: g.AuthTime, amr: g.Amr}, d)
	if e != nil && e.Code == oauth.ErrTemporarilyUnavailable.Code {
		// Nothing was issued and the answer says "retry": put the
		// approval back, for long enough to retry after Retry-After
		// (which is sooner than the poll interval: not a fast poll).
		g.LastPoll = time.Time{}
		if b, err := json.Marshal(g); err == nil {
			_ = i.store.PutRecord(r.Context(), store.NSDevice, refreshHash(dc), b, now.Add(deviceRetryWindow))
		}
	}
	return resp, e
}

// deviceRetryWindow is how long an approved device grant whose tokens
// could not be signed (503) stays for the client's retry.
const deviceRetryWindow = time.Minute
