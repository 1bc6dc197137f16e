//go:build !linux

package testkit

import "os/exec"

// Elsewhere there is no parent-death signal: the child is killed when
// the test ends, and only then.
func setDeathSignal(*exec.Cmd) {}

func startChild(cmd *exec.Cmd) error { return cmd.Start() }

func killGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = cmd.Process.Kill()
	}
}

// processAlive cannot tell here; stale binaries are then left alone.
func processAlive(int) bool { return true }
