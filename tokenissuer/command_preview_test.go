package tokenissuer

import (
	"bytes"
	"strings"
	"testing"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/authserver"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
)

// TestWritePreviewMarksRulesAfterTheDecision: a rule listed after the
// deciding one says so, whether it would match or not; the deciding
// rule decides; consent-required scopes are printed.
func TestWritePreviewMarksRulesAfterTheDecision(t *testing.T) {
	p := &authserver.Preview{AuthorizationServer: "default", ClientID: "web", GrantType: authserver.GrantAuthorizationCode, Scopes: []string{"openid"},
		Policy: "Apps", Rule: "First",
		Evaluation: &policy.Explanation{Matched: true, Policy: "Apps", Rule: "First", Policies: []policy.PolicyVerdict{{
			Policy: "Apps", Priority: 1, CoversClient: true, Evaluated: true, Rules: []policy.RuleVerdict{
				{Rule: "First", Priority: 1, Matched: true, Evaluated: true, GrantTypeListed: true, ScopesAllowed: true, PeopleIncluded: true, PeopleReason: "everyone"},
				{Rule: "Second", Priority: 2, Matched: true, GrantTypeListed: true, ScopesAllowed: true, PeopleIncluded: true, PeopleReason: "everyone"},
				{Rule: "Third", Priority: 3, PeopleReason: "not included"},
			}}}},
		Consent: []authserver.PreviewConsent{{Scope: "payments:write"}, {Scope: "orders:write", Granted: true}},
	}
	var out bytes.Buffer
	writePreview(&out, p)
	for _, want := range []string{
		`rule "First" (priority 1): MATCHES: decides`,
		`rule "Second" (priority 2): matches, after the decision`,
		`rule "Third" (priority 3): does not match, after the decision`,
		"Consent: payments:write required, not granted yet: the sign-in asks for it",
		"Consent: orders:write required, granted before by the user",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
