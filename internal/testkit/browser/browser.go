// Package browser is an HTTP client for tests that walk the issuer's
// pages as a browser would: it keeps cookies and does not follow
// redirects, so each step of a flow (sign-in, consent, the redirect
// back) can be checked. It imports neither half of the project.
package browser

import (
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// Browser is one browser (one cookie jar) in front of the issuer at
// base.
type Browser struct {
	t    testing.TB
	base string
	// Client is the underlying client; tests may change its Transport
	// or read its Jar.
	Client *http.Client
}

// New is a browser with an empty cookie jar for the issuer at base.
func New(t testing.TB, base string) *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{t: t, base: base, Client: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// Get fetches u and returns the answer with its body read.
func (b *Browser) Get(u string) (*http.Response, string) {
	b.t.Helper()
	res, err := b.Client.Get(u)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

// Post posts form to u and returns the answer with its body read.
func (b *Browser) Post(u string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	res, err := b.Client.PostForm(u, form)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

var hidden = regexp.MustCompile(`name="(txn|csrf|code|state|iss)" value="([^"]*)"`)

// Fields reads the hidden inputs of one of the issuer's pages.
func Fields(page string) url.Values {
	v := url.Values{}
	for _, m := range hidden.FindAllStringSubmatch(page, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	return v
}

// SignIn posts credentials on a sign-in page.
func (b *Browser) SignIn(page, user, pw string) (*http.Response, string) {
	b.t.Helper()
	f := Fields(page)
	if f.Get("txn") == "" || f.Get("csrf") == "" {
		b.t.Fatalf("not a sign-in page: %.300s", page)
	}
	f.Set("username", user)
	f.Set("password", pw)
	return b.Post(b.base+"/oauth2/v1/signin", f)
}

// Callback parses a redirect to the relying party at redirect.
func Callback(t testing.TB, res *http.Response, redirect string) url.Values {
	t.Helper()
	loc := res.Header.Get("Location")
	if res.StatusCode != http.StatusFound || !strings.HasPrefix(loc, redirect) {
		t.Fatalf("want a redirect to %s, got %d %q", redirect, res.StatusCode, loc)
	}
	u, _ := url.Parse(loc)
	return u.Query()
}
