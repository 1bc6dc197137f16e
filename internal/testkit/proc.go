package testkit

import (
	"os/exec"
	"testing"
	"time"
)

// Proc is a child process started by Start.
type Proc struct {
	Cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
}

// Start starts cmd (a Caddy, node, ...) so that it cannot outlive the
// test: it is killed, with its process group, when the test ends, and
// on Linux it gets SIGKILL from the kernel when the test binary exits
// or dies (the parent-death signal), so an interrupted run leaves no
// server holding a port. A failure to start fails t.
func Start(t testing.TB, cmd *exec.Cmd) *Proc {
	t.Helper()
	setDeathSignal(cmd)
	if cmd.WaitDelay == 0 {
		// A grandchild holding the output pipes must not block Wait.
		cmd.WaitDelay = 5 * time.Second
	}
	if err := startChild(cmd); err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	p := &Proc{Cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.Stop)
	return p
}

// Stop kills the process and its group and waits until it has exited.
// It may be called more than once.
func (p *Proc) Stop() {
	select {
	case <-p.done:
	default:
		killGroup(p.Cmd)
	}
	<-p.done
}

// Wait waits for the process to exit by itself and returns what
// exec.Cmd.Wait returned.
func (p *Proc) Wait() error {
	<-p.done
	return p.waitErr
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }
