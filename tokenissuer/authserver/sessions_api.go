package authserver

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// sessionMaxLifetime bounds how far refreshing can carry an SSO
// session past its sign-in: a session kept alive by an app's refresh
// calls still asks for the password once a day.
const sessionMaxLifetime = 24 * time.Hour

// sessionsAPI are the Sessions API endpoints okta-auth-js calls with
// the SSO cookie (session/api.js: session.exists() and session.get()
// GET /api/v1/sessions/me, closeSession() DELETEs it, session.refresh()
// POSTs .../lifecycle/refresh), by path below the org server's base
// URL. Only "me" is served: Okta's Sessions API by id is a management
// API (API token), which this issuer does not offer.
var sessionsAPI = map[string]*endpoint{
	"api/v1/sessions/me":                   {cors: "GET, DELETE", credentials: true, serve: (*Issuer).serveSessionMe},
	"api/v1/sessions/me/lifecycle/refresh": {cors: "POST", credentials: true, serve: (*Issuer).serveSessionRefresh},
}

// sessionRecordAPI is a session record as the Sessions API keeps it:
// the sign-in's record, plus the expiry a refresh set (none before).
type sessionRecordAPI struct {
	session
	ExpiresAt time.Time `json:"exp,omitzero"`
}

// oktaSession is Okta's Session object (Sessions API reference).
type oktaSession struct {
	ID                       string                    `json:"id"`
	UserID                   string                    `json:"userId"`
	Login                    string                    `json:"login"`
	CreatedAt                string                    `json:"createdAt"`
	ExpiresAt                string                    `json:"expiresAt"`
	Status                   string                    `json:"status"`
	LastPasswordVerification *string                   `json:"lastPasswordVerification"`
	LastFactorVerification   *string                   `json:"lastFactorVerification"`
	Amr                      []string                  `json:"amr"`
	Idp                      map[string]string         `json:"idp"`
	MfaActive                bool                      `json:"mfaActive"`
	Links                    map[string]map[string]any `json:"_links"`
}

// serveSessionMe: GET answers the browser's session, DELETE ends it
// (204), as Okta's "Get current session" and "Close current session".
func (i *Issuer) serveSessionMe(w http.ResponseWriter, r *http.Request, s *Server) {
	switch r.Method {
	case http.MethodGet:
		sid, rec, ok := i.apiSession(w, r)
		if !ok {
			return
		}
		i.writeSession(w, r, sid, rec)
	case http.MethodDelete:
		if !i.sameOriginOrTrusted(w, r) {
			return
		}
		sid, rec := i.sessionRecord(r)
		if rec == nil {
			i.noSession(w)
			return
		}
		if err := i.endSession(r.Context(), sid); err != nil {
			i.apiStoreFailure(w, err)
			return
		}
		i.logSuccess(EventSignOut, decision{server: s, userID: rec.UserID, req: r})
		c := i.cookie(r, sessionCookie, "", 0)
		c.MaxAge = -1
		http.SetCookie(w, c)
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
	default:
		apiMethodNotAllowed(w, "GET, DELETE")
	}
}

// serveSessionRefresh extends the browser's session (Okta's "Refresh
// current session") by SessionLifetime from now, never past
// sessionMaxLifetime after sign-in, and answers it.
func (i *Issuer) serveSessionRefresh(w http.ResponseWriter, r *http.Request, _ *Server) {
	if r.Method != http.MethodPost {
		apiMethodNotAllowed(w, "POST")
		return
	}
	if !i.sameOriginOrTrusted(w, r) {
		return
	}
	sid, rec, ok := i.apiSession(w, r)
	if !ok {
		return
	}
	now := i.now()
	exp := now.Add(SessionLifetime)
	if limit := rec.AuthTime.Add(sessionMaxLifetime); exp.After(limit) {
		exp = limit
	}
	if exp.After(i.sessionExpiry(rec)) {
		rec.ExpiresAt = exp
		b, _ := json.Marshal(rec)
		ctx := r.Context()
		if err := i.store.PutRecord(ctx, store.NSSession, sid, b, exp); err != nil {
			i.apiStoreFailure(w, err)
			return
		}
		// A sign-out between apiSession's read and this write would be
		// undone by it: endSession marks first, so look and undo.
		ended, err := i.sessionEnded(ctx, sid)
		if err == nil && ended {
			err = i.endSession(ctx, sid)
		}
		switch {
		case err != nil:
			i.apiStoreFailure(w, err)
			return
		case ended:
			i.noSession(w)
			return
		}
		// The cookie must outlive the old one too, or the browser drops
		// it at the sign-in's Max-Age whatever the record says.
		http.SetCookie(w, i.cookie(r, sessionCookie, sid, exp.Sub(now)))
	}
	i.writeSession(w, r, sid, rec)
}

// apiSession reads the browser's SSO session for the Sessions API; a
// missing or expired one, or one whose user is no longer active, is
// answered 404.
func (i *Issuer) apiSession(w http.ResponseWriter, r *http.Request) (string, *sessionRecordAPI, bool) {
	sid, ok := i.readCookie(r, sessionCookie)
	if !ok || len(sid) > 128 {
		i.noSession(w)
		return "", nil, false
	}
	raw, err := i.store.GetRecord(r.Context(), store.NSSession, sid)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		i.apiStoreFailure(w, err)
		return "", nil, false
	}
	var rec sessionRecordAPI
	if err != nil || json.Unmarshal(raw, &rec) != nil || i.dir == nil || !i.now().Before(i.sessionExpiry(&rec)) {
		i.noSession(w)
		return "", nil, false
	}
	if u, err := i.dir.UserByID(r.Context(), rec.UserID); err != nil || !u.Active() {
		i.noSession(w)
		return "", nil, false
	}
	// Cleared by an admin (subject_revoke.go): gone, as in Okta.
	if cut, err := i.sessionCutOff(r.Context(), &session{UserID: rec.UserID, AuthTime: rec.AuthTime}); err != nil {
		i.apiStoreFailure(w, err)
		return "", nil, false
	} else if cut {
		i.noSession(w)
		return "", nil, false
	}
	return sid, &rec, true
}

// sessionExpiry is when a session record ends: a refresh's expiry, else
// the sign-in's SessionLifetime.
func (i *Issuer) sessionExpiry(rec *sessionRecordAPI) time.Time {
	if !rec.ExpiresAt.IsZero() {
		return rec.ExpiresAt
	}
	return rec.AuthTime.Add(SessionLifetime)
}

// writeSession answers Okta's Session object. Its id is derived from
// the cookie's value, never the value itself: the cookie is HttpOnly,
// and script of a trusted origin must not learn it.
func (i *Issuer) writeSession(w http.ResponseWriter, r *http.Request, sid string, rec *sessionRecordAPI) {
	login := ""
	if u, err := i.dir.UserByID(r.Context(), rec.UserID); err == nil {
		login = u.Login
	}
	stamp := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
	pwd := stamp(rec.AuthTime)
	out := oktaSession{
		ID: "102" + digest("session-id", sid), UserID: rec.UserID, Login: login,
		CreatedAt: stamp(rec.AuthTime), ExpiresAt: stamp(i.sessionExpiry(rec)), Status: "ACTIVE",
		Amr: rec.Amr, Idp: map[string]string{"id": "00o" + digest("org", i.base)[:17], "type": "OKTA"},
	}
	if out.Amr == nil {
		out.Amr = []string{}
	}
	if slices.Contains(rec.Amr, "pwd") {
		out.LastPasswordVerification = &pwd
	}
	if slices.ContainsFunc(rec.Amr, func(m string) bool { return m != "pwd" }) {
		factor := pwd
		if !rec.FactorTime.IsZero() {
			factor = stamp(rec.FactorTime)
		}
		out.LastFactorVerification, out.MfaActive = &factor, true
	}
	me := i.base + "/api/v1/sessions/me"
	out.Links = map[string]map[string]any{
		"self":    {"href": me, "hints": map[string]any{"allow": []string{"GET", "DELETE"}}},
		"refresh": {"href": me + "/lifecycle/refresh", "hints": map[string]any{"allow": []string{"POST"}}},
	}
	w.Header().Set("Cache-Control", "no-store")
	oauth.WriteJSON(w, http.StatusOK, out)
}

// digest is a short, one-way name for a secret or a value.
func digest(label, v string) string {
	h := sha256.Sum256([]byte(label + "\x00" + v))
	return base64.RawURLEncoding.EncodeToString(h[:])[:22]
}

// noSession is Okta's answer when the browser has no session.
func (i *Issuer) noSession(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	writeOktaError(w, http.StatusNotFound, "E0000007", "Not found: Resource not found: me (Session)")
}

// sameOriginOrTrusted guards the Sessions API's state changes against
// cross-site request forgery: CORS only hides answers, and a simple
// cross-site POST would still run. A request whose Origin is neither
// the issuer's nor a trusted origin is refused (403, Okta's E0000006);
// without Origin, a browser's Sec-Fetch-Site must not say it came from
// another site. Clients that are not browsers send neither.
func (i *Issuer) sameOriginOrTrusted(w http.ResponseWriter, r *http.Request) bool {
	if origin := r.Header.Get("Origin"); origin != "" {
		if self, ok := webOrigin(i.base); (ok && origin == self) || i.origins[origin] {
			return true
		}
	} else if site := r.Header.Get("Sec-Fetch-Site"); site == "" || site == "same-origin" || site == "none" {
		return true
	}
	writeOktaError(w, http.StatusForbidden, "E0000006", "You do not have permission to perform the requested action")
	return false
}

// apiMethodNotAllowed is Okta's answer to a method an API does not take.
func apiMethodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeOktaError(w, http.StatusMethodNotAllowed, "E0000022", "The endpoint does not support the provided HTTP method")
}

// apiStoreFailure answers a Sessions API call whose state could not be
// read or written: 503 with Retry-After while the store is unreachable.
func (i *Issuer) apiStoreFailure(w http.ResponseWriter, err error) {
	i.log.Error("issuer state store failed")
	if errors.Is(err, store.ErrUnavailable) {
		w.Header().Set("Retry-After", oauth.RetryAfter)
		writeOktaError(w, http.StatusServiceUnavailable, "E0000009", "Internal Server Error")
		return
	}
	writeOktaError(w, http.StatusInternalServerError, "E0000009", "Internal Server Error")
}
