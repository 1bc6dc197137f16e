// Package e2e holds the tests that run both halves together: this
// project's issuer and its gateway (require_token) in one Caddy, in two
// Caddy processes, or as cluster nodes. Neither half's own tests import
// the other half.
package e2e

import (
	"testing"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
	"github.com/apiaccess/caddy-apiaccess/internal/testkit/caddytester"
)

// The in-process Caddy's addresses: free ports chosen once per test
// process, so that two test runs on one machine do not collide.
var (
	adminURL = caddytester.AdminURL()

	gwPort  = testkit.ProcessPortString("gateway")
	gw      = "http://localhost:" + gwPort
	gw2Port = testkit.ProcessPortString("gateway-2")
	gw2     = "http://localhost:" + gw2Port

	issuerPort = testkit.ProcessPortString("issuer")
	base       = "http://localhost:" + issuerPort
)

func TestMain(m *testing.M) { testkit.Main(m) }
