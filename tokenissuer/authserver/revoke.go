package authserver

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/apiaccess/caddy-apiaccess/internal/ssf"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// The revocation budget: how many revocation records one client may
// write per window. A revocation record lives until the token would
// have expired, so without a bound a client could grow the store at
// the rate it mints and revokes tokens. Revoking a token that is
// expired, unknown or already revoked writes nothing and costs nothing.
var (
	revokeBudget = 600
	revokeWindow = time.Minute
)

// revokeEndpoint is the revocation endpoint (RFC 7009). A refresh
// token revokes its family: every refresh token of it and every access
// token issued from it; an access token revokes only itself (Okta guide
// "Revoke tokens"). Unknown, invalid, expired and already revoked
// tokens are answered 200 (section 2.2) without a write; a token issued
// to another client is refused (section 2.1); a client over its
// revocation budget gets 429.
var revokeEndpoint = &backChannel{name: "revoke", event: EventRevoke, failEvent: EventRevoke, run: (*Issuer).runRevoke,
	observe: func(o Observer, d decision, out outcome, _ time.Duration) { o.Revocation(d.server.ID, out.code()) },
}

// nothingToRevoke is section 2.2's 200 for a token with nothing to revoke.
var nothingToRevoke = outcome{unlogged: true}

func (i *Issuer) runRevoke(x *exchange) outcome {
	tok, e := tokenParam(x.form)
	if e != nil {
		return failed(e)
	}
	ctx, s := x.r.Context(), x.s
	// Any access token of s, whatever its aud (verifyIssuedToken).
	t, err := i.verifyIssuedToken(s, tok)
	if err != nil {
		// Not an access token: a refresh token revokes its family.
		rt, err := i.lookupRefresh(ctx, s, tok)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nothingToRevoke
		case err != nil:
			return failed(oauth.FromStore(err))
		case rt.ClientID != x.d.clientID:
			return failed(oauth.ErrInvalidRequest.WithDescription("The token was not issued to the requesting client.").WithReason("refresh token belongs to client " + rt.ClientID))
		}
		// Okta guide "Revoke tokens": revoking a refresh token revokes
		// the access tokens issued from it; the family mark covers them.
		return i.revokeFamilyOf(x, rt)
	}
	x.d.jti = t.JwtID()
	if cid, _ := t.PrivateClaims()["cid"].(string); cid != x.d.clientID {
		return failed(oauth.ErrInvalidRequest.WithDescription("The token was not issued to the requesting client.").WithReason("token belongs to client " + cid))
	}
	who, _ := t.PrivateClaims()["uid"].(string) // user tokens; else the client itself
	// Revoking an access token leaves its refresh token alone (same
	// guide); one whose family is revoked has nothing left to revoke.
	if gone, err := i.familyRevoked(ctx, t); err != nil {
		return failed(oauth.FromStore(err))
	} else if gone {
		return nothingToRevoke
	}
	// The tokens exchanged from it fall with it (token_exchange.go):
	// published with it, and once more after the mark for an exchange
	// that indexed its token meanwhile.
	var exchanged []ssf.Event
	out := i.markRevoked(x, store.NSRevoked, t.JwtID(), t.Expiration().Add(time.Minute), who, func() ([]ssf.Event, error) {
		evs, err := i.exchangedEvents(ctx, t.JwtID(), ssf.InitiatedByUser)
		exchanged = evs
		return append([]ssf.Event{tokenEvent(s.Issuer, t.JwtID(), t.Expiration(), ssf.InitiatedByUser)}, evs...), err
	})
	if out.err == nil && !out.unlogged {
		i.publishExchangedAfterMark(ctx, t.JwtID(), exchanged)
	}
	return out
}

// accessRevoked reports whether a verified access token was revoked:
// itself, or its refresh-token family (revoked, or reused after
// rotation: Okta guide "Refresh token rotation" invalidates "all access
// tokens issued since the user authenticated"), or issued before a
// cut-off of its user or client (subject_revoke.go), or exchanged
// from a token such a cut-off revoked (token_exchange.go).
func (i *Issuer) accessRevoked(ctx context.Context, t jwt.Token) (bool, error) {
	if rev, err := i.revoked(ctx, t.JwtID()); err != nil || rev {
		return rev, err
	}
	if rev, err := i.accessCutOff(ctx, t); err != nil || rev {
		return rev, err
	}
	if rev, err := i.exchangeRevoked(ctx, t); err != nil || rev {
		return rev, err
	}
	return i.familyRevoked(ctx, t)
}

// familyRevoked reports whether a verified access token was issued from
// a refresh-token family that is now revoked.
func (i *Issuer) familyRevoked(ctx context.Context, t jwt.Token) (bool, error) {
	if uid, _ := t.PrivateClaims()["uid"].(string); uid == "" {
		return false, nil
	}
	fam, err := i.familyOf(ctx, t.JwtID())
	if err != nil || fam == "" {
		return false, err
	}
	return i.store.Marked(ctx, store.NSFamily, fam)
}

// markRevoked writes one revocation record within the budget of the
// client and the token's subject (who), so one user of a public app
// cannot spend every other user's revocations (and signOuts). The
// revocation is published on the feed first (events): if that fails
// nothing is marked and the client may retry; if the mark fails after
// it, gateways refuse a token the issuer still honours, the safe side.
func (i *Issuer) markRevoked(x *exchange, ns, key string, until time.Time, who string, events func() ([]ssf.Event, error)) outcome {
	ctx := x.r.Context()
	if already, err := i.store.Marked(ctx, ns, key); err != nil {
		return failed(oauth.FromStore(err))
	} else if already {
		return nothingToRevoke
	}
	if wait, ok := i.spendRevokeBudget(ctx, x.d.clientID+"\x00"+who); !ok {
		now := i.now()
		return outcome{err: &oauth.Error{Code: "rate_limited", Status: http.StatusTooManyRequests, Reason: "revocation budget spent"},
			write: func(w http.ResponseWriter) { writeRateLimited(w, revokeBudget, wait, now) }}
	}
	evs, err := events()
	if err == nil {
		err = i.publish(ctx, evs...)
	}
	if err != nil {
		return failed(oauth.FromStore(err))
	}
	if _, err := i.store.Mark(ctx, ns, key, until); err != nil {
		return failed(oauth.FromStore(err))
	}
	return outcome{}
}

// revokeFamilyOf revokes a refresh token's family for the revocation
// endpoint. The mark comes first and the family's index is read after
// it, while a grant writes the index first and reads the mark after
// (linkFamily): whichever is second sees the other, so no access token
// issued from the family escapes the feed. Once the events are on the
// feed a second mark says so; a family marked revoked but not published
// (the publish failed) is published by the next call, within the
// budget. A family revoked and published costs nothing again.
func (i *Issuer) revokeFamilyOf(x *exchange, rt store.RefreshToken) outcome {
	ctx := x.r.Context()
	until := familyMarkUntil(rt)
	if i.feed != nil {
		if done, err := i.store.Marked(ctx, store.NSFamilyPublished, rt.Family); err != nil {
			return failed(oauth.FromStore(err))
		} else if done {
			return nothingToRevoke
		}
	}
	already, err := i.store.Marked(ctx, store.NSFamily, rt.Family)
	if err != nil {
		return failed(oauth.FromStore(err))
	}
	if already && i.feed == nil {
		return nothingToRevoke
	}
	if wait, ok := i.spendRevokeBudget(ctx, x.d.clientID+"\x00"+rt.UserID); !ok {
		now := i.now()
		return outcome{err: &oauth.Error{Code: "rate_limited", Status: http.StatusTooManyRequests, Reason: "revocation budget spent"},
			write: func(w http.ResponseWriter) { writeRateLimited(w, revokeBudget, wait, now) }}
	}
	if !already {
		if _, err := i.store.Mark(ctx, store.NSFamily, rt.Family, until); err != nil {
			return failed(oauth.FromStore(err))
		}
	}
	if err := i.publishRevokedFamily(ctx, rt.Family, until); err != nil {
		return failed(oauth.FromStore(err))
	}
	i.dropIndex(ctx, &rt) // the token APIs' record (tokens_api.go)
	if already {
		return nothingToRevoke
	}
	return outcome{}
}

// spendRevokeBudget counts one revocation record for key (a client and
// subject) and reports whether it is within the budget, and how long
// until the window ends. Windows are fixed spans of the issuer's clock;
// the count is the store's atomic Incr, shared by every node.
func (i *Issuer) spendRevokeBudget(ctx context.Context, key string) (time.Duration, bool) {
	now := i.now()
	end := now.Truncate(revokeWindow).Add(revokeWindow)
	n, err := i.store.Incr(ctx, store.NSAttempts, "revoke:"+key+"\x00"+strconv.FormatInt(end.Unix(), 10), 1, end)
	if err != nil {
		// A failing store refuses the revocation write itself; the
		// counter does not need to.
		return 0, true
	}
	if n > int64(revokeBudget) {
		return end.Sub(now), false
	}
	return 0, true
}

// writeRateLimited answers Okta's rate-limit error: 429 with its
// E0000047 body and X-Rate-Limit headers (Okta's rate limits answer
// its OAuth endpoints in this shape too).
func writeRateLimited(w http.ResponseWriter, limit int, wait time.Duration, now time.Time) {
	h := w.Header()
	h.Set("X-Rate-Limit-Limit", strconv.Itoa(limit))
	h.Set("X-Rate-Limit-Remaining", "0")
	h.Set("X-Rate-Limit-Reset", strconv.FormatInt(now.Add(wait).Unix(), 10))
	h.Set("Retry-After", strconv.Itoa(max(1, int((wait+time.Second-1)/time.Second))))
	writeOktaError(w, http.StatusTooManyRequests, "E0000047", "API call exceeded rate limit due to too many requests.")
}
