package authserver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// postMessageOf reads the okta_post_message page: the data it posts,
// the target origin, and whether its script carries the CSP's nonce.
func postMessageOf(t *testing.T, w *httptest.ResponseRecorder) (map[string]string, string) {
	t.Helper()
	page, h := w.Body.String(), w.Header()
	csp := h.Get("Content-Security-Policy")
	m := regexp.MustCompile(`script-src 'nonce-([A-Za-z0-9_-]{20,})'`).FindStringSubmatch(csp)
	if w.Code != http.StatusOK || m == nil || !strings.Contains(page, `<script nonce="`+m[1]+`">`) || strings.Count(page, "<script") != 1 {
		t.Fatalf("post message page: %d, CSP %q:\n%s", w.Code, csp, page)
	}
	if h.Get("X-Frame-Options") != "" || !strings.HasSuffix(csp, "; frame-ancestors https://app.test") ||
		!strings.HasPrefix(csp, "default-src 'none'; ") || h.Get("Cache-Control") != "no-store" || strings.Contains(page, `"*"`) {
		t.Fatalf("post message page headers: %v", h)
	}
	d := regexp.MustCompile(`var data = (\{.*\});`).FindStringSubmatch(page)
	o := regexp.MustCompile(`var origin = ("[^"]*");`).FindStringSubmatch(page)
	if d == nil || o == nil || !strings.Contains(page, "target.postMessage(data, origin)") {
		t.Fatalf("post message page:\n%s", page)
	}
	var data map[string]string
	var origin string
	if json.Unmarshal([]byte(d[1]), &data) != nil || json.Unmarshal([]byte(o[1]), &origin) != nil {
		t.Fatalf("post message data %q origin %q", d[1], o[1])
	}
	return data, origin
}

// TestAuthorizeFragmentAndPostMessage: with an SSO session, fragment
// puts code, state and iss in the redirect URI's fragment; and
// okta_post_message answers a page that posts exactly {code, state} to
// the redirect URI's origin, frameable by that origin only, its script
// allowed by nonce.
func TestAuthorizeFragmentAndPostMessage(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	sess := e.session("u1")
	q := url.Values{"client_id": {"web"}, "response_type": {"code"}, "scope": {"openid read"}, "state": {"st8"}, "redirect_uri": {webCB}}

	q.Set("response_mode", "fragment")
	w := e.browse(http.MethodGet, "/oauth2/default/v1/authorize?"+q.Encode(), nil, sess)
	loc := w.Header().Get("Location")
	base, frag, _ := strings.Cut(loc, "#")
	f, _ := url.ParseQuery(frag)
	if w.Code != http.StatusFound || base != webCB || f.Get("code") == "" || f.Get("state") != "st8" || f.Get("iss") != "https://id.example.com/oauth2/default" {
		t.Errorf("fragment: %d %q", w.Code, loc)
	}

	q.Set("response_mode", "okta_post_message")
	w = e.browse(http.MethodGet, "/oauth2/default/v1/authorize?"+q.Encode(), nil, sess)
	data, origin := postMessageOf(t, w)
	if origin != "https://app.test" || len(data) != 2 || data["code"] == "" || data["state"] != "st8" {
		t.Fatalf("posted %v to %q", data, origin)
	}
	// The posted code is a real one.
	if status, body := e.redeem("web", data["code"], webCB, ""); status != http.StatusOK || body["access_token"] == nil {
		t.Fatalf("redeem posted code: %d %v", status, body)
	}
}

// TestPromptNoneErrorsInEveryMode: login_required (no session) and
// consent_required (a consent-required scope never granted) reach the
// client in the requested mode, with error_description and state, as
// okta-auth-js reads them (it throws OAuthError only when both error and
// error_description are present).
func TestPromptNoneErrorsInEveryMode(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	sess := e.session("u1")
	for _, tc := range []struct {
		want   string
		scope  string
		cookie []*http.Cookie
	}{
		{"login_required", "openid read", nil},
		{"consent_required", "openid pay", []*http.Cookie{sess}},
	} {
		for _, mode := range []string{"query", "fragment", "form_post", "okta_post_message"} {
			q := url.Values{"client_id": {"web"}, "response_type": {"code"}, "scope": {tc.scope}, "state": {"st8"},
				"redirect_uri": {webCB}, "prompt": {"none"}, "response_mode": {mode}}
			w := e.browse(http.MethodGet, "/oauth2/default/v1/authorize?"+q.Encode(), nil, tc.cookie...)
			got := map[string]string{}
			switch mode {
			case "query", "fragment":
				u, _ := url.Parse(w.Header().Get("Location"))
				v := u.Query()
				if mode == "fragment" {
					v, _ = url.ParseQuery(u.Fragment)
					if u.RawQuery != "" {
						t.Errorf("fragment mode also used the query: %q", u)
					}
				}
				for k := range v {
					got[k] = v.Get(k)
				}
			case "form_post":
				page := w.Body.String()
				for _, k := range []string{"error", "error_description", "state"} {
					got[k] = hidden(page, k)
				}
			case "okta_post_message":
				got, _ = postMessageOf(t, w)
			}
			if got["error"] != tc.want || got["error_description"] == "" || got["state"] != "st8" || got["code"] != "" {
				t.Errorf("%s in %s: %d %v", tc.want, mode, w.Code, got)
			}
		}
	}
}

// TestResponseModeRules: Okta's rules (/authorize reference): code
// defaults to query and takes any mode; token and id_token default to
// fragment and refuse query. Refusals are invalid_request in the
// default mode; this server's unsupported response types are answered
// in the fragment the implicit flow expects.
func TestResponseModeRules(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	for _, tc := range []struct {
		responseType, mode, want, in string
	}{
		{"code", "bogus", "invalid_request", "query"},
		{"code", "web_message", "invalid_request", "query"},
		{"token", "", "unsupported_response_type", "fragment"},
		{"id_token token", "query", "invalid_request", "fragment"},
		{"id_token", "fragment", "unsupported_response_type", "fragment"},
		{"code id_token", "query", "invalid_request", "fragment"},
	} {
		q := url.Values{"client_id": {"web"}, "response_type": {tc.responseType}, "scope": {"openid"}, "state": {"s"},
			"redirect_uri": {webCB}, "nonce": {"n"}}
		if tc.mode != "" {
			q.Set("response_mode", tc.mode)
		}
		w := e.browse(http.MethodGet, "/oauth2/default/v1/authorize?"+q.Encode(), nil)
		u, _ := url.Parse(w.Header().Get("Location"))
		v := u.Query()
		if tc.in == "fragment" {
			v, _ = url.ParseQuery(u.Fragment)
		}
		if w.Code != http.StatusFound || v.Get("error") != tc.want || v.Get("state") != "s" {
			t.Errorf("%q/%q: %d %q, want %s in the %s", tc.responseType, tc.mode, w.Code, u, tc.want, tc.in)
		}
	}
	for _, tc := range []struct{ responseType, mode, redirect, want, bad string }{
		{"code", "okta_post_message", "com.example.app:/cb", "query", "requires an http or https"},
		{"code", "okta_post_message", "https://App.Test:443/cb", "okta_post_message", ""},
		{"code", "", "https://app.test/cb", "query", ""},
		{"token", "form_post", "https://app.test/cb", "form_post", ""},
	} {
		mode, bad := chooseResponseMode(tc.responseType, tc.mode, tc.redirect)
		if mode != tc.want || (tc.bad == "") != (bad == "") || !strings.Contains(bad, tc.bad) {
			t.Errorf("%v: %q %q", tc, mode, bad)
		}
	}
	if o, _ := webOrigin("https://App.Test:443/cb"); o != "https://app.test" {
		t.Errorf("origin %q", o)
	}
}

// TestOnlyPostMessagePageFrameable: an okta_post_message request that
// needs the sign-in page (the popup flow) gets it with the usual frame
// refusal; after sign-in the answer is the post message page.
func TestOnlyPostMessagePageFrameable(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	q := url.Values{"client_id": {"web"}, "response_type": {"code"}, "scope": {"openid read"}, "state": {"st8"},
		"redirect_uri": {webCB}, "response_mode": {"okta_post_message"}}
	w := e.browse(http.MethodGet, "/oauth2/default/v1/authorize?"+q.Encode(), nil)
	page := w.Body.String()
	if w.Code != http.StatusOK || w.Header().Get("X-Frame-Options") != "DENY" ||
		!strings.Contains(w.Header().Get("Content-Security-Policy"), "frame-ancestors 'none'") || hidden(page, "txn") == "" {
		t.Fatalf("sign-in page: %d %v", w.Code, w.Header())
	}
	txn := cookieOf(w, "__Host-apiaccess_txn")
	w = e.browse(http.MethodPost, "/oauth2/v1/signin", url.Values{"txn": {hidden(page, "txn")}, "csrf": {hidden(page, "csrf")},
		"username": {"alice@example.com"}, "password": {alicePassword}}, txn)
	if data, origin := postMessageOf(t, w); data["code"] == "" || data["state"] != "st8" || origin != "https://app.test" {
		t.Fatalf("after sign-in posted %v to %q", data, origin)
	}
	for _, path := range []string{"/oauth2/default/v1/authorize?client_id=nobody", "/oauth2/default/v1/logout"} {
		if w := e.browse(http.MethodGet, path, nil); w.Header().Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: %d %v", path, w.Code, w.Header())
		}
	}
}
