package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// caddyPackage is the Caddy of this repository: upstream's main with
// both halves plugged in.
const caddyPackage = "github.com/apiaccess/caddy-apiaccess/cmd/caddy"

// binDirPrefix names the directories CaddyBinary builds into; the pid
// lets a later run remove those of a test binary that was killed.
const binDirPrefix = "apiaccess-caddy-bin-"

var (
	mainUsed  atomic.Bool
	buildOnce sync.Once
	buildDir  string
	buildPath string
	buildErr  error
)

// Main runs a package's tests (call it from TestMain) with Caddy's data
// and config directories (XDG_DATA_HOME, XDG_CONFIG_HOME) in a temporary
// directory, so no test writes to the user's home, and removes that
// directory and the binary CaddyBinary built when the tests end.
func Main(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	home, err := os.MkdirTemp("", "apiaccess-test-home-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(home)
	os.Setenv("XDG_DATA_HOME", home)
	os.Setenv("XDG_CONFIG_HOME", home)
	mainUsed.Store(true)
	defer removeBinary()
	return m.Run()
}

func removeBinary() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

// CaddyBinary builds this repository's cmd/caddy once per test process
// and returns its path. The package's TestMain must call Main, which
// removes the binary at the end.
func CaddyBinary(t testing.TB) string {
	t.Helper()
	if !mainUsed.Load() {
		t.Fatal("testkit.CaddyBinary: the package's TestMain must call testkit.Main (it removes the binary)")
	}
	buildOnce.Do(func() {
		removeStaleBinaries()
		buildDir, buildErr = os.MkdirTemp("", binDirPrefix+strconv.Itoa(os.Getpid())+"-")
		if buildErr != nil {
			return
		}
		buildPath = filepath.Join(buildDir, "caddy")
		out, err := exec.Command("go", "build", "-o", buildPath, caddyPackage).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build %s: %v\n%s", caddyPackage, err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// removeStaleBinaries removes the build directories of test processes
// that no longer run (killed before Main could clean up).
func removeStaleBinaries() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), binDirPrefix+"*"))
	for _, d := range dirs {
		pidText, _, ok := strings.Cut(strings.TrimPrefix(filepath.Base(d), binDirPrefix), "-")
		pid, err := strconv.Atoi(pidText)
		if ok && err == nil && pid != os.Getpid() && !processAlive(pid) {
			os.RemoveAll(d)
		}
	}
}
