package testkit

import (
	"net"
	"strconv"
	"sync"
	"testing"
)

// FreePort is a TCP port on 127.0.0.1 that nothing listened on a moment
// ago: the kernel's pick for port 0. Tests use it instead of a fixed
// port so that two test runs on one machine do not collide.
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

var (
	processPortsMu sync.Mutex
	processPorts   = map[string]int{}
)

// ProcessPort is a free port chosen once per test process under name:
// for addresses a test package keeps in package-level variables (the
// in-process Caddy's admin and listen ports, which every test of the
// package reloads). Different names get different ports.
func ProcessPort(name string) int {
	processPortsMu.Lock()
	defer processPortsMu.Unlock()
	if p, ok := processPorts[name]; ok {
		return p
	}
	for {
		p, err := freePort()
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
