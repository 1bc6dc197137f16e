package authserver

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientip"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// The System Log: every decision is also one or more events in Okta's
// LogEvent shape (System Log API, "LogEvent object"), kept by the
// store's EventLog (eventsink.go). The Caddy log events (events.go) keep
// their names and fields; the Okta event type is carried here only.

// eventKind is a System Log event type, named by Okta's Event Types
// catalog (developer.okta.com/docs/reference/api/event-types/): custom
// authorization servers use app.oauth2.as.*, the org server the same
// names without ".as". Kinds Okta has no type for use the project's own
// apiaccess.* namespace in the same pattern.
type eventKind struct {
	custom, org string
	// message is the event's displayMessage.
	message string
	// warn: severity WARN on success too (a security signal).
	warn bool
}

var (
	kindAccessToken  = eventKind{"app.oauth2.as.token.grant.access_token", "app.oauth2.token.grant.access_token", "OAuth2 access token is granted", false}
	kindIDToken      = eventKind{"app.oauth2.as.token.grant.id_token", "app.oauth2.token.grant.id_token", "OIDC id token is granted", false}
	kindRefreshToken = eventKind{"app.oauth2.as.token.grant.refresh_token", "app.oauth2.token.grant.refresh_token", "OAuth2 refresh token is granted", false}
	// A refused token request (any grant): Okta's failure event.
	kindTokenGrant = eventKind{"app.oauth2.as.token.grant", "app.oauth2.token.grant", "OAuth2 token request", false}
	// Refresh-token reuse (Okta guide "Refresh token rotation", "System
	// Log events").
	kindDetectReuse   = eventKind{"app.oauth2.as.token.detect_reuse", "app.oauth2.token.detect_reuse", "Refresh token reuse detected", true}
	kindRevoke        = eventKind{"app.oauth2.as.token.revoke", "app.oauth2.token.revoke", "OAuth2 token revocation request", false}
	kindAuthorizeCode = eventKind{"app.oauth2.as.authorize.code", "app.oauth2.authorize.code", "OAuth2 authorization code request", false}
	kindAuthorize     = eventKind{"app.oauth2.as.authorize", "app.oauth2.authorize", "OAuth2 authorization request", false}
	kindConsentGrant  = eventKind{"app.oauth2.as.consent.grant", "app.oauth2.consent.grant", "User granted consent to an OAuth2 app", false}
	kindConsentRevoke = eventKind{"app.oauth2.as.consent.revoke", "app.oauth2.consent.revoke", "User consent to an OAuth2 app is revoked", false}
	kindRevokeAllUser = eventKind{"app.oauth2.as.consent.revoke.user", "app.oauth2.consent.revoke.user", "All of a user's consents to OAuth2 apps are revoked", false}
	kindRevokeUserApp = eventKind{"app.oauth2.as.consent.revoke.user.client", "app.oauth2.consent.revoke.user.client", "A user's consents to an OAuth2 app are revoked", false}
	kindKeyRollover   = eventKind{"app.oauth2.as.key.rollover", "app.oauth2.key.rollover", "Authorization server signing key rollover", false}
	kindSessionStart  = eventKind{"user.session.start", "user.session.start", "User login to Okta", false}
	kindSessionEnd    = eventKind{"user.session.end", "user.session.end", "User logout from Okta", false}
	kindAccountLock   = eventKind{"user.account.lock", "user.account.lock", "Max sign in attempts exceeded", true}
	// Factors and lockouts changed by an admin (factors_api.go).
	kindFactorDeactivate = eventKind{"user.mfa.factor.deactivate", "user.mfa.factor.deactivate", "Reset factor for user", false}
	kindFactorResetAll   = eventKind{"user.mfa.factor.reset_all", "user.mfa.factor.reset_all", "Reset all factors for user", false}
	kindUnlockByAdmin    = eventKind{"user.account.unlock_by_admin", "user.account.unlock_by_admin", "Unlock user account by admin", false}
	// Not in Okta's catalog: the project's own.
	kindIntrospect      = eventKind{"apiaccess.oauth2.as.token.introspect", "apiaccess.oauth2.token.introspect", "OAuth2 token introspection request", false}
	kindDeviceAuthorize = eventKind{"apiaccess.oauth2.as.device.authorize", "apiaccess.oauth2.device.authorize", "OAuth2 device authorization request", false}
)

// name is the kind's event type for server s (nil: a custom server).
func (k eventKind) name(s *Server) string {
	if s != nil && s.Org {
		return k.org
	}
	return k.custom
}

// kindsOf are the System Log events of one Caddy log event: a granted
// token request is one event per token issued.
func kindsOf(event string, d *decision, failed bool) []eventKind {
	switch event {
	case EventTokenGrant, EventTokenDenied:
		if failed {
			if d.reused {
				return []eventKind{kindTokenGrant, kindDetectReuse}
			}
			return []eventKind{kindTokenGrant}
		}
		k := []eventKind{kindAccessToken}
		if d.idToken {
			k = append(k, kindIDToken)
		}
		if d.refreshToken {
			k = append(k, kindRefreshToken)
		}
		return k
	case EventAuthorize:
		if failed {
			return []eventKind{kindAuthorize}
		}
		return []eventKind{kindAuthorizeCode}
	case EventConsentGrant:
		return []eventKind{kindConsentGrant}
	case EventConsentRevoke:
		// Okta's catalog names only the custom servers' consent events:
		// the org server asks for no consent (its scopes are the system
		// ones), so its names here are never logged.
		return []eventKind{kindConsentRevoke}
	case EventConsentRevokeUser:
		return []eventKind{kindRevokeAllUser}
	case EventConsentRevokeUserClient:
		return []eventKind{kindRevokeUserApp}
	case EventRevoke:
		return []eventKind{kindRevoke}
	case EventIntrospect:
		return []eventKind{kindIntrospect}
	case EventDeviceAuthorize:
		return []eventKind{kindDeviceAuthorize}
	case EventSignIn:
		return []eventKind{kindSessionStart}
	case EventSignOut:
		return []eventKind{kindSessionEnd}
	case EventAccountLock:
		return []eventKind{kindAccountLock}
	case EventKeyRollover:
		return []eventKind{kindKeyRollover}
	case EventFactorDeactivate:
		return []eventKind{kindFactorDeactivate}
	case EventFactorResetAll:
		return []eventKind{kindFactorResetAll}
	case EventUnlockByAdmin:
		return []eventKind{kindUnlockByAdmin}
	}
	return mfaKinds[event]
}

// signInReasons are Okta's outcome.reason for a failed user.session.start.
var signInReasons = map[string]string{"invalid_credentials": "INVALID_CREDENTIALS", "locked": "LOCKED_OUT"}

// Okta's outcome results.
const (
	resultSuccess = "SUCCESS"
	resultFailure = "FAILURE"
)

// requestIDKey carries the request's id for transaction.id.
type requestIDKey struct{}

// WithRequestID returns ctx carrying id, which the System Log events of
// the request use as their transaction.id (the Caddy glue passes Caddy's
// {http.request.uuid}, so they match the request's access log); id is
// called at most once, when the request logs an event.
func WithRequestID(ctx context.Context, id func() string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// sessionKey carries the digest of a session started by this request.
type sessionKey struct{}

func withSession(ctx context.Context, digest string) context.Context {
	return context.WithValue(ctx, sessionKey{}, digest)
}

// transactionID is the request's id, or a fresh random one.
func transactionID(r *http.Request) string {
	if r != nil {
		if f, ok := r.Context().Value(requestIDKey{}).(func() string); ok {
			if id := f(); id != "" {
				return id
			}
		}
	}
	return newUUID()
}

// newUUID is a random (version 4) UUID, RFC 9562 section 5.4.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// sessionDigest is authenticationContext.externalSessionId: a one-way
// digest of an SSO session id, so events of one session correlate while
// the log never holds what the cookie holds.
func sessionDigest(sid string) string {
	h := sha256.Sum256([]byte("apiaccess session\x00" + sid))
	return "sid" + hex.EncodeToString(h[:12])
}

// maxUserAgent bounds the User-Agent an event keeps.
const maxUserAgent = 512

// logEvents turns one decision into its System Log events and hands
// them to the sink; e is the failure, nil for a success.
func (i *Issuer) logEvents(event string, d *decision, e *oauth.Error) {
	if i.sink == nil {
		return
	}
	kinds := kindsOf(event, d, e != nil)
	if len(kinds) == 0 {
		return
	}
	txn := transactionID(d.req)
	for _, k := range kinds {
		ev := i.baseEvent(d, e, txn)
		ev.UUID, ev.EventType, ev.DisplayMessage = newUUID(), k.name(d.server), k.message
		if k.warn && ev.Severity == "INFO" {
			ev.Severity = "WARN"
		}
		ev.Target = append(ev.Target, tokenTarget(k, d)...)
		if k == kindSessionStart && e != nil && d.outcomeReason == "" {
			// Okta's reasons for a refused sign-in.
			r := signInReasons[e.Code]
			if r == "" {
				r = strings.ToUpper(e.Code)
			}
			ev.Outcome.Reason = &r
		}
		i.sink.add(ev)
	}
}

// baseEvent is what every event of a decision has.
func (i *Issuer) baseEvent(d *decision, e *oauth.Error, txn string) store.LogEvent {
	ev := store.LogEvent{
		Published:   i.now().UTC().Truncate(time.Microsecond), // the stores keep microseconds
		Version:     "0",
		Severity:    "INFO",
		Outcome:     &store.LogOutcome{Result: resultSuccess},
		Transaction: &store.LogTransaction{Type: "WEB", ID: txn},
		Client:      &store.LogClient{},
		Actor:       actorOf(d),
	}
	debug := map[string]any{}
	if d.req != nil {
		ev.Client.IPAddress = d.clientIP
		if ev.Client.IPAddress == "" {
			ev.Client.IPAddress = clientip.From(d.req)
		}
		if ua := d.req.UserAgent(); ua != "" {
			ev.Client.UserAgent = &store.LogUserAgent{RawUserAgent: echoBounded(ua, maxUserAgent)}
		}
		debug["requestUri"] = echo(d.req.URL.Path)
		ev.Request = &store.LogRequest{IPChain: []store.LogIPAddress{{IP: ev.Client.IPAddress}}}
	} else {
		ev.Transaction.Type = "JOB"
	}
	if sid := d.session; sid != "" {
		ev.AuthenticationContext = &store.LogAuthenticationCtx{ExternalSessionID: sid}
	} else if d.req != nil {
		if sid, ok := d.req.Context().Value(sessionKey{}).(string); ok {
			ev.AuthenticationContext = &store.LogAuthenticationCtx{ExternalSessionID: sid}
		} else if v, ok := i.readCookie(d.req, sessionCookie); ok {
			ev.AuthenticationContext = &store.LogAuthenticationCtx{ExternalSessionID: sessionDigest(v)}
		}
	}
	if e != nil {
		ev.Severity = "WARN"
		ev.Outcome.Result = resultFailure
		reason := d.outcomeReason
		if reason == "" {
			reason = e.Code
		}
		ev.Outcome.Reason = &reason
		debug["error"] = e.Code
		if detail := e.Reason; detail != "" {
			debug["detail"] = detail
		} else if e.Description != "" {
			debug["detail"] = e.Description
		}
	} else if d.outcomeReason != "" {
		r := d.outcomeReason
		ev.Outcome.Reason = &r
	}
	if d.grantType != "" {
		debug["grantType"] = echo(d.grantType)
	}
	if d.scopes != nil {
		key := "grantedScopes"
		if e != nil {
			key = "requestedScopes"
		}
		debug[key] = strings.Join(d.scopes, " ")
	}
	if d.policy != "" {
		debug["policy"] = d.policy
	}
	if d.rule != "" {
		debug["rule"] = d.rule
	}
	if d.jti != "" {
		debug["jti"] = d.jti
	}
	if d.clientID != "" {
		debug["clientId"] = echo(d.clientID)
	}
	if d.kid != "" {
		debug["activeKid"] = d.kid
	}
	if len(d.amr) > 0 { // how the user signed in (RFC 8176 values)
		debug["amr"] = strings.Join(d.amr, " ")
	}
	d.exchange.debug(debug)
	if d.server != nil {
		debug["authorizationServer"] = d.server.ID
		ev.Target = append(ev.Target, store.LogTarget{ID: d.server.ID, Type: "AuthorizationServer", AlternateID: d.server.Issuer, DisplayName: d.server.ID})
	}
	if d.clientID != "" {
		ev.Target = append(ev.Target, clientTarget(i, d.clientID))
	}
	ev.DebugContext = &store.LogDebugContext{DebugData: debug}
	return ev
}

// actorOf is who acted: the user when one is known, else the client,
// else the issuer itself (key rotation).
func actorOf(d *decision) *store.LogActor {
	switch {
	case d.userID != "" || d.login != "":
		alt := d.login
		if alt == "" {
			alt = d.userID
		}
		return &store.LogActor{ID: d.userID, Type: "User", AlternateID: echo(alt), DisplayName: echo(alt)}
	case d.clientID != "":
		return &store.LogActor{ID: echo(d.clientID), Type: "PublicClientApp", AlternateID: echo(d.clientID), DisplayName: echo(d.clientID)}
	}
	return &store.LogActor{ID: "apiaccess", Type: "SystemPrincipal", AlternateID: "system", DisplayName: "API Access Management"}
}

// clientTarget is the client application an event is about.
func clientTarget(i *Issuer, id string) store.LogTarget {
	t := store.LogTarget{ID: echo(id), Type: "PublicClientApp", AlternateID: echo(id), DisplayName: echo(id)}
	if i.auth != nil {
		if c, ok := i.auth.Client(id); ok && c.Name != "" {
			t.DisplayName = c.Name
		}
	}
	return t
}

// tokenTarget is the token a grant event is about, by its id (the
// access token's jti, the refresh token's family), never its value.
func tokenTarget(k eventKind, d *decision) []store.LogTarget {
	switch k {
	case kindAccessToken:
		if d.jti != "" {
			return []store.LogTarget{{ID: d.jti, Type: "access_token", AlternateID: d.jti, DisplayName: "Access Token"}}
		}
	case kindIDToken:
		// Issued beside the access token jti names.
		return []store.LogTarget{{Type: "id_token", DisplayName: "ID Token", DetailEntry: map[string]any{"accessTokenJti": d.jti}}}
	case kindRefreshToken:
		if d.family != "" {
			f := familyID(d.family)
			return []store.LogTarget{{ID: f, Type: "refresh_token", AlternateID: f, DisplayName: "Refresh Token"}}
		}
	}
	return nil
}

// familyID names a refresh-token family in the log by a digest of its
// id: the id itself keys the family's revocation mark in the store.
func familyID(f string) string {
	h := sha256.Sum256([]byte("apiaccess family\x00" + f))
	return "rt." + hex.EncodeToString(h[:12])
}

// echoBounded is echo with a bound of n bytes.
func echoBounded(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// logKeyRotationEvent is the System Log event of a key rotation.
func (i *Issuer) logKeyRotationEvent(s *Server, why, kid string) {
	i.logEvents(EventKeyRollover, &decision{server: s, kid: kid, outcomeReason: why}, nil)
}
