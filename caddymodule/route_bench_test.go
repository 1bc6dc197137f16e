package caddymodule

import (
	"net/http"
	"testing"
)

// BenchmarkBearerRoute is a bearer request through the handler
// (ServeHTTP, as Caddy calls it): the same token each time, so the
// verified-token cache answers, as with a client reusing its token.
// Each request has its own replacer, as in Caddy; requests are made
// before the clock starts.
func BenchmarkBearerRoute(b *testing.B) {
	is := newGWIssuer(b)
	rt := newGW(b, is, &RequireToken{})
	tok := is.token(b, "")
	reqs := make([]*reqRepl, b.N+1)
	for i := range reqs {
		reqs[i] = benchRequest("Bearer " + tok)
	}
	if o := serve(rt, reqs[b.N]); o.status != http.StatusOK {
		b.Fatalf("%v", o)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if o := serve(rt, reqs[i]); o.status != http.StatusOK {
			b.Fatalf("%v", o)
		}
	}
}

func benchRequest(auth string, proof ...string) *reqRepl {
	hdr := []string{"Authorization", auth}
	for _, p := range proof {
		hdr = append(hdr, "DPoP", p)
	}
	r, repl := gwRequest("GET", "http://api.example.com/orders/1", hdr...)
	return &reqRepl{r, repl}
}
