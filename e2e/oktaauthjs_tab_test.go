package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/storage"
	"github.com/chromedp/chromedp"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit/headless"
)

// sdkTab is a tab of the test app, with what the browser logged and
// which requests it made, for assertions and failure reports.
type sdkTab struct {
	headless.Driver
	env     *sdkEnv
	profile string // custom, org or fragment
	net     *netLog
	consent string // the text of the consent page signIn saw, if any
}

// newTab opens a tab of the test app for t, closed when t ends, with
// the browser's cookies, cache and the two origins' storage cleared
// first: each test starts as a new visitor, without paying for a
// Chromium of its own.
func (e *sdkEnv) newTab(t *testing.T, profile string) *sdkTab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(e.browser)
	t.Cleanup(cancel)
	var mu sync.Mutex
	var logged []string
	msgs := chromedp.Console(ctx) // opens the tab
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			mu.Lock()
			logged = append(logged, fmt.Sprintf("%s %s: %s %s", m.Type, m.Source, m.Text, redactURL(m.URL)))
			mu.Unlock()
		}
	}()
	n := &netLog{byID: map[network.RequestID]*netEntry{}, cookies: map[network.RequestID][]string{}}
	if err := chromedp.Listen(ctx, n.event); err != nil {
		t.Fatalf("listening to the tab's network: %v", err)
	}
	clear := func(ctx context.Context) error {
		for _, c := range []cdp.Command[cdp.Empty, cdp.Empty]{network.ClearBrowserCookies, network.ClearBrowserCache} {
			if _, err := chromedp.Call(ctx, c, cdp.Empty{}); err != nil {
				return err
			}
		}
		for _, o := range []string{e.app, e.base} {
			if _, err := chromedp.Call(ctx, storage.ClearDataForOrigin, storage.ClearDataForOriginParams{Origin: o, StorageTypes: "all"}); err != nil {
				return err
			}
		}
		return nil
	}
	if err := clear(ctx); err != nil {
		t.Fatalf("clearing the browser's state: %v", err)
	}
	log := func() string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(logged, "\n") + "\nrequests:\n" + n.String()
	}
	return &sdkTab{Driver: headless.Driver{T: t, Tab: ctx, Log: log}, env: e, profile: profile, net: n}
}

// startBrowser starts the Chromium of the tests. Its profile accepts
// third-party cookies (the preference cookie_controls_mode 0, "allow"):
// okta-auth-js's cross-site flows (the Sessions API, the prompt=none
// iframe) send the issuer's cookie as a third party, as with Okta, and
// Debian's headless Chromium 156 blocks them by default (the cookies
// show blocked for "UserPreferences"; a browser that blocks them gets
// login_required and no session there, with Okta too). For the same
// reason the tests share this browser's default context: an
// off-the-record one (chromedp.WithNewBrowserContext) blocks them
// regardless.
func (e *sdkEnv) startBrowser(t *testing.T, ctx context.Context, flags ...chromedp.ExecAllocatorOption) {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "Default"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Default", "Preferences"), []byte(`{"profile":{"cookie_controls_mode":0,"block_third_party_cookies":false}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	e.browser, _ = headless.Chromium(t, ctx, append(flags, chromedp.UserDataDir(dir))...)
}

// open loads the app's page of the tab's profile and waits until the
// SDK is set up.
func (b *sdkTab) open(want ...string) string {
	b.T.Helper()
	b.Step("open the app", chromedp.Navigate(b.env.app+"/"+b.profile+"/"))
	return b.awaitState(want...)
}

// awaitState waits until the app shows one of the states (or failed,
// which fails the test unless it is wanted) and returns it.
func (b *sdkTab) awaitState(want ...string) string {
	b.T.Helper()
	sel := make([]string, 0, len(want)+1)
	for _, s := range append(want, "failed") {
		sel = append(sel, fmt.Sprintf(`#state[data-state=%q]`, s))
	}
	b.Step("app in state "+strings.Join(want, " or "), chromedp.WaitVisible(chromedp.CSS(strings.Join(sel, ", "))))
	st := eval[string](b, `document.getElementById("state").dataset.state`)
	if st == "failed" && !slices.Contains(want, "failed") {
		b.Fail("the app failed: %s", b.Read(chromedp.Text(chromedp.CSS("#error"))))
	}
	return st
}

// sdkError is what the page tells of an error the SDK threw.
type sdkError struct {
	Name         string `json:"name"`
	Message      string `json:"message"`
	ErrorCode    string `json:"errorCode"`
	ErrorSummary string `json:"errorSummary"`
	Status       int    `json:"status"`
}

func (e *sdkError) String() string {
	if e == nil {
		return "no error"
	}
	return fmt.Sprintf("%s %s (%s, HTTP %d): %s", e.Name, e.ErrorCode, e.ErrorSummary, e.Status, e.Message)
}

// sdkResult is how a window.app function settled.
type sdkResult struct {
	OK    bool            `json:"ok"`
	Value json.RawMessage `json:"value"`
	Error *sdkError       `json:"error"`
}

// call runs window.app.fn(args...) and awaits its promise (20s).
func (b *sdkTab) call(fn string, args ...any) sdkResult {
	b.T.Helper()
	js := make([]string, len(args))
	for i, a := range args {
		j, err := json.Marshal(a)
		if err != nil {
			b.T.Fatal(err)
		}
		js[i] = string(j)
	}
	ctx, cancel := context.WithTimeout(b.Tab, 20*time.Second)
	defer cancel()
	r, err := chromedp.Run(ctx, chromedp.Evaluate[sdkResult](
		fmt.Sprintf("window.app.%s(%s)", fn, strings.Join(js, ", ")), chromedp.EvalAwaitPromise))
	if err != nil {
		b.Fail("app.%s: %v", fn, err)
	}
	return r
}

// must is call for a function that must succeed; it decodes the value
// into v (when not nil).
func (b *sdkTab) must(v any, fn string, args ...any) {
	b.T.Helper()
	r := b.call(fn, args...)
	if !r.OK {
		b.Fail("app.%s failed: %s", fn, r.Error)
	}
	if v != nil {
		if err := json.Unmarshal(r.Value, v); err != nil {
			b.Fail("app.%s: decoding %s: %v", fn, r.Value, err)
		}
	}
}

// eval runs a JavaScript expression of the page and decodes its value.
func eval[T any](b *sdkTab, expr string) T {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.Tab, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.Fail("%s: %v", expr, err)
	}
	return v
}

// tokenSummary is what app.tokens() and the renewals return.
type tokenSummary struct {
	AccessToken     string         `json:"accessToken"`
	AccessClaims    map[string]any `json:"-"` // decoded here
	IDClaims        map[string]any `json:"idClaims"`
	Scopes          []string       `json:"scopes"`
	HasRefreshToken bool           `json:"hasRefreshToken"`
}

func (b *sdkTab) tokens() tokenSummary {
	b.T.Helper()
	return b.decode(eval[tokenSummary](b, "window.app.tokens()"))
}

// decode fills in the access token's claims (its signature is the
// issuer's business: require_token checks it in the API test).
func (b *sdkTab) decode(s tokenSummary) tokenSummary {
	b.T.Helper()
	if s.AccessToken == "" {
		return s
	}
	parts := strings.Split(s.AccessToken, ".")
	var payload []byte
	err := fmt.Errorf("%d parts", len(parts))
	if len(parts) == 3 {
		payload, err = base64.RawURLEncoding.DecodeString(parts[1])
	}
	if err == nil {
		err = json.Unmarshal(payload, &s.AccessClaims)
	}
	if err != nil {
		b.Fail("the access token is not a JWT: %v", err)
	}
	return s
}

// netEntry is one request the tab made, and how it ended.
type netEntry struct {
	Method, URL, Type string
	Status            int64
	Failed            string   // the network or CORS error, when it failed
	Cookies           []string // names of the cookies sent, or name(why not)
}

// netLog records the tab's requests (those of its main frame and
// same-process frames) from the DevTools protocol's events.
type netLog struct {
	mu      sync.Mutex
	entries []*netEntry
	byID    map[network.RequestID]*netEntry
	cookies map[network.RequestID][]string // extra info seen before the request
}

// event runs on the tab's event loop: it must be quick and not block.
func (n *netLog) event(ev any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch e := ev.(type) {
	case *network.EventRequestWillBeSent:
		en := &netEntry{Method: e.Request.Method, URL: e.Request.URL + e.Request.URLFragment, Type: string(e.Type)}
		if e.RedirectResponse != nil {
			// A redirect: the same id goes on with the next URL.
			if prev := n.byID[e.RequestID]; prev != nil {
				prev.Status = e.RedirectResponse.Status
			}
		}
		en.Cookies = n.cookies[e.RequestID]
		delete(n.cookies, e.RequestID)
		n.entries = append(n.entries, en)
		n.byID[e.RequestID] = en
	case *network.EventRequestWillBeSentExtraInfo:
		var names []string
		for _, c := range e.AssociatedCookies {
			name := c.Cookie.Name
			if len(c.BlockedReasons) > 0 {
				name += fmt.Sprint(c.BlockedReasons)
			}
			names = append(names, name)
		}
		if en := n.byID[e.RequestID]; en != nil && en.Cookies == nil {
			en.Cookies = names
		} else {
			n.cookies[e.RequestID] = names
		}
	case *network.EventResponseReceived:
		if en := n.byID[e.RequestID]; en != nil {
			en.Status = e.Response.Status
		}
	case *network.EventLoadingFailed:
		if en := n.byID[e.RequestID]; en != nil {
			en.Failed = e.ErrorText
			if e.CorsErrorStatus != nil {
				en.Failed += " CORS " + string(e.CorsErrorStatus.CorsError)
			}
		}
	}
}

// find returns the requests with the method whose URL, without its
// query, is u.
func (n *netLog) find(method, u string) []netEntry {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []netEntry
	for _, e := range n.entries {
		p, _, _ := strings.Cut(e.URL, "?")
		p, _, _ = strings.Cut(p, "#")
		if e.Method == method && p == u {
			out = append(out, *e)
		}
	}
	return out
}

// String lists the requests without their query values (codes, tokens).
func (n *netLog) String() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var buf bytes.Buffer
	for _, e := range n.entries {
		fmt.Fprintf(&buf, "  %s %s %s -> %d %s cookies %v\n", e.Method, redactURL(e.URL), e.Type, e.Status, e.Failed, e.Cookies)
	}
	return buf.String()
}

// redactURL keeps a URL's query names and drops their values, so that
// no code or token reaches a test log.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.RawQuery == "" && u.Fragment == "") {
		return s
	}
	redact := func(q string) string {
		v, _ := url.ParseQuery(q)
		names := make([]string, 0, len(v))
		for k := range v {
			names = append(names, k)
		}
		slices.Sort(names)
		return strings.Join(names, "&")
	}
	out := u.Scheme + "://" + u.Host + u.Path
	if u.RawQuery != "" {
		out += "?" + redact(u.RawQuery)
	}
	if u.Fragment != "" {
		out += "#" + redact(u.Fragment)
	}
	return out
}

// syncBuffer is a strings.Builder safe for a child's output goroutine
// and the test reading it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
