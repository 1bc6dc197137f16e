package authserver

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/apiaccess/caddy-apiaccess/internal/ssf"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// Revoking everything a user, a client, or a user at one client holds
// cannot list the tokens (access tokens are not stored at all, and
// refresh tokens of before the token index, tokens_api.go, are in
// none): it records a cut-off instead, and any
// token, refresh token or SSO session of that subject issued at or
// before it is refused from then on. Okta's admin routes:
//
//	DELETE /api/v1/users/{userId}/sessions[?oauthTokens=true]  sessions (and tokens) of a user
//	DELETE /api/v1/users/{userId}/clients/{clientId}/tokens    tokens of a user at a client
//	DELETE /api/v1/apps/{appId}/tokens                          tokens of a client (app)
//
// A cut-off is kept for good (one small record per subject, written
// only with an API token): a family issued under a rule since shortened
// must still find it. A later cut-off replaces an earlier one, never
// the other way round, whichever node writes last.

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

// cutOffMargin puts a cut-off this far after the moment it is made.
const cutOffMargin = time.Second

// cutOffUntil is the expiry of cut-off records: for good (bbolt keeps
// times until 2262).
var cutOffUntil = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)

// cutOff records that what subject key was issued until now is revoked;
// an existing later cut-off stays. Its feed event (if the key has one)
// is published first: if publishing fails nothing is recorded and the
// call can be retried; if recording fails after it, gateways refuse
// tokens the issuer still honours, the safe side.
func (i *Issuer) cutOff(ctx context.Context, key string) (time.Time, error) {
	// A second ahead: a grant that checked before the record lands (the
	// publish takes a moment) issues within it, and is covered.
	now := i.now().UTC().Add(cutOffMargin)
	if ev, ok := cutOffFeedEvent(key, now); ok {
		if err := i.publish(ctx, ev); err != nil {
			return now, err
		}
	}
	v := []byte(now.Format(time.RFC3339Nano))
	err := i.upsertRecord(ctx, store.NSSubjectRevoked, key, cutOffUntil, func(old []byte) ([]byte, error) {
		if at, err := time.Parse(time.RFC3339Nano, string(old)); err == nil && at.After(now) {
			return old, nil
		}
		return v, nil
	})
	return now, err
}

// cutOffs reports whether something issued at issued falls before one
// of the cut-offs of keys. Cut-offs and issue times come from the nodes'
// clocks: a cluster needs them in step (NTP), or a node ahead issues
// tokens that look older than a cut-off made elsewhere, one behind
// tokens that look newer.
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
func (i *Issuer) serveSubjectRevocation(w http.ResponseWriter, r *http.Request) bool {
	parts, ok := pathSegments(strings.TrimPrefix(r.URL.EscapedPath(), i.basePath+"/"+usersAPIPath))
	if !ok {
		return false
	}
	if i.serveUserTokens(w, r, parts) { // tokens_api.go
		return true
	}
	var uid, cid string
	sessions := false
	switch {
	case len(parts) == 2 && parts[1] == "sessions":
		uid, sessions = parts[0], true
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
	var keys []string
	debug := map[string]any{}
	if sessions {
		keys = []string{cutUserSessions + u.ID}
		// Okta: oauthTokens=true revokes the user's OAuth tokens too.
		withTokens := false
		if v := r.URL.Query().Get("oauthTokens"); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				writeOktaError(w, http.StatusBadRequest, "E0000001", "Api validation failed: 'oauthTokens': must be true or false.")
				return true
			}
			withTokens = b
		}
		if withTokens {
			keys = append(keys, cutUserTokens+u.ID)
		}
		debug["oauthTokens"] = strconv.FormatBool(withTokens)
	} else {
		if _, ok := i.auth.Client(cid); !ok {
			notFoundResource(w, cid, "Client")
			return true
		}
		keys = []string{cutUserClient + u.ID + "\x00" + cid}
		debug["revoked"] = "every token of the user at the client"
	}
	at, ok := i.cutOffAll(w, r, keys)
	if !ok {
		return true
	}
	debug["revokedBefore"] = at.Format(time.RFC3339Nano)
	event := EventSessionClear
	if !sessions {
		event = EventRevoke
	}
	i.logAdminCut(r, event, u, cid, debug)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return true
}

// pathSegments splits an API path (below its prefix) into its unescaped
// segments; an empty segment (`clients//tokens`) makes it no route.
func pathSegments(rest string) ([]string, bool) {
	raw := strings.Split(rest, "/")
	out := make([]string, 0, len(raw))
	for _, seg := range raw {
		v, err := url.PathUnescape(seg)
		if err != nil || v == "" {
			return nil, false
		}
		out = append(out, v)
	}
	return out, true
}

// logAdminCut logs a cut-off made through the admin API: the API token
// acts (as for the other admin routes), the user and client are targets.
func (i *Issuer) logAdminCut(r *http.Request, event string, u *directory.User, cid string, debug map[string]any) {
	d := decision{server: i.org, req: r}
	if c := i.log.Check(zap.InfoLevel, event); c != nil {
		f := []zap.Field{zap.String("outcome", "SUCCESS"), zap.Any("detail", debug)}
		if u != nil {
			f = append(f, zap.String("user_id", u.ID))
		}
		if cid != "" {
			f = append(f, zap.String("client_id", cid))
		}
		c.Write(f...)
	}
	if i.sink == nil {
		return
	}
	txn := transactionID(r)
	for _, k := range kindsOf(event, &d, false) {
		ev := i.baseEvent(&d, nil, txn)
		ev.UUID, ev.EventType, ev.DisplayMessage = newUUID(), k.name(nil), k.message
		actor := apiActor
		ev.Actor = &actor
		if u != nil {
			ev.Target = append(ev.Target, store.LogTarget{ID: u.ID, Type: "User", AlternateID: echo(u.Login), DisplayName: echo(u.Login)})
		}
		if cid != "" {
			ev.Target = append(ev.Target, clientTarget(i, cid))
		}
		for key, v := range debug {
			ev.DebugContext.DebugData[key] = v
		}
		i.sink.add(ev)
	}
}

// cutOffAll publishes and records the cut-offs (cutOff), or answers the
// store's failure (a retry publishes and records a later cut-off).
func (i *Issuer) cutOffAll(w http.ResponseWriter, r *http.Request, keys []string) (time.Time, bool) {
	var at time.Time
	for _, k := range keys {
		t, err := i.cutOff(r.Context(), k)
		if err != nil {
			i.apiStoreFailure(w, err)
			return at, false
		}
		at = t
	}
	return at, true
}

// cutOffFeedEvent is the feed's event for the cut-off key made at t;
// sessions' cut-offs concern no token and have none.
func cutOffFeedEvent(key string, t time.Time) (ssf.Event, bool) {
	switch {
	case strings.HasPrefix(key, cutUserTokens):
		return cutOffEvent(strings.TrimPrefix(key, cutUserTokens), "", t), true
	case strings.HasPrefix(key, cutClientTokens):
		return cutOffEvent("", strings.TrimPrefix(key, cutClientTokens), t), true
	case strings.HasPrefix(key, cutUserClient):
		uid, cid, _ := strings.Cut(strings.TrimPrefix(key, cutUserClient), "\x00")
		return cutOffEvent(uid, cid, t), true
	}
	return ssf.Event{}, false
}

// appsAPIPath is the prefix of Okta's Application Tokens API.
const appsAPIPath = "api/v1/apps/"

// appsAPI serves DELETE /api/v1/apps/{appId}/tokens: every token of a
// client (appId is the client id).
var appsAPI = &endpoint{serve: (*Issuer).serveAppsAPI}

func (i *Issuer) serveAppsAPI(w http.ResponseWriter, r *http.Request, _ *Server) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	parts, ok := pathSegments(strings.TrimPrefix(r.URL.EscapedPath(), i.basePath+"/"+appsAPIPath))
	if ok && i.serveAppTokens(w, r, parts) { // tokens_api.go
		return
	}
	if !ok || len(parts) != 2 || parts[1] != "tokens" {
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
	at, ok := i.cutOffAll(w, r, []string{cutClientTokens + cid})
	if !ok {
		return
	}
	i.logAdminCut(r, EventRevoke, nil, cid, map[string]any{"revoked": "every token of the client", "revokedBefore": at.Format(time.RFC3339Nano)})
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}
