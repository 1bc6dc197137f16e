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
		// It would do nothing: refused at its line, as caddy validate says.
		{"without the code grant", "client app {\nsecret s\nredirect_uris https://app.example.com/cb\nrequire_pushed_authorization_requests\n}",
			"require_pushed_authorization_requests applies to authorization requests of the authorization_code grant, which grant_types lacks", 7},
		{"without redirect URIs", "client app {\nsecret s\ngrant_types authorization_code\nrequire_pushed_authorization_requests\n}",
			"require_pushed_authorization_requests needs redirect_uris", 7},
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
