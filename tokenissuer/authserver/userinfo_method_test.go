package authserver

import (
	"net/http"
	"testing"
)

// TestUserinfoMethods: userinfo takes GET and POST (OpenID Connect Core
// 5.3.1); anything else is 405 with Allow.
func TestUserinfoMethods(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	for _, path := range []string{"/oauth2/v1/userinfo", "/oauth2/default/v1/userinfo"} {
		w := e.browse(http.MethodPut, path, nil)
		if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, POST" {
			t.Errorf("PUT %s: %d Allow %q", path, w.Code, w.Header().Get("Allow"))
		}
	}
}
