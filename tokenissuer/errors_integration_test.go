package tokenissuer_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"
)

// TestBadInputs sends every kind of bad request the token, introspection
// and revocation endpoints must turn away: each gets the right RFC 6749
// error and status, and nothing is issued.
func TestBadInputs(t *testing.T) {
	e := newEnv(t)
	cc := func(as string) url.Values { return url.Values{"grant_type": {"client_credentials"}} }
	withScope := func(s string) url.Values {
		v := cc("")
		v.Set("scope", s)
		return v
	}
	// A valid token of another client, for the revocation case.
	other := clientcredentials.Config{ClientID: otherID, ClientSecret: otherSec, TokenURL: base + "/oauth2/es/v1/token", Scopes: []string{"read"}}
	otherTok, err := other.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	basic := basicAuth(basicID, basicSec)
	const tokenPath = "/oauth2/default/v1/token"
	cases := []struct {
		name    string
		method  string
		path    string
		ctype   string
		body    string
		mod     func(*http.Request)
		status  int
		errCode string
		desc    string // substring of error_description
	}{
		{name: "GET on token endpoint", method: "GET", path: tokenPath, mod: basic, status: 405, errCode: "invalid_request"},
		{name: "JSON body", path: tokenPath, ctype: "application/json", body: `{"grant_type":"client_credentials"}`, mod: basic, status: 400, errCode: "invalid_request", desc: "Content-Type"},
		{name: "malformed JSON as form", path: tokenPath, ctype: "application/json", body: `{"grant_type":`, mod: basic, status: 400, errCode: "invalid_request"},
		{name: "no content type", path: tokenPath, ctype: "-", body: "grant_type=client_credentials", mod: basic, status: 400, errCode: "invalid_request"},
		{name: "parameters in query", path: tokenPath + "?client_secret=x", body: "grant_type=client_credentials", mod: basic, status: 400, errCode: "invalid_request", desc: "query"},
		{name: "repeated parameter", path: tokenPath, body: "grant_type=client_credentials&scope=billing:read&scope=admin", mod: basic, status: 400, errCode: "invalid_request", desc: "more than once"},
		{name: "oversized body", path: tokenPath, body: "grant_type=client_credentials&pad=" + strings.Repeat("a", 70<<10), mod: basic, status: 413, errCode: "invalid_request"},
		{name: "malformed form", path: tokenPath, body: "grant_type=%zz", mod: basic, status: 400, errCode: "invalid_request"},
		{name: "missing grant_type", path: tokenPath, body: "scope=billing:read", mod: basic, status: 400, errCode: "invalid_request", desc: "grant_type"},
		{name: "no credentials", path: tokenPath, body: cc("").Encode(), status: 401, errCode: "invalid_client"},
		{name: "unknown client", path: tokenPath, body: cc("").Encode(), mod: basicAuth("nobody", "x"), status: 401, errCode: "invalid_client"},
		{name: "wrong secret", path: tokenPath, body: cc("").Encode(), mod: basicAuth(basicID, "wrong"), status: 401, errCode: "invalid_client"},
		{name: "secret_post client using basic", path: tokenPath, body: cc("").Encode(), mod: basicAuth(postID, postSec), status: 401, errCode: "invalid_client"},
		{name: "malformed basic header", path: tokenPath, body: cc("").Encode(), mod: func(r *http.Request) { r.Header.Set("Authorization", "Basic !!!") }, status: 401, errCode: "invalid_client"},
		{name: "credentials in two places", path: tokenPath, body: cc("").Encode() + "&client_id=" + basicID + "&client_secret=" + basicSec, mod: basic, status: 400, errCode: "invalid_request", desc: "Cannot supply multiple client credentials"},
		{name: "two Authorization headers", path: tokenPath, body: cc("").Encode(), mod: func(r *http.Request) {
			basic(r)
			r.Header.Add("Authorization", r.Header.Get("Authorization"))
		}, status: 400, errCode: "invalid_request"},
		{name: "unsupported grant", path: tokenPath, body: "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=x", mod: basic, status: 400, errCode: "unsupported_grant_type"},
		{name: "password grant not enabled for the client", path: tokenPath, body: "grant_type=password&username=a&password=b", mod: basic, status: 400, errCode: "unauthorized_client", desc: "Configured grant types: [client_credentials]"},
		{name: "openid scope without a user", path: tokenPath, body: withScope("openid billing:read").Encode(), mod: basic, status: 400, errCode: "invalid_scope", desc: "not allowed for the client_credentials grant"},
		{name: "org server: client_credentials names Okta API scopes", path: "/oauth2/v1/token", body: cc("").Encode(), mod: basic, status: 400, errCode: "invalid_scope", desc: "No scopes were requested."},
		{name: "org server: Okta API scope not granted", path: "/oauth2/v1/token", body: "grant_type=client_credentials&scope=ssf.read", mod: basic, status: 400, errCode: "invalid_scope", desc: "not allowed for the client_credentials grant: ssf.read"},
		{name: "unknown scope", path: tokenPath, body: withScope("billing:read nonsense").Encode(), mod: basic, status: 400, errCode: "invalid_scope", desc: "One or more scopes are not configured"},
		{name: "malformed scope", path: tokenPath, body: withScope(`bad"scope`).Encode(), mod: basic, status: 400, errCode: "invalid_scope"},
		{name: "scope no rule allows", path: tokenPath, body: withScope("admin").Encode(), mod: basic, status: 400, errCode: "access_denied", desc: "Policy evaluation failed"},
		{name: "allowed plus disallowed scope", path: tokenPath, body: withScope("billing:read admin").Encode(), mod: basic, status: 400, errCode: "access_denied"},
		{name: "client no policy covers", path: tokenPath, body: withScope("billing:read").Encode(), mod: basicAuth(otherID, otherSec), status: 400, errCode: "access_denied", desc: "Policy evaluation failed"},
		{name: "no scope and no default", path: "/oauth2/es/v1/token", body: cc("").Encode(), mod: basic, status: 400, errCode: "invalid_scope", desc: "No scopes were requested."},
		{name: "bad assertion type", path: tokenPath, body: cc("").Encode() + "&client_assertion_type=x&client_assertion=a.b.c", status: 401, errCode: "invalid_client"},
		{name: "garbage assertion", path: tokenPath, body: cc("").Encode() + "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=garbage", status: 401, errCode: "invalid_client"},
		{name: "assertion for another audience", path: tokenPath, body: cc("").Encode() + "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=" + e.assertion("https://elsewhere.example/token", "aud-1", time.Now().Add(time.Minute)), status: 401, errCode: "invalid_client"},
		{name: "expired assertion", path: tokenPath, body: cc("").Encode() + "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=" + e.assertion(base+tokenPath, "exp-1", time.Now().Add(-time.Hour)), status: 401, errCode: "invalid_client"},
		{name: "introspect without token", path: "/oauth2/default/v1/introspect", body: "", mod: basic, status: 400, errCode: "invalid_request", desc: "token"},
		{name: "introspect unauthenticated", path: "/oauth2/default/v1/introspect", body: "token=abc", status: 401, errCode: "invalid_client"},
		{name: "revoke unauthenticated", path: "/oauth2/es/v1/revoke", body: "token=" + otherTok.AccessToken, status: 401, errCode: "invalid_client"},
		{name: "revoke another client's token", path: "/oauth2/es/v1/revoke", body: "token=" + otherTok.AccessToken, mod: basic, status: 400, errCode: "invalid_request", desc: "not issued to the requesting client"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := c.method
			if m == "" {
				m = http.MethodPost
			}
			req, _ := http.NewRequest(m, base+c.path, strings.NewReader(c.body))
			switch c.ctype {
			case "":
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			case "-":
			default:
				req.Header.Set("Content-Type", c.ctype)
			}
			if c.mod != nil {
				c.mod(req)
			}
			res, body := do(t, req)
			if res.StatusCode != c.status || body["error"] != c.errCode {
				t.Fatalf("got %d %v, want %d %s", res.StatusCode, body, c.status, c.errCode)
			}
			if d, _ := body["error_description"].(string); !strings.Contains(d, c.desc) {
				t.Errorf("error_description %q does not contain %q", d, c.desc)
			}
			if _, ok := body["access_token"]; ok {
				t.Error("an access token was issued")
			}
			if res.StatusCode == 401 && res.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate (RFC 6749 section 5.2)")
			}
			if res.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q", res.Header.Get("Cache-Control"))
			}
		})
	}

	// The other client's token survived the refused revocation.
	res, body := post(t, "/oauth2/es/v1/introspect", url.Values{"token": {otherTok.AccessToken}}, basic)
	if res.StatusCode != 200 || body["active"] != true {
		t.Fatalf("token revoked by a client it was not issued to: %d %v", res.StatusCode, body)
	}
	// Requests outside the issuer's paths reach the next handler.
	res, _ = doRaw(t, mustReq(http.MethodGet, base+"/somewhere/else"))
	if res.StatusCode != 418 {
		t.Fatalf("non-issuer path: status %d, want the next handler's 418", res.StatusCode)
	}
	// Unknown paths in the issuer's namespaces are Okta's 404, not the
	// next handler's answer.
	for path, what := range map[string]string{
		"/oauth2/nope/v1/token":   "nope (AuthorizationServer)",
		"/oauth2/default/v1/nope": "/oauth2/default/v1/nope (Path)",
		"/api/v1/authn":           "/api/v1/authn (Path)",
		"/.well-known/oauth-authorization-server/oauth2/nope": "nope (AuthorizationServer)",
	} {
		req := mustReq(http.MethodPost, base+path)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		basic(req)
		res, body := do(t, req)
		if res.StatusCode != 404 || body["errorCode"] != "E0000007" || body["errorSummary"] != "Not found: Resource not found: "+what ||
			body["errorLink"] != "E0000007" || body["errorId"] == nil || res.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %v, want Okta's 404 E0000007", path, res.StatusCode, body)
		}
	}
}

func doRaw(t *testing.T, req *http.Request) (*http.Response, error) {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res, nil
}
