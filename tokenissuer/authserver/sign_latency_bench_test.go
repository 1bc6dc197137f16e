//go:build unix

package authserver_test

import (
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkGrantLatency is issue 10's fairness check in process: K
// client_credentials grants always in flight (a closed loop, like wrk
// -cK), reporting the median and p99 of one grant's latency, and p99
// against the fairness bound 3 x (K / cores) x the one-at-a-time
// median (p99/bound <= 1 passes; the K=1 row measures that median).
// The wrk figures of .ci/bench-issuance include HTTP and the client;
// this isolates the issuer, so it also runs where wrk cannot.
//
//	go test -run '^$' -bench GrantLatency -benchtime 2000x ./tokenissuer/authserver/
func BenchmarkGrantLatency(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256"} {
		var oneAtATime time.Duration
		for _, k := range []int{1, 2, 4, 8, 16} {
			b.Run(fmt.Sprintf("%s/inflight=%d", alg, k), func(b *testing.B) {
				iss := newBenchIssuer(b, alg)
				lat := make([]time.Duration, b.N)
				var next sync.Mutex
				i := 0
				var wg sync.WaitGroup
				b.ResetTimer()
				for range k {
					wg.Go(func() {
						serveOne := reusable(tokenPath, grantBody)
						for {
							next.Lock()
							j := i
							i++
							next.Unlock()
							if j >= b.N {
								return
							}
							start := time.Now()
							if code := serveOne(iss); code != http.StatusOK {
								b.Errorf("status %d", code)
								return
							}
							lat[j] = time.Since(start)
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				slices.Sort(lat)
				p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
				if k == 1 {
					oneAtATime = p50
				}
				b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
				if oneAtATime > 0 {
					bound := 3 * time.Duration(float64(oneAtATime)*max(1, float64(k)/float64(runtime.GOMAXPROCS(0))))
					b.ReportMetric(float64(p99)/float64(bound), "p99/bound")
				}
			})
		}
	}
}
