package testkit

import (
	"net"
	"strconv"
	"sync"
	"testing"
)

// FreePort is a TCP port on 127.0.0.1 that nothing listened on a moment
// ago: the kernel's pick for port 0. Tests use it instead of a fixed
// port so that two test runs on one machine do not collide; start the
// server on it right away, since until then another process may get it.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// CaddyPort is a port for a Caddy the test starts (a child process),
// reserved until the test ends as ProcessPort's are: only a Caddy can
// listen on it, and no other test run gets it.
func CaddyPort(t testing.TB) int {
	t.Helper()
	p, release, err := reservePort()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	return p
}

var (
	processPortsMu sync.Mutex
	processPorts   = map[string]int{}
)

// ProcessPort is a port chosen once per test process under name, for
// the Caddy addresses a test package keeps in package-level variables
// (the in-process Caddy's admin and listen ports, which every test of
// the package reloads). Different names get different ports. On Linux
// the port stays reserved for this process (see reservePort), so only a
// Caddy (which binds with SO_REUSEPORT) can listen on it: not for other
// servers (use FreePort).
func ProcessPort(name string) int {
	processPortsMu.Lock()
	defer processPortsMu.Unlock()
	if p, ok := processPorts[name]; ok {
		return p
	}
	for {
		p, _, err := reservePort() // held for the process's life
		if err != nil {
			panic("testkit: no free loopback port: " + err.Error())
		}
		if !portTaken(p) {
			processPorts[name] = p
			return p
		}
	}
}

func portTaken(p int) bool {
	for _, q := range processPorts {
		if q == p {
			return true
		}
	}
	return false
}

// ProcessPortString is ProcessPort as a decimal string.
func ProcessPortString(name string) string { return strconv.Itoa(ProcessPort(name)) }
