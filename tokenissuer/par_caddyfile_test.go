package tokenissuer_test

import (
	"strconv"
	"strings"
	"testing"
)

// TestPARCaddyfileErrors: require_pushed_authorization_requests is a
// flag of a client, given once; misuse is refused at its line. The
// accepted form is the golden file testdata/adapt/par.caddyfiletest.
func TestPARCaddyfileErrors(t *testing.T) {
	const client = "client app {\nredirect_uris https://app.example.com/cb\n" // the client body from line 5
	for _, tc := range []struct {
		name, body, want string
		line             int
	}{
		{"with an argument", client + "require_pushed_authorization_requests true\n}", "wrong argument count", 6},
		{"twice", client + "require_pushed_authorization_requests\nrequire_pushed_authorization_requests\n}", `duplicate subdirective "require_pushed_authorization_requests"`, 7},
		{"outside a client", "require_pushed_authorization_requests", `unknown subdirective "require_pushed_authorization_requests"`, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := adaptTokenIssuer(tc.body)
			at := "Caddyfile:" + strconv.Itoa(tc.line)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), at) {
				t.Errorf("got %v, want an error containing %q at %s", err, tc.want, at)
			}
		})
	}
}
