package authserver

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/apiaccess/caddy-apiaccess/internal/configerr"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
)

// Token exchange (RFC 8693) as Okta offers it: On-Behalf-Of Token
// Exchange (Okta guide "Set up OAuth 2.0 On-Behalf-Of Token Exchange").
// A service that received a user's access token (the subject token)
// exchanges it at a custom authorization server for a token of that
// server's audience, for the same user: API1 calls API2 on the user's
// behalf. The subject token must be an access token of the server
// itself or of one of its trusted servers (Okta's "Trusted servers").

// TokenTypeAccessToken is RFC 8693 section 3's identifier of an OAuth
// access token: the only subject, actor and issued token type.
const TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"

// maxActDepth bounds the actors a subject token may already name in
// its act chain (each exchange nests one more).
const maxActDepth = 5

var (
	// errSubjectInvalid is Okta's answer to a subject token it cannot
	// accept (Okta support article "Error 'subject token is invalid'
	// During OAuth 2.0 Token Exchange Flow"), whatever the reason: an
	// expired or revoked token, a bad signature, another issuer. The
	// reason is for the log only.
	errSubjectInvalid = &oauth.Error{Code: "invalid_grant", Status: http.StatusBadRequest, Description: "subject token is invalid"}
	// errActorInvalid is the same for the actor token.
	errActorInvalid = &oauth.Error{Code: "invalid_grant", Status: http.StatusBadRequest, Description: "actor token is invalid"}
	// errInvalidTarget: the audience (or resource) names no service of
	// this server (RFC 8693 section 2.2.2).
	errInvalidTarget = &oauth.Error{Code: "invalid_target", Status: http.StatusBadRequest,
		Description: "The requested audience is not valid for this authorization server."}
)

// tokenExchange is the token exchange grant (RFC 8693 section 2.1). The
// client (a confidential service app) sends the user's access token as
// subject_token, the server's audience as audience and the scopes it
// needs; the server's policies judge the request as for the user, with
// grant type token-exchange. The issued access token keeps the user
// (uid, sub, auth_time, amr), names the client as the acting party in
// `act` (or the actor token's subject), nesting the subject token's own
// act, and comes without a refresh or ID token (Okta: "you can't request
// refresh tokens or ID tokens in a service app-initiated token exchange
// flow").
func (i *Issuer) tokenExchange(r *http.Request, s *Server, c *clientauth.Client, form map[string]string, d *decision) (*tokenResponse, *oauth.Error) {
	if c.AuthMethod == clientauth.None {
		// Without a credential anyone holding a user's token could turn it
		// into a token for another API; Okta offers the grant to service
		// apps only.
		return nil, oauth.ErrUnauthorizedClient.WithDescription("A public client cannot use the token exchange grant.")
	}
	subject, subjectType := form["subject_token"], form["subject_token_type"]
	switch {
	case subject == "":
		return nil, oauth.ErrInvalidRequest.WithDescription("The 'subject_token' parameter is required.")
	case subjectType == "":
		return nil, oauth.ErrInvalidRequest.WithDescription("The 'subject_token_type' parameter is required.")
	case subjectType != TokenTypeAccessToken:
		return nil, oauth.ErrInvalidRequest.WithDescription("The 'subject_token_type' parameter must be " + TokenTypeAccessToken + ".")
	}
	actor, actorType := form["actor_token"], form["actor_token_type"]
	switch {
	case actor != "" && actorType == "":
		return nil, oauth.ErrInvalidRequest.WithDescription("The 'actor_token_type' parameter is required with 'actor_token'.")
	case actor == "" && actorType != "":
		// RFC 8693 section 2.1: "MUST NOT be included otherwise".
		return nil, oauth.ErrInvalidRequest.WithDescription("The 'actor_token_type' parameter is only allowed with 'actor_token'.")
	case actor != "" && actorType != TokenTypeAccessToken:
		return nil, oauth.ErrInvalidRequest.WithDescription("The 'actor_token_type' parameter must be " + TokenTypeAccessToken + ".")
	}
	if rt := form["requested_token_type"]; rt != "" && rt != TokenTypeAccessToken {
		return nil, oauth.ErrInvalidRequest.WithDescription("The 'requested_token_type' parameter must be " + TokenTypeAccessToken + ".")
	}
	// Okta: "audience: audience of the authorization server"; the issued
	// token's aud is that audience, so no other can be asked for.
	switch aud := form["audience"]; {
	case aud == "":
		return nil, oauth.ErrInvalidRequest.WithDescription("The 'audience' parameter is required.")
	case aud != s.Audience:
		return nil, errInvalidTarget.WithReason("audience is not the server's")
	}
	if res := form["resource"]; res != "" && res != s.Audience {
		return nil, errInvalidTarget.WithReason("resource is not the server's audience")
	}
	ctx := r.Context()
	st, from, e := i.exchangedToken(ctx, s, subject, errSubjectInvalid)
	if e != nil {
		return nil, e
	}
	d.exchange = &exchangeLog{subjectJTI: st.JwtID(), subjectServer: from.ID}
	priv := st.PrivateClaims()
	uid, _ := priv["uid"].(string)
	if uid == "" {
		// On behalf of a user: a service's own token (client
		// credentials) names nobody to act for.
		return nil, errSubjectInvalid.WithReason("the subject token names no user")
	}
	d.userID = uid
	prior, ok := priorAct(priv["act"])
	if !ok {
		return nil, errSubjectInvalid.WithReason(fmt.Sprintf("malformed act claim or more than %d prior actors", maxActDepth))
	}
	act := map[string]any{"sub": c.ID}
	if actor != "" {
		at, _, e := i.exchangedToken(ctx, s, actor, errActorInvalid)
		if e != nil {
			return nil, e
		}
		// The actor token proves who acts only in the hands of the client
		// it was issued to.
		if cid, _ := at.PrivateClaims()["cid"].(string); cid != c.ID {
			return nil, errActorInvalid.WithReason("the actor token was issued to another client")
		}
		act["sub"] = at.Subject()
	}
	if prior != nil {
		act["act"] = prior
	}
	d.exchange.actor = act["sub"].(string)
	u, e := i.exchangeUser(ctx, uid)
	if e != nil {
		return nil, e
	}
	scopes, e := s.requestedScopes(form["scope"], d)
	if e != nil {
		return nil, e
	}
	// Okta: "You can't include the offline_access scope or any of the
	// OpenID Connect scopes when using a service app".
	for _, sc := range scopes {
		if userScopes[sc] {
			return nil, oauth.ErrInvalidScope.WithDescription("The following scopes are not allowed for the token exchange grant: " + sc + ".")
		}
	}
	m, e := s.evaluate(policy.Request{ClientID: c.ID, GrantType: GrantTokenExchange, Scopes: scopes, User: policyUser(u)}, d)
	if e != nil {
		return nil, e
	}
	g := grantInfo{scopes: scopes, rule: m.Rule, policy: m.Policy.Name, grant: GrantTokenExchange, act: act, authTime: i.now()}
	// The user signed in when the subject token says, the way it says.
	if v, ok := priv["auth_time"]; ok {
		if n, ok := v.(float64); ok && n > 0 {
			g.authTime = time.Unix(int64(n), 0)
		}
	}
	g.amr = stringList(priv["amr"])
	resp, e := i.issue(r, s, c, u, g, d)
	if e != nil {
		return nil, e
	}
	resp.IssuedTokenType = TokenTypeAccessToken
	return resp, nil
}

// exchangedToken verifies a subject or actor token as require_token
// verifies an access token (signature with the issuing server's keys,
// typ, iss, aud, exp/nbf) and as introspection decides `active` (jti
// revocations, refresh-family revocations, user and client cut-offs).
// It must come from s or a server s trusts. bad is the answer for any
// token that is not acceptable; a store failure is its own answer.
func (i *Issuer) exchangedToken(ctx context.Context, s *Server, tok string, bad *oauth.Error) (jwt.Token, *Server, *oauth.Error) {
	if len(tok) > maxTokenBytes || strings.Count(tok, ".") != 2 {
		return nil, nil, bad.WithReason("not a compact JWS")
	}
	// The issuer picks the keys; the signature is checked with them
	// below, so what this unverified read says is trusted only after.
	claimed, err := jwt.ParseInsecure([]byte(tok))
	if err != nil {
		return nil, nil, bad.WithReason("not a JWT")
	}
	from, ok := i.ServerByIssuer(claimed.Issuer())
	switch {
	case !ok:
		return nil, nil, bad.WithReason("unknown issuer")
	case from != s && s.trusted[from.ID] == nil:
		return nil, nil, bad.WithReason("issuer " + from.ID + " is not a trusted server of " + s.ID)
	}
	t, err := i.verifyAccessToken(from, tok)
	if err != nil {
		return nil, nil, bad.WithReason("verification failed: " + err.Error())
	}
	rev, err := i.accessRevoked(ctx, t)
	if err != nil {
		return nil, nil, oauth.FromStore(err)
	}
	if rev {
		return nil, nil, bad.WithReason("revoked")
	}
	// A sender-constrained token is usable only with its key's proof,
	// which the exchanging client cannot give: exchanging it would strip
	// the binding (RFC 9449 section 1).
	if boundKey(t.PrivateClaims()) != "" {
		return nil, nil, bad.WithReason("sender-constrained (cnf)")
	}
	return t, from, nil
}

// exchangeUser loads the subject token's user, who must still be able to
// get tokens.
func (i *Issuer) exchangeUser(ctx context.Context, uid string) (*directory.User, *oauth.Error) {
	if i.dir == nil {
		return nil, errSubjectInvalid.WithReason("no directory")
	}
	u, err := i.dir.UserByID(ctx, uid)
	if err != nil || !u.Active() {
		return nil, errSubjectInvalid.WithReason("user missing or not active")
	}
	return u, nil
}

// priorAct is the subject token's act claim, kept to nest inside the new
// one (RFC 8693 section 4.1: "the outermost act claim represents the
// current actor while nested act claims represent prior actors"). Only
// each actor's sub is kept (section 4.1: non-identity claims are not
// meaningful there). ok is false for a malformed or too deep chain.
func priorAct(v any) (map[string]any, bool) {
	if v == nil {
		return nil, true
	}
	var chain []string
	for v != nil {
		a, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		sub, _ := a["sub"].(string)
		if sub == "" || len(chain) == maxActDepth {
			return nil, false
		}
		chain = append(chain, sub)
		v = a["act"]
	}
	var out map[string]any
	for _, sub := range slices.Backward(chain) {
		next := map[string]any{"sub": sub}
		if out != nil {
			next["act"] = out
		}
		out = next
	}
	return out, true
}

// stringList reads a JSON array of strings (a claim such as amr).
func stringList(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// exchangeLog is what the System Log records of a token exchange: the
// subject token by its id and server, and who acted (Okta's guide:
// "You can determine which API service made API calls on behalf of
// which user by analyzing the token grant events").
type exchangeLog struct {
	subjectJTI, subjectServer, actor string
}

// debug adds the exchange to an event's debugData.
func (x *exchangeLog) debug(m map[string]any) {
	if x == nil {
		return
	}
	m["subjectTokenJti"] = x.subjectJTI
	m["subjectTokenAuthorizationServer"] = x.subjectServer
	if x.actor != "" {
		m["actor"] = echo(x.actor)
	}
}

// linkTrusted resolves every server's trusted_servers: ids of other
// custom servers (a server always trusts itself, Okta's "token exchange
// within a single authorization server").
func (i *Issuer) linkTrusted(cfgs map[string]*ServerConfig) error {
	ids := make([]string, 0, len(cfgs))
	for id := range cfgs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		s := i.servers[id]
		for _, t := range cfgs[id].TrustedServers {
			ts, ok := i.servers[t]
			if !ok {
				return configerr.In("authorization_server", id, configerr.Fieldf("trusted_servers", "unknown authorization server %q in trusted_servers", t))
			}
			if ts == s {
				continue
			}
			if s.trusted == nil {
				s.trusted = map[string]*Server{}
			}
			s.trusted[t] = ts
		}
	}
	return nil
}
