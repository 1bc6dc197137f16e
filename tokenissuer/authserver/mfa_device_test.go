package authserver

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
)

// TestDeviceFlowThroughSignOnPolicy: the device flow's verification page
// signs in through the sign-on policy. A session without the factor the
// TV's rule asks for is refused while the user has none (enrollment
// deny), then stepped up once they have one; the device's tokens carry
// the factor in amr.
func TestDeviceFlowThroughSignOnPolicy(t *testing.T) {
	e := newFlowEnvWith(t, "https://id.example.com", func(o *Options) {
		o.SignOnPolicies = []*policy.SignOnPolicy{{Name: "tv-mfa", Clients: []string{"tv"}, Rules: []*policy.SignOnRule{
			{Name: "everyone", Factor: policy.FactorAny, Enrollment: policy.EnrollDeny}}}}
	}, nil)
	victim := e.session("u1")
	da := e.deviceAuthorize()
	link := strings.TrimPrefix(da.complete, "https://id.example.com")
	if w := e.browse(http.MethodGet, link, nil, victim); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "second factor") {
		t.Fatalf("a user without a factor under enrollment deny: %d %.300s", w.Code, w.Body.String())
	}
	ctx := t.Context()
	en, err := e.iss.factors.EnrollTOTP(ctx, "u1", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	code, _ := totp.GenerateCode(en.Secret, e.clock.Now())
	if err := e.iss.factors.ActivateTOTP(ctx, "u1", en.FactorID, code); err != nil {
		t.Fatal(err)
	}
	w := e.browse(http.MethodGet, link, nil, victim)
	page := w.Body.String()
	if w.Code != 200 || !strings.Contains(page, `id="totp"`) || strings.Contains(page, da.userCode) {
		t.Fatalf("step-up before the approval: %d %.300s", w.Code, page)
	}
	e.clock.Advance(30 * time.Second)
	code, _ = totp.GenerateCode(en.Secret, e.clock.Now())
	f := url.Values{"txn": {hidden(page, "txn")}, "csrf": {hidden(page, "csrf")}, "method": {"totp"}, "code": {code}}
	w = e.browse(http.MethodPost, factorPath, f, victim, cookieOf(w, "__Host-apiaccess_txn"))
	page = w.Body.String()
	if w.Code != 200 || !strings.Contains(page, da.userCode) || !strings.Contains(page, `name="code_matches"`) {
		t.Fatalf("approval page after the factor: %d %.400s", w.Code, page)
	}
	f = approvalForm(page, "allow")
	f.Set("code_matches", "yes")
	if w = e.browse(http.MethodPost, devicePage, f, victim, cookieOf(w, "__Host-apiaccess_txn")); !strings.Contains(w.Body.String(), "connected") {
		t.Fatalf("approval: %d %.300s", w.Code, w.Body.String())
	}
	b := e.poll(da)
	tok, _ := b["access_token"].(string)
	if tok == "" {
		t.Fatalf("device token: %v", b)
	}
	if got := amrOfClaims(claimsOf(t, tok)); !slices.Equal(got, []string{"mfa", "otp", "pwd"}) {
		t.Fatalf("device access token amr %v", got)
	}
}
