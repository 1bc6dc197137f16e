package caddymodule

import (
	"net/http"
	"testing"
)

// BenchmarkDPoPRoute is BenchmarkBearerRoute with a DPoP-bound token
// (cached too) and a fresh ES256 proof on each request, made before
// the clock starts: the proof's checks and replay entry are what a
// DPoP request adds.
func BenchmarkDPoPRoute(b *testing.B) {
	is := newGWIssuer(b)
	rt := newGW(b, is, &RequireToken{DPoPReplayCacheSize: 1 << 22})
	key := newClientKey(b)
	tok := is.token(b, key.jkt)
	reqs := make([]*reqRepl, b.N+1)
	for i := range reqs {
		reqs[i] = benchRequest("DPoP "+tok, key.proof(b, "GET", "http://api.example.com/orders/1", tok, nil))
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
