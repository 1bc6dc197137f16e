package authserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/internal/ssf"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// feedQueue is the transmitter's event queue: ssf.Queue over the
// store's feed log (every node appends to and reads the same log), and
// a follower of every broadcast event for the in-process view.
type feedQueue interface {
	ssf.Queue
	// Events are the broadcast events after seq after, oldest first, up
	// to limit, and the seq of the last one read.
	Events(ctx context.Context, after uint64, limit int) ([]ssf.Event, uint64, error)
	// Wait returns when an event after seq after may exist, or ctx ends.
	Wait(ctx context.Context, after uint64)
}

// What the feed publishes (FEED in README): a revoked access token as
// one jwt_id event with its exp; a revoked refresh-token family as one
// such event per access token issued from it that has not expired (the
// family index below); all tokens of a user, of a client, or of a user
// at a client as a cut-off on that subject (subject_revoke.go). Gateways
// never see refresh tokens, so a family's refresh tokens need nothing.

// publish applies ev to the in-process view at once, so a require_token
// of this Caddy refuses the token before the revocation is answered,
// and queues it for every stream. The view takes it even when queueing
// fails (refusing more is the safe side; the caller answers the failure
// or logs it).
func (i *Issuer) publish(ctx context.Context, evs ...ssf.Event) error {
	now := i.now()
	txn := newUUID()
	for n := range evs {
		evs[n].IssuedAt, evs[n].Txn = now, txn
		if evs[n].Time.IsZero() {
			evs[n].Time = now
		}
		evs[n].Time = evs[n].Time.Truncate(time.Second)
		i.applyToView(evs[n]) // all of them, before any can fail to queue
	}
	if i.feed == nil {
		return nil // a store without a feed log: this process's view only
	}
	for _, ev := range evs {
		if err := i.feed.Publish(ctx, ev); err != nil {
			return err
		}
	}
	return nil
}

func (i *Issuer) applyToView(ev ssf.Event) {
	if err := i.view.Apply(ev); err != nil && !errors.Is(err, ssf.ErrEvent) && !errors.Is(err, ssf.ErrSubject) {
		// Full: MaxTokens revocations in force. Introspection still
		// refuses the token; the gateways of this Caddy may not.
		i.log.Error("in-process revocation view cannot keep a revocation", zap.Error(err))
	}
}

// issuerOf is the issuer identifier of server id ("" when unknown).
func (i *Issuer) issuerOf(id string) string {
	if s, ok := i.Server(id); ok {
		return s.Issuer
	}
	return ""
}

// tokenEvent is the revocation of one access token.
func tokenEvent(iss, jti string, exp time.Time, by string) ssf.Event {
	return ssf.Event{Subject: ssf.Subject{Kind: ssf.SubjectToken, Issuer: iss, JTI: jti, Expiry: exp}, InitiatingEntity: by}
}

// cutOffEvent is the revocation of every token of a subject issued at
// or before at: a user (uid), a client, or a user at a client.
func cutOffEvent(uid, cid string, at time.Time) ssf.Event {
	s := ssf.Subject{Kind: ssf.SubjectUser, UID: uid, ClientID: cid}
	if uid == "" {
		s = ssf.Subject{Kind: ssf.SubjectClient, ClientID: cid}
	}
	return ssf.Event{Subject: s, Time: at, InitiatingEntity: ssf.InitiatedByAdmin}
}

// familyToken is one access token issued from a refresh-token family
// (store.NSFamilyTokens), kept until its exp.
type familyToken struct {
	JTI string `json:"j"`
	Iss string `json:"i"`
	Exp int64  `json:"e"`
}

// maxFamilyTokens bounds the unexpired access tokens of one family; a
// client refreshing faster than that within one token lifetime is
// refused rather than leaving a token out of the index.
const maxFamilyTokens = 500

var errFamilyFull = errors.New("too many unexpired access tokens in one refresh-token family")

// indexFamilyToken adds an access token to its family's index, which
// lasts as long as the family's revocation mark would.
func (i *Issuer) indexFamilyToken(ctx context.Context, family, iss, jti string, exp, familyExp time.Time) error {
	now := i.now().Unix()
	until := familyMarkUntil(store.RefreshToken{FamilyExpires: familyExp})
	return i.upsertRecord(ctx, store.NSFamilyTokens, family, until, func(old []byte) ([]byte, error) {
		var list []familyToken
		if old != nil {
			if err := json.Unmarshal(old, &list); err != nil {
				return nil, err
			}
		}
		live := list[:0]
		for _, t := range list {
			if t.Exp >= now {
				live = append(live, t)
			}
		}
		if len(live) >= maxFamilyTokens {
			return nil, errFamilyFull
		}
		return json.Marshal(append(live, familyToken{JTI: jti, Iss: iss, Exp: exp.Unix()}))
	})
}

// familyEvents are the revocations of a family's unexpired access tokens.
func (i *Issuer) familyEvents(ctx context.Context, family, by string) ([]ssf.Event, error) {
	if i.feed == nil {
		return nil, nil
	}
	b, err := i.store.GetRecord(ctx, store.NSFamilyTokens, family)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var list []familyToken
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, err
	}
	// Gateways accept a token a little past exp (their clock skew).
	now := i.now().Add(-ssf.DefaultLeeway).Unix()
	var out []ssf.Event
	for _, t := range list {
		if t.Exp >= now {
			out = append(out, tokenEvent(t.Iss, t.JTI, time.Unix(t.Exp, 0), by))
		}
	}
	return out, nil
}

// publishFamily publishes the revocation of a family's access tokens.
func (i *Issuer) publishFamily(ctx context.Context, family, by string) error {
	evs, err := i.familyEvents(ctx, family, by)
	if err != nil {
		return err
	}
	return i.publish(ctx, evs...)
}

// upsertRecord changes a record atomically, creating it (until the
// given time) when there is none; fn sees nil then.
func (i *Issuer) upsertRecord(ctx context.Context, ns, key string, until time.Time, fn func(old []byte) ([]byte, error)) error {
	for range 3 {
		_, err := i.store.UpdateRecord(ctx, ns, key, fn)
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		v, err := fn(nil)
		if err != nil {
			return err
		}
		created, err := i.store.CreateRecord(ctx, ns, key, v, until)
		if err != nil || created {
			return err
		}
		// Another node created it meanwhile: change that one.
	}
	return errors.New("record kept changing under concurrent writers")
}

// RevocationView is the revocations in force that this issuer knows:
// everything the feed holds, every node's, applied as this node
// publishes and as it reads the others' (within the queue's head poll).
// A require_token of the same Caddy consults it on every request.
func (i *Issuer) RevocationView() *ssf.Revocations { return i.view }

// followFeed keeps the view up to date with the feed, from after, until
// ctx ends.
func (i *Issuer) followFeed(ctx context.Context, after uint64) {
	for ctx.Err() == nil {
		next, err := i.catchUp(ctx, after)
		if err == nil {
			i.viewSynced.Store(i.now().UnixNano())
		}
		if err != nil {
			if ctx.Err() == nil {
				i.log.Warn("in-process revocation view: reading the feed failed; retrying", zap.Error(err))
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
			continue
		}
		if next == after {
			// At most viewRecheck without reading the store, so the
			// view's age says whether the store (other nodes'
			// revocations) is still reachable.
			wctx, cancel := context.WithTimeout(ctx, viewRecheck)
			i.feed.Wait(wctx, after)
			cancel()
		}
		after = next
	}
}

// viewRecheck is how often the follower reads the feed while nothing is
// published: the in-process view's age stays under it while the store
// answers.
const viewRecheck = 5 * time.Second

// RevocationViewAge is how long ago the in-process view last caught up
// with the feed (every node's revocations); ok false before the first
// time. This node's own revocations are in the view at once whatever
// its age.
func (i *Issuer) RevocationViewAge() (time.Duration, bool) {
	if i.Started() && i.feed == nil {
		return 0, true // no feed log: the view is all there is, and current
	}
	n := i.viewSynced.Load()
	if n == 0 {
		return 0, false
	}
	return i.now().Sub(time.Unix(0, n)), true
}

// catchUp applies every event after seq after and returns the last seq.
func (i *Issuer) catchUp(ctx context.Context, after uint64) (uint64, error) {
	for {
		evs, last, err := i.feed.Events(ctx, after, 1000)
		if err != nil {
			return after, err
		}
		for _, ev := range evs {
			i.applyToView(ev)
		}
		if last <= after {
			return after, nil
		}
		after = last
	}
}

// startFeed opens the revocation feed on a store that keeps a feed log,
// loads every event still in force into the view (so this Caddy's
// gateways know them before the first request), and follows the feed.
func (i *Issuer) startFeed(ctx context.Context, st store.Store) error {
	fl, ok := st.(store.FeedLog)
	if !ok {
		return nil
	}
	org := i.org
	i.feed = newStoreFeed(st, fl, func(ev ssf.Event, aud string) (string, error) {
		return ssf.Sign(ev, org.keys.Current().Active, i.base, aud)
	}, i.log, i.obs)
	after, err := i.catchUp(ctx, 0)
	if err != nil {
		return fmt.Errorf("revocation feed: %w", err)
	}
	i.viewSynced.Store(i.now().UnixNano())
	fctx, cancel := context.WithCancel(context.Background())
	i.stopFeed = cancel
	go i.followFeed(fctx, after)
	return nil
}
