package ssf

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"runtime"
	"testing"
	"time"
)

// okta-like jti: "AT." and 43 base64url characters.
func benchJTI(i int) string {
	var b [32]byte
	binary.LittleEndian.PutUint64(b[:], uint64(i))
	binary.LittleEndian.PutUint64(b[8:], uint64(i)*0x9e3779b97f4a7c15)
	return "AT." + base64.RawURLEncoding.EncodeToString(b[:])
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkRevocationsMemory reports the heap a receiver spends on one
// million revoked jtis (B/entry), measured with runtime.MemStats.
func BenchmarkRevocationsMemory(b *testing.B) {
	const n = 1_000_000
	exp := time.Now().Add(time.Hour)
	for range b.N {
		before := heapInUse()
		r := NewRevocations()
		for i := range n {
			if err := r.RevokeToken(benchJTI(i), exp); err != nil {
				b.Fatal(err)
			}
		}
		after := heapInUse()
		if k, _ := r.Len(); k != n {
			b.Fatalf("%d entries", k)
		}
		b.ReportMetric(float64(after-before)/n, "B/entry")
		b.ReportMetric(float64(after-before)/(1<<20), "MiB/1M")
		runtime.KeepAlive(r)
	}
}

func BenchmarkRevoked(b *testing.B) {
	exp := time.Now().Add(time.Hour)
	iat := time.Now()
	full := NewRevocations()
	for i := range 1_000_000 {
		_ = full.RevokeToken(benchJTI(i), exp)
	}
	for i := range 1000 {
		_ = full.RevokeUser(benchJTI(i), "", iat.Add(-time.Hour))
		_ = full.RevokeClient(benchJTI(i), iat.Add(-time.Hour))
		_ = full.RevokeUserAt(benchJTI(i), benchJTI(i), benchJTI(i+1), iat.Add(-time.Hour))
	}
	hit, miss := benchJTI(123456), benchJTI(2_000_000)
	empty := NewRevocations()
	b.Run("empty", func(b *testing.B) {
		r := empty
		b.ReportAllocs()
		for range b.N {
			if r.Revoked(miss, "jane", "00u1", "0oa1", iat) {
				b.Fatal("revoked")
			}
		}
	})
	b.Run("1M/hit", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if !full.Revoked(hit, "jane", "00u1", "0oa1", iat) {
				b.Fatal("not revoked")
			}
		}
	})
	b.Run("1M/miss", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if full.Revoked(miss, "jane", "00u1", "0oa1", iat) {
				b.Fatal("revoked")
			}
		}
	})
	b.Run("1M/user-at-client-hit", func(b *testing.B) {
		b.ReportAllocs()
		sub, cid := benchJTI(7), benchJTI(8)
		for range b.N {
			if !full.Revoked(miss, sub, "", cid, iat.Add(-2*time.Hour)) {
				b.Fatal("not revoked")
			}
		}
	})
	b.Run("1M/miss/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if full.Revoked(miss, "jane", "00u1", "0oa1", iat) {
					b.Fatal("revoked")
				}
			}
		})
	})
}

func BenchmarkSignVerify(b *testing.B) {
	key := privateKey(b, "ec", "k1")
	v := verifier(publicSet(b, key), t0)
	ev := tokenEvent("AT.1", t0.Add(time.Hour))
	set, err := Sign(ev, key, testIss, testAud)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("sign/ES256", func(b *testing.B) {
		for range b.N {
			if _, err := Sign(ev, key, testIss, testAud); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verify/ES256", func(b *testing.B) {
		for range b.N {
			if _, err := v.Verify(set); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPoll is one poll of 100 SETs (signed on the way out) with the
// previous 100 acknowledged.
func BenchmarkPoll(b *testing.B) {
	f := newQueueFixture(b)
	f.q.Now = time.Now
	ctx := context.Background()
	_ = f.q.AddStream(ctx, "s1", testAud)
	var ack []string
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		for j := range 100 {
			ev := tokenEvent(benchJTI(i*100+j), time.Now().Add(time.Hour))
			ev.ID, ev.IssuedAt, ev.Time = "", time.Time{}, time.Now()
			if err := f.q.Publish(ctx, ev); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		resp, err := f.q.Poll(ctx, "s1", PollRequest{MaxEvents: intp(100), Ack: ack})
		if err != nil || len(resp.Sets) != 100 {
			b.Fatalf("%d SETs, %v", len(resp.Sets), err)
		}
		ack = ack[:0]
		for id := range resp.Sets {
			ack = append(ack, id)
		}
	}
}
