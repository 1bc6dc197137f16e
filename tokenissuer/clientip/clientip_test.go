package clientip

import (
	"net/http/httptest"
	"testing"
)

func TestFrom(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.1:4321"
	r.Header.Set("X-Forwarded-For", "203.0.113.9")
	if got := From(r); got != "10.0.0.1" {
		t.Fatalf("without With: %q, want the peer's host (never a forwarded header)", got)
	}
	r = r.WithContext(With(r.Context(), "198.51.100.7"))
	if got := From(r); got != "198.51.100.7" {
		t.Fatalf("with With: %q", got)
	}
	r.RemoteAddr = "not-an-address"
	r = r.WithContext(With(r.Context(), ""))
	if got := From(r); got != "not-an-address" {
		t.Fatalf("unparsable peer: %q", got)
	}
}

func TestKey(t *testing.T) {
	for _, tc := range []struct{ ip, want string }{
		{"198.51.100.7", "198.51.100.7"},
		{"2001:db8:1:2::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{"::ffff:198.51.100.7", "198.51.100.7"}, // an IPv4-mapped address is that IPv4 host
		{"not-an-ip", "not-an-ip"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r = r.WithContext(With(r.Context(), tc.ip))
		if got := Key(r); got != tc.want {
			t.Errorf("Key(%s) = %q, want %q", tc.ip, got, tc.want)
		}
	}
}
