package inlinehook

import (
	"bufio"
	"context"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

func newTestHook(t *testing.T, url string) *Hook {
	t.Helper()
	h, err := New(&Config{Name: "h", URL: url, Authorization: "Bearer s3cret", Timeout: 0})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func testRequest() *Request {
	return NewRequest("https://id.example.com/oauth2/default/v1/token", time.Now(),
		Data{Access: &AccessToken{Claims: map[string]any{"sub": "s"}}})
}

// TestSummaryRuneBoundary: a summary cut inside a multibyte character
// stays within its bound and holds no replacement character.
func TestSummaryRuneBoundary(t *testing.T) {
	s := (&ErrorObject{ErrorSummary: "a" + strings.Repeat("é", 2000)}).Summary()
	if len(s) > maxSummary || !utf8.ValidString(s) || strings.ContainsRune(s, utf8.RuneError) || !strings.HasPrefix(s, "aé") {
		t.Errorf("summary of %d bytes, valid %v, replacement %v", len(s), utf8.ValidString(s), strings.ContainsRune(s, utf8.RuneError))
	}
	if want := 1 + 2*((maxSummary-1)/2); len(s) != want {
		t.Errorf("summary of %d bytes, want %d (whole runes up to the bound)", len(s), want)
	}
	// Invalid UTF-8 is replaced first, and the bound still holds.
	if s := (&ErrorObject{ErrorSummary: strings.Repeat("\xff", 2000)}).Summary(); len(s) > maxSummary || !utf8.ValidString(s) {
		t.Errorf("invalid UTF-8: %d bytes, valid %v", len(s), utf8.ValidString(s))
	}
}

// TestHTTPHookNoProxy: a plain-http (loopback) hook is never sent to
// HTTP_PROXY, which would see the secret header.
func TestHTTPHookNoProxy(t *testing.T) {
	var proxied atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Add(1)
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{}`)
	}))
	defer proxy.Close()
	var called atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		called.Add(1)
		_, _ = io.WriteString(w, `{}`)
	}))
	defer hook.Close()
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("http_proxy", proxy.URL)
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	h := newTestHook(t, hook.URL+"/hook")
	if tr := h.client.Transport.(*http.Transport); tr.Proxy != nil {
		t.Error("an http hook's transport consults a proxy")
	}
	if _, res := h.Call(context.Background(), testRequest()); res.Failure != "" {
		t.Fatalf("call failed: %+v", res)
	}
	if proxied.Load() != 0 || called.Load() != 1 {
		t.Errorf("proxy saw %d requests, the hook %d", proxied.Load(), called.Load())
	}
	// An https hook keeps the environment's proxy (egress through it).
	hs := newTestHook(t, "https://hooks.example.com/x")
	if tr := hs.client.Transport.(*http.Transport); tr.Proxy == nil {
		t.Error("an https hook ignores the environment's proxy")
	}
}

// TestResponseHeadersBounded: an answer whose headers exceed
// MaxResponseHeaderBytes is refused like a body over 256 KB.
func TestResponseHeadersBounded(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				w := bufio.NewWriter(c)
				_, _ = w.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n")
				for i := 0; i < 200; i++ { // 200 headers of 1 KB: 200 KB
					_, _ = w.WriteString("X-Pad: " + strings.Repeat("p", 1024) + "\r\n")
				}
				_, _ = w.WriteString("\r\n{}")
				_ = w.Flush()
			}(c)
		}
	}()
	h := newTestHook(t, "http://"+l.Addr().String()+"/hook")
	resp, res := h.Call(context.Background(), testRequest())
	if resp != nil || res.Failure == "" || res.Executed() {
		t.Errorf("an answer with 200 KB of headers was read: %+v", res)
	}
}

// TestCallEncodeFailure: a request that cannot be encoded is no call:
// its own kind, no attempt, not executed.
func TestCallEncodeFailure(t *testing.T) {
	h := newTestHook(t, "http://127.0.0.1:1/hook")
	req := testRequest()
	req.Data.Access.Claims["bad"] = math.NaN()
	resp, res := h.Call(context.Background(), req)
	if resp != nil || res.Failure != FailEncode || res.Attempts != 0 || res.Executed() || res.Called() {
		t.Errorf("%+v", res)
	}
}
