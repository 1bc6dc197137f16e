package authserver

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// Revoking everything a user, a client, or a user at one client holds
// cannot list the tokens (the store keeps no index of them, and access
// tokens are not stored at all): it records a cut-off instead, and any
// token, refresh token or SSO session of that subject issued at or
// before it is refused from then on. Okta's admin routes:
//
//	DELETE /api/v1/users/{userId}/sessions[?oauthTokens=true]  sessions (and tokens) of a user
//	DELETE /api/v1/users/{userId}/clients/{clientId}/tokens    tokens of a user at a client
//	DELETE /api/v1/apps/{appId}/tokens                          tokens of a client (app)
//
// The cut-off is kept as long as anything issued before it can live:
// the longest refresh-token family plus the longest access token.

// Cut-off kinds: the record key's prefix in store.NSSubjectRevoked.
const (
	cutUserTokens   = "user-tokens:"
	cutUserSessions = "user-sessions:"
	cutClientTokens = "client-tokens:"
	cutUserClient   = "user-client:"
)

// EventSessionClear is Okta's event for a user's sessions cleared by an
// admin.
const EventSessionClear = "user.session.clear"

var kindSessionClear = eventKind{EventSessionClear, EventSessionClear, "Clear user session", true}

func init() { mfaKinds[EventSessionClear] = []eventKind{kindSessionClear} }

// cutOff records that what subject key was issued until now is revoked.
func (i *Issuer) cutOff(ctx context.Context, key string) (time.Time, error) {
	now := i.now().UTC()
	until := now.Add(i.longestFamily() + policy.MaxAccessTokenLifetime + time.Minute)
	return now, i.store.PutRecord(ctx, store.NSSubjectRevoked, key, []byte(now.Format(time.RFC3339Nano)), until)
}

// longestFamily is the longest a refresh-token family of any rule lives.
func (i *Issuer) longestFamily() time.Duration {
	longest := policy.DefaultRefreshLifetime
	for _, s := range i.Servers() {
		if s.policies == nil {
			continue
		}
		for _, p := range s.policies.Policies() {
			for _, r := range p.Rules {
				longest = max(longest, r.RefreshLifetime())
			}
		}
	}
	return longest
}

// cutOffs reports whether something issued at issued, of user uid
// (may be empty) at client cid (may be empty), falls before one of the
// cut-offs of keys.
func (i *Issuer) cutOffs(ctx context.Context, issued time.Time, keys ...string) (bool, error) {
	for _, k := range keys {
		v, err := i.store.GetRecord(ctx, store.NSSubjectRevoked, k)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return false, err
		}
		at, err := time.Parse(time.RFC3339Nano, string(v))
		if err != nil {
			return false, err
		}
		// Token times have whole seconds: one of the cut-off's second
		// is refused (a rejection rather than a guess).
		if !issued.After(at) || issued.Unix() == at.Unix() {
			return true, nil
		}
	}
	return false, nil
}

// tokenKeys are the cut-offs that apply to tokens of uid at cid.
func tokenKeys(uid, cid string) []string {
	keys := []string{cutClientTokens + cid}
	if uid != "" {
		keys = append(keys, cutUserTokens+uid, cutUserClient+uid+"\x00"+cid)
	}
	return keys
}

// accessCutOff reports whether a verified access token was issued before
// a cut-off of its user or client.
func (i *Issuer) accessCutOff(ctx context.Context, t jwt.Token) (bool, error) {
	uid, _ := t.PrivateClaims()["uid"].(string)
	cid, _ := t.PrivateClaims()["cid"].(string)
	return i.cutOffs(ctx, t.IssuedAt(), tokenKeys(uid, cid)...)
}

// refreshCutOff reports whether a refresh token was issued before a
// cut-off of its user or client.
func (i *Issuer) refreshCutOff(ctx context.Context, rt store.RefreshToken) (bool, error) {
	return i.cutOffs(ctx, rt.Issued, tokenKeys(rt.UserID, rt.ClientID)...)
}

// sessionCutOff reports whether an SSO session began before a cut-off
// of its user's sessions.
func (i *Issuer) sessionCutOff(ctx context.Context, s *session) (bool, error) {
	return i.cutOffs(ctx, s.AuthTime, cutUserSessions+s.UserID)
}

// serveSubjectRevocation answers the user routes above, reporting false
// for any other path below usersAPIPath.
func (i *Issuer) serveSubjectRevocation(w http.ResponseWriter, r *http.Request, rest string) bool {
	parts := strings.Split(rest, "/")
	var uid, cid string
	switch {
	case len(parts) == 2 && parts[1] == "sessions":
		uid = parts[0]
	case len(parts) == 4 && parts[1] == "clients" && parts[3] == "tokens":
		uid, cid = parts[0], parts[2]
	default:
		return false
	}
	if !i.apiTokenValid(r) {
		invalidToken(w)
		return true
	}
	if r.Method != http.MethodDelete {
		apiMethodNotAllowed(w, "DELETE")
		return true
	}
	u, ok := i.apiUser(w, r, uid)
	if !ok {
		return true
	}
	d := decision{server: i.org, userID: u.ID, login: u.Login, req: r}
	var keys []string
	if cid == "" {
		keys = []string{cutUserSessions + u.ID}
		// Okta: oauthTokens=true revokes the user's OAuth tokens too.
		if r.URL.Query().Get("oauthTokens") == "true" {
			keys = append(keys, cutUserTokens+u.ID)
		}
	} else {
		if _, ok := i.auth.Client(cid); !ok {
			notFoundResource(w, cid, "Client")
			return true
		}
		d.clientID = cid
		keys = []string{cutUserClient + u.ID + "\x00" + cid}
	}
	if !i.cutOffAll(w, r, keys) {
		return true
	}
	if cid == "" {
		i.logSuccess(EventSessionClear, d)
	} else {
		i.logSuccess(EventRevoke, d)
	}
	w.WriteHeader(http.StatusNoContent)
	return true
}

// cutOffAll records the cut-offs, or answers the store's failure.
func (i *Issuer) cutOffAll(w http.ResponseWriter, r *http.Request, keys []string) bool {
	for _, k := range keys {
		if _, err := i.cutOff(r.Context(), k); err != nil {
			i.apiStoreFailure(w, err)
			return false
		}
	}
	return true
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

// appsAPIPath is the prefix of Okta's Application Tokens API.
const appsAPIPath = "api/v1/apps/"

// appsAPI serves DELETE /api/v1/apps/{appId}/tokens: every token of a
// client (appId is the client id).
var appsAPI = &endpoint{serve: (*Issuer).serveAppsAPI}

func (i *Issuer) serveAppsAPI(w http.ResponseWriter, r *http.Request, _ *Server) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, i.basePath+"/"+appsAPIPath), "/")
	if len(parts) != 2 || parts[1] != "tokens" || parts[0] == "" {
		i.notFound(w, r)
		return
	}
	if !i.apiTokenValid(r) {
		invalidToken(w)
		return
	}
	if r.Method != http.MethodDelete {
		apiMethodNotAllowed(w, "DELETE")
		return
	}
	cid := parts[0]
	if _, ok := i.auth.Client(cid); !ok {
		notFoundResource(w, cid, "Application")
		return
	}
	if !i.cutOffAll(w, r, []string{cutClientTokens + cid}) {
		return
	}
	i.logSuccess(EventRevoke, decision{server: i.org, clientID: cid, req: r})
	w.WriteHeader(http.StatusNoContent)
}
