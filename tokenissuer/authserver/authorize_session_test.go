package authserver

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestAuthorizeMaxAge: an SSO session skips sign-in only while it is no
// older than max_age seconds (OpenID Connect Core 3.1.2.1); max_age=0
// always asks for the password again, and prompt=login does too.
func TestAuthorizeMaxAge(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	sess := e.session("u1")
	e.clock.Advance(60 * time.Second)
	for _, tc := range []struct {
		name   string
		extra  url.Values
		signIn bool
	}{
		{"no max_age", nil, false},
		{"max_age equal to the session's age", url.Values{"max_age": {"60"}}, false},
		{"max_age one second less", url.Values{"max_age": {"59"}}, true},
		{"max_age=0", url.Values{"max_age": {"0"}}, true},
		{"prompt=login", url.Values{"prompt": {"login"}}, true},
	} {
		q := url.Values{"client_id": {"web"}, "response_type": {"code"}, "scope": {"openid read"}, "state": {"s"}, "redirect_uri": {webCB}}
		for k, v := range tc.extra {
			q[k] = v
		}
		w := e.browse(http.MethodGet, "/oauth2/default/v1/authorize?"+q.Encode(), nil, sess)
		loc := w.Header().Get("Location")
		if tc.signIn {
			if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `name="password"`) {
				t.Errorf("%s: want the sign-in page, got %d %q", tc.name, w.Code, loc)
			}
			continue
		}
		if !strings.HasPrefix(loc, webCB+"?") || !strings.Contains(loc, "code=") {
			t.Errorf("%s: want a code from the session, got %d %q", tc.name, w.Code, loc)
		}
	}
}

// TestAuthorizeBadMaxAgeAndPromptNone: a malformed max_age is
// invalid_request, and prompt=none without a session is login_required,
// both sent back to the client's redirect URI.
func TestAuthorizeBadMaxAgeAndPromptNone(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	for _, tc := range []struct {
		extra url.Values
		want  string
	}{
		{url.Values{"max_age": {"-1"}}, "invalid_request"},
		{url.Values{"max_age": {"ten"}}, "invalid_request"},
		{url.Values{"prompt": {"none"}}, "login_required"},
		{url.Values{"prompt": {"none login"}}, "invalid_request"},
		{url.Values{"prompt": {"select_account"}}, "invalid_request"},
	} {
		q := url.Values{"client_id": {"web"}, "response_type": {"code"}, "scope": {"openid read"}, "state": {"s"}, "redirect_uri": {webCB}}
		for k, v := range tc.extra {
			q[k] = v
		}
		w := e.browse(http.MethodGet, "/oauth2/default/v1/authorize?"+q.Encode(), nil)
		loc, err := url.Parse(w.Header().Get("Location"))
		if err != nil || !strings.HasPrefix(loc.String(), webCB+"?") || loc.Query().Get("error") != tc.want || loc.Query().Get("state") != "s" {
			t.Errorf("%v: want %s at the redirect URI, got %d %q", tc.extra, tc.want, w.Code, w.Header().Get("Location"))
		}
	}
}

// TestAuthorizeResponseModes: query (the default) redirects with the
// code in the query; form_post answers a self-submitting form to the
// redirect URI (OAuth 2.0 Form Post Response Mode), with the state and
// issuer; a mode this server does not offer is invalid_request, sent
// in the query.
func TestAuthorizeResponseModes(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	sess := e.session("u1")
	for _, mode := range []string{"", "query", "form_post", "bogus"} {
		q := url.Values{"client_id": {"web"}, "response_type": {"code"}, "scope": {"openid read"}, "state": {"st8"}, "redirect_uri": {webCB}}
		if mode != "" {
			q.Set("response_mode", mode)
		}
		w := e.browse(http.MethodGet, "/oauth2/default/v1/authorize?"+q.Encode(), nil, sess)
		if mode == "form_post" {
			page := w.Body.String()
			if w.Code != 200 || w.Header().Get("Location") != "" || !strings.Contains(page, `action="`+webCB+`"`) ||
				hidden(page, "code") == "" || hidden(page, "state") != "st8" || hidden(page, "iss") != "https://id.example.com/oauth2/default" {
				t.Errorf("form_post: %d %.400s", w.Code, page)
			}
			continue
		}
		loc, _ := url.Parse(w.Header().Get("Location"))
		want := "code"
		if mode == "bogus" {
			want = "error"
		}
		if w.Code != http.StatusFound || loc == nil || !strings.HasPrefix(loc.String(), webCB+"?") || loc.Query().Get(want) == "" || loc.Query().Get("state") != "st8" {
			t.Errorf("response_mode %q: %d %q", mode, w.Code, w.Header().Get("Location"))
		}
	}
}

// TestPageFormActionNamesTheClient: a page whose form answer redirects
// to the client (here consent) allows exactly that origin in its CSP
// form-action, beside 'self', since browsers apply form-action to the
// redirect after the submission too.
func TestPageFormActionNamesTheClient(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	q := url.Values{"client_id": {"web"}, "response_type": {"code"}, "scope": {"openid pay"}, "state": {"s"}, "redirect_uri": {webCB}}
	w := e.browse(http.MethodGet, "/oauth2/default/v1/authorize?"+q.Encode(), nil, e.session("u1"))
	if csp := w.Header().Get("Content-Security-Policy"); w.Code != 200 || !strings.Contains(csp, "; form-action 'self' https://app.test; ") {
		t.Fatalf("consent page: %d, CSP %q", w.Code, csp)
	}
}
