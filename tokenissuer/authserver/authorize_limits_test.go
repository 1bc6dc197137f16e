package authserver

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// The authorization endpoint takes state and nonce up to 2048 bytes
// and login_hint up to 256 (they are stored with the pending request
// and echoed back), one byte more is invalid_request, sent back to the
// client's redirect URI.
func TestAuthorizeParameterLengths(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	for _, tc := range []struct {
		param string
		limit int
	}{{"state", 2048}, {"nonce", 2048}, {"login_hint", 256}} {
		for _, n := range []int{tc.limit, tc.limit + 1} {
			q := url.Values{"client_id": {"web"}, "redirect_uri": {webCB}, "response_type": {"code"}, "scope": {"openid"},
				"state": {"s"}, tc.param: {strings.Repeat("a", n)}}
			w := e.browse(http.MethodGet, "/oauth2/default/v1/authorize?"+q.Encode(), nil)
			loc := w.Header().Get("Location")
			refused := strings.Contains(loc, "error=invalid_request") && strings.HasPrefix(loc, webCB)
			if refused != (n > tc.limit) || (!refused && w.Code != http.StatusOK) {
				t.Errorf("%s of %d bytes: %d %q, want refused=%v", tc.param, n, w.Code, loc, n > tc.limit)
			}
		}
	}
}
