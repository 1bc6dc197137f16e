// Package headless drives a headless Chromium for tests that need a
// real browser (CSP, SameSite cookies, redirects after POST, CORS).
package headless

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
)

// Exe is where the tests expect Chromium (Debian's package).
const Exe = "/usr/bin/chromium"

// Chromium starts a headless Chromium with a fresh profile and returns
// a tab, and a report of what the browser logged (for failures). It
// skips t without Chromium, or fails it under APIACCESS_STRICT=1.
// chromedp gives the browser the parent-death signal on Linux. flags
// come after the defaults (a test's own command-line switches, such as
// which certificates to trust).
func Chromium(t *testing.T, ctx context.Context, flags ...chromedp.ExecAllocatorOption) (context.Context, func() string) {
	t.Helper()
	_, err := os.Stat(Exe)
	testkit.Need(t, err == nil, "no Chromium at "+Exe+" (apt-get install chromium)")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(Exe),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1000, 800),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, append(opts, flags...)...)
	tab, cancelTab := chromedp.NewContext(actx)
	// Cancelling waits for Chromium to exit: before t.TempDir's cleanup.
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	// Console starts the browser (outside any step's timeout, which
	// would end it) and collects the console and the browser log: a CSP
	// violation or a blocked request shows there.
	var mu sync.Mutex
	var logged []string
	msgs := chromedp.Console(tab)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			mu.Lock()
			logged = append(logged, fmt.Sprintf("%s %s: %s %s", m.Type, m.Source, m.Text, m.URL))
			mu.Unlock()
		}
	}()
	if err := chromedp.Do(tab, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return tab, func() string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(logged, "\n")
	}
}

// Driver runs steps in a Chromium tab, each under a timeout; a failure
// reports where the browser is, what it shows and what it logged.
type Driver struct {
	T   *testing.T
	Tab context.Context
	Log func() string
}

// Fail ends the test with the browser's location, page text and log.
func (d Driver) Fail(format string, args ...any) {
	d.T.Helper()
	ctx, cancel := context.WithTimeout(d.Tab, 3*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	text, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	d.T.Fatalf("%s\nbrowser at %s showing %q\nbrowser log:\n%s", fmt.Sprintf(format, args...), loc, text, d.Log())
}

// Step runs actions within 20s.
func (d Driver) Step(name string, actions ...chromedp.Action[chromedp.Void]) {
	d.T.Helper()
	ctx, cancel := context.WithTimeout(d.Tab, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		d.Fail("%s: %v", name, err)
	}
}

// Read runs a that reads the page, within 5s.
func (d Driver) Read(a chromedp.Action[string]) string {
	d.T.Helper()
	ctx, cancel := context.WithTimeout(d.Tab, 5*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		d.Fail("reading the page: %v", err)
	}
	return v
}
