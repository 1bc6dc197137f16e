package tokenissuer_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
)

// Clients of the PAR interop test.
const (
	parWeb    = "interop-par-web"
	parWebSec = "interop-par-web-secret-0123456789"
	parSPA    = "interop-par-spa"
)

// TestOpenIDClientPARInterop: openid-client 6.9.0 runs
// tokenissuer/interop/par.test.mjs against the issuer: discovery names
// the par endpoint, buildAuthorizationUrlWithPAR pushes a code flow
// request (a confidential client that requires pushed requests, and a
// public one), the browser part signs in with only client_id and
// request_uri in the URL (a reload of the sign-in page shows it again
// in that browser, another browser is refused), the code redeems, and
// the request_uri cannot be used after the sign-in. Needs node and `npm ci --prefix tokenissuer/interop`.
func TestOpenIDClientPARInterop(t *testing.T) {
	node, err := exec.LookPath("node")
	testkit.Need(t, err == nil, "no node on PATH")
	_, err = os.Stat(filepath.Join("interop", "node_modules", "openid-client"))
	testkit.Need(t, err == nil, "no tokenissuer/interop/node_modules (npm ci --prefix tokenissuer/interop)")

	// Never fetched: the test reads the redirects.
	const redirect = "http://127.0.0.1:9/interop/par-callback"
	startRealClientEnv(t, []map[string]any{
		{"client_id": parWeb, "name": "PAR web app", "client_secret": parWebSec, "token_endpoint_auth_method": "client_secret_basic",
			"grant_types": []string{"authorization_code"}, "redirect_uris": []string{redirect},
			"require_pushed_authorization_requests": true},
		{"client_id": parSPA, "name": "PAR SPA", "token_endpoint_auth_method": "none",
			"grant_types": []string{"authorization_code"}, "redirect_uris": []string{redirect}},
	})

	// Generous: under -race the issuer's bcrypt is slow.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "tokenissuer/interop/par.test.mjs")
	cmd.Dir = ".." // the repository root
	cmd.Env = append(os.Environ(),
		"APIACCESS_ISSUER="+base+"/oauth2/default",
		"APIACCESS_REDIRECT_URI="+redirect,
		"APIACCESS_PAR_WEB_ID="+parWeb,
		"APIACCESS_PAR_WEB_SECRET="+parWebSec,
		"APIACCESS_PAR_SPA_ID="+parSPA,
		"APIACCESS_USERNAME="+aliceLogin,
		"APIACCESS_PASSWORD="+alicePass,
		"APIACCESS_USER_ID="+aliceID,
		"NO_COLOR=1",
	)
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	err = testkit.Start(t, cmd).Wait() // killed with the test binary
	out := output.String()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
	t.Logf("node --test:\n%s", out)
	if !strings.Contains(out, "# pass 5") || !strings.Contains(out, "# skipped 0") {
		t.Fatalf("want the 5 PAR interop tests run and passed:\n%s", out)
	}
}
