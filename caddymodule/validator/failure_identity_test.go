package validator_test

import (
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/apiaccess/caddy-apiaccess/caddymodule/validator"
)

// TestFailureNamesOnlyVerifiedTokens: a refusal says whom the token
// names (for the System Log) only when its signature verified, as for
// an expired token or one of another audience; a forged or unsigned
// token names nobody, whatever its claims say.
func TestFailureNamesOnlyVerifiedTokens(t *testing.T) {
	k := getKeys()
	user := map[string]any{"uid": "00u1", "sub": "alice@example.com", "cid": "web", "jti": "AT.1"}
	for _, c := range []struct {
		name, tok, reason string
		named             bool
	}{
		{"expired", good(t, user, map[string]any{"exp": t0.Add(-time.Hour).Unix()}), validator.ReasonExpired, true},
		{"other audience", good(t, user, map[string]any{"aud": "api://other"}), validator.ReasonWrongAudience, true},
		{"not yet valid", good(t, user, map[string]any{"nbf": t0.Add(time.Hour).Unix()}), validator.ReasonNotYetValid, true},
		{"signed by another key", mint(t, jwa.RS256, k.rsa2, "rsa1", stdClaims(user)), validator.ReasonBadSignature, false},
		{"unknown kid", mint(t, jwa.RS256, k.rsa1, "nope", stdClaims(user)), validator.ReasonUnknownKID, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, f := validate(t, validator.New(baseConfig(newClock())), c.tok, nil)
			wantInvalid(t, f, c.reason)
			if c.named != (f.Verified && f.Subject == "alice@example.com" && f.ClientID == "web" && f.UserID == "00u1" && f.JTI == "AT.1") {
				t.Fatalf("failure names %q %q %q %q; named %v wanted", f.Subject, f.ClientID, f.UserID, f.JTI, c.named)
			}
			if !c.named && (f.Verified || f.Subject != "" || f.ClientID != "" || f.UserID != "" || f.JTI != "") {
				t.Fatalf("an unverified token's claims in the failure: %+v", f)
			}
		})
	}
}
