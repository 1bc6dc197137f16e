package oauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

const formType = "application/x-www-form-urlencoded"

func formRequest(method, target, contentType, body string) *http.Request {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	return r
}

func TestParseFormOK(t *testing.T) {
	for _, ct := range []string{formType, formType + "; charset=UTF-8", "Application/X-WWW-Form-Urlencoded"} {
		r := formRequest(http.MethodPost, "/token", ct, "grant_type=client_credentials&scope=read+write&client_id=a%20b%3Ac&empty=")
		got, e := ParseForm(httptest.NewRecorder(), r)
		if e != nil {
			t.Fatalf("Content-Type %q: %v", ct, e)
		}
		want := map[string]string{"grant_type": "client_credentials", "scope": "read write", "client_id": "a b:c", "empty": ""}
		if len(got) != len(want) {
			t.Fatalf("got %v, want %v", got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %q, want %q", k, got[k], v)
			}
		}
	}
	// An empty body is an empty form.
	got, e := ParseForm(httptest.NewRecorder(), formRequest(http.MethodPost, "/token", formType, ""))
	if e != nil || len(got) != 0 {
		t.Fatalf("empty body: %v %v", got, e)
	}
}

func TestParseFormMethod(t *testing.T) {
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodHead, http.MethodPatch} {
		_, e := ParseForm(httptest.NewRecorder(), formRequest(m, "/token", formType, "a=b"))
		if e == nil || e.Status != http.StatusMethodNotAllowed || e.Code != "invalid_request" {
			t.Fatalf("%s: %+v, want 405 invalid_request", m, e)
		}
		w := httptest.NewRecorder()
		WriteError(w, e)
		if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != http.MethodPost {
			t.Fatalf("%s answered %d with Allow %q, want 405 with Allow: POST", m, w.Code, w.Header().Get("Allow"))
		}
	}
}

// TestParseFormAssertionQuery: Okta's Go SDK sends its client_credentials
// request with a client assertion in the query string and no body; that
// one shape is read.
func TestParseFormAssertionQuery(t *testing.T) {
	q := "/token?grant_type=client_credentials&scope=ssf.read+ssf.manage&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=x.y.z"
	form, e := ParseForm(httptest.NewRecorder(), formRequest(http.MethodPost, q, formType, ""))
	if e != nil || form["grant_type"] != "client_credentials" || form["scope"] != "ssf.read ssf.manage" || form["client_assertion"] != "x.y.z" {
		t.Fatalf("form %v, error %v", form, e)
	}
}

func TestParseFormRejects(t *testing.T) {
	tests := []struct {
		name        string
		target, ct  string
		body        string
		status      int
		description string // substring
	}{
		{"json content type", "/token", "application/json", `{"grant_type":"client_credentials"}`, 400, "Content-Type"},
		{"no content type", "/token", "", "grant_type=client_credentials", 400, "Content-Type"},
		{"multipart", "/token", "multipart/form-data; boundary=x", "--x--", 400, "Content-Type"},
		{"bad content type", "/token", "application/x-www-form-urlencoded; =", "a=b", 400, "Content-Type"},
		{"query string", "/token?client_secret=s", formType, "grant_type=client_credentials", 400, "query string"},
		{"query string only", "/token?grant_type=client_credentials", formType, "", 400, "query string"},
		{"assertion query with a body", "/token?grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=x.y.z", formType, "scope=a", 400, "query string"},
		{"assertion query with a secret", "/token?grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=x.y.z&client_secret=s", formType, "", 400, "query string"},
		{"assertion query, another grant", "/token?grant_type=password&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=x.y.z&username=u&password=p", formType, "", 400, "query string"},
		{"assertion query, repeated", "/token?grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=x.y.z&scope=a&scope=b", formType, "", 400, "more than once"},
		{"repeated parameter", "/token", formType, "scope=read&grant_type=client_credentials&scope=write", 400, "'scope' parameter was included more than once"},
		{"repeated empty parameter", "/token", formType, "client_secret=&client_secret=", 400, "more than once"},
		{"bad percent encoding", "/token", formType, "client_secret=%zz", 400, "form encoding"},
		{"truncated percent encoding", "/token", formType, "client_secret=abc%2", 400, "form encoding"},
		{"semicolon separator", "/token", formType, "a=b;c=d", 400, "form encoding"},
		{"too large", "/token", formType, "a=" + strings.Repeat("x", MaxBodyBytes), 413, "too large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			form, e := ParseForm(httptest.NewRecorder(), formRequest(http.MethodPost, tc.target, tc.ct, tc.body))
			if e == nil {
				t.Fatalf("accepted: %v", form)
			}
			if form != nil {
				t.Errorf("form returned with an error: %v", form)
			}
			if e.Status != tc.status || e.Code != "invalid_request" {
				t.Fatalf("error %s/%d, want invalid_request/%d", e.Code, e.Status, tc.status)
			}
			if !strings.Contains(e.Description, tc.description) {
				t.Fatalf("description %q, want it to contain %q", e.Description, tc.description)
			}
		})
	}
}

func TestParseFormSizeLimitBoundary(t *testing.T) {
	body := "a=" + strings.Repeat("x", MaxBodyBytes-2)
	form, e := ParseForm(httptest.NewRecorder(), formRequest(http.MethodPost, "/token", formType, body))
	if e != nil {
		t.Fatalf("body of exactly MaxBodyBytes refused: %v", e)
	}
	if len(form["a"]) != MaxBodyBytes-2 {
		t.Fatalf("value length %d", len(form["a"]))
	}
}

func TestParseFormDoesNotMutateTemplates(t *testing.T) {
	before := *ErrInvalidRequest
	_, _ = ParseForm(httptest.NewRecorder(), formRequest(http.MethodPost, "/token", "text/plain", "a=b"))
	_, _ = ParseForm(httptest.NewRecorder(), formRequest(http.MethodPost, "/token", formType, "a=1&a=2"))
	if *ErrInvalidRequest != before {
		t.Fatalf("ErrInvalidRequest template changed: %+v", *ErrInvalidRequest)
	}
}

func decodeError(t *testing.T, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	var body map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, w.Body)
	}
	return body
}

func TestWriteError(t *testing.T) {
	w := httptest.NewRecorder()
	e := ErrInvalidClient.WithReason("wrong client secret for svc")
	WriteError(w, e)
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", w.Code)
	}
	if got := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, "Basic ") || !strings.Contains(got, "realm=") {
		t.Fatalf("WWW-Authenticate %q, want a Basic challenge with a realm", got)
	}
	if w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Pragma") != "no-cache" {
		t.Fatalf("Cache-Control %q Pragma %q, want no-store / no-cache", w.Header().Get("Cache-Control"), w.Header().Get("Pragma"))
	}
	body := decodeError(t, w)
	if body["error"] != "invalid_client" || body["error_description"] != ErrInvalidClient.Description {
		t.Fatalf("body %v", body)
	}
	if len(body) != 2 {
		t.Fatalf("body has extra members: %v", body)
	}
	if strings.Contains(w.Body.String(), "wrong client secret") {
		t.Fatal("the log-only reason was sent to the client")
	}
}

func TestWriteErrorNon401(t *testing.T) {
	w := httptest.NewRecorder()
	WriteError(w, ErrInvalidScope)
	if w.Code != http.StatusBadRequest {
		t.Fatalf("status %d", w.Code)
	}
	if w.Header().Get("WWW-Authenticate") != "" || w.Header().Get("Allow") != "" {
		t.Fatalf("unexpected challenge headers: %v", w.Header())
	}
	if w.Header().Get("Cache-Control") != "no-store" {
		t.Fatal("error response is cacheable")
	}
	if body := decodeError(t, w); body["error"] != "invalid_scope" {
		t.Fatalf("body %v", body)
	}

	// Without a description the member is omitted.
	w = httptest.NewRecorder()
	WriteError(w, ErrServer.WithDescription(""))
	body := decodeError(t, w)
	if w.Code != http.StatusInternalServerError || body["error"] != "server_error" {
		t.Fatalf("%d %v", w.Code, body)
	}
	if _, ok := body["error_description"]; ok {
		t.Fatalf("empty description was sent: %v", body)
	}
}

func TestWriteJSON(t *testing.T) {
	w := httptest.NewRecorder()
	WriteJSON(w, http.StatusOK, map[string]any{"access_token": "x", "expires_in": 3600})
	if w.Code != 200 || w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Pragma") != "no-cache" {
		t.Fatalf("%d %v", w.Code, w.Header())
	}
	var body map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body["access_token"] != "x" {
		t.Fatalf("%v %s", err, w.Body)
	}
}

func TestErrorCopies(t *testing.T) {
	d := ErrInvalidRequest.WithDescription("custom")
	r := d.WithReason("why")
	if ErrInvalidRequest.Description == "custom" || ErrInvalidRequest.Reason != "" || d.Reason != "" {
		t.Fatal("With* modified its receiver")
	}
	if r.Description != "custom" || r.Reason != "why" || r.Code != "invalid_request" || r.Status != 400 {
		t.Fatalf("copy %+v", r)
	}
	if r.Error() != "invalid_request: custom" || ErrServer.WithDescription("").Error() != "server_error" {
		t.Fatalf("Error() = %q", r.Error())
	}
	if strings.Contains(r.Error(), "why") {
		t.Fatal("Error() includes the reason")
	}
}

// TestFromStoreKeepsCause: a store failure's cause reaches the log
// (errors.Is through Unwrap) and never the client's answer.
func TestFromStoreKeepsCause(t *testing.T) {
	cause := fmt.Errorf("dial tcp 10.0.0.9:5432: %w", store.ErrUnavailable)
	e := FromStore(cause)
	if !errors.Is(e, store.ErrUnavailable) || !errors.Is(e, cause) || e.Status != http.StatusServiceUnavailable {
		t.Fatalf("FromStore(%v) = %+v, cause lost", cause, e)
	}
	if ErrTemporarilyUnavailable.Cause != nil {
		t.Fatal("FromStore modified the template")
	}
	w := httptest.NewRecorder()
	WriteError(w, e)
	if strings.Contains(w.Body.String(), "10.0.0.9") || strings.Contains(e.Error(), "10.0.0.9") {
		t.Fatalf("the cause was sent to the client: %s", w.Body)
	}
	other := errors.New("disk full")
	if c := ErrServer.WithCause(other); !errors.Is(c, other) || c.Reason != "disk full" || ErrServer.Cause != nil {
		t.Fatalf("WithCause: %+v", c)
	}
	if c := ErrServer.WithReason("why").WithCause(other); c.Reason != "why" {
		t.Fatalf("WithCause replaced the reason: %q", c.Reason)
	}
}
