package testkit

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readPid waits for a pid written to path by a child.
func readPid(t *testing.T, path string) int {
	t.Helper()
	var pid int
	WaitFor(t, "a pid in "+path, 10*time.Second, func() bool {
		b, err := os.ReadFile(path)
		if err != nil || !strings.HasSuffix(string(b), "\n") {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	return pid
}

func TestStartKillsTheChildWhenTheTestEnds(t *testing.T) {
	var pid int
	t.Run("child", func(t *testing.T) {
		p := Start(t, exec.Command("sleep", "60"))
		pid = p.Cmd.Process.Pid
		if !processAlive(pid) {
			t.Fatal("child not running")
		}
	})
	if processAlive(pid) {
		t.Fatalf("child %d still runs after its test ended", pid)
	}
}

// A shell's background job is in the shell's process group: Stop kills
// it too, so a wrapper script cannot leave a server behind.
func TestStopKillsTheProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	p := Start(t, exec.Command("sh", "-c", `sleep 60 & echo $! > "$0"; wait`, pidFile))
	grandchild := readPid(t, pidFile)
	p.Stop()
	p.Stop() // a second Stop is harmless
	WaitFor(t, "the background job to die", 10*time.Second, func() bool { return !processAlive(grandchild) })
}

func TestWaitReturnsTheExitStatus(t *testing.T) {
	p := Start(t, exec.Command("sh", "-c", "exit 3"))
	var exit *exec.ExitError
	if err := p.Wait(); !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("Wait = %v, want exit status 3", err)
	}
	select {
	case <-p.Done():
	default:
		t.Fatal("Done not closed after Wait")
	}
}

const helperEnv = "TESTKIT_HELPER_PIDFILE"

// TestHelperStartChild is not a test: run by TestChildDiesWithTestBinary
// as a test binary of its own, it starts a child and waits to be killed.
func TestHelperStartChild(t *testing.T) {
	pidFile := os.Getenv(helperEnv)
	if pidFile == "" {
		t.Skip("helper process for TestChildDiesWithTestBinary")
	}
	p := Start(t, exec.Command("sleep", "300"))
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(p.Cmd.Process.Pid)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Minute)
}

// TestChildDiesWithTestBinary: a test binary killed with SIGKILL (no
// cleanup runs) takes its children with it.
func TestChildDiesWithTestBinary(t *testing.T) {
	if _, err := os.Stat("/proc/self"); err != nil {
		t.Skip("the parent-death signal is Linux only")
	}
	pidFile := filepath.Join(t.TempDir(), "pid")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperStartChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+pidFile)
	helper := Start(t, cmd)
	grandchild := readPid(t, pidFile)
	if !processAlive(grandchild) {
		t.Fatal("the helper's child is not running")
	}
	// SIGKILL the helper alone (not its group): only the kernel's
	// parent-death signal can reach the child now.
	if err := helper.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-helper.Done()
	WaitFor(t, "the child of the killed test binary to die", 10*time.Second, func() bool { return !processAlive(grandchild) })
}

func TestRemoveStaleBinaries(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	dead := filepath.Join(tmp, binDirPrefix+strconv.Itoa(gone.Process.Pid)+"-123")
	mine := filepath.Join(tmp, binDirPrefix+strconv.Itoa(os.Getpid())+"-456")
	other := filepath.Join(tmp, "something-else")
	for _, d := range []string{dead, mine, other} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	removeStaleBinaries()
	for d, want := range map[string]bool{dead: false, mine: true, other: true} {
		if _, err := os.Stat(d); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", filepath.Base(d), err == nil, want)
		}
	}
}
