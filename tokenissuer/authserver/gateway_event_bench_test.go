package authserver

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/gatewaylog"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/embedded"
)

// BenchmarkGatewayDecision is the CPU one require_token decision costs
// when the route logs every decision: "build" turns it into a LogEvent
// (on the request's goroutine), "embedded" also stores it as the sink
// does, in batches of sinkBatch in one bbolt transaction each. Compare
// with the CPU of a request through Caddy (BENCHMARKS.md, "Gateway").
func BenchmarkGatewayDecision(b *testing.B) {
	iss, err := New(Options{BaseURL: "http://issuer.test", Servers: map[string]*ServerConfig{"default": {}}})
	if err != nil {
		b.Fatal(err)
	}
	d := gatewaylog.Decision{
		Time: time.Now(), Allowed: true, Route: "bench", Method: "GET", Host: "127.0.0.1:9284", Path: "/",
		ClientIP: "127.0.0.1", UserAgent: "wrk", RequestID: "3c1b0a54-8d52-4c1e-9f7a-2b2a4c1d9e10",
		Issuer: "http://issuer.test/oauth2/default", Subject: "bench-client", ClientID: "bench-client",
		JTI: "AT.Yc2v3m1QeF0k9XyY4sV2iA", Scopes: []string{"bench:read"},
	}
	b.Run("build", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = iss.gatewayEvent(&d)
		}
	})
	b.Run("embedded", func(b *testing.B) {
		db, err := embedded.Open(filepath.Join(b.TempDir(), "db"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = db.Close() })
		buf := make([]store.LogEvent, 0, sinkBatch)
		b.ReportAllocs()
		for b.Loop() {
			d.Time = time.Now()
			buf = append(buf, iss.gatewayEvent(&d))
			if len(buf) == sinkBatch {
				if err := db.AppendEvents(context.Background(), buf); err != nil {
					b.Fatal(err)
				}
				buf = buf[:0]
			}
		}
	})
}

// BenchmarkGatewayAcceptance is what an accepted request of a route
// logging every decision costs the issuer's side, from parallel
// requests with one token (summarised: gateway_summary.go).
func BenchmarkGatewayAcceptance(b *testing.B) {
	el := &memEventLog{}
	iss, err := New(Options{BaseURL: "http://issuer.test", Servers: map[string]*ServerConfig{"default": {}}, EventLog: el})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(iss.StopEvents)
	d := gatewaylog.Decision{Allowed: true, Route: "bench", Method: "GET", Host: "127.0.0.1:9284", Path: "/",
		ClientIP: "127.0.0.1", UserAgent: "wrk", RequestID: "3c1b0a54-8d52-4c1e-9f7a-2b2a4c1d9e10",
		Issuer: "http://issuer.test/oauth2/default", Subject: "bench-client", ClientID: "bench-client", JTI: "AT.Yc2v3m1QeF0k9XyY4sV2iA"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			d := d
			d.Time = time.Now()
			iss.RecordGatewayDecision(d)
		}
	})
}
