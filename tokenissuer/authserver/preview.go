package authserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// PreviewRequest is a token preview's request properties, those of the
// "Token Preview" tab of an authorization server in Okta's Admin Console
// (Okta help, "Test your authorization server configuration"): a
// client, a grant type, a user and scopes.
type PreviewRequest struct {
	// ClientID of a registered client. Required.
	ClientID string `json:"client_id"`
	// GrantType: client_credentials, password, authorization_code or
	// urn:ietf:params:oauth:grant-type:device_code. A refresh is judged
	// by the grant that started its family, a token exchange by the
	// grant that produced its subject token: preview that grant.
	// Required.
	GrantType string `json:"grant_type"`
	// User is the user the grant is for, found as the grant finds it:
	// for password, a login (the grant's username); for
	// authorization_code and device_code, a login (typed on the sign-in
	// page) or a user id (the user of an SSO session). A value that is
	// the login of one user and the id of another is refused as
	// ambiguous. Required for the grants with a user, refused for
	// client_credentials.
	User string `json:"user,omitempty"`
	// Scopes requested; none: the server's default scopes, as in a real
	// request.
	Scopes []string `json:"scopes,omitempty"`
}

// Preview is what a token request would be answered, decided as the
// grant decides it but with nothing signed, stored, logged to the
// System Log or sent to an inline hook.
type Preview struct {
	AuthorizationServer string `json:"authorization_server"`
	ClientID            string `json:"client_id"`
	GrantType           string `json:"grant_type"`
	// User is the user the grant is for; nil for client_credentials.
	User *PreviewUser `json:"user,omitempty"`
	// Scopes the request asks for (DefaultScopes: the server's defaults,
	// none being asked: no entry, or only empty ones).
	Scopes        []string `json:"scopes"`
	DefaultScopes bool     `json:"default_scopes,omitempty"`
	// Policy and Rule that decided; empty when none did.
	Policy string `json:"policy,omitempty"`
	Rule   string `json:"rule,omitempty"`
	// Evaluation is the policy evaluation, policy by policy and rule by
	// rule; nil at the org authorization server (no access policies:
	// OrgRule says what applies).
	Evaluation *policy.Explanation `json:"evaluation,omitempty"`
	OrgRule    string              `json:"org_rule,omitempty"`
	// SignOn is the sign-on policy decision for the user, when one
	// applies.
	SignOn *PreviewSignOn `json:"sign_on,omitempty"`
	// Error is the error a real request would be answered with (no
	// matching rule, a sign-on policy refusal, a second factor the user
	// cannot give in a browser flow, a user who is not active, a
	// password grant for a user without a password); the tokens and the
	// inline hook are then absent.
	Error *PreviewError `json:"error,omitempty"`
	// AccessToken, IDToken and RefreshToken would be issued.
	AccessToken  *PreviewToken   `json:"access_token,omitempty"`
	IDToken      *PreviewToken   `json:"id_token,omitempty"`
	RefreshToken *PreviewRefresh `json:"refresh_token,omitempty"`
	// FailedClaims are the custom claims left out because their
	// expression failed at run time (a real request logs a warning for
	// each and issues the token without them).
	FailedClaims []PreviewFailure `json:"failed_claims,omitempty"`
	// Consent lists the requested scopes whose consent is required
	// (authorization_code): the real sign-in shows a consent page for
	// those not granted before (prompt=none: consent_required).
	Consent []PreviewConsent `json:"consent,omitempty"`
	// InlineHook is the token inline hook the rule would run (by name;
	// the preview does not call it): its patch is not in the claims.
	// Only when tokens would be issued: a refused request runs no hook.
	InlineHook string `json:"inline_hook,omitempty"`
	// Notes say where a real token would differ.
	Notes []string `json:"notes,omitempty"`
}

// PreviewUser names the user a preview is for.
type PreviewUser struct {
	ID     string `json:"id"`
	Login  string `json:"login"`
	Status string `json:"status,omitempty"`
}

// PreviewSignOn is the sign-on policy decision for the user.
type PreviewSignOn struct {
	Policy string `json:"policy,omitempty"`
	Rule   string `json:"rule,omitempty"`
	Factor string `json:"factor"`
	Deny   bool   `json:"deny,omitempty"`
}

// PreviewConsent is a requested scope with consent `required`.
type PreviewConsent struct {
	Scope string `json:"scope"`
	// Granted: the user consented to the scope for this client before
	// (a stored consent): no consent page for it, unless the request
	// has prompt=consent.
	Granted bool `json:"granted"`
}

// PreviewToken is one token's claims and lifetime.
type PreviewToken struct {
	// Claims as they would be signed; jti, iat and exp as if issued
	// now. The ID token has no at_hash: it binds the signed access token.
	Claims map[string]any `json:"claims"`
	// Lifetime in Go's duration form, and in seconds.
	Lifetime        string `json:"lifetime"`
	LifetimeSeconds int64  `json:"lifetime_seconds"`
	// Reason says why an ID token is not issued, when it is not.
	Reason string `json:"reason,omitempty"`
}

// PreviewRefresh is whether a refresh token would be issued, and its
// lifetimes under the rule.
type PreviewRefresh struct {
	Issued bool `json:"issued"`
	// Reason says why not, when not issued.
	Reason          string `json:"reason,omitempty"`
	Lifetime        string `json:"lifetime"`
	LifetimeSeconds int64  `json:"lifetime_seconds"`
	Idle            string `json:"idle"`
	IdleSeconds     int64  `json:"idle_seconds"`
}

// PreviewFailure is a claim left out of a token: its expression failed.
type PreviewFailure struct {
	Claim string `json:"claim"`
	// Token is access_token or id_token (subject: the sub expression).
	Token string `json:"token"`
	Error string `json:"error"`
}

// PreviewError is an OAuth error a real request would get, or (with
// Status) why the preview cannot be made: an unknown server, client or
// user (404), a request a real one could not make (400).
type PreviewError struct {
	// Code is the OAuth error code; empty for an unknown server, client
	// or user.
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
	// Reason is what the log would record of a real refusal.
	Reason string `json:"reason,omitempty"`
	// Status is the admin API's answer for a preview refused.
	Status int `json:"-"`
}

func (e *PreviewError) Error() string {
	switch {
	case e.Code == "":
		return e.Description
	case e.Description == "":
		return e.Code
	}
	return e.Code + ": " + e.Description
}

func previewRefused(status int, code, description string) *PreviewError {
	return &PreviewError{Code: code, Description: description, Status: status}
}

// fromOAuth is a real request's OAuth error as a preview's refusal
// (status set) or answer (status 0).
func fromOAuth(e *oauth.Error, status int) *PreviewError {
	return &PreviewError{Code: e.Code, Description: e.Description, Reason: e.Reason, Status: status}
}

// previewGrants are the grant types a preview answers for.
var previewGrants = []string{GrantClientCredentials, GrantPassword, GrantAuthorizationCode, GrantDeviceCode}

// Preview answers what a token request of req to server serverID would
// be given, as the grant would decide it: the scopes (defaults when none
// are asked), the refusals a real request gets, the policy evaluation
// rule by rule, the tokens' claims and lifetimes, and the inline hook.
// Nothing is signed, stored, logged (claim failures are returned, not
// logged) or sent. An error is a *PreviewError with a Status: the
// request cannot be previewed.
func (i *Issuer) Preview(ctx context.Context, serverID string, req PreviewRequest) (*Preview, error) {
	s, ok := i.Server(serverID)
	if !ok {
		return nil, previewRefused(http.StatusNotFound, "", fmt.Sprintf("unknown authorization server %q", serverID))
	}
	c := i.previewClient(req.ClientID)
	if c == nil {
		return nil, previewRefused(http.StatusNotFound, "", fmt.Sprintf("unknown client %q", req.ClientID))
	}
	gt := req.GrantType
	switch {
	case gt == "":
		return nil, previewRefused(http.StatusBadRequest, "invalid_request", "grant_type is required")
	case gt == GrantRefreshToken:
		// invalid_request, not unsupported_grant_type: the server may
		// well support the grant; the preview cannot answer for it.
		return nil, previewRefused(http.StatusBadRequest, "invalid_request",
			"a refresh is judged by the grant that started its family: preview that grant (a refresh token is shown when it would be issued)")
	case gt == GrantTokenExchange:
		return nil, previewRefused(http.StatusBadRequest, "invalid_request",
			"a token exchange is judged by its subject token, which the preview has none of: preview the grant that produced the subject token")
	case !s.supports(gt):
		return nil, fromOAuth(oauth.ErrUnsupportedGrantType, http.StatusBadRequest)
	case !slices.Contains(previewGrants, gt):
		return nil, previewRefused(http.StatusBadRequest, "invalid_request", "the token preview does not answer for grant type "+gt)
	case !c.AllowsGrant(gt):
		// The token endpoint's answer (runToken), and authorize's.
		return nil, fromOAuth(oauth.ErrUnauthorizedClient.WithDescription(
			"The client is not authorized to use the provided grant type. Configured grant types: ["+strings.Join(c.GrantTypes, ", ")+"]."), http.StatusBadRequest)
	}
	for _, sc := range req.Scopes {
		if strings.ContainsAny(sc, " ") {
			return nil, previewRefused(http.StatusBadRequest, "invalid_scope", fmt.Sprintf("scope %q: one scope per entry", sc))
		}
	}
	p := &Preview{AuthorizationServer: s.ID, ClientID: c.ID, GrantType: gt}
	u, perr := i.previewUser(ctx, gt, req.User)
	if perr != nil {
		return nil, perr
	}
	if u != nil {
		p.User = &PreviewUser{ID: u.ID, Login: u.Login, Status: u.Status}
	}
	scopes, e := i.previewScopes(s, c, gt, strings.Join(req.Scopes, " "))
	if e != nil {
		return nil, fromOAuth(e, http.StatusBadRequest)
	}
	// The defaults apply when the parsed scope parameter is empty (as
	// requestedScopes decides), also for entries that are all empty.
	asked, _ := parseScope(strings.Join(req.Scopes, " "))
	p.Scopes, p.DefaultScopes = scopes, len(asked) == 0

	g := grantInfo{scopes: scopes, grant: gt, authTime: i.now(), amr: []string{amrPassword}}
	if u != nil {
		if gt == GrantPassword && u.PasswordHash == "" {
			// CheckPassword fails a user without a password before it
			// looks at the status: the grant's answer to bad credentials.
			p.Error = fromOAuth(errBadCredentials.WithReason("bad credentials: the user has no password in the directory, so a password sign-in always fails"), 0)
		} else if !u.Active() {
			// The password grant's answer for any failed sign-in, the
			// browser flows' for a user who may not sign in.
			why := "user is " + u.Status
			switch gt {
			case GrantPassword:
				p.Error = fromOAuth(errBadCredentials.WithReason(why), 0)
			case GrantDeviceCode:
				p.Error = fromOAuth(errDenied.WithReason(why), 0)
			default:
				p.Error = fromOAuth(oauth.ErrAccessDenied.WithDescription("The user is not allowed to sign in.").WithReason(why), 0)
			}
		} else if refused, err := i.previewSignOn(ctx, p, c, u, gt); err != nil {
			return nil, previewStoreFailure(err)
		} else if refused != nil {
			p.Error = refused
		}
		if u.PasswordHash == "" && gt != GrantPassword && p.Error == nil {
			p.Notes = append(p.Notes, "the user has no password in the directory: the sign-in page refuses them; only an SSO session they already have would carry on")
		}
	}
	if gt == GrantAuthorizationCode && c.RequirePushedAuthorizationRequests {
		// authorize refuses a request that was not pushed (readAuthorize).
		p.Notes = append(p.Notes, "the client requires pushed authorization requests: it must push its request to "+s.endpoints+
			"/par first and send only client_id and request_uri to /authorize, which refuses any other request")
	}
	switch {
	case s.Org && gt == GrantClientCredentials:
		p.Policy, p.Rule, p.OrgRule = orgAPIRule.Name, orgAPIRule.Name, "Okta API scopes among the client's okta_api_scopes, one hour"
		g.rule = orgAPIRule
	case s.Org:
		p.OrgRule = "the org authorization server has no access policies: any client may sign any user in for its scopes"
		p.Policy, p.Rule, g.rule, g.policy = orgPolicy.Name, orgRule.Name, orgRule, orgPolicy.Name
	default:
		preq := policy.Request{ClientID: c.ID, GrantType: gt, Scopes: scopes}
		if u != nil {
			preq.User = policyUser(u)
		}
		x := s.policies.Explain(preq)
		p.Evaluation = &x
		// The grants' own decision, for the answer: Explain agrees with
		// it (policy tests), this keeps the preview the real thing.
		m, e := s.evaluate(preq, &decision{server: s})
		if m.Policy != nil {
			p.Policy = m.Policy.Name
		}
		if e != nil {
			if p.Error == nil {
				p.Error = fromOAuth(e, 0)
			}
			return p, nil
		}
		p.Rule, g.rule, g.policy = m.Rule.Name, m.Rule, m.Policy.Name
	}
	if p.Error != nil {
		return p, nil
	}
	if gt == GrantAuthorizationCode && u != nil {
		if err := i.previewConsent(ctx, p, s, c, u, scopes); err != nil {
			return nil, previewStoreFailure(err)
		}
	}
	// A hook runs only for tokens being issued (issue, between plan and
	// signMint).
	p.InlineHook = s.hookFor(g.rule)
	i.previewTokens(p, s, c, u, g)
	return p, nil
}

func previewStoreFailure(err error) *PreviewError {
	return &PreviewError{Code: "server_error", Description: "the store failed: " + err.Error(), Status: http.StatusInternalServerError}
}

// previewConsent lists the requested scopes with consent required, and
// whether u granted each to c before, as afterSignIn's pendingConsent
// decides (a read of the stored consent; the preview has no prompt).
func (i *Issuer) previewConsent(ctx context.Context, p *Preview, s *Server, c *clientauth.Client, u *directory.User, scopes []string) error {
	var pending, granted []string
	for _, name := range scopes {
		sc := s.scopes[name]
		if sc == nil || sc.Consent != "required" {
			continue
		}
		_, err := i.store.GetRecord(ctx, store.NSConsent, consentKey(s, c, u.ID, name))
		switch {
		case err == nil:
			granted = append(granted, name)
		case errors.Is(err, store.ErrNotFound):
			pending = append(pending, name)
		default:
			return err
		}
		p.Consent = append(p.Consent, PreviewConsent{Scope: name, Granted: err == nil})
	}
	if len(pending) > 0 {
		p.Notes = append(p.Notes, "scopes "+strings.Join(pending, " ")+" need the user's consent: the sign-in shows a consent page before the code "+
			"(with prompt=none the client gets consent_required; a refusal answers access_denied)")
	}
	if len(granted) > 0 {
		p.Notes = append(p.Notes, "scopes "+strings.Join(granted, " ")+" need consent, which the user gave this client before: no consent page for them (prompt=consent asks again)")
	}
	return nil
}

// previewClient is the registered client id, or nil.
func (i *Issuer) previewClient(id string) *clientauth.Client {
	for _, c := range i.clients {
		if c.ID == id {
			return c
		}
	}
	return nil
}

// previewUser finds the user as the grant does. The password grant
// signs in by login (its username): a login only. authorization_code
// and device_code sign in on the sign-in page by login, or go on with
// an SSO session, which holds the user id: a login or an id. A value
// that is the login of one user and the id of another is refused (400)
// rather than guessed. Grants without a user take none.
func (i *Issuer) previewUser(ctx context.Context, gt, who string) (*directory.User, *PreviewError) {
	if gt == GrantClientCredentials {
		if who != "" {
			return nil, previewRefused(http.StatusBadRequest, "invalid_request", "the client_credentials grant has no user: leave user out")
		}
		return nil, nil
	}
	if who == "" {
		return nil, previewRefused(http.StatusBadRequest, "invalid_request", "the "+gt+" grant is for a user: user (a login or an id) is required")
	}
	if i.dir == nil {
		return nil, previewRefused(http.StatusNotFound, "", "no directory is configured: no user")
	}
	lookup := func(find func(context.Context, string) (*directory.User, error)) (*directory.User, *PreviewError) {
		u, err := find(ctx, who)
		switch {
		case errors.Is(err, directory.ErrNotFound):
			return nil, nil
		case err != nil:
			return nil, &PreviewError{Code: "server_error", Description: "the directory failed: " + err.Error(), Status: http.StatusInternalServerError}
		}
		return u, nil
	}
	byLogin, perr := lookup(i.dir.UserByLogin)
	if perr != nil {
		return nil, perr
	}
	byID, perr := lookup(i.dir.UserByID)
	if perr != nil {
		return nil, perr
	}
	switch {
	case gt == GrantPassword && byLogin != nil:
		return byLogin, nil
	case gt == GrantPassword && byID != nil:
		return nil, previewRefused(http.StatusNotFound, "", fmt.Sprintf("unknown user %q: the password grant signs in by login, and this is the id of the user whose login is %q", who, byID.Login))
	case gt == GrantPassword:
		return nil, previewRefused(http.StatusNotFound, "", fmt.Sprintf("unknown user %q (not a login of the directory; the password grant signs in by login)", who))
	case byLogin != nil && byID != nil && byLogin.ID != byID.ID:
		return nil, previewRefused(http.StatusBadRequest, "invalid_request", fmt.Sprintf(
			"ambiguous user %q: it is the login of user %s and the id of user %s: give %q (an id) or %q (a login)", who, byLogin.ID, byID.ID, byLogin.ID, byID.Login))
	case byLogin != nil:
		return byLogin, nil
	case byID != nil:
		return byID, nil
	}
	return nil, previewRefused(http.StatusNotFound, "", fmt.Sprintf("unknown user %q (neither an id nor a login of the directory)", who))
}

// previewScopes checks the scopes as the grant does: the org server's
// client_credentials grant takes the client's Okta API scopes and has no
// defaults; otherwise unknown scopes are refused and none asked means
// the defaults, and client_credentials refuses the scopes that need a
// user.
func (i *Issuer) previewScopes(s *Server, c *clientauth.Client, gt, param string) ([]string, *oauth.Error) {
	if s.Org && gt == GrantClientCredentials {
		return orgAPIScopes(c, param, &decision{server: s})
	}
	scopes, e := s.requestedScopes(param, &decision{server: s})
	if e != nil {
		if e.Reason != "" && e.Description == oauth.ErrInvalidScope.Description {
			// Say which scope: the admin asking is not a client to keep
			// guessing.
			e = e.WithDescription(e.Description + " (" + e.Reason + ")")
		}
		return nil, e
	}
	if gt == GrantClientCredentials {
		// As clientCredentials.
		for _, sc := range scopes {
			if userScopes[sc] {
				return nil, oauth.ErrInvalidScope.WithDescription("The following scopes are not allowed for the client_credentials grant: " + sc + ".")
			}
		}
	}
	return scopes, nil
}

// previewSignOn records the sign-on policy decision for u and returns
// the refusal a real request would get: a deny rule refuses every flow;
// a required second factor refuses the password grant; a browser flow
// asks for the factor, or refuses a user who has none the rule accepts
// and may not enroll one (factorStepFor, askFactor's own decision). The
// error is the store's, when the user's factors could not be read.
func (i *Issuer) previewSignOn(ctx context.Context, p *Preview, c *clientauth.Client, u *directory.User, gt string) (*PreviewError, error) {
	n := i.requirement(c, u, nil)
	if n.policy != "" || n.deny || n.factor != policy.FactorNone {
		p.SignOn = &PreviewSignOn{Policy: n.policy, Rule: n.rule, Factor: n.factor, Deny: n.deny}
	}
	switch {
	case n.deny && gt == GrantDeviceCode:
		// The device learns it at its next poll (denyBySignOnPolicy).
		return fromOAuth(errDenied.WithReason("sign-on policy denies"), 0), nil
	case n.deny:
		return fromOAuth(oauth.ErrAccessDenied.WithDescription("The sign-on policy does not allow this user to sign in to this application.").
			WithReason("sign-on policy denies"), 0), nil
	case n.factor != policy.FactorNone && gt == GrantPassword:
		return fromOAuth(errBadCredentials.WithReason("sign-on policy requires a second factor"), 0), nil
	case n.factor == policy.FactorNone:
		return nil, nil
	}
	step, _, err := i.factorStepFor(ctx, u, n)
	if err != nil {
		return nil, err
	}
	var msg, why string
	switch step {
	case stepFactor:
		p.Notes = append(p.Notes, "the sign-on policy asks for a second factor: the real amr and acr name the factor used; the preview signs in with a password")
		return nil, nil
	case stepEnroll:
		p.Notes = append(p.Notes, "the sign-on policy asks for a second factor and the user has none: the sign-in has them enroll one first; the real amr and acr name it, the preview signs in with a password")
		return nil, nil
	case stepPasswordOnly:
		return nil, nil
	case stepStronger:
		msg, why = msgStrongerFactor, "sign-on policy requires a "+n.factor+" factor and none of the user's factors meets it"
	case stepNoFactor:
		msg, why = msgNoFactor, "sign-on policy requires a "+n.factor+" factor, the user has none and the rule denies enrollment at sign-in"
		if n.enroll {
			why = "sign-on policy requires a " + n.factor + " factor, the user has none and no authenticator this issuer offers meets it"
		}
	}
	where := "the client gets no redirect"
	if gt == GrantDeviceCode {
		where = "the device's polls get authorization_pending until the code expires (expired_token)"
	}
	p.Notes = append(p.Notes, "the real sign-in shows the refusal on an HTTP 403 page after the password: "+where)
	return fromOAuth(oauth.ErrAccessDenied.WithDescription(msg).WithReason(why), 0), nil
}

// previewTokens plans the tokens as the grant's issue would (plan) and
// fills p from the plan. Claim failures are collected, not logged.
func (i *Issuer) previewTokens(p *Preview, s *Server, c *clientauth.Client, u *directory.User, g grantInfo) {
	m := i.plan(s, c, u, g, &decision{server: s})
	for _, f := range m.failed {
		pf := PreviewFailure{Claim: f.Claim, Token: f.token, Error: f.Err.Error()}
		if f.token == "subject" {
			pf.Error += " (sub is the login)"
		}
		p.FailedClaims = append(p.FailedClaims, pf)
	}

	at, _ := accessClaimMap(m.access, m.custom) // plan's claims encode (they are signed as they are)
	lifetime := time.Duration(m.access.Exp-m.access.Iat) * time.Second
	p.AccessToken = &PreviewToken{Claims: at, Lifetime: lifetime.String(), LifetimeSeconds: int64(lifetime.Seconds())}
	switch {
	case m.id != nil:
		p.IDToken = &PreviewToken{Claims: m.id, Lifetime: IDTokenLifetime.String(), LifetimeSeconds: int64(IDTokenLifetime.Seconds())}
	case u != nil:
		p.Notes = append(p.Notes, "no ID token: scope openid is not granted")
	}
	if u != nil {
		r := &PreviewRefresh{Issued: m.refresh, Lifetime: g.rule.RefreshLifetime().String(), LifetimeSeconds: previewSeconds(g.rule.RefreshLifetime()),
			Idle: g.rule.RefreshIdle().String(), IdleSeconds: previewSeconds(g.rule.RefreshIdle())}
		switch {
		case m.refresh:
		case !slices.Contains(g.scopes, "offline_access"):
			r.Reason = "scope offline_access is not granted"
		default:
			r.Reason = "the client may not use the refresh_token grant"
		}
		p.RefreshToken = r
	}
	if c.DPoPBoundAccessTokens {
		p.Notes = append(p.Notes, "the client's tokens are DPoP-bound: a real access token carries cnf.jkt of the proof's key")
	}
	if p.InlineHook != "" {
		p.Notes = append(p.Notes, "the inline hook "+p.InlineHook+" is not called: its patch would change these claims")
	}
}

func previewSeconds(d time.Duration) int64 { return int64(d.Seconds()) }
