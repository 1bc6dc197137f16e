package authserver

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"go.uber.org/zap"
)

// Okta's refresh-token routes of the management API (tags UserOAuth and
// ApplicationTokens): the refresh tokens of a user at a client and of a
// client, listed and read without their values, and one revoked:
//
//	GET    /api/v1/users/{userId}/clients/{clientId}/tokens[/{tokenId}]
//	DELETE /api/v1/users/{userId}/clients/{clientId}/tokens/{tokenId}
//	GET    /api/v1/apps/{appId}/tokens[/{tokenId}]
//	DELETE /api/v1/apps/{appId}/tokens/{tokenId}
//
// (DELETE of the lists, every token, is subject_revoke.go's cut-off.)
// A token here is a refresh-token family, as Okta's token id outlives
// rotation: the index (store.NSTokenIndex) holds one record per family,
// written when its first token is issued and pointed at each successor
// once the refresh committed, keyed client, user, token id so that both
// lists are prefix lists, and expiring at the newest token's idle
// deadline. Families begun before the index existed are not in it until
// their next refresh. Only ACTIVE tokens are listed or read (Okta's
// lists show active tokens; a revoked one is gone): a family revoked,
// cut off, expired, idle past its window, of a user not active or of a
// server no longer configured is not found. The records of dead
// families are deleted by the revocations that know the family and by
// the lists and reads that meet them; a list examines a bounded number
// of records per request. Revoking one revokes its family and every
// access token issued from it, published on the revocation feed
// (revokeFamily).

// tokenIndexEntry is an index record's value.
type tokenIndexEntry struct {
	Family string `json:"family"`
	// Hash is the family's newest refresh token (store.RefreshToken.Hash).
	Hash    string    `json:"hash"`
	Created time.Time `json:"created"`
	// Issued and Idle are the newest token's issue time and idle
	// deadline: the record only moves forward (indexSuccessor), and
	// expires at Idle.
	Issued time.Time `json:"issued,omitzero"`
	Idle   time.Time `json:"idle,omitzero"`
}

// tokenIDForm is the form of every token id (refreshTokenID): an id of
// another form names no token, and never reaches a store key.
var tokenIDForm = regexp.MustCompile(`^oar[A-Za-z0-9_-]{17}$`)

// tokenIndexPrefix is the index prefix of a client's families, and
// with a user, of the user's families at the client.
func tokenIndexPrefix(cid, uid string) string {
	p := cid + "\x00"
	if uid != "" {
		p += uid + "\x00"
	}
	return p
}

// tokenIndexKey is the index key of rt's family.
func tokenIndexKey(rt *store.RefreshToken) string {
	return tokenIndexPrefix(rt.ClientID, rt.UserID) + refreshTokenID(rt.Family)
}

// refreshTokenID is a family's token id: stable across rotation, a
// digest of the family (Okta's ids are "oar" and 17 characters).
func refreshTokenID(family string) string { return "oar" + digest("refresh-family", family)[:17] }

// indexEntryOf is the index value pointing at rt, a family's newest
// token.
func indexEntryOf(rt *store.RefreshToken, created time.Time) tokenIndexEntry {
	return tokenIndexEntry{Family: rt.Family, Hash: rt.Hash, Created: created.UTC(), Issued: rt.Issued.UTC(), Idle: rt.IdleExpires.UTC()}
}

// indexFamily writes the index record of a family begun with rt; it
// expires with rt's idle deadline, moved by each refresh.
func (i *Issuer) indexFamily(ctx context.Context, rt *store.RefreshToken) error {
	b, _ := json.Marshal(indexEntryOf(rt, rt.Issued))
	return i.store.PutRecord(ctx, store.NSTokenIndex, tokenIndexKey(rt), b, rt.IdleExpires)
}

// indexSuccessor points the family's index record at rt, its token
// after a committed refresh (a successor, or a static token whose idle
// deadline moved), and moves the record's expiry to rt's idle deadline.
// It only moves forward (a later issue time, or the same token with a
// later deadline): of refreshes racing within the leeway, the later
// wins (two writers between the read and the write can still swap, off
// by the leeway, and the next refresh puts it right). A missing record
// (a family of before the index, or one expired meanwhile) is written
// again, a corrupt one rewritten; a failure is logged and never fails
// the refresh, which has committed.
func (i *Issuer) indexSuccessor(ctx context.Context, rt *store.RefreshToken) {
	key := tokenIndexKey(rt)
	created := rt.AuthTime // the best guess for a family without a record
	if created.IsZero() {
		created = rt.Issued
	}
	old, err := i.store.GetRecord(ctx, store.NSTokenIndex, key)
	switch {
	case err == nil:
		var cur tokenIndexEntry
		if jerr := json.Unmarshal(old, &cur); jerr != nil || cur.Family != rt.Family {
			i.log.Warn("token index record unreadable: rewritten", zap.String("client_id", rt.ClientID))
			break
		}
		if cur.Hash == rt.Hash && !rt.IdleExpires.After(cur.Idle) || cur.Hash != rt.Hash && !rt.Issued.After(cur.Issued) {
			return // a later refresh moved it already
		}
		created = cur.Created
	case !errors.Is(err, store.ErrNotFound):
		i.log.Warn("token index not updated", zap.String("client_id", rt.ClientID), zap.Error(err))
		return
	}
	b, _ := json.Marshal(indexEntryOf(rt, created))
	if err := i.store.PutRecord(ctx, store.NSTokenIndex, key, b, rt.IdleExpires); err != nil {
		i.log.Warn("token index not updated", zap.String("client_id", rt.ClientID), zap.Error(err))
	}
}

// dropIndex deletes the index record of rt's family (the family is
// revoked); a failure leaves it to the lists' cleanup.
func (i *Issuer) dropIndex(ctx context.Context, rt *store.RefreshToken) {
	if rt.ClientID == "" || rt.Family == "" {
		return
	}
	_, _ = i.store.UpdateRecord(ctx, store.NSTokenIndex, tokenIndexKey(rt), func([]byte) ([]byte, error) { return nil, nil })
}

// errIndexMoved aborts the cleanup of a record that changed meanwhile.
var errIndexMoved = errors.New("token index record changed")

// dropDead deletes an index record found dead, unless it changed since
// it was read (a refresh moved it); failures are left to a later list.
func (i *Issuer) dropDead(ctx context.Context, rec store.Record) {
	_, _ = i.store.UpdateRecord(ctx, store.NSTokenIndex, rec.Key, func(old []byte) ([]byte, error) {
		if !bytes.Equal(old, rec.Value) {
			return nil, errIndexMoved
		}
		return nil, nil
	})
}

// indexedToken is one family of the index with its newest token.
type indexedToken struct {
	key   string
	id    string
	entry tokenIndexEntry
	raw   []byte // the record's value, as read
	rt    store.RefreshToken
}

// tokenState is what an index record's family is.
type tokenState int

const (
	// tokenHidden: not listed, and kept: a record of another shape, or
	// a family that could refresh again (its user suspended, its server
	// gone from the configuration).
	tokenHidden tokenState = iota
	// tokenLive: active, listed.
	tokenLive
	// tokenDead: never active again (expired, idle past its window, cut
	// off, its token gone): its record may be deleted.
	tokenDead
	// tokenRevoked: dead, its family marked revoked (t.rt is read).
	tokenRevoked
)

// tokenScope is the list or read a record is judged for: client cid,
// and user uid when not "" (its user u, when known); users caches the
// activity of the users met by a client's list.
type tokenScope struct {
	cid, uid string
	u        *directory.User
	users    map[string]bool
}

// liveToken judges the family behind an index record for scope sc: it
// is live when the record is sc's (its key is exactly the one of the
// newest token's client, user and family, and these are sc's), that
// token exists and is within its deadlines, the family is neither
// revoked nor cut off, and the refresh grant's read-only checks pass
// (the user is active, the server configured).
func (i *Issuer) liveToken(ctx context.Context, rec store.Record, sc *tokenScope) (indexedToken, tokenState, error) {
	t := indexedToken{key: rec.Key, raw: rec.Value}
	rest, ok := strings.CutPrefix(rec.Key, tokenIndexPrefix(sc.cid, sc.uid))
	if !ok {
		return t, tokenHidden, nil
	}
	if sc.uid == "" {
		rest = rest[strings.LastIndexByte(rest, 0)+1:]
	}
	t.id = rest
	if !tokenIDForm.MatchString(t.id) {
		return t, tokenHidden, nil // another user's, whose id has this user's as a prefix
	}
	if err := json.Unmarshal(rec.Value, &t.entry); err != nil {
		return t, tokenHidden, nil // not an index record: never listed
	}
	now := i.now()
	rt, err := i.store.GetRefresh(ctx, t.entry.Hash)
	if errors.Is(err, store.ErrNotFound) {
		// Gone (purged), or a grant between its index write and its
		// token's: the latter is done within a minute.
		if now.Sub(maxTime(t.entry.Issued, t.entry.Created)) > time.Minute {
			return t, tokenDead, nil
		}
		return t, tokenHidden, nil
	}
	if err != nil {
		return t, tokenHidden, err
	}
	t.rt = rt
	if rt.ClientID != sc.cid || (sc.uid != "" && rt.UserID != sc.uid) || rt.Family != t.entry.Family || tokenIndexKey(&rt) != rec.Key {
		return t, tokenHidden, nil
	}
	if !now.Before(rt.IdleExpires) || !now.Before(rt.FamilyExpires) {
		return t, tokenDead, nil
	}
	revoked, err := i.store.Marked(ctx, store.NSFamily, rt.Family)
	if err != nil {
		return t, tokenHidden, err
	}
	if revoked {
		return t, tokenRevoked, nil
	}
	if cut, err := i.refreshCutOff(ctx, rt); err != nil || cut {
		return t, tokenDead, err
	}
	// The refresh grant's read-only checks (token_refresh.go).
	if _, ok := i.Server(rt.Server); !ok {
		return t, tokenHidden, nil
	}
	active, err := i.userActive(ctx, rt.UserID, sc)
	if err != nil || !active {
		return t, tokenHidden, err
	}
	return t, tokenLive, nil
}

// userActive reports whether the user uid may still refresh (refresh.go
// activeUser), caching the answer in sc.
func (i *Issuer) userActive(ctx context.Context, uid string, sc *tokenScope) (bool, error) {
	if sc.u != nil && sc.u.ID == uid {
		return sc.u.Active(), nil
	}
	if active, ok := sc.users[uid]; ok {
		return active, nil
	}
	if i.dir == nil {
		return false, nil
	}
	u, err := i.dir.UserByID(ctx, uid)
	if err != nil && !errors.Is(err, directory.ErrNotFound) {
		return false, err
	}
	active := err == nil && u.Active()
	if sc.users == nil {
		sc.users = map[string]bool{}
	}
	sc.users[uid] = active
	return active, nil
}

// deadAndDone reports whether a record judged st may be deleted: dead,
// or revoked with its access tokens published (an unpublished one is
// kept, for a retried DELETE to publish).
func (i *Issuer) deadAndDone(ctx context.Context, t indexedToken, st tokenState) bool {
	switch st {
	case tokenDead:
		return true
	case tokenRevoked:
		pending, err := i.publishPending(ctx, t.rt)
		return err == nil && !pending
	}
	return false
}

// publishPending reports whether a revoked family's access tokens are
// still to be published on the revocation feed.
func (i *Issuer) publishPending(ctx context.Context, rt store.RefreshToken) (bool, error) {
	if i.feed == nil {
		return false, nil
	}
	done, err := i.store.Marked(ctx, store.NSFamilyPublished, rt.Family)
	return err == nil && !done, err
}

// listTokens reads up to limit active tokens of sc after the cursor (a
// key below its prefix), deleting the records of dead families it
// meets. It examines at most 10*limit+50 records, so that the dead
// families not yet cleaned cost a bounded amount per request; next is
// the cursor of the next page when there may be more ("" at the end).
func (i *Issuer) listTokens(ctx context.Context, sc *tokenScope, after string, limit int) (out []indexedToken, next string, err error) {
	prefix := tokenIndexPrefix(sc.cid, sc.uid)
	cursor := ""
	if after != "" {
		cursor = prefix + after
	}
	budget := 10*limit + 50
	for budget > 0 {
		batch := min(limit+1, grantsPageMax+1, budget)
		recs, err := i.store.ListRecords(ctx, store.NSTokenIndex, prefix, cursor, batch)
		if err != nil {
			return nil, "", err
		}
		for _, rec := range recs {
			budget--
			t, st, err := i.liveToken(ctx, rec, sc)
			if err != nil {
				return nil, "", err
			}
			switch {
			case st == tokenLive && len(out) == limit:
				return out, strings.TrimPrefix(out[len(out)-1].key, prefix), nil
			case st == tokenLive:
				out = append(out, t)
			case i.deadAndDone(ctx, t, st):
				i.dropDead(ctx, rec)
			}
			if budget == 0 {
				return out, strings.TrimPrefix(rec.Key, prefix), nil
			}
		}
		if len(recs) < batch {
			return out, "", nil
		}
		cursor = recs[len(recs)-1].Key
	}
	return out, "", nil
}

// hasTokens reports whether sc has an active token, paging through the
// bounded lists of listTokens.
func (i *Issuer) hasTokens(ctx context.Context, sc *tokenScope) (bool, error) {
	after := ""
	for {
		ts, next, err := i.listTokens(ctx, sc, after, 1)
		if err != nil || len(ts) > 0 || next == "" {
			return len(ts) > 0, err
		}
		after = next
	}
}

// findToken reads one token by id of sc (a user at a client: one key;
// a client: a scan of its families' keys), with its state.
func (i *Issuer) findToken(ctx context.Context, sc *tokenScope, id string) (indexedToken, tokenState, error) {
	if !tokenIDForm.MatchString(id) {
		return indexedToken{}, tokenHidden, nil
	}
	if sc.uid != "" {
		key := tokenIndexPrefix(sc.cid, sc.uid) + id
		v, err := i.store.GetRecord(ctx, store.NSTokenIndex, key)
		if errors.Is(err, store.ErrNotFound) {
			return indexedToken{}, tokenHidden, nil
		}
		if err != nil {
			return indexedToken{}, tokenHidden, err
		}
		return i.liveToken(ctx, store.Record{Key: key, Value: v}, sc)
	}
	cursor := ""
	for {
		recs, err := i.store.ListRecords(ctx, store.NSTokenIndex, tokenIndexPrefix(sc.cid, ""), cursor, grantsPageMax)
		if err != nil {
			return indexedToken{}, tokenHidden, err
		}
		for _, rec := range recs {
			if strings.HasSuffix(rec.Key, "\x00"+id) {
				return i.liveToken(ctx, rec, sc)
			}
		}
		if len(recs) < grantsPageMax {
			return indexedToken{}, tokenHidden, nil
		}
		cursor = recs[len(recs)-1].Key
	}
}

// serveUserTokens answers {uid}/clients/{cid}/tokens GET and
// {uid}/clients/{cid}/tokens/{tokenId} GET and DELETE; false for other
// paths (and the list's DELETE, a cut-off).
func (i *Issuer) serveUserTokens(w http.ResponseWriter, r *http.Request, parts []string) bool {
	if len(parts) < 4 || len(parts) > 5 || parts[1] != "clients" || parts[3] != "tokens" {
		return false
	}
	if len(parts) == 4 && r.Method == http.MethodDelete {
		return false
	}
	if !i.apiTokenValid(r) {
		invalidToken(w)
		return true
	}
	if !tokensMethodOK(w, r) {
		return true
	}
	u, ok := i.apiUser(w, r, parts[0])
	if !ok {
		return true
	}
	if _, ok := i.auth.Client(parts[2]); !ok {
		notFoundResource(w, parts[2], "Client")
		return true
	}
	tokenID := ""
	if len(parts) == 5 {
		tokenID = parts[4]
	}
	i.serveTokens(w, r, parts[2], u, tokenID)
	return true
}

// serveAppTokens answers {appId}/tokens GET and {appId}/tokens/{tokenId}
// GET and DELETE below appsAPIPath; false for other paths (and the
// list's DELETE, a cut-off).
func (i *Issuer) serveAppTokens(w http.ResponseWriter, r *http.Request, parts []string) bool {
	if len(parts) < 2 || len(parts) > 3 || parts[1] != "tokens" || (len(parts) == 2 && r.Method == http.MethodDelete) {
		return false
	}
	if !i.apiTokenValid(r) {
		invalidToken(w)
		return true
	}
	if !tokensMethodOK(w, r) {
		return true
	}
	if _, ok := i.auth.Client(parts[0]); !ok {
		notFoundResource(w, parts[0], "Application")
		return true
	}
	tokenID := ""
	if len(parts) == 3 {
		tokenID = parts[2]
	}
	i.serveTokens(w, r, parts[0], nil, tokenID)
	return true
}

// tokensMethodOK answers 405 for a method the path does not take: the
// lists and the tokens both take GET and DELETE.
func tokensMethodOK(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodDelete {
		return true
	}
	apiMethodNotAllowed(w, "GET, DELETE")
	return false
}

// serveTokens lists, reads or revokes the tokens of client cid (of user
// u, when not nil).
func (i *Issuer) serveTokens(w http.ResponseWriter, r *http.Request, cid string, u *directory.User, tokenID string) {
	ctx := r.Context()
	uid := ""
	if u != nil {
		uid = u.ID
	}
	values := r.URL.Query()
	expand := values.Get("expand") == "scope"
	w.Header().Set("Cache-Control", "no-store")
	sc := &tokenScope{cid: cid, uid: uid, u: u}
	if tokenID != "" {
		t, st, err := i.findToken(ctx, sc, tokenID)
		if err != nil {
			i.apiStoreFailure(w, err)
			return
		}
		if st == tokenRevoked && r.Method == http.MethodDelete {
			// Revoked, its publish failed (a DELETE answered 503, or a
			// revocation elsewhere): publish and answer the DELETE now.
			pending, err := i.publishPending(ctx, t.rt)
			if err == nil && pending {
				err = i.publishRevokedFamily(ctx, t.rt.Family, familyMarkUntil(t.rt))
				if err == nil {
					i.revokedIndexed(w, r, t, u)
					return
				}
			}
			if err != nil {
				i.apiStoreFailure(w, err)
				return
			}
		}
		if st != tokenLive {
			if i.deadAndDone(ctx, t, st) {
				i.dropDead(ctx, store.Record{Key: t.key, Value: t.raw})
			}
			notFoundResource(w, tokenID, "OAuth2RefreshToken")
			return
		}
		if r.Method == http.MethodDelete {
			i.revokeIndexed(w, r, t, u)
			return
		}
		oauth.WriteJSON(w, http.StatusOK, i.oktaRefreshToken(&t, u, expand))
		return
	}
	limit := grantsPageDefault
	if s := values.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			writeOktaError(w, http.StatusBadRequest, "E0000001", "Api validation failed: 'limit': must be a positive integer.")
			return
		}
		limit = min(n, grantsPageMax)
	}
	after := ""
	if s := values.Get("after"); s != "" {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			writeOktaError(w, http.StatusBadRequest, "E0000001", "Api validation failed: 'after': not a cursor of this list.")
			return
		}
		after = string(b)
	}
	ts, next, err := i.listTokens(ctx, sc, after, limit)
	if err != nil {
		i.apiStoreFailure(w, err)
		return
	}
	out := make([]oktaRefreshToken, 0, len(ts))
	for n := range ts {
		out = append(out, i.oktaRefreshToken(&ts[n], u, expand))
	}
	// The cursor is opaque (Okta: "treat this as an opaque value"): the
	// last key examined below the list's prefix (a page may be short, or
	// empty, when listTokens' bound stopped it: the next link goes on).
	self := i.base + strings.TrimPrefix(r.URL.EscapedPath(), (&url.URL{Path: i.basePath}).EscapedPath())
	w.Header().Add("Link", "<"+self+queryOf(values)+`>; rel="self"`)
	if next != "" {
		values.Set("after", base64.RawURLEncoding.EncodeToString([]byte(next)))
		values.Set("limit", strconv.Itoa(limit))
		w.Header().Add("Link", "<"+self+queryOf(values)+`>; rel="next"`)
	}
	oauth.WriteJSON(w, http.StatusOK, out)
}

// revokeIndexed revokes one token's family and its access tokens (on
// the feed first: a failure leaves the index record, and a retry
// publishes), then drops its index record (revokeFamily); 204.
func (i *Issuer) revokeIndexed(w http.ResponseWriter, r *http.Request, t indexedToken, u *directory.User) {
	if err := i.revokeFamily(r.Context(), t.rt); err != nil {
		i.apiStoreFailure(w, err)
		return
	}
	i.revokedIndexed(w, r, t, u)
}

// revokedIndexed ends a DELETE whose family is revoked and published:
// the index record goes, the System Log records it; 204.
func (i *Issuer) revokedIndexed(w http.ResponseWriter, r *http.Request, t indexedToken, u *directory.User) {
	ctx := r.Context()
	i.dropIndex(ctx, &t.rt)
	if u == nil && i.dir != nil {
		u, _ = i.dir.UserByID(ctx, t.rt.UserID) // the log's target; none if gone
	}
	i.logAdminCut(r, EventRevoke, u, t.rt.ClientID, map[string]any{"revoked": "one refresh token and the access tokens issued from it", "tokenId": t.id})
	w.WriteHeader(http.StatusNoContent)
}

// oktaRefreshToken is Okta's OAuth2RefreshToken object.
type oktaRefreshToken struct {
	ID          string         `json:"id"`
	Status      string         `json:"status"`
	Created     string         `json:"created"`
	LastUpdated string         `json:"lastUpdated"`
	ExpiresAt   string         `json:"expiresAt"`
	Issuer      string         `json:"issuer"`
	ClientID    string         `json:"clientId"`
	UserID      string         `json:"userId"`
	Scopes      []string       `json:"scopes"`
	Embedded    map[string]any `json:"_embedded,omitempty"`
	Links       map[string]any `json:"_links"`
}

// oktaRefreshToken is t in Okta's shape: created when the family began,
// lastUpdated when its newest token was issued, expiresAt the earlier
// of its idle deadline and the family's end. self is the user route
// when the list was a user's, else the app route.
func (i *Issuer) oktaRefreshToken(t *indexedToken, u *directory.User, expand bool) oktaRefreshToken {
	api := i.base + "/api/v1"
	servers := i.base + "/" + authServersAPIPath // authServersAPIPath begins with api/v1
	rt := &t.rt
	s, _ := i.Server(rt.Server)
	out := oktaRefreshToken{ID: t.id, Status: "ACTIVE", Created: oktaTime(t.entry.Created), LastUpdated: oktaTime(rt.Issued),
		ExpiresAt: oktaTime(minTime(rt.IdleExpires, rt.FamilyExpires)), ClientID: rt.ClientID, UserID: rt.UserID, Scopes: nonNil(rt.Scopes)}
	clientTitle := rt.ClientID
	if c, ok := i.auth.Client(rt.ClientID); ok && c.Name != "" {
		clientTitle = c.Name
	}
	self := api + "/apps/" + url.PathEscape(rt.ClientID) + "/tokens/" + t.id
	user := link(api + "/users/" + url.PathEscape(rt.UserID))
	if u != nil {
		self = api + "/users/" + url.PathEscape(rt.UserID) + "/clients/" + url.PathEscape(rt.ClientID) + "/tokens/" + t.id
		user["title"] = u.Login
	}
	out.Links = map[string]any{
		"self":   link(self, "GET", "DELETE"),
		"revoke": link(self, "DELETE"),
		"app":    map[string]any{"href": api + "/apps/" + url.PathEscape(rt.ClientID), "title": clientTitle},
		"client": map[string]any{"href": i.base + "/oauth2/v1/clients/" + url.PathEscape(rt.ClientID), "title": clientTitle},
		"user":   user,
	}
	if s != nil {
		out.Issuer = s.Issuer
		if !s.Org {
			name := s.cfg.Name
			if name == "" {
				name = s.ID
			}
			out.Links["authorizationServer"] = map[string]any{"href": servers + "/" + s.ID, "title": name}
		}
		if expand {
			scopes := []map[string]any{}
			for _, name := range rt.Scopes {
				scopeLink := map[string]any{"title": name}
				if !s.Org {
					scopeLink["href"] = servers + "/" + s.ID + "/scopes/" + url.PathEscape(name)
				}
				sc := map[string]any{"id": name, "name": name, "_links": map[string]any{"scope": scopeLink}}
				if def, ok := s.scopes[name]; ok && def.Description != "" {
					sc["description"] = def.Description
				}
				scopes = append(scopes, sc)
			}
			out.Embedded = map[string]any{"scopes": scopes}
		}
	}
	return out
}
