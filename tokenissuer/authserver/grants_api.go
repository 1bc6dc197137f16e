package authserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// Okta's User Grants API (Users API reference, "User-Consent Grant
// Operations"; UserGrant in the management OpenAPI spec): the consents
// a user gave on the consent page, listed and revoked with an API token
// (SSWS, as GET /api/v1/logs). A grant is one (server, client, user,
// scope) consent record; the store cannot list, so the configuration's
// servers, clients and consent-required scopes are enumerated. Revoking
// deletes the record: the next authorize asks again. Okta's reference
// says nothing of tokens issued under a grant ("a consent can outlast a
// token"), and has a separate token API, so none is revoked here.

// usersAPIPath is the prefix below the org base URL of the paths with
// a user id: {id}/grants[/{grantId}], {id}/clients[/{clientId}/grants].
const usersAPIPath = "api/v1/users/"

// usersAPI serves every path below usersAPIPath (routes.go).
var usersAPI = &endpoint{serve: (*Issuer).serveUsersAPI}

// Okta's page size of grant lists: 20 unless asked, at most 200.
const (
	grantsPageDefault = 20
	grantsPageMax     = 200
)

// consentRecord is a consent record's value. Records written before it
// hold "1": still consents, of unknown creation time.
type consentRecord struct {
	Created time.Time `json:"created"`
}

// consentValue is the record of a consent given at now.
func consentValue(now time.Time) []byte {
	b, _ := json.Marshal(consentRecord{Created: now.UTC().Truncate(time.Millisecond)})
	return b
}

// consentGrant is one stored consent.
type consentGrant struct {
	server  *Server
	client  *clientauth.Client
	userID  string
	scope   string
	created time.Time // zero: a record of before consentRecord
}

func (g *consentGrant) key() string { return consentKey(g.server, g.client, g.userID, g.scope) }

// grantID is a grant's id: stable, and a digest of its record's key
// (Okta's ids are "oag" and 17 characters).
func grantID(key string) string { return "oag" + digest("consent-grant", key)[:17] }

// grantQuery selects a user's grants; empty fields select all.
type grantQuery struct {
	userID, clientID, scope, grantID string
	// after is a page's cursor: the id of the last grant of the page
	// before, whether or not it still exists.
	after string
	// limit: at most this many (0: all); more reports one beyond.
	limit int
}

// findGrants reads the grants q selects, in the configuration's order
// (servers by id, clients, scopes), reading only the records it must.
func (i *Issuer) findGrants(ctx context.Context, q grantQuery) (out []consentGrant, more bool, err error) {
	skipping := q.after != ""
	for _, s := range i.Servers() {
		for _, c := range i.clients {
			if q.clientID != "" && c.ID != q.clientID {
				continue
			}
			for _, sc := range s.scopeOrder {
				if sc.Consent != "required" || (q.scope != "" && sc.Name != q.scope) {
					continue
				}
				key := consentKey(s, c, q.userID, sc.Name)
				id := grantID(key)
				if skipping {
					skipping = id != q.after
					continue
				}
				if q.grantID != "" && id != q.grantID {
					continue
				}
				raw, err := i.store.GetRecord(ctx, store.NSConsent, key)
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				if err != nil {
					return nil, false, err
				}
				if q.limit > 0 && len(out) == q.limit {
					return out, true, nil
				}
				var rec consentRecord
				_ = json.Unmarshal(raw, &rec) // "1": created stays zero
				out = append(out, consentGrant{server: s, client: c, userID: q.userID, scope: sc.Name, created: rec.Created})
			}
		}
	}
	return out, false, nil
}

// usersRequest is a parsed path below usersAPIPath.
type usersRequest struct {
	userID, clientID, grantID string
	// clients: {id}/clients; else a grants path.
	clients bool
}

// parseUsersPath reads {id}/grants, {id}/grants/{grantId}, {id}/clients
// and {id}/clients/{clientId}/grants.
func parseUsersPath(rest string) (usersRequest, bool) {
	seg := strings.Split(rest, "/")
	for _, s := range seg {
		if s == "" {
			return usersRequest{}, false
		}
	}
	switch {
	case len(seg) == 2 && seg[1] == "grants":
		return usersRequest{userID: seg[0]}, true
	case len(seg) == 3 && seg[1] == "grants":
		return usersRequest{userID: seg[0], grantID: seg[2]}, true
	case len(seg) == 2 && seg[1] == "clients":
		return usersRequest{userID: seg[0], clients: true}, true
	case len(seg) == 4 && seg[1] == "clients" && seg[3] == "grants":
		return usersRequest{userID: seg[0], clientID: seg[2]}, true
	}
	return usersRequest{}, false
}

// serveUsersAPI is the User Grants API and "List all clients" of the
// User Resources API: GET lists or reads, DELETE revokes (204).
func (i *Issuer) serveUsersAPI(w http.ResponseWriter, r *http.Request, _ *Server) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	rest := strings.TrimPrefix(r.URL.Path, i.basePath+"/"+usersAPIPath)
	if i.serveSubjectRevocation(w, r) { // subject_revoke.go
		return
	}
	if q, ok := parseFactorsPath(rest); ok {
		i.serveFactorsAPI(w, r, q) // factors_api.go
		return
	}
	req, ok := parseUsersPath(rest)
	if !ok {
		i.notFound(w, r)
		return
	}
	if !i.apiTokenValid(r) {
		invalidToken(w)
		return
	}
	allow := "GET, DELETE"
	if req.clients {
		allow = "GET"
	}
	if r.Method != http.MethodGet && (r.Method != http.MethodDelete || req.clients) {
		apiMethodNotAllowed(w, allow)
		return
	}
	// Okta's userId here is the user's id only (not the login).
	u, ok := i.apiUser(w, r, req.userID)
	if !ok {
		return
	}
	if req.clientID != "" {
		if _, ok := i.auth.Client(req.clientID); !ok {
			notFoundResource(w, req.clientID, "Client")
			return
		}
	}
	switch {
	case req.clients:
		i.listUserClients(w, r, u)
	case r.Method == http.MethodDelete:
		i.revokeGrants(w, r, u, req)
	default:
		i.listGrants(w, r, u, req)
	}
}

// notFoundResource is Okta's 404 for an unknown resource of a type.
func notFoundResource(w http.ResponseWriter, id, typ string) {
	writeOktaError(w, http.StatusNotFound, "E0000007", "Not found: Resource not found: "+echo(id)+" ("+typ+")")
}

// listGrants answers one grant (by id) or a page of them, with Link
// headers to this page and the next (Okta's pagination).
func (i *Issuer) listGrants(w http.ResponseWriter, r *http.Request, u *directory.User, req usersRequest) {
	values := r.URL.Query()
	expand := values.Get("expand") == "scope"
	q := grantQuery{userID: u.ID, clientID: req.clientID, grantID: req.grantID}
	if req.grantID != "" {
		gs, _, err := i.findGrants(r.Context(), q)
		if err != nil {
			i.apiStoreFailure(w, err)
			return
		}
		if len(gs) == 0 {
			notFoundResource(w, req.grantID, "OAuth2ScopeConsentGrant")
			return
		}
		oauth.WriteJSON(w, http.StatusOK, i.oktaGrant(&gs[0], u, expand))
		return
	}
	q.limit = grantsPageDefault
	if s := values.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			writeOktaError(w, http.StatusBadRequest, "E0000001", "Api validation failed: 'limit': must be a positive integer.")
			return
		}
		q.limit = min(n, grantsPageMax)
	}
	q.after = values.Get("after")
	if req.clientID == "" {
		q.scope = values.Get("scopeId")
	}
	gs, more, err := i.findGrants(r.Context(), q)
	if err != nil {
		i.apiStoreFailure(w, err)
		return
	}
	out := make([]oktaGrant, 0, len(gs))
	for n := range gs {
		out = append(out, i.oktaGrant(&gs[n], u, expand))
	}
	// Escaped: user and client ids are free-form, and a Link value must
	// stay one URI (RFC 8288 section 3).
	self := i.base + strings.TrimPrefix(r.URL.EscapedPath(), (&url.URL{Path: i.basePath}).EscapedPath())
	w.Header().Add("Link", "<"+self+queryOf(values)+`>; rel="self"`)
	if more {
		values.Set("after", out[len(out)-1].ID)
		values.Set("limit", strconv.Itoa(q.limit))
		w.Header().Add("Link", "<"+self+queryOf(values)+`>; rel="next"`)
	}
	oauth.WriteJSON(w, http.StatusOK, out)
}

func queryOf(v url.Values) string {
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// revokeGrants deletes the grants a DELETE names: one (404 if it is
// not this user's), all of a client, or all of the user. Each record
// deleted is one System Log event; a record another request deleted
// first is that request's.
func (i *Issuer) revokeGrants(w http.ResponseWriter, r *http.Request, u *directory.User, req usersRequest) {
	ctx := r.Context()
	gs, _, err := i.findGrants(ctx, grantQuery{userID: u.ID, clientID: req.clientID, grantID: req.grantID})
	if err != nil {
		i.apiStoreFailure(w, err)
		return
	}
	event := EventConsentRevokeUser
	switch {
	case req.grantID != "":
		event = EventConsentRevoke
	case req.clientID != "":
		event = EventConsentRevokeUserClient
	}
	txn := transactionID(r)
	revoked := 0
	for n := range gs {
		g := &gs[n]
		_, err := i.store.UpdateRecord(ctx, store.NSConsent, g.key(), func([]byte) ([]byte, error) { return nil, nil })
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			i.apiStoreFailure(w, err)
			return
		}
		revoked++
		i.logRevoke(r, txn, event, g, u)
	}
	if req.grantID != "" && revoked == 0 {
		notFoundResource(w, req.grantID, "OAuth2ScopeConsentGrant")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// apiActor is who acts through the management API: an API token, which
// the issuer does not name (it compares them all, and logs none).
var apiActor = store.LogActor{ID: "apiaccess-api-token", Type: "SystemPrincipal", AlternateID: "api_token", DisplayName: "API token"}

// logRevoke records one revoked grant: the Caddy log event, and its
// System Log events (kindsOf) with the API token as actor and the
// authorization server, client, user and scope as targets.
func (i *Issuer) logRevoke(r *http.Request, txn, event string, g *consentGrant, u *directory.User) {
	id := grantID(g.key())
	d := decision{server: g.server, clientID: g.client.ID, userID: g.userID, scopes: []string{g.scope}, req: r}
	if c := g.server.log.Check(zap.InfoLevel, event); c != nil {
		c.Write(append(d.fields(2), zap.String("grant_id", id), zap.String("outcome", "SUCCESS"))...)
	}
	if i.sink == nil {
		return
	}
	d.scopes = nil // baseEvent would report them as granted
	for _, k := range kindsOf(event, &d, false) {
		ev := i.baseEvent(&d, nil, txn)
		ev.UUID, ev.EventType, ev.DisplayMessage = newUUID(), k.name(d.server), k.message
		actor := apiActor
		ev.Actor = &actor
		ev.Target = append(ev.Target,
			store.LogTarget{ID: u.ID, Type: "User", AlternateID: echo(u.Login), DisplayName: echo(u.Login)},
			store.LogTarget{ID: g.scope, Type: "Scope", AlternateID: g.scope, DisplayName: g.scope, DetailEntry: map[string]any{"grantId": id}})
		ev.DebugContext.DebugData["grantId"] = id
		ev.DebugContext.DebugData["revokedScopes"] = g.scope
		i.sink.add(ev)
	}
}

// oktaGrant is Okta's OAuth2ScopeConsentGrant object.
type oktaGrant struct {
	ID          string                    `json:"id"`
	Status      string                    `json:"status"`
	Created     string                    `json:"created,omitempty"`
	LastUpdated string                    `json:"lastUpdated,omitempty"`
	Issuer      string                    `json:"issuer"`
	ClientID    string                    `json:"clientId"`
	UserID      string                    `json:"userId"`
	ScopeID     string                    `json:"scopeId"`
	Source      string                    `json:"source"`
	CreatedBy   map[string]string         `json:"createdBy"`
	Embedded    map[string]any            `json:"_embedded,omitempty"`
	Links       map[string]map[string]any `json:"_links"`
}

// oktaGrant is g in Okta's shape. scopeId is the scope's name (Okta's
// spec: "The name of the Okta scope"); a record of before consentRecord
// has no created or lastUpdated. Of the links only self is served here.
func (i *Issuer) oktaGrant(g *consentGrant, u *directory.User, expand bool) oktaGrant {
	id := grantID(g.key())
	api := i.base + "/api/v1"
	clientTitle := g.client.Name
	if clientTitle == "" {
		clientTitle = g.client.ID
	}
	out := oktaGrant{
		ID: id, Status: "ACTIVE", Issuer: g.server.Issuer, ClientID: g.client.ID, UserID: g.userID, ScopeID: g.scope,
		Source: "END_USER", CreatedBy: map[string]string{"id": g.userID, "type": "User"},
		Links: map[string]map[string]any{
			"self":                {"href": api + "/users/" + url.PathEscape(g.userID) + "/grants/" + id, "hints": map[string]any{"allow": []string{"GET", "DELETE"}}},
			"user":                {"href": api + "/users/" + url.PathEscape(g.userID), "title": u.Login},
			"client":              {"href": i.base + "/oauth2/v1/clients/" + url.PathEscape(g.client.ID), "title": clientTitle},
			"app":                 {"href": api + "/apps/" + url.PathEscape(g.client.ID), "title": clientTitle},
			"scope":               {"href": api + "/authorizationServers/" + g.server.ID + "/scopes/" + url.PathEscape(g.scope), "title": g.scope},
			"authorizationServer": {"href": api + "/authorizationServers/" + g.server.ID, "title": g.server.ID},
		},
	}
	if !g.created.IsZero() {
		out.Created = g.created.UTC().Format("2006-01-02T15:04:05.000Z")
		out.LastUpdated = out.Created
	}
	if expand {
		out.Embedded = map[string]any{"scope": map[string]string{"id": g.scope}}
	}
	return out
}

// oktaClient is Okta's OAuth2Client object (User Resources API).
type oktaClient struct {
	ClientID   string                    `json:"client_id"`
	ClientName string                    `json:"client_name"`
	ClientURI  *string                   `json:"client_uri"`
	LogoURI    *string                   `json:"logo_uri"`
	Links      map[string]map[string]any `json:"_links"`
}

// listUserClients answers the clients the user has grants or active
// refresh tokens for (Okta's "List all clients"; tokens from the token
// index, tokens_api.go), with links to both.
func (i *Issuer) listUserClients(w http.ResponseWriter, r *http.Request, u *directory.User) {
	gs, _, err := i.findGrants(r.Context(), grantQuery{userID: u.ID})
	if err != nil {
		i.apiStoreFailure(w, err)
		return
	}
	out := []oktaClient{}
	for _, c := range i.clients { // the configuration's order
		granted := slices.ContainsFunc(gs, func(g consentGrant) bool { return g.client == c })
		tokens, err := i.hasTokens(r.Context(), &tokenScope{cid: c.ID, uid: u.ID, u: u}) // tokens_api.go
		if err != nil {
			i.apiStoreFailure(w, err)
			return
		}
		if !granted && !tokens {
			continue
		}
		name := c.Name
		if name == "" {
			name = c.ID
		}
		at := i.base + "/api/v1/users/" + url.PathEscape(u.ID) + "/clients/" + url.PathEscape(c.ID)
		out = append(out, oktaClient{ClientID: c.ID, ClientName: name, Links: map[string]map[string]any{"grants": {"href": at + "/grants"}, "tokens": {"href": at + "/tokens"}}})
	}
	oauth.WriteJSON(w, http.StatusOK, out)
}

// apiUser is the directory user of an admin API path, or answers 404.
func (i *Issuer) apiUser(w http.ResponseWriter, r *http.Request, uid string) (*directory.User, bool) {
	var u *directory.User
	var err error
	if i.dir != nil {
		u, err = i.dir.UserByID(r.Context(), uid)
	}
	switch {
	case i.dir == nil || errors.Is(err, directory.ErrNotFound):
		notFoundResource(w, uid, "User")
		return nil, false
	case err != nil:
		i.apiStoreFailure(w, err)
		return nil, false
	}
	return u, true
}
