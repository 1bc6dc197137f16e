package tokenissuer_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit/browser"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/factors"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/keys"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/embedded"
)

// Okta's management SDKs read and remove a user's factors and end a
// sign-in lockout through the User Factors API and the lifecycle
// operations unchanged: @okta/okta-sdk-nodejs 8.1.0
// (tokenissuer/interop/okta-sdk-factors.test.mjs) and okta-sdk-golang/v5
// v5.0.2 (UserFactorAPI, UserAPI).

// factorsSeed is what seedFactors enrolled.
type factorsSeed struct {
	totpID, totpSecret, webauthnID, credentialID, otherID string
}

// seedFactors enrolls, in a fresh embedded store, an ACTIVE TOTP app and
// a WebAuthn credential for alice and a pending TOTP app for mallory,
// then reloads the running issuer onto that store with the API token
// logAPIToken.
func seedFactors(t *testing.T) factorsSeed {
	t.Helper()
	path := filepath.Join(t.TempDir(), "issuer.db")
	st, err := embedded.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := keys.NewSealer([]byte(sealSecret))
	if err != nil {
		t.Fatal(err)
	}
	ctx, m := context.Background(), factors.New(st, sealer, "apiaccess test", nil)
	enr, err := m.EnrollTOTP(ctx, aliceID, aliceLogin)
	if err != nil {
		t.Fatal(err)
	}
	code, err := totp.GenerateCode(enr.Secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.ActivateTOTP(ctx, aliceID, enr.FactorID, code); err != nil {
		t.Fatal(err)
	}
	credID := []byte("fake-credential-id\xfb\xff")
	wa, err := m.AddWebAuthn(ctx, aliceID, "Security key", credID, json.RawMessage(`{"publicKey":"fake"}`))
	if err != nil {
		t.Fatal(err)
	}
	other, err := m.EnrollTOTP(ctx, "00u-mallory", malLogin)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	reloadIssuer(t, func(ti map[string]any) {
		ti["api_tokens"] = []string{logAPIToken}
		ti["storage"] = map[string]any{"module": "embedded", "path": path}
	})
	return factorsSeed{totpID: enr.FactorID, totpSecret: enr.Secret, webauthnID: wa.ID,
		credentialID: base64.RawURLEncoding.EncodeToString(credID), otherID: other.FactorID}
}

// signInPage opens the web app's authorize and returns its sign-in page.
func signInPage(t *testing.T, b *browser.Browser) string {
	t.Helper()
	q := url.Values{"client_id": {interopWeb}, "response_type": {"code"}, "scope": {"openid"}, "state": {"s"},
		"redirect_uri": {sdkRedirect}, "code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}
	res, page := b.Get(base + "/oauth2/default/v1/authorize?" + q.Encode())
	if res.StatusCode != http.StatusOK {
		t.Fatalf("authorize: %d, not the sign-in page", res.StatusCode)
	}
	return page
}

// lockAlice fails alice's password on the sign-in page until she is
// locked out (Okta's default: 10), and checks the right one is refused.
func lockAlice(t *testing.T) {
	t.Helper()
	b := browser.New(t, base)
	for n := range 10 {
		if res, _ := b.SignIn(signInPage(t, b), aliceLogin, fmt.Sprintf("wrong-%02d", n)); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d", n+1, res.StatusCode)
		}
	}
	if res, _ := b.SignIn(signInPage(t, b), aliceLogin, alicePass); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the right password while locked: %d, want 429", res.StatusCode)
	}
}

// TestUserFactorsOktaSDKs: each SDK lists alice's TOTP app and WebAuthn
// credential in Okta's shape, reads one, is refused mallory's factor,
// an unknown user and a wrong token, unenrolls one and resets the rest;
// a lockout earned with wrong passwords on the sign-in page is ended by
// the SDK's unlockUser (a second unlock is 403 E0000032) and alice signs
// in again; the System Log has Okta's events.
func TestUserFactorsOktaSDKs(t *testing.T) {
	startSDKIssuer(t, nil, nil)

	t.Run("node", func(t *testing.T) {
		node := needNode(t, "@okta/okta-sdk-nodejs")
		seed := seedFactors(t)
		lockAlice(t)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, node, "--test", "tokenissuer/interop/okta-sdk-factors.test.mjs")
		cmd.Dir = ".." // the repository root
		cmd.Env = append(os.Environ(),
			"APIACCESS_BASE="+base,
			"APIACCESS_API_TOKEN="+logAPIToken,
			"APIACCESS_USER_ID="+aliceID,
			"APIACCESS_LOGIN="+aliceLogin,
			"APIACCESS_TOTP_ID="+seed.totpID,
			"APIACCESS_TOTP_SECRET="+seed.totpSecret,
			"APIACCESS_WEBAUTHN_ID="+seed.webauthnID,
			"APIACCESS_CREDENTIAL_ID="+seed.credentialID,
			"APIACCESS_OTHER_FACTOR_ID="+seed.otherID,
			"NO_COLOR=1",
		)
		runNodeTest(t, cmd)
		webCodeFlow(t, browser.New(t, base), base+"/oauth2/default", "openid")
		for _, typ := range []string{"user.mfa.factor.deactivate", "user.mfa.factor.reset_all", "user.account.unlock_by_admin"} {
			waitForEvent(t, typ)
		}
	})

	t.Run("go", func(t *testing.T) {
		seed := seedFactors(t)
		ctx := context.Background()
		c := oktaLogClient(t, logAPIToken)
		fs, _, err := c.UserFactorAPI.ListFactors(ctx, aliceID).Execute()
		if err != nil || len(fs) != 2 {
			t.Fatalf("ListFactors: %d factors, %v %s", len(fs), err, errBody(err))
		}
		tf, wf := fs[0].UserFactorTOTP, fs[1].UserFactorWebAuthn
		if tf == nil || wf == nil {
			b, _ := json.Marshal(fs)
			t.Fatalf("factors decoded as %s", b)
		}
		if tf.GetId() != seed.totpID || tf.GetFactorType() != "token:software:totp" || tf.GetProvider() != "GOOGLE" || tf.GetStatus() != "ACTIVE" ||
			tf.Profile.GetCredentialId() != aliceLogin || time.Since(tf.GetCreated()) > 5*time.Minute {
			b, _ := json.Marshal(tf)
			t.Fatalf("TOTP factor %s", b)
		}
		if wf.GetId() != seed.webauthnID || wf.GetProvider() != "FIDO" || wf.Profile.GetCredentialId() != seed.credentialID ||
			wf.Profile.GetAuthenticatorName() != "Security key" {
			b, _ := json.Marshal(wf)
			t.Fatalf("WebAuthn factor %s", b)
		}
		one, _, err := c.UserFactorAPI.GetFactor(ctx, aliceID, seed.webauthnID).Execute()
		if err != nil || one.UserFactorWebAuthn == nil || one.UserFactorWebAuthn.GetId() != seed.webauthnID {
			t.Fatalf("GetFactor: %v %s", err, errBody(err))
		}
		_, resp, err := c.UserFactorAPI.GetFactor(ctx, aliceID, seed.otherID).Execute()
		wantAPIError(t, "GetFactor of mallory's factor", http.StatusNotFound, "E0000007", resp, err)
		resp, err = oktaLogClient(t, "wrong-"+logAPIToken).UserAPI.ResetFactors(ctx, aliceID).Execute()
		wantAPIError(t, "wrong API token", http.StatusUnauthorized, "E0000011", resp, err)

		if resp, err := c.UserFactorAPI.UnenrollFactor(ctx, aliceID, seed.totpID).Execute(); err != nil || resp.StatusCode != http.StatusNoContent {
			t.Fatalf("UnenrollFactor: %v %s", err, errBody(err))
		}
		fs, _, err = c.UserFactorAPI.ListFactors(ctx, aliceID).Execute()
		if err != nil || len(fs) != 1 || fs[0].UserFactorWebAuthn == nil {
			t.Fatalf("after UnenrollFactor: %d factors, %v", len(fs), err)
		}
		if resp, err := c.UserAPI.ResetFactors(ctx, aliceID).Execute(); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("ResetFactors: %v %s", err, errBody(err))
		}
		if fs, _, err := c.UserFactorAPI.ListFactors(ctx, aliceID).Execute(); err != nil || len(fs) != 0 {
			t.Fatalf("after ResetFactors: %d factors, %v", len(fs), err)
		}
		if fs, _, err := c.UserFactorAPI.ListFactors(ctx, "00u-mallory").Execute(); err != nil || len(fs) != 1 {
			t.Fatalf("mallory's factors after alice's reset: %d, %v", len(fs), err)
		}

		resp, err = c.UserAPI.UnlockUser(ctx, aliceID).Execute()
		wantAPIError(t, "UnlockUser of alice, not locked", http.StatusForbidden, "E0000032", resp, err)
		lockAlice(t)
		if resp, err := c.UserAPI.UnlockUser(ctx, aliceID).Execute(); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("UnlockUser: %v %s", err, errBody(err))
		}
		webCodeFlow(t, browser.New(t, base), base+"/oauth2/default", "openid")
		waitForEvent(t, "user.account.unlock_by_admin")
		if got := factorTypesLogged(t); !slices.Contains(got, "user.mfa.factor.deactivate") || !slices.Contains(got, "user.mfa.factor.reset_all") {
			t.Fatalf("System Log event types %q", got)
		}
	})
}

// factorTypesLogged is the event types of the last hour's System Log.
func factorTypesLogged(t *testing.T) []string {
	t.Helper()
	now := time.Now().UTC()
	q := url.Values{"since": {now.Add(-time.Hour).Format(time.RFC3339)}, "until": {now.Add(time.Second).Format(time.RFC3339Nano)}, "limit": {"1000"}}
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/logs?"+q.Encode(), nil)
	req.Header.Set("Authorization", "SSWS "+logAPIToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var events []struct {
		EventType string `json:"eventType"`
	}
	if err := json.NewDecoder(res.Body).Decode(&events); err != nil || res.StatusCode != 200 {
		t.Fatalf("System Log: %d %v", res.StatusCode, err)
	}
	var out []string
	for _, e := range events {
		if strings.HasPrefix(e.EventType, "user.") {
			out = append(out, e.EventType)
		}
	}
	return out
}
