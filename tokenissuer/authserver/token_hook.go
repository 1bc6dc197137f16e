package authserver

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/apiaccess/caddy-apiaccess/internal/configerr"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientip"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/inlinehook"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// Okta's token inline hook (developer.okta.com "Token inline hook
// reference"): a rule that names a hook has the issuer POST the tokens
// it is about to mint to the hook's service, and apply the answer's
// patches before signing. Once per grant, at the token endpoint only.

// System Log events of a hook call (Okta's Event Types catalog):
// executed is the call (FAILURE: no answer, or an HTTP status other
// than 200), response.processed is what became of an answer (FAILURE:
// an error object, or an answer that could not be applied).
const (
	EventHookExecuted  = "inline_hook.executed"
	EventHookProcessed = "inline_hook.response.processed"
)

// compileHooks makes the hooks by name.
func compileHooks(cfgs []*inlinehook.Config) (map[string]*inlinehook.Hook, error) {
	if len(cfgs) == 0 {
		return nil, nil
	}
	hooks := make(map[string]*inlinehook.Hook, len(cfgs))
	for _, c := range cfgs {
		if c == nil {
			continue
		}
		if hooks[c.Name] != nil {
			return nil, configerr.In("inline_hook", c.Name, errors.New("defined twice"))
		}
		h, err := inlinehook.New(c)
		if err != nil {
			return nil, configerr.In("inline_hook", c.Name, err)
		}
		hooks[c.Name] = h
	}
	return hooks, nil
}

// useHooks gives s the hooks, refusing a rule that names another.
func (s *Server) useHooks(hooks map[string]*inlinehook.Hook) error {
	for _, p := range s.policies.Policies() {
		for _, r := range p.Rules {
			if r.InlineHook != "" && hooks[r.InlineHook] == nil {
				return configerr.In("policy", p.Name, configerr.In("rule", r.Name,
					configerr.Fieldf("inline_hook", "unknown inline hook %q", r.InlineHook)))
			}
		}
	}
	s.hooks = hooks
	return nil
}

// hookFor names the hook a rule runs (for the token preview, which
// names it and never calls it, and the Authorization Servers API); ""
// when it runs none. New refuses a rule naming a hook that is not
// configured, so a named hook is always there to run.
func (s *Server) hookFor(rule *policy.Rule) string {
	if rule == nil || s.hooks[rule.InlineHook] == nil {
		return ""
	}
	return rule.InlineHook
}

// accessClaimNames are the claims accessClaims holds, read from its
// JSON names so that a field added there is never taken for a custom
// claim (a hook adding one would write the name twice into the token).
var accessClaimNames = func() map[string]bool {
	m := map[string]bool{}
	t := reflect.TypeFor[accessClaims]()
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		m[name] = true
	}
	return m
}()

// accessRequired may be replaced (by a string) but not removed.
var accessRequired = map[string]bool{"aud": true, "sub": true}

// runTokenHook calls the rule's hook with what m plans and patches m
// with the answer. As in Okta, a hook that cannot be reached, answers
// late, answers other than 200, or gives an answer that is malformed,
// too large or cannot be applied leaves m as planned (the failure is
// logged); only an error object in the answer denies the request.
func (i *Issuer) runTokenHook(r *http.Request, s *Server, c *clientauth.Client, u *directory.User, g grantInfo, d *decision, m *mint) *oauth.Error {
	h := s.hooks[g.rule.InlineHook]
	if h == nil { // New refuses a rule naming an unknown hook
		return nil
	}
	access, err := accessView(m)
	if err != nil {
		s.log.Error("inline hook skipped: the planned claims do not encode", zap.String("inline_hook", h.Name()), zap.Error(err))
		return nil
	}
	var identity *inlinehook.Claims
	if m.id != nil {
		identity = &inlinehook.Claims{Claims: m.id, Lifetime: idLifetime(m.id), Reserved: inlinehook.ReservedIdentity}
	}
	txn := transactionID(r)
	req := inlinehook.NewRequest(s.endpoints+"/token", i.now(), i.hookData(r, txn, s, c, u, g, d, access, identity))
	resp, res := h.Call(r.Context(), req)
	if !res.Called() {
		// Nothing was sent (the request did not encode): not Okta's
		// inline_hook.executed, which records a call.
		s.log.Error("inline hook skipped: the request does not encode", zap.String("inline_hook", h.Name()),
			zap.String("reason", res.Failure), zap.String("detail", res.Detail))
		return nil
	}
	i.logHookExecuted(d, txn, h, res)
	if !res.Executed() {
		return nil
	}
	if resp == nil { // too large or malformed
		i.logHookProcessed(d, txn, h, res.Failure, res.Detail, nil)
		return nil
	}
	if resp.Error != nil {
		summary := resp.Error.Summary()
		i.logHookProcessed(d, txn, h, inlinehook.FailError, summary, resp.DebugContext)
		// "Returning an error object causes Okta to return an OAuth 2.0
		// error to the requester of the token, with the value of error
		// set to server_error, and the value of error_description set to
		// the string that you supplied in the errorSummary."
		return oauth.ErrServer.WithDescription(summary).WithReason("inline hook " + h.Name() + " answered an error")
	}
	a, id, err := inlinehook.Apply(resp.Commands, access, identity)
	if err != nil {
		i.logHookProcessed(d, txn, h, inlinehook.FailPatch, err.Error(), resp.DebugContext)
		return nil
	}
	patched := *m
	patchMint(&patched, a, id)
	// A token over maxTokenBytes would be unusable at this server's own
	// endpoints (revocation, introspection): refused like any patch
	// that cannot be applied.
	if n, err := accessTokenBytes(s, patched.access, patched.custom); err != nil || n > maxTokenBytes {
		detail := fmt.Sprintf("the patched access token would be about %d bytes, over %d", n, maxTokenBytes)
		if err != nil {
			detail = "the patched access token does not encode"
		}
		i.logHookProcessed(d, txn, h, inlinehook.FailPatch, detail, resp.DebugContext)
		return nil
	}
	*m = patched
	i.logHookProcessed(d, txn, h, "", "", resp.DebugContext)
	return nil
}

// maxSignatureBytes is more than the signature of any key this issuer
// signs with (RSA-8192 would be 1024 bytes; ES512 is 132).
const maxSignatureBytes = 1024

// accessTokenBytes is at least the length of the compact JWS signAccess
// makes of c and custom: the active key's encoded header, the payload as
// signAccess encodes it, and a signature of maxSignatureBytes.
func accessTokenBytes(s *Server, c accessClaims, custom map[string]any) (int, error) {
	payload, err := json.Marshal(c)
	if err != nil {
		return 0, err
	}
	n := len(payload)
	if len(custom) > 0 {
		extra, err := json.Marshal(custom)
		if err != nil {
			return 0, err
		}
		n += len(extra) - 1 // '}' becomes ',' and extra loses its '{'
	}
	enc := base64.RawURLEncoding
	return len(s.keys.Current().Header) + 1 + enc.EncodedLen(n) + 1 + enc.EncodedLen(maxSignatureBytes), nil
}

// accessView is the access token m plans, as one claim set.
func accessView(m *mint) (*inlinehook.Claims, error) {
	all, err := accessClaimMap(m.access, m.custom)
	if err != nil {
		return nil, err
	}
	return &inlinehook.Claims{Claims: all, Lifetime: m.access.Exp - m.access.Iat, Reserved: inlinehook.ReservedAccess, Required: accessRequired}, nil
}

// accessClaimMap is the access token's claims as the token carries
// them: the registered ones by their JSON names (empty ones left out;
// iat, exp and auth_time stay integers, as json.Number), and the custom
// ones whose names accessClaims does not hold (the registered claim
// wins: signAccess would otherwise write the name twice). The hook's
// request and the token preview both show this.
func accessClaimMap(c accessClaims, custom map[string]any) (map[string]any, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	all := map[string]any{}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&all); err != nil {
		return nil, err
	}
	for k, v := range custom {
		if !accessClaimNames[k] {
			all[k] = v
		}
	}
	return all, nil
}

// idLifetime is the ID token's lifetime in seconds.
func idLifetime(id map[string]any) int64 {
	iat, _ := id["iat"].(int64)
	exp, _ := id["exp"].(int64)
	return exp - iat
}

// patchMint writes the patched claims back into m: aud, sub, exp (the
// patched lifetime) and the custom claims of the access token (every
// other claim of it is reserved), and the ID token's claims and
// lifetime.
func patchMint(m *mint, a, id *inlinehook.Claims) {
	m.access.Aud, _ = a.Claims["aud"].(string)
	m.access.Sub, _ = a.Claims["sub"].(string)
	m.access.Exp = m.access.Iat + a.Lifetime
	custom := map[string]any{}
	for k, v := range a.Claims {
		if !accessClaimNames[k] {
			custom[k] = v
		}
	}
	m.custom = nil
	if len(custom) > 0 {
		m.custom = custom
	}
	if id != nil {
		iat, _ := m.id["iat"].(int64)
		id.Claims["iat"], id.Claims["exp"] = iat, iat+id.Lifetime
		m.id = id.Claims
	}
}

// hookData is the request's data: what the service may read (context)
// and the tokens it may patch. It holds no secret: no form value but
// the grant type, scope and client id, no header.
func (i *Issuer) hookData(r *http.Request, txn string, s *Server, c *clientauth.Client, u *directory.User, g grantInfo, d *decision, access, identity *inlinehook.Claims) inlinehook.Data {
	ip := d.clientIP
	if ip == "" {
		ip = clientip.From(r)
	}
	client := inlinehook.Client{ID: c.ID, Name: c.Name, Type: "CONFIDENTIAL"}
	if c.AuthMethod == clientauth.None {
		client.Type = "PUBLIC"
	}
	grantType := d.grantType
	if grantType == "" {
		grantType = g.grant
	}
	ctx := inlinehook.Context{
		Request: inlinehook.HTTPRequest{ID: txn, Method: r.Method, URL: inlinehook.URL{Value: s.endpoints + "/token"}, IPAddress: ip},
		Protocol: inlinehook.Protocol{Type: "OAUTH2.0",
			Request: map[string]string{"grant_type": grantType, "scope": strings.Join(g.scopes, " "), "client_id": c.ID},
			Issuer:  inlinehook.Issuer{URI: s.Issuer}, Client: client},
	}
	polName := g.policy
	if polName == "" {
		polName = d.policy
	}
	ctx.Policy = &inlinehook.Policy{ID: polName, Rule: inlinehook.Rule{ID: g.rule.Name}}
	if u != nil {
		ctx.Session = &inlinehook.Session{UserID: u.ID, Login: u.Login, Status: "ACTIVE", Amr: slices.Clone(g.amr),
			MFAActive: len(g.amr) > 1 || slices.Contains(g.amr, "mfa")}
		if ctx.Session.Amr == nil {
			ctx.Session.Amr = []string{}
		}
		if !g.authTime.IsZero() {
			ctx.Session.CreatedAt = g.authTime.UTC().Format("2006-01-02T15:04:05.000Z")
		}
		profile := make(map[string]any, len(u.Profile)+1)
		for k, v := range u.Profile {
			profile[k] = v
		}
		profile["login"] = u.Login
		ctx.User = &inlinehook.User{ID: u.ID, Profile: profile}
	}
	scopes := make(map[string]inlinehook.Scope, len(g.scopes))
	for _, sc := range g.scopes {
		scopes[sc] = inlinehook.Scope{ID: sc, Action: "GRANT"}
	}
	data := inlinehook.Data{Context: ctx,
		Access: &inlinehook.AccessToken{Claims: access.Claims, Token: inlinehook.TokenInfo{Lifetime: inlinehook.Lifetime{Expiration: access.Lifetime}}, Scopes: scopes}}
	if identity != nil {
		data.Identity = &inlinehook.Token{Claims: identity.Claims, Token: inlinehook.TokenInfo{Lifetime: inlinehook.Lifetime{Expiration: identity.Lifetime}}}
	}
	return data
}

// logHookExecuted records the call: SUCCESS when the service answered
// 200, else FAILURE with why (Okta: "This error type appears when Okta
// doesn't receive a response from your external service or receives a
// response with status codes other than 2xx").
func (i *Issuer) logHookExecuted(d *decision, txn string, h *inlinehook.Hook, res inlinehook.Result) {
	result, reason := resultSuccess, ""
	if !res.Executed() {
		result, reason = resultFailure, res.Failure
	}
	debug := map[string]any{"inlineHookResponseStatus": res.Status, "attempts": res.Attempts, "durationMs": res.Elapsed.Milliseconds()}
	if result == resultFailure {
		debug["detail"] = res.Detail
	}
	if c := d.server.log.Check(hookLogLevel(result), EventHookExecuted); c != nil {
		c.Write(append(d.fields(7), zap.String("inline_hook", h.Name()), zap.String("url", h.URL()), zap.Int("status", res.Status),
			zap.Int("attempts", res.Attempts), zap.Duration("elapsed", res.Elapsed), zap.String("outcome", result), zap.String("reason", reason))...)
	}
	i.hookEvent(d, txn, h, EventHookExecuted, "Inline hook executed", result, reason, debug)
}

// maxDebugContext bounds the service's debugContext kept in the log.
const maxDebugContext = 4096

// logHookProcessed records what became of an answer; failure is ""
// when its commands were applied.
func (i *Issuer) logHookProcessed(d *decision, txn string, h *inlinehook.Hook, failure, detail string, debugContext json.RawMessage) {
	result := resultSuccess
	if failure != "" {
		result = resultFailure
	}
	debug := map[string]any{}
	if detail != "" {
		debug["detail"] = detail
	}
	if len(debugContext) > 0 && string(debugContext) != "null" {
		// The service's own debugContext, as Okta logs it with this event.
		debug["debugContext"] = echoBounded(string(debugContext), maxDebugContext)
	}
	if c := d.server.log.Check(hookLogLevel(result), EventHookProcessed); c != nil {
		c.Write(append(d.fields(4), zap.String("inline_hook", h.Name()), zap.String("outcome", result), zap.String("reason", failure), zap.String("detail", detail))...)
	}
	i.hookEvent(d, txn, h, EventHookProcessed, "Inline hook response processed", result, failure, debug)
}

func hookLogLevel(result string) zapcore.Level {
	if result == resultFailure {
		return zap.WarnLevel
	}
	return zap.InfoLevel
}

// hookEvent is one System Log event of a hook, its target the hook.
func (i *Issuer) hookEvent(d *decision, txn string, h *inlinehook.Hook, event, message, result, reason string, debug map[string]any) {
	if i.sink == nil {
		return
	}
	ev := i.baseEvent(d, nil, txn)
	ev.UUID, ev.EventType, ev.DisplayMessage = newUUID(), event, message
	ev.Outcome = &store.LogOutcome{Result: result}
	if reason != "" {
		ev.Outcome.Reason = &reason
	}
	if result == resultFailure {
		ev.Severity = "WARN"
	}
	ev.Target = append(ev.Target, store.LogTarget{ID: h.Name(), Type: "InlineHook", AlternateID: h.URL(), DisplayName: h.Name(),
		DetailEntry: map[string]any{"inlineHookType": inlinehook.EventType}})
	for k, v := range debug {
		ev.DebugContext.DebugData[k] = v
	}
	i.sink.add(ev)
}
