package authserver

import (
	"net/http"

	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// Event types, named like Okta's System Log events so existing
// dashboards and alerts translate directly.
const (
	EventTokenGrant      = "app.oauth2.as.token.grant.access_token"
	EventTokenDenied     = "app.oauth2.as.token.grant"
	EventRevoke          = "app.oauth2.as.token.revoke"
	EventIntrospect      = "app.oauth2.as.token.introspect"
	EventKeyRollover     = "app.oauth2.as.key.rollover"
	EventAuthorize       = "app.oauth2.as.authorize"
	EventDeviceAuthorize = "app.oauth2.as.device.authorize"
	EventSignIn          = "user.session.start"
	EventSignOut         = "user.session.end"
	EventConsentGrant    = "app.oauth2.as.consent.grant"
)

// Consent revoked through the User Grants API (grants_api.go): one
// grant, all of a user's, all of a user's for one client (Okta's
// Event Types catalog).
const (
	EventConsentRevoke           = "app.oauth2.as.consent.revoke"
	EventConsentRevokeUser       = "app.oauth2.as.consent.revoke.user"
	EventConsentRevokeUserClient = "app.oauth2.as.consent.revoke.user.client"
)

// A user's factors and lockout changed through the admin API
// (factors_api.go): one factor removed, all reset, the lockout ended
// (Okta's Event Types catalog).
const (
	EventFactorDeactivate = "user.mfa.factor.deactivate"
	EventFactorResetAll   = "user.mfa.factor.reset_all"
	EventUnlockByAdmin    = "user.account.unlock_by_admin"
)

// decision carries what one event records. It never holds a token,
// secret or key: only identifiers.
type decision struct {
	server    *Server
	clientID  string
	userID    string
	grantType string
	scopes    []string
	policy    string
	rule      string
	jti       string
	// accessExp is the issued access token's exp (Unix seconds), which
	// a token inline hook may have moved from the rule's lifetime.
	accessExp int64
	family    string
	// login is what a password sign-in named (Okta's actor alternateId),
	// clientIP where it came from (client.ipAddress): sign-in, lockout
	// and password-grant events carry both, never the password.
	login    string
	clientIP string
	// outcomeReason, when set, is a failure event's reason, Okta's
	// outcome.reason (policy.NoMatchingPolicy); the error's own
	// reason, for people, goes to detail then.
	outcomeReason string

	// What only the System Log event records (logevent.go). req is the
	// request decided on, read for the client's address and User-Agent,
	// the request id and the session cookie's digest (never a form
	// value or another header); session, set at sign-in, is the new
	// session's digest (sessionDigest), never its id.
	req     *http.Request
	session string
	// idToken and refreshToken: the grant issued them beside the
	// access token; reused: the refresh token was a replaced one
	// (Okta's token reuse detection).
	idToken, refreshToken, reused bool
	// kid is the signing key a rotation made active.
	kid string
	// amr: how the user signed in (sign-in and MFA events).
	amr []string
	// jkt: the DPoP key the request proved (tokens are bound to it).
	jkt string
	// exchange: what a token exchange exchanged (token_exchange.go).
	exchange *exchangeLog
	// refreshed: the refresh token a grant stored, which the refresh
	// grant indexes once committed (token_refresh.go).
	refreshed *store.RefreshToken
}

// fields are the event's own fields; the server's are pre-encoded in
// its logger (Server.log).
func (d decision) fields(extra int) []zap.Field {
	f := make([]zap.Field, 0, 9+extra)
	if d.clientID != "" {
		f = append(f, zap.String("client_id", d.clientID))
	}
	if d.userID != "" {
		f = append(f, zap.String("user_id", d.userID))
	}
	if d.grantType != "" {
		f = append(f, zap.String("grant_type", d.grantType))
	}
	if d.scopes != nil {
		f = append(f, zap.Strings("scopes", d.scopes))
	}
	if d.policy != "" {
		f = append(f, zap.String("policy", d.policy))
	}
	if d.rule != "" {
		f = append(f, zap.String("rule", d.rule))
	}
	if d.jti != "" {
		f = append(f, zap.String("jti", d.jti))
	}
	if d.login != "" {
		f = append(f, zap.String("login", echo(d.login)))
	}
	if d.clientIP != "" {
		f = append(f, zap.String("client_ip", d.clientIP))
	}
	if x := d.exchange; x != nil {
		f = append(f, zap.String("subject_token_jti", x.subjectJTI), zap.String("subject_token_server", x.subjectServer))
		if x.actor != "" {
			f = append(f, zap.String("actor", echo(x.actor)))
		}
	}
	return f
}

func (i *Issuer) logSuccess(event string, d decision) {
	if c := d.server.log.Check(zap.InfoLevel, event); c != nil {
		c.Write(append(d.fields(1), zap.String("outcome", "SUCCESS"))...)
	}
	i.logEvents(event, &d, nil)
}

func (i *Issuer) logFailure(event string, d decision, e *oauth.Error) {
	if c := d.server.log.Check(zap.InfoLevel, event); c != nil {
		reason := e.Reason
		if reason == "" {
			reason = e.Description
		}
		f := append(d.fields(5), zap.String("outcome", "FAILURE"), zap.String("error", e.Code))
		if d.outcomeReason != "" {
			f = append(f, zap.String("reason", d.outcomeReason), zap.String("detail", reason))
		} else {
			f = append(f, zap.String("reason", reason))
		}
		if e.Cause != nil {
			f = append(f, zap.NamedError("cause", e.Cause))
		}
		c.Write(f...)
	}
	i.logEvents(event, &d, e)
}

func (i *Issuer) logKeyRotation(s *Server, why, kid string) {
	if kid == "" && s.keys != nil && s.keys.Current() != nil {
		kid = s.keys.Current().Active.KeyID()
	}
	s.log.Info(EventKeyRollover, zap.String("reason", why), zap.String("active_kid", kid), zap.String("outcome", "SUCCESS"))
	i.obs.KeyRotation(s.ID, rotationReason(why))
	i.logKeyRotationEvent(s, rotationReason(why), kid)
}
