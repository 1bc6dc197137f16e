package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
	"github.com/apiaccess/caddy-apiaccess/internal/testkit/caddytester"
	"github.com/apiaccess/caddy-apiaccess/internal/testkit/headless"
)

// The demo's other ports (8081 to 8083 in Caddyfile.example).
var (
	demoAPIPort  = testkit.ProcessPortString("demo-8081")
	demo8082Port = testkit.ProcessPortString("demo-8082")
	demoAppPort  = testkit.ProcessPortString("demo-8083")
)

// demoCaddyfile is Caddyfile.example as shipped, moved to free ports
// (the demo's own may be taken on a developer's machine) and this
// process's admin address.
func demoCaddyfile(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for from, to := range map[string]string{"localhost:8080": "localhost:" + issuerPort, "localhost:8081": "localhost:" + demoAPIPort,
		"localhost:8082": "localhost:" + demo8082Port, "localhost:8083": "localhost:" + demoAppPort} {
		if !strings.Contains(s, from) {
			t.Fatalf("Caddyfile.example no longer uses %s; update this test", from)
		}
		s = strings.ReplaceAll(s, from, to)
	}
	global := strings.Index(s, "\n{\n")
	if global < 0 {
		t.Fatal("Caddyfile.example has no global options block")
	}
	return s[:global+3] + "\tadmin " + caddytester.AdminAddr() + "\n" + s[global+3:]
}

// TestDemoAppChromium is the README's browser walk-through, run by a
// real browser against Caddyfile.example: the demo app sends alice to
// the sign-in page, she consents, the app shows who she is (ID token
// and userinfo fetched cross-origin through CORS), calls the demo API
// through require_token, and signs out.
func TestDemoAppChromium(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	tab, browserLog := headless.Chromium(t, ctx)
	caddytester.NewTester(t).InitServer(demoCaddyfile(t), "caddyfile")
	app := "http://localhost:" + demoAppPort

	d := headless.Driver{T: t, Tab: tab, Log: browserLog}
	fail, step := d.Fail, d.Step
	text := func(sel string) string { t.Helper(); return d.Read(chromedp.Text(chromedp.CSS(sel))) }

	step("demo app", chromedp.Navigate(app+"/"), chromedp.WaitVisible(chromedp.CSS("#signin")))
	if s := text("#status"); s != "Not signed in." {
		fail("status %q before sign-in", s)
	}
	step("sign-in page", chromedp.Click(chromedp.CSS("#signin")), chromedp.WaitVisible(chromedp.CSS("#password")))
	step("sign in",
		chromedp.SendKeys(chromedp.CSS("#username"), "alice@example.com"),
		chromedp.SendKeys(chromedp.CSS("#password"), "demo-password"),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS("button[value=allow]")),
	)
	if s := text("main"); !strings.Contains(s, "Demo app") || !strings.Contains(s, "Read orders") {
		fail("consent page shows %q", s)
	}
	step("consent", chromedp.Click(chromedp.CSS("button[value=allow]")), chromedp.WaitVisible(chromedp.CSS("#api")))
	if s := text("#status"); s != "Signed in as Alice Example (alice@example.com)." {
		fail("status %q after sign-in", s)
	}
	step("userinfo", chromedp.WaitVisible(chromedp.CSS("#out")))
	if s := text("#out"); !strings.Contains(s, `"email": "alice@example.com"`) || !strings.Contains(s, `"sub": "00u1alice"`) {
		fail("userinfo shows %q", s)
	}
	step("call the API", chromedp.Click(chromedp.CSS("#api")), chromedp.WaitReady(chromedp.CSS("#title")))
	sctx, cancelPoll := context.WithTimeout(tab, 10*time.Second)
	_, err := chromedp.Run(sctx, chromedp.Poll[bool](`document.getElementById("title").textContent.startsWith("GET")`))
	cancelPoll()
	if err != nil {
		fail("no API answer: %v", err)
	}
	if title, out := text("#title"), text("#out"); title != "GET /api/orders: HTTP 200" ||
		!strings.Contains(out, `"client":"demo-app"`) || !strings.Contains(out, `"subject":"alice@example.com"`) {
		fail("API answer %q: %q", title, out)
	}

	step("sign out", chromedp.Click(chromedp.CSS("#signout")), chromedp.WaitVisible(chromedp.CSS("#signin")))
	if s := text("#status"); s != "Not signed in." {
		fail("status %q after sign-out", s)
	}
	// The issuer's session ended too: signing in asks for the password.
	step("sign-in page after sign-out", chromedp.Click(chromedp.CSS("#signin")), chromedp.WaitVisible(chromedp.CSS("#password")))

	// CORS is for the trusted origin only.
	req, _ := http.NewRequest(http.MethodOptions, base+"/oauth2/default/v1/token", nil)
	req.Header.Set("Origin", "http://evil.localhost:"+demoAppPort)
	req.Header.Set("Access-Control-Request-Method", "POST")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got := res.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("untrusted origin got Access-Control-Allow-Origin %q", got)
	}
}

// TestDemoDiscovery: the demo's discovery offers only the grants its
// clients and rules allow (no password, no device grant), so a client
// library is not offered flows every request of which is refused.
func TestDemoDiscovery(t *testing.T) {
	caddytester.NewTester(t).InitServer(demoCaddyfile(t), "caddyfile")
	for path, want := range map[string][]string{
		"/oauth2/default/.well-known/openid-configuration":       {"client_credentials", "authorization_code"},
		"/oauth2/default/.well-known/oauth-authorization-server": {"client_credentials", "authorization_code"},
		"/.well-known/openid-configuration":                      {"authorization_code"},
	} {
		res, err := http.Get("http://localhost:" + issuerPort + path)
		if err != nil {
			t.Fatal(err)
		}
		var md struct {
			Grants    []string `json:"grant_types_supported"`
			Authorize string   `json:"authorization_endpoint"`
			Device    *string  `json:"device_authorization_endpoint"`
		}
		err = json.NewDecoder(res.Body).Decode(&md)
		res.Body.Close()
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("%s: %d %v", path, res.StatusCode, err)
		}
		if !slices.Equal(md.Grants, want) || md.Authorize == "" || md.Device != nil {
			t.Errorf("%s: grant_types_supported %v (want %v), authorization_endpoint %q, device_authorization_endpoint %v",
				path, md.Grants, want, md.Authorize, md.Device)
		}
	}
}
