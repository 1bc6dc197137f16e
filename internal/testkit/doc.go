// Package testkit holds what the tests of both halves need: the Caddy
// binary built once per test process, free loopback ports, child
// processes that cannot outlive the test binary, the skip-or-fail rule
// for missing tools (APIACCESS_STRICT), a fake clock and a poll helper.
//
// It imports no Caddy package, so tests of the pure cores may use it;
// the in-process Caddy of caddytest is in the caddytester sub-package.
//
// Clocks: the cores take a Now func (or an interface with Now), so a
// settable Clock is enough; testing/synctest is not used because the
// tests also talk to real sockets and child processes, which a synctest
// bubble cannot contain.
package testkit
