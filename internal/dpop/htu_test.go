package dpop

import (
	"net/url"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

func TestHTU(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://api.example.com/a/b", "https://api.example.com/a/b"},
		{"HTTPS://API.EXAMPLE.COM/a/B", "https://api.example.com/a/B"},
		{"https://api.example.com:443/a", "https://api.example.com/a"},
		{"http://api.example.com:80/a", "http://api.example.com/a"},
		{"http://api.example.com:443/a", "http://api.example.com:443/a"},
		{"https://api.example.com:80/a", "https://api.example.com:80/a"},
		{"https://api.example.com:8443/a", "https://api.example.com:8443/a"},
		{"https://api.example.com", "https://api.example.com/"},
		{"https://api.example.com?q=1", "https://api.example.com/"},
		{"https://api.example.com/a?q=1#f", "https://api.example.com/a"},
		{"https://api.example.com/a#f", "https://api.example.com/a"},
		{"https://u:p@api.example.com/a", "https://api.example.com/a"},
		{"https://api.example.com/a%2fb", "https://api.example.com/a%2Fb"},
		{"https://api.example.com/%7e%41%2D", "https://api.example.com/~A-"},
		{"https://api.example.com/a%20b", "https://api.example.com/a%20b"},
		{"https://api.example.com/a/./b/../../c", "https://api.example.com/c"},
		{"https://api.example.com/../a", "https://api.example.com/a"},
		{"https://api.example.com/a/.", "https://api.example.com/a/"},
		{"https://api.example.com/a/..", "https://api.example.com/"},
		{"https://api.example.com/a/%2E%2E/b", "https://api.example.com/b"},
		{"https://api.example.com/a..b/.c", "https://api.example.com/a..b/.c"},
		{"https://api.example.com//a", "https://api.example.com//a"},
		{"https://[::1]:443/a", "https://[::1]/a"},
		{"https://[2001:DB8::1]:8443/a", "https://[2001:db8::1]:8443/a"},
	}
	for _, tc := range tests {
		u, err := url.Parse(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := HTU(u); got != tc.want {
			t.Errorf("HTU(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestParseHTURefuses(t *testing.T) {
	for _, s := range []string{"", "/a", "api.example.com/a", "ftp://api.example.com/", "https:opaque", "https:///a", "https://%zz/", "https://a b/", "mailto:x@example.com", "https://[zz]/"} {
		if got, ok := parseHTU(s); ok {
			t.Errorf("parseHTU(%q) = %q, accepted", s, got)
		}
	}
}

// TestATH uses RFC 9449 section 7.1's example (Figures 12 and 13).
func TestATH(t *testing.T) {
	if got := ATH("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"); got != "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo" {
		t.Fatalf("ATH = %s", got)
	}
}

// TestThumbprintRFC7638 is RFC 7638 section 3.1's example.
func TestThumbprintRFC7638(t *testing.T) {
	k, err := jwk.ParseKey([]byte(`{
		"kty": "RSA",
		"n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
		"e": "AQAB",
		"alg": "RS256",
		"kid": "2011-04-29"
	}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Thumbprint(k)
	if err != nil {
		t.Fatal(err)
	}
	if got != "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs" {
		t.Fatalf("Thumbprint = %s", got)
	}
}

// TestThumbprintRFC9449 is the key of RFC 9449 section 4.2's example
// proof and the jkt of its section 6.1 example token.
func TestThumbprintRFC9449(t *testing.T) {
	k, err := jwk.ParseKey([]byte(`{"kty":"EC","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA","crv":"P-256"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := Thumbprint(k); got != "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" {
		t.Fatalf("Thumbprint = %s", got)
	}
}
