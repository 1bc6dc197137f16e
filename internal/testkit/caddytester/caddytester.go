// Package caddytester runs caddytest's in-process Caddy on ports of
// this test process instead of caddytest's fixed admin port 2999, so
// that two test runs on one machine do not share (and reload) one
// Caddy. Every config a test loads must keep the admin endpoint at
// AdminAddr, or the next load finds no Caddy.
package caddytester

import (
	"net/http"
	"strconv"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
)

var setDefault sync.Once

// use points caddytest's defaults (read by NewTester and
// AssertLoadError, which starts the in-process Caddy on first use) at
// this process's admin port.
func use() {
	setDefault.Do(func() { caddytest.Default.AdminPort = AdminPort() })
}

// AdminPort is the in-process Caddy's admin port for this process.
func AdminPort() int { return testkit.ProcessPort("caddytest-admin") }

// AdminAddr is the admin listen address for configs ("admin" "listen"
// in JSON, the global `admin` option in a Caddyfile).
func AdminAddr() string { return "localhost:" + strconv.Itoa(AdminPort()) }

// AdminURL is the admin endpoint's base URL.
func AdminURL() string { return "http://" + AdminAddr() }

// NewTester is caddytest.NewTester on this process's admin port. It
// first drops the default client's pooled connections: every test of a
// package loads its config on the same ports, and a connection kept
// from the previous test may still be served by the previous config
// during its graceful stop (other clients, other keys).
func NewTester(t testing.TB) *caddytest.Tester {
	use()
	http.DefaultClient.CloseIdleConnections()
	return caddytest.NewTester(t)
}

// AssertLoadError is caddytest.AssertLoadError on this process's admin
// port.
func AssertLoadError(t *testing.T, rawConfig, configType, expectedError string) {
	t.Helper()
	use()
	caddytest.AssertLoadError(t, rawConfig, configType, expectedError)
}
