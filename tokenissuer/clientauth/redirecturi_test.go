package clientauth

import (
	"strings"
	"testing"
)

// TestRedirectURIRules: finding 16, http redirect URIs to any host were
// accepted although only loopback may use http. Each bad URI fails
// Prepare with an error naming the client, the list and the URI, in
// redirect_uris and post_logout_redirect_uris alike.
func TestRedirectURIRules(t *testing.T) {
	good := []string{
		"https://app.example.com/callback",
		"https://app.example.com:8443/cb?x=1",
		"http://localhost:8083/callback",
		"http://LOCALHOST/cb",
		"http://127.0.0.1:8400/callback",
		"http://127.8.9.10/cb",
		"http://[::1]:8400/cb",
		"com.example.app:/oauth2redirect",
		"com.example.app://callback",
	}
	bad := map[string]string{
		"http://app.example.com/callback":  "not loopback",
		"http://10.0.0.5/cb":               "not loopback",
		"http://192.168.1.1/cb":            "not loopback",
		"http://[::ffff:10.0.0.1]/cb":      "not loopback",
		"http://localhost.evil.example/cb": "not loopback",
		"http://127.0.0.1.nip.io/cb":       "not loopback",
		"http:///cb":                       "with a host",
		"http:localhost/cb":                "with a host",
		"https:///cb":                      "https URL with a host",
		"https:app.example.com":            "https URL with a host",
		"https://app.example.com/cb#frag":  "fragment",
		"https://app.example.com/cb#":      "fragment",
		"com.example.app:callback":         "com.example.app:/path",
		"myapp:/cb":                        "private-use scheme",
		"javascript:alert(1)":              "private-use scheme",
		"/relative/cb":                     "private-use scheme",
		"":                                 "private-use scheme",
		"https://app.example.com/%zz":      "is not a URI",
	}
	for _, u := range good {
		for _, field := range []string{"redirect_uris", "post_logout_redirect_uris"} {
			c := redirectClient(field, u)
			if err := c.Prepare(); err != nil {
				t.Errorf("%s %q refused: %v", field, u, err)
			}
		}
	}
	for u, want := range bad {
		for _, field := range []string{"redirect_uris", "post_logout_redirect_uris"} {
			c := redirectClient(field, u)
			err := c.Prepare()
			if err == nil {
				t.Errorf("%s %q accepted", field, u)
				continue
			}
			prefix := `client "spa": ` + field + `: "` + u + `" `
			if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), want) {
				t.Errorf("%s %q: error %q, want it to start with %q and contain %q", field, u, err, prefix, want)
			}
		}
	}
}

func redirectClient(field, u string) *Client {
	c := &Client{ID: "spa", AuthMethod: None, GrantTypes: []string{"authorization_code"}}
	if field == "redirect_uris" {
		c.RedirectURIs = []string{"https://ok.example.com/cb", u}
	} else {
		c.PostLogoutRedirectURIs = []string{"https://ok.example.com/bye", u}
	}
	return c
}
