package validator_test

import (
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/apiaccess/caddy-apiaccess/caddymodule/validator"
)

func TestCheck(t *testing.T) {
	ks := inProcess(getKeys().set)
	iss := func(url string, mods ...func(*validator.Issuer)) *validator.Issuer {
		is := &validator.Issuer{URL: url, Audiences: []string{audience}, Algorithms: []jwa.SignatureAlgorithm{jwa.RS256}, Keys: ks}
		for _, f := range mods {
			f(is)
		}
		return is
	}
	intro := &validator.Introspector{Endpoint: "https://as.example.com/introspect"}
	cases := []struct {
		name string
		cfg  validator.Config
		err  string // "" valid
	}{
		{"valid", validator.Config{Issuers: []*validator.Issuer{iss(issURL)}}, ""},
		{"valid, two issuers", validator.Config{Issuers: []*validator.Issuer{iss(issURL), iss(otherURL)}}, ""},
		{"valid, every allowed alg", validator.Config{Issuers: []*validator.Issuer{iss(issURL, func(i *validator.Issuer) { i.Algorithms = validator.Allowed })}}, ""},
		{"valid, scopes", validator.Config{Issuers: []*validator.Issuer{iss(issURL)}, Scopes: []string{"read", "a:b"}, AnyScope: []string{"x"}}, ""},
		{"valid, introspection without keys", validator.Config{Issuers: []*validator.Issuer{iss(issURL, func(i *validator.Issuer) { i.Keys = nil })}, Introspection: intro}, ""},
		{"no issuer", validator.Config{}, "issuer"},
		{"empty issuer URL", validator.Config{Issuers: []*validator.Issuer{iss("")}}, "URL"},
		{"HS256", validator.Config{Issuers: []*validator.Issuer{iss(issURL, func(i *validator.Issuer) { i.Algorithms = []jwa.SignatureAlgorithm{jwa.RS256, jwa.HS256} })}}, "HS256"},
		{"none", validator.Config{Issuers: []*validator.Issuer{iss(issURL, func(i *validator.Issuer) { i.Algorithms = []jwa.SignatureAlgorithm{jwa.NoSignature} })}}, "none"},
		{"unknown alg", validator.Config{Issuers: []*validator.Issuer{iss(issURL, func(i *validator.Issuer) { i.Algorithms = []jwa.SignatureAlgorithm{"rs256"} })}}, "rs256"},
		{"no algorithms", validator.Config{Issuers: []*validator.Issuer{iss(issURL, func(i *validator.Issuer) { i.Algorithms = nil })}}, "algorithm"},
		{"missing audience", validator.Config{Issuers: []*validator.Issuer{iss(issURL, func(i *validator.Issuer) { i.Audiences = nil })}}, "audience"},
		{"duplicate issuer", validator.Config{Issuers: []*validator.Issuer{iss(issURL), iss(issURL)}}, "twice"},
		{"no key source", validator.Config{Issuers: []*validator.Issuer{iss(issURL, func(i *validator.Issuer) { i.Keys = nil })}}, "key source"},
		{"introspection with 2 issuers", validator.Config{Issuers: []*validator.Issuer{iss(issURL), iss(otherURL)}, Introspection: intro}, "exactly one"},
		{"empty scope", validator.Config{Issuers: []*validator.Issuer{iss(issURL)}, Scopes: []string{""}}, "scope"},
		{"scope with a space", validator.Config{Issuers: []*validator.Issuer{iss(issURL)}, Scopes: []string{"read write"}}, "scope"},
		{"scope with a quote", validator.Config{Issuers: []*validator.Issuer{iss(issURL)}, AnyScope: []string{`a"b`}}, "scope"},
		{"scope with a backslash", validator.Config{Issuers: []*validator.Issuer{iss(issURL)}, AnyScope: []string{`a\b`}}, "scope"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := validator.Check(c.cfg)
			switch {
			case c.err == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case c.err != "" && err == nil:
				t.Fatalf("accepted; want an error mentioning %q", c.err)
			case c.err != "" && !strings.Contains(err.Error(), c.err):
				t.Fatalf("error %q does not mention %q", err, c.err)
			}
		})
	}
}

// TestAllowedHasNoSymmetricAlg: the allow-list and the defaults never
// contain HMAC or none.
func TestAllowedHasNoSymmetricAlg(t *testing.T) {
	for _, list := range [][]jwa.SignatureAlgorithm{validator.Allowed, validator.DefaultAlgorithms} {
		for _, a := range list {
			if strings.HasPrefix(string(a), "HS") || a == jwa.NoSignature || a == "" {
				t.Fatalf("%q in an allow-list", a)
			}
		}
	}
	for _, a := range validator.DefaultAlgorithms {
		found := false
		for _, b := range validator.Allowed {
			found = found || a == b
		}
		if !found {
			t.Fatalf("default %s not in Allowed", a)
		}
	}
}
