package tokenissuer

import (
	"strings"
	"testing"
)

// JSON values the Caddyfile cannot produce are refused at provisioning.
func TestPasswordChecksValidation(t *testing.T) {
	for _, tc := range []struct {
		p    PasswordChecks
		want string
	}{
		{PasswordChecks{Concurrency: -1}, "concurrency"},
		{PasswordChecks{Queue: -1}, "queue"},
		{PasswordChecks{Wait: -1}, "wait"},
		{PasswordChecks{Memory: 4096}, "memory"},
	} {
		if _, err := tc.p.hashGate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error about %s", tc.p, err, tc.want)
		}
	}
	var none *PasswordChecks
	if g, err := none.hashGate(); err != nil || g == nil {
		t.Fatalf("defaults: %v", err)
	}
}
