package testkit

import (
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"
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

// listenReusePort listens as Caddy does, with SO_REUSEPORT.
func listenReusePort(addr string) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, 0xf, 1) }); err != nil {
			return err
		}
		return serr
	}}
	return lc.Listen(context.Background(), "tcp", addr)
}

// A reserved port takes a Caddy (SO_REUSEPORT) and serves it alone; a
// plain server, as another test run's would be, cannot bind it.
func TestReservedPortOnlyForCaddy(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("ports are reserved on Linux only")
	}
	for name, p := range map[string]int{"CaddyPort": CaddyPort(t), "ProcessPort": ProcessPort("test-reserved")} {
		addr := "127.0.0.1:" + strconv.Itoa(p)
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			t.Fatalf("%s %d: a plain listener could bind it", name, p)
		}
		l, err := listenReusePort(":" + strconv.Itoa(p))
		if err != nil {
			t.Fatalf("%s %d: a Caddy-style listener cannot bind it: %v", name, p, err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
		go srv.Serve(l)
		// Every connection reaches the listener: the reservation never
		// listens, so it takes none of them.
		for range 20 {
			res, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}).Get("http://" + addr)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			res.Body.Close()
		}
		srv.Close()
	}
}
