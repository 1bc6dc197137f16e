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
