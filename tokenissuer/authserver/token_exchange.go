package authserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"
	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/internal/configerr"
	"github.com/apiaccess/caddy-apiaccess/internal/ssf"
	"github.com/apiaccess/caddy-apiaccess/internal/tokentime"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
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

// maxActDepth bounds the actors an issued token's act chain names, the
// current one included: a subject token may already name one fewer
// (each exchange nests one more), so at most 5 exchanges follow one
// another (Auth0, which also nests act, stops at five levels too).
const maxActDepth = 5

// exchangeSkew is the clock skew allowed for the subject and actor
// tokens' iat, nbf and exp: the gateway's default, so a token a gateway
// accepts from a node ahead is not refused here by a node behind.
const exchangeSkew = tokentime.Skew

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
		// apps only. Client.Prepare refuses a public client listing the
		// grant at load; this stays in case a client reaches here anyway.
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
	// The new token cannot outlive the subject token (its exp is capped
	// at the subject's), so one accepted only within the clock skew past
	// its exp would give a token that is born expired.
	if !st.Expiration().After(i.now()) {
		return nil, errSubjectInvalid.WithReason("expired (within the clock skew: an exchanged token cannot outlive it)")
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
		return nil, errSubjectInvalid.WithReason(fmt.Sprintf("malformed act claim or more than %d prior actors", maxActDepth-1))
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
		// An actor token of a user (not a service's own) names someone
		// who must still be able to get tokens, as the subject's user.
		if auid, _ := at.PrivateClaims()["uid"].(string); auid != "" {
			if _, e := i.activeUser(ctx, auid, errActorInvalid); e != nil {
				return nil, e
			}
		}
		act["sub"] = at.Subject()
	}
	if prior != nil {
		act["act"] = prior
	}
	d.exchange.actor = act["sub"].(string)
	u, e := i.activeUser(ctx, uid, errSubjectInvalid)
	if e != nil {
		return nil, e
	}
	scopes, e := s.requestedScopes(form["scope"], d)
	if e != nil {
		return nil, e
	}
	if e := s.consentCarried(scopes, stringList(priv["scp"])); e != nil {
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
	g := grantInfo{scopes: scopes, rule: m.Rule, policy: m.Policy.Name, grant: GrantTokenExchange, act: act, notAfter: st.Expiration()}
	// The user signed in when the subject token says, the way it says;
	// a subject without auth_time gives a token without it (the exchange
	// is no sign-in).
	if n, ok := priv["auth_time"].(float64); ok && n > 0 {
		g.authTime = time.Unix(int64(n), 0)
	}
	g.amr = stringList(priv["amr"])
	// What linkExchanged would refuse after issuing, refused before: no
	// inline hook call, no signed token for a refused exchange.
	fam, chain, e := i.exchangeRoom(ctx, st)
	if e != nil {
		return nil, e
	}
	resp, e := i.issue(r, s, c, u, g, d)
	if e != nil {
		return nil, e
	}
	// Before the token is handed out: it must fall with what revokes the
	// subject token. A refusal here (the family filled or was revoked
	// since exchangeRoom) names no token: this one is never handed out.
	if e := i.linkExchanged(ctx, s, st, fam, chain, d.jti, time.Unix(d.accessExp, 0)); e != nil {
		d.jti = ""
		return nil, e
	}
	resp.IssuedTokenType = TokenTypeAccessToken
	return resp, nil
}

// capExp caps a claim set's exp at notAfter (zero: no cap).
func capExp(at *accessClaims, notAfter time.Time) {
	if !notAfter.IsZero() && at.Exp > notAfter.Unix() {
		at.Exp = notAfter.Unix()
	}
}

// consentCarried refuses a consent-required scope the subject token
// does not carry: consent is given in a browser flow, and an exchange
// has no user at hand to ask. A scope the user consented to for the
// subject token (it is in its scp) may be passed on. The error is
// invalid_scope, RFC 6749 section 5.2's for a scope that "exceeds the
// scope granted by the resource owner".
func (s *Server) consentCarried(scopes, carried []string) *oauth.Error {
	var refused []string
	for _, sc := range scopes {
		if d := s.scopes[sc]; d != nil && d.Consent == "required" && !slices.Contains(carried, sc) {
			refused = append(refused, sc)
		}
	}
	if refused != nil {
		return oauth.ErrInvalidScope.WithDescription("The following scopes require the user's consent, which the subject token does not carry: " + strings.Join(refused, " ") + ".")
	}
	return nil
}

// exchangeLink is one token an exchanged token was exchanged from: its
// jti (its revocation at /v1/revoke), and its client, user and issue
// time, which is what the cut-offs of that token need (tokenKeys).
// Links written before the jti was recorded have none.
type exchangeLink struct {
	JTI      string `json:"j,omitempty"`
	ClientID string `json:"c"`
	UserID   string `json:"u"`
	Issued   int64  `json:"t"`
}

// exchangeRoom reads, before anything is issued, what linkExchanged
// would refuse: the subject's refresh-token family revoked, or that
// family or the feed index of a token of the chain (exchangedKey)
// holding maxFamilyTokens live access tokens already. It returns the
// family ("" for a subject issued without one) and the chain the
// subject was exchanged from, with the subject last.
func (i *Issuer) exchangeRoom(ctx context.Context, st jwt.Token) (string, []exchangeLink, *oauth.Error) {
	chain, err := i.exchangeChain(ctx, st.JwtID())
	if err != nil {
		return "", nil, oauth.FromStore(err)
	}
	uid, _ := st.PrivateClaims()["uid"].(string)
	cid, _ := st.PrivateClaims()["cid"].(string)
	chain = append(chain, exchangeLink{JTI: st.JwtID(), ClientID: cid, UserID: uid, Issued: st.IssuedAt().Unix()})
	fam, err := i.familyOf(ctx, st.JwtID())
	if err != nil {
		return "", nil, oauth.FromStore(err)
	}
	if fam != "" {
		switch revoked, err := i.store.Marked(ctx, store.NSFamily, fam); {
		case err != nil:
			return "", nil, oauth.FromStore(err)
		case revoked:
			return "", nil, errSubjectInvalid.WithReason("revoked (its refresh-token family, while exchanging)")
		}
	}
	if i.feed == nil {
		return fam, chain, nil // no index (linkFamily and linkExchanged write none)
	}
	if fam != "" {
		if full, err := i.indexFull(ctx, fam); err != nil {
			return "", nil, oauth.FromStore(err)
		} else if full {
			return "", nil, errExchangeFamilyFull.WithReason(errFamilyFull.Error())
		}
	}
	for _, l := range chain {
		if l.JTI == "" {
			continue
		}
		if full, err := i.indexFull(ctx, exchangedKey(l.JTI)); err != nil {
			return "", nil, oauth.FromStore(err)
		} else if full {
			return "", nil, errExchangedFull.WithReason(errFamilyFull.Error())
		}
	}
	return fam, chain, nil
}

// indexFull reports whether the store.NSFamilyTokens index key holds
// maxFamilyTokens live tokens, counted as indexFamilyToken counts.
func (i *Issuer) indexFull(ctx context.Context, key string) (bool, error) {
	b, err := i.store.GetRecord(ctx, store.NSFamilyTokens, key)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var list []familyToken
	if err := json.Unmarshal(b, &list); err != nil {
		return false, err
	}
	now, live := i.now().Unix(), 0
	for _, t := range list {
		if t.Exp >= now {
			live++
		}
	}
	return live >= maxFamilyTokens, nil
}

// exchangedKey is the key, in store.NSFamilyTokens, of the index of the
// access tokens exchanged from the token jti (directly or down a
// chain), in the family index's format, so revoking jti publishes them
// (familyEvents). Family ids are base64url and never hold ':'.
func exchangedKey(jti string) string { return "exchanged:" + jti }

var (
	// errExchangeFamilyFull: the subject's family has maxFamilyTokens
	// live access tokens.
	errExchangeFamilyFull = oauth.ErrInvalidRequest.WithDescription("Too many access tokens of this subject token's refresh token are still valid; reuse an exchanged token.")
	// errExchangedFull: maxFamilyTokens live tokens were exchanged from a
	// token of the subject's chain.
	errExchangedFull = oauth.ErrInvalidRequest.WithDescription("Too many tokens exchanged from this subject token are still valid; reuse an exchanged token.")
)

// exchangedEvents are the revocations of the unexpired tokens exchanged
// from the access token jti (none without a feed).
func (i *Issuer) exchangedEvents(ctx context.Context, jti, by string) ([]ssf.Event, error) {
	return i.familyEvents(ctx, exchangedKey(jti), by)
}

// publishExchangedAfterMark publishes, once jti's revocation mark is
// written, the tokens exchanged from it that were not in seen (what
// the revocation published before marking): an exchange that indexed
// its token after that read and read no mark yet is on the index now
// (linkExchanged writes the index, then reads the mark). A failure is
// logged: introspection refuses the token all the same.
func (i *Issuer) publishExchangedAfterMark(ctx context.Context, jti string, seen []ssf.Event) {
	evs, err := i.exchangedEvents(ctx, jti, ssf.InitiatedByUser)
	if err == nil {
		known := make(map[string]bool, len(seen))
		for _, ev := range seen {
			known[ev.Subject.JTI] = true
		}
		evs = slices.DeleteFunc(evs, func(ev ssf.Event) bool { return known[ev.Subject.JTI] })
		err = i.publish(ctx, evs...)
	}
	if err != nil {
		i.log.Error("cannot publish the tokens exchanged from a revoked access token", zap.Error(err))
	}
}

// linkExchanged makes the exchanged token (jti, valid until exp) fall
// with its subject token st: it records the chain of tokens it comes from (the subject's
// own chain plus the subject), which exchangeRevoked checks for
// revocations and cut-offs, and when the subject came from the
// refresh-token family fam (exchangeRoom) it joins the
// family as the refresh grant's tokens do (linkFamily: NSAccessFamily,
// and the family's index on the revocation feed), so revoking the
// family revokes it, at introspection and on the feed.
func (i *Issuer) linkExchanged(ctx context.Context, s *Server, st jwt.Token, fam string, chain []exchangeLink, jti string, exp time.Time) *oauth.Error {
	b, err := json.Marshal(chain)
	if err == nil {
		err = i.store.PutRecord(ctx, store.NSExchangeChain, jti, b, exp.Add(time.Minute))
	}
	if err != nil {
		return oauth.FromStore(err)
	}
	if e := i.indexExchanged(ctx, s.Issuer, chain, jti, exp); e != nil {
		return e
	}
	if fam == "" {
		return nil
	}
	// The token ends no later than the subject, whose family's index
	// and revocation mark outlast it; exp as the family's end only
	// bounds the index should this be its first entry.
	switch err := i.linkFamily(ctx, s.Issuer, jti, fam, exp, exp); {
	case errors.Is(err, errFamilyRevokedMeanwhile):
		return errSubjectInvalid.WithReason("revoked (its refresh-token family, while exchanging)")
	case errors.Is(err, errFamilyFull):
		return errExchangeFamilyFull.WithReason(err.Error())
	case err != nil:
		return oauth.FromStore(err)
	}
	return nil
}

// indexExchanged adds the exchanged token to the feed index of every
// token of its chain (exchangedKey), so revoking any of them at
// /v1/revoke publishes it; then reads their revocation marks (index
// first, mark after, as linkFamily): a revocation that read an index
// before this token was in it has marked by now, and the token is
// published here and not handed out. Without a feed it writes nothing.
func (i *Issuer) indexExchanged(ctx context.Context, iss string, chain []exchangeLink, jti string, exp time.Time) *oauth.Error {
	if i.feed == nil {
		return nil
	}
	for _, l := range chain {
		if l.JTI == "" {
			continue
		}
		// The token ends no later than l (exp capped at each subject's),
		// so an index created with it, kept familyMarkUntil past exp,
		// outlasts every later entry.
		switch err := i.indexFamilyToken(ctx, exchangedKey(l.JTI), iss, jti, exp, exp); {
		case errors.Is(err, errFamilyFull):
			return errExchangedFull.WithReason(err.Error())
		case err != nil:
			return oauth.FromStore(err)
		}
	}
	for _, l := range chain {
		if l.JTI == "" {
			continue
		}
		if rev, err := i.revoked(ctx, l.JTI); err != nil {
			return oauth.FromStore(err)
		} else if rev {
			if err := i.publish(ctx, tokenEvent(iss, jti, exp, ssf.InitiatedBySystem)); err != nil {
				return oauth.FromStore(err)
			}
			return errSubjectInvalid.WithReason("revoked (a token it was exchanged from, while exchanging)")
		}
	}
	return nil
}

// exchangeChain is the chain an access token was exchanged from (nil
// for a token that was not exchanged).
func (i *Issuer) exchangeChain(ctx context.Context, jti string) ([]exchangeLink, error) {
	b, err := i.store.GetRecord(ctx, store.NSExchangeChain, jti)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var chain []exchangeLink
	if err := json.Unmarshal(b, &chain); err != nil {
		return nil, err
	}
	return chain, nil
}

// exchangeRevoked reports whether a verified access token was exchanged
// from a token that was revoked since: itself (by its jti, at
// /v1/revoke), or by a cut-off of the user at that token's client, its
// client, or its user (the token's own cut-offs
// are accessCutOff's; a family revocation reaches it through
// NSAccessFamily). accessRevoked checks it.
func (i *Issuer) exchangeRevoked(ctx context.Context, t jwt.Token) (bool, error) {
	if _, ok := t.PrivateClaims()["act"]; !ok {
		// Only an exchange sets act (a custom claim or a token hook
		// cannot): no store read for every other token.
		return false, nil
	}
	chain, err := i.exchangeChain(ctx, t.JwtID())
	if err != nil {
		return false, err
	}
	for _, l := range chain {
		if l.JTI != "" {
			if rev, err := i.revoked(ctx, l.JTI); err != nil || rev {
				return rev, err
			}
		}
		if rev, err := i.cutOffs(ctx, time.Unix(l.Issued, 0), tokenKeys(l.UserID, l.ClientID)...); err != nil || rev {
			return rev, err
		}
	}
	return false, nil
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
	// The org server is never trusted (linkTrusted links custom servers
	// only) and never exchanges: its tokens are for its own APIs.
	switch {
	case !ok:
		return nil, nil, bad.WithReason("unknown issuer")
	case from != s && s.trusted[from.ID] == nil:
		return nil, nil, bad.WithReason("issuer " + from.ID + " is not a trusted server of " + s.ID)
	}
	t, err := i.verifyExchanged(from, tok)
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

// verifyExchanged is verifyAccessToken with the gateway's clock skew
// for iat, nbf and exp.
func (i *Issuer) verifyExchanged(s *Server, tok string) (jwt.Token, error) {
	return i.verifyToken(s, tok, true, exchangeSkew)
}

// priorAct is the subject token's act claim, kept to nest inside the new
// one (RFC 8693 section 4.1: "the outermost act claim represents the
// current actor while nested act claims represent prior actors"). Only
// each actor's sub is kept (section 4.1: non-identity claims are not
// meaningful there). ok is false for a malformed chain or one of
// maxActDepth actors already (the new token would name one more).
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
		if sub == "" || len(chain) == maxActDepth-1 {
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
// within a single authorization server"). trusted_servers on a server
// no rule of which names the grant does nothing, and is logged as a
// warning (the setting may be a rule short, or left over).
func (i *Issuer) linkTrusted(cfgs map[string]*ServerConfig) error {
	ids := make([]string, 0, len(cfgs))
	for id := range cfgs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		s := i.servers[id]
		if len(cfgs[id].TrustedServers) > 0 && !namesExchange(s) {
			i.log.Warn("trusted_servers has no effect: no policy rule of the server names the token exchange grant",
				zap.String("authorization_server", id), zap.String("grant_type", GrantTokenExchange))
		}
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

// namesExchange reports whether a rule of s names the token exchange grant.
func namesExchange(s *Server) bool {
	for _, p := range s.policies.Policies() {
		for _, r := range p.Rules {
			if slices.Contains(r.GrantTypes, GrantTokenExchange) {
				return true
			}
		}
	}
	return false
}
