package authserver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
)

// TestUnknownPathsInNamespaces: under the issuer's namespaces an
// unknown path is Okta's 404 E0000007 (an SDK must not read the next
// handler's empty 200 as a success); outside them the request is not
// the issuer's and passes on. Known endpoints answer as before.
func TestUnknownPathsInNamespaces(t *testing.T) {
	for _, base := range []string{"", "/idp"} {
		iss, _ := newTestIssuer(t, "https://example.com"+base, testkit.NewClock(time.Now()))
		notFound := map[string]string{
			base + "/oauth2/default/v1/nope":                               "Not found: Resource not found: " + base + "/oauth2/default/v1/nope (Path)",
			base + "/oauth2/nope/v1/token":                                 "Not found: Resource not found: nope (AuthorizationServer)",
			base + "/oauth2/nope":                                          "Not found: Resource not found: nope (AuthorizationServer)",
			base + "/oauth2/v1/nope":                                       "Not found: Resource not found: " + base + "/oauth2/v1/nope (Path)",
			base + "/oauth2":                                               "Not found: Resource not found: " + base + "/oauth2 (Path)",
			base + "/oauth2/default/v1/signin":                             "Not found: Resource not found: " + base + "/oauth2/default/v1/signin (Path)",
			base + "/oauth2/default/v1/token/":                             "Not found: Resource not found: " + base + "/oauth2/default/v1/token/ (Path)",
			base + "/api/v1/authn":                                         "Not found: Resource not found: " + base + "/api/v1/authn (Path)",
			base + "/api/v1/authn":                                         "Not found: Resource not found: " + base + "/api/v1/authn (Path)",
			base + "/.well-known/openid-configuration/extra":               "Not found: Resource not found: " + base + "/.well-known/openid-configuration/extra (Path)",
			"/.well-known/oauth-authorization-server" + base + "/oauth2/x": "Not found: Resource not found: x (AuthorizationServer)",
		}
		errorID := regexp.MustCompile(`^oae[A-Za-z0-9_-]{22}$`)
		seen := map[string]bool{}
		for path, summary := range notFound {
			for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
				rec := httptest.NewRecorder()
				if !iss.ServeHTTP(rec, httptest.NewRequest(m, path, nil)) {
					t.Fatalf("%s %s was passed on; it is in the issuer's namespace", m, path)
				}
				var body map[string]any
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
					t.Fatalf("%s %s: %d %q", m, path, rec.Code, rec.Body)
				}
				id, _ := body["errorId"].(string)
				causes, ok := body["errorCauses"].([]any)
				if rec.Code != 404 || body["errorCode"] != "E0000007" || body["errorLink"] != "E0000007" || body["errorSummary"] != summary ||
					!errorID.MatchString(id) || seen[id] || !ok || len(causes) != 0 || len(body) != 5 {
					t.Fatalf("%s %s: %d %v, want 404 E0000007 %q", m, path, rec.Code, body, summary)
				}
				seen[id] = true
				if rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("Cache-Control") != "no-store" {
					t.Fatalf("%s %s: headers %v", m, path, rec.Header())
				}
			}
		}
		for _, path := range []string{"/", "/app", base + "/oauth2x", base + "/api/v2/x", base + "/api/v1x", base + "/.well-known/security.txt", "/.well-known/oauth-authorization-server/other"} {
			if base == "" && path == "/.well-known/oauth-authorization-server/other" {
				continue // with the issuer at the root, that is its RFC 8414 space
			}
			if iss.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, path, nil)) {
				t.Errorf("base %q: %s was handled; it is not the issuer's", base, path)
			}
		}
		for _, path := range []string{base + "/oauth2/default/v1/keys", base + "/oauth2/v1/keys", base + "/.well-known/openid-configuration", base + "/oauth2/default/.well-known/oauth-authorization-server"} {
			rec := httptest.NewRecorder()
			if !iss.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil)) || rec.Code != 200 {
				t.Errorf("%s: %d", path, rec.Code)
			}
		}
	}
	// A long path is echoed bounded and as valid UTF-8.
	iss, _ := newTestIssuer(t, "https://example.com", testkit.NewClock(time.Now()))
	rec := httptest.NewRecorder()
	iss.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/"+strings.Repeat("a", 5000)+"%ff", nil))
	var body map[string]string
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	if rec.Code != 404 || len(body["errorSummary"]) > 400 {
		t.Fatalf("long path: %d, summary of %d bytes", rec.Code, len(body["errorSummary"]))
	}
}

// TestEchoBound: up to maxEchoedPath bytes of a path are repeated as
// they are; longer ones are cut there and marked; invalid UTF-8 is
// replaced.
func TestEchoBound(t *testing.T) {
	exact := strings.Repeat("a", maxEchoedPath)
	if got := echo(exact); got != exact {
		t.Fatalf("a path of exactly the limit was changed: %d bytes", len(got))
	}
	if got := echo(exact + "b"); got != exact+"..." {
		t.Fatalf("one byte over the limit: %q", got[len(got)-8:])
	}
	if got := echo("a\xffb"); got != "a\uFFFDb" {
		t.Fatalf("invalid UTF-8: %q", got)
	}
}
