package testkit

import (
	"net"
	"strconv"
	"testing"
)

func TestFreePortCanBeListenedOn(t *testing.T) {
	p := FreePort(t)
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		t.Fatalf("FreePort %d: %v", p, err)
	}
	l.Close()
}

func TestProcessPortIsStablePerNameAndDistinct(t *testing.T) {
	a, b := ProcessPort("test-a"), ProcessPort("test-b")
	if a == b {
		t.Fatalf("two names got one port %d", a)
	}
	if ProcessPort("test-a") != a || ProcessPortString("test-b") != strconv.Itoa(b) {
		t.Fatal("a name's port changed within the process")
	}
	for _, p := range []int{a, b} {
		if p == 0 || p == 2019 || p == 2999 {
			t.Fatalf("port %d", p)
		}
	}
}
