package authserver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
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
// written when its first token is issued and pointed at each successor,
// keyed client, user, token id so that both lists are prefix lists, and
// expiring with the family. Families begun before the index existed are
// not in it, and are not listed. Only ACTIVE tokens are listed or read
// (Okta's lists show active tokens; a revoked one is gone): a family
// revoked, cut off, expired or idle past its window is not found.
// Revoking one revokes its family and every access token issued from
// it, published on the revocation feed (revokeFamily).

// tokenIndexEntry is an index record's value.
type tokenIndexEntry struct {
	Family string `json:"family"`
	// Hash is the family's newest refresh token (store.RefreshToken.Hash).
	Hash    string    `json:"hash"`
	Created time.Time `json:"created"`
}

// tokenIndexPrefix is the index prefix of a client's families, and
// with a user, of the user's families at the client.
func tokenIndexPrefix(cid, uid string) string {
	p := cid + "\x00"
	if uid != "" {
		p += uid + "\x00"
	}
	return p
}

// refreshTokenID is a family's token id: stable across rotation, a
// digest of the family (Okta's ids are "oar" and 17 characters).
func refreshTokenID(family string) string { return "oar" + digest("refresh-family", family)[:17] }

// indexFamily writes the index record of a family begun with rt.
func (i *Issuer) indexFamily(ctx context.Context, rt *store.RefreshToken) error {
	b, _ := json.Marshal(tokenIndexEntry{Family: rt.Family, Hash: rt.Hash, Created: rt.Issued.UTC()})
	key := tokenIndexPrefix(rt.ClientID, rt.UserID) + refreshTokenID(rt.Family)
	return i.store.PutRecord(ctx, store.NSTokenIndex, key, b, rt.FamilyExpires)
}

// indexSuccessor points the family's index record at its new token rt;
// a family without one (begun before the index) is left so.
func (i *Issuer) indexSuccessor(ctx context.Context, rt *store.RefreshToken) error {
	key := tokenIndexPrefix(rt.ClientID, rt.UserID) + refreshTokenID(rt.Family)
	_, err := i.store.UpdateRecord(ctx, store.NSTokenIndex, key, func(old []byte) ([]byte, error) {
		var e tokenIndexEntry
		if err := json.Unmarshal(old, &e); err != nil {
			return nil, err
		}
		e.Hash = rt.Hash
		return json.Marshal(e)
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// indexedToken is one family of the index with its newest token.
type indexedToken struct {
	key   string
	id    string
	entry tokenIndexEntry
	rt    store.RefreshToken
}

// liveToken reads the family behind an index record and reports whether
// it is active: its newest token exists, is within its deadlines, and
// neither the family is revoked nor a cut-off covers it.
func (i *Issuer) liveToken(ctx context.Context, rec store.Record) (indexedToken, bool, error) {
	t := indexedToken{key: rec.Key, id: rec.Key[strings.LastIndexByte(rec.Key, 0)+1:]}
	if err := json.Unmarshal(rec.Value, &t.entry); err != nil {
		return t, false, nil // not an index record: never listed
	}
	rt, err := i.store.GetRefresh(ctx, t.entry.Hash)
	if errors.Is(err, store.ErrNotFound) {
		return t, false, nil
	}
	if err != nil {
		return t, false, err
	}
	t.rt = rt
	now := i.now()
	if !now.Before(rt.IdleExpires) || !now.Before(rt.FamilyExpires) || rt.Family != t.entry.Family {
		return t, false, nil
	}
	revoked, err := i.store.Marked(ctx, store.NSFamily, rt.Family)
	if err != nil || revoked {
		return t, false, err
	}
	cut, err := i.refreshCutOff(ctx, rt)
	return t, err == nil && !cut, err
}

// listTokens reads up to limit active tokens below prefix after the
// cursor (a key below prefix), and reports whether there are more.
func (i *Issuer) listTokens(ctx context.Context, prefix, after string, limit int) ([]indexedToken, bool, error) {
	var out []indexedToken
	cursor := ""
	if after != "" {
		cursor = prefix + after
	}
	batch := min(limit+1, grantsPageMax+1)
	for {
		recs, err := i.store.ListRecords(ctx, store.NSTokenIndex, prefix, cursor, batch)
		if err != nil {
			return nil, false, err
		}
		for _, rec := range recs {
			t, live, err := i.liveToken(ctx, rec)
			if err != nil {
				return nil, false, err
			}
			if !live {
				continue
			}
			if len(out) == limit {
				return out, true, nil
			}
			out = append(out, t)
		}
		if len(recs) < batch {
			return out, false, nil
		}
		cursor = recs[len(recs)-1].Key
	}
}

// findToken reads one active token by id below prefix (a user at a
// client: one key; a client: a scan of its families).
func (i *Issuer) findToken(ctx context.Context, cid, uid, id string) (indexedToken, bool, error) {
	if uid != "" {
		key := tokenIndexPrefix(cid, uid) + id
		v, err := i.store.GetRecord(ctx, store.NSTokenIndex, key)
		if errors.Is(err, store.ErrNotFound) {
			return indexedToken{}, false, nil
		}
		if err != nil {
			return indexedToken{}, false, err
		}
		return i.liveToken(ctx, store.Record{Key: key, Value: v})
	}
	cursor := ""
	for {
		recs, err := i.store.ListRecords(ctx, store.NSTokenIndex, tokenIndexPrefix(cid, ""), cursor, grantsPageMax)
		if err != nil {
			return indexedToken{}, false, err
		}
		for _, rec := range recs {
			if strings.HasSuffix(rec.Key, "\x00"+id) {
				return i.liveToken(ctx, rec)
			}
		}
		if len(recs) < grantsPageMax {
			return indexedToken{}, false, nil
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
	if tokenID != "" {
		t, live, err := i.findToken(ctx, cid, uid, tokenID)
		if err != nil {
			i.apiStoreFailure(w, err)
			return
		}
		if !live {
			if t.rt.Family != "" && r.Method == http.MethodDelete {
				// Revoked elsewhere, its publish perhaps failed: retry it.
				if err := i.republishIfNeeded(ctx, t.rt); err != nil {
					i.apiStoreFailure(w, err)
					return
				}
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
	prefix := tokenIndexPrefix(cid, uid)
	ts, more, err := i.listTokens(ctx, prefix, after, limit)
	if err != nil {
		i.apiStoreFailure(w, err)
		return
	}
	out := make([]oktaRefreshToken, 0, len(ts))
	for n := range ts {
		out = append(out, i.oktaRefreshToken(&ts[n], u, expand))
	}
	// The cursor is opaque (Okta: "treat this as an opaque value"): the
	// last token's key below the list's prefix.
	self := i.base + strings.TrimPrefix(r.URL.EscapedPath(), (&url.URL{Path: i.basePath}).EscapedPath())
	w.Header().Add("Link", "<"+self+queryOf(values)+`>; rel="self"`)
	if more {
		values.Set("after", base64.RawURLEncoding.EncodeToString([]byte(strings.TrimPrefix(ts[len(ts)-1].key, prefix))))
		values.Set("limit", strconv.Itoa(limit))
		w.Header().Add("Link", "<"+self+queryOf(values)+`>; rel="next"`)
	}
	oauth.WriteJSON(w, http.StatusOK, out)
}

// revokeIndexed revokes one token's family and its access tokens (on
// the feed first: a failure leaves the index record, and a retry
// revokes again), then drops its index record; 204.
func (i *Issuer) revokeIndexed(w http.ResponseWriter, r *http.Request, t indexedToken, u *directory.User) {
	ctx := r.Context()
	if err := i.revokeFamily(ctx, t.rt); err != nil {
		i.apiStoreFailure(w, err)
		return
	}
	_, err := i.store.UpdateRecord(ctx, store.NSTokenIndex, t.key, func([]byte) ([]byte, error) { return nil, nil })
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		i.apiStoreFailure(w, err)
		return
	}
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
			out.Links["authorizationServer"] = map[string]any{"href": api + "/" + authServersAPIPath + "/" + s.ID, "title": name}
		}
		if expand {
			scopes := []map[string]any{}
			for _, name := range rt.Scopes {
				scopeLink := map[string]any{"title": name}
				if !s.Org {
					scopeLink["href"] = api + "/" + authServersAPIPath + "/" + s.ID + "/scopes/" + url.PathEscape(name)
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
