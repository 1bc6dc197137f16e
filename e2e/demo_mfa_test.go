package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit/caddytester"
	"github.com/apiaccess/caddy-apiaccess/internal/testkit/headless"
)

// TestDemoSecondFactorChromium is the README's "A second factor" walk-
// through against Caddyfile.example: carol signs in to the demo app, is
// asked to set up an authenticator app, confirms it with a code the
// test computes from the key on the page, sees her recovery codes,
// consents, and is signed in; the app shows her.
func TestDemoSecondFactorChromium(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	tab, browserLog := headless.Chromium(t, ctx)
	caddytester.NewTester(t).InitServer(demoCaddyfile(t), "caddyfile")
	app := "http://localhost:" + demoAppPort

	d := headless.Driver{T: t, Tab: tab, Log: browserLog}
	fail, step := d.Fail, d.Step
	text := func(sel string) string { t.Helper(); return d.Read(chromedp.Text(chromedp.CSS(sel))) }

	step("demo app", chromedp.Navigate(app+"/"), chromedp.WaitVisible(chromedp.CSS("#signin")))
	step("sign-in page", chromedp.Click(chromedp.CSS("#signin")), chromedp.WaitVisible(chromedp.CSS("#password")))
	step("password",
		chromedp.SendKeys(chromedp.CSS("#username"), "carol@example.com"),
		chromedp.SendKeys(chromedp.CSS("#password"), "demo-password"),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS("#totp_secret")),
	)
	if s := text("main"); !strings.Contains(s, "Set up a second factor") {
		fail("enrollment page shows %q", s)
	}
	key := strings.TrimSpace(text("#totp_secret"))
	code, err := totp.GenerateCode(key, time.Now())
	if err != nil {
		fail("the page's key: %v", err)
	}
	step("verify the app",
		chromedp.SendKeys(chromedp.CSS("#totp #code"), code),
		chromedp.Submit(chromedp.CSS("#totp #code")),
		chromedp.WaitVisible(chromedp.CSS("#recovery_codes")),
	)
	if n := strings.Count(text("#recovery_codes"), "-"); n != 30 { // ten codes of four groups
		fail("recovery codes page: %d dashes, want 30", n)
	}
	step("continue", chromedp.Click(chromedp.CSS("button[type=submit]")), chromedp.WaitVisible(chromedp.CSS("button[value=allow]")))
	step("consent", chromedp.Click(chromedp.CSS("button[value=allow]")), chromedp.WaitVisible(chromedp.CSS("#api")))
	if s := text("#status"); s != "Signed in as Carol Admin (carol@example.com)." {
		fail("status %q after sign-in", s)
	}
}
