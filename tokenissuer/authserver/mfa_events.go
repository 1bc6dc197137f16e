package authserver

import (
	"net/http"

	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// Okta's System Log events of multi-factor sign-in (Event Types
// catalog): a sign-in completed with a second factor, a factor enrolled
// and activated, and the sign-on policy's decision.
const (
	EventMFA            = "user.authentication.auth_via_mfa"
	EventFactorActivate = "user.mfa.factor.activate"
	EventSignOnPolicy   = "policy.evaluate_sign_on"
)

var (
	kindMFA            = eventKind{EventMFA, EventMFA, "Authentication of user via MFA", false}
	kindFactorActivate = eventKind{EventFactorActivate, EventFactorActivate, "User set up MFA factor", false}
)

// mfaKinds extends kindsOf with the events of this file.
var mfaKinds = map[string][]eventKind{
	EventMFA:            {kindMFA},
	EventFactorActivate: {kindFactorActivate},
}

// logSignOnPolicy records what the sign-on policy decided for u at c:
// result is Okta's outcome (ALLOW, DENY, CHALLENGE, REAUTHENTICATE),
// the policy and rule are the event's targets.
func (i *Issuer) logSignOnPolicy(r *http.Request, s *Server, c *clientauth.Client, u *directory.User, n need, result string) {
	d := decision{server: s, clientID: c.ID, userID: u.ID, login: u.Login, req: r}
	if ce := s.log.Check(zap.InfoLevel, EventSignOnPolicy); ce != nil {
		ce.Write(append(d.fields(4), zap.String("outcome", result), zap.String("sign_on_policy", n.policy), zap.String("rule", n.rule), zap.String("factor", n.factor))...)
	}
	if i.sink == nil {
		return
	}
	ev := i.baseEvent(&d, nil, transactionID(d.req))
	ev.UUID, ev.EventType, ev.DisplayMessage = newUUID(), EventSignOnPolicy, "Evaluation of sign-on policy"
	ev.Outcome = &store.LogOutcome{Result: result}
	if result == "DENY" {
		ev.Severity = "WARN"
	}
	if n.policy != "" {
		ev.Target = append(ev.Target, store.LogTarget{ID: n.policy, Type: "PolicyEntity", AlternateID: n.policy, DisplayName: n.policy},
			store.LogTarget{ID: n.rule, Type: "PolicyRule", AlternateID: n.rule, DisplayName: n.rule})
	}
	ev.DebugContext.DebugData["factorRequired"] = n.factor
	i.sink.add(ev)
}
