package dpop

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
)

func TestMemoryReplayBounds(t *testing.T) {
	clk := testkit.NewClock(t0)
	m := NewMemoryReplay(3).WithClock(clk.Now)
	ctx := context.Background()
	seen := func(key string, until time.Time) (bool, error) { return m.Seen(ctx, key, until) }

	for i, d := range []time.Duration{time.Minute, 2 * time.Minute, 3 * time.Minute} {
		if r, err := seen(fmt.Sprint("k", i), t0.Add(d)); r || err != nil {
			t.Fatalf("k%d: %v, %v", i, r, err)
		}
	}
	if r, err := seen("k1", t0.Add(time.Hour)); !r || err != nil {
		t.Fatalf("k1 again: %v, %v; want replayed", r, err)
	}
	// Full: a new key is refused, not remembered in place of another.
	if r, err := seen("k3", t0.Add(time.Minute)); r || !errors.Is(err, ErrReplayFull) {
		t.Fatalf("k3 when full: %v, %v", r, err)
	}
	if m.Len() != 3 {
		t.Fatalf("Len = %d", m.Len())
	}
	for i := 0; i < 3; i++ {
		if r, _ := seen(fmt.Sprint("k", i), t0.Add(time.Hour)); !r {
			t.Fatalf("k%d forgotten while full", i)
		}
	}
	// k0 expires at its until (inclusive): its place is free.
	clk.Set(t0.Add(time.Minute))
	if r, err := seen("k3", t0.Add(time.Hour)); r || err != nil {
		t.Fatalf("k3 after k0 expired: %v, %v", r, err)
	}
	if r, err := seen("k0", t0.Add(time.Hour)); r || !errors.Is(err, ErrReplayFull) {
		t.Fatalf("k0 after expiry: %v, %v; want not replayed, full", r, err)
	}
	// All but k3 expire.
	clk.Set(t0.Add(3*time.Minute + time.Second))
	if r, err := seen("k0", t0.Add(4*time.Minute)); r || err != nil {
		t.Fatalf("k0 again: %v, %v", r, err)
	}
	if m.Len() != 2 {
		t.Fatalf("Len = %d, want 2 (k3, k0)", m.Len())
	}
	// A key whose until has passed is not remembered (it could not be
	// accepted anyway) and takes no place.
	if r, err := seen("old", clk.Now()); r || err != nil {
		t.Fatalf("old: %v, %v", r, err)
	}
	if m.Len() != 2 {
		t.Fatalf("Len = %d after an expired key", m.Len())
	}
	if n := NewMemoryReplay(0); n.max != 1 {
		t.Fatalf("max %d", n.max)
	}
}

// TestMemoryReplayNeverGrows: under a stream of keys with spread
// expiries it never holds more than max, and heap and map agree.
func TestMemoryReplayNeverGrows(t *testing.T) {
	clk := testkit.NewClock(t0)
	const max = 100
	m := NewMemoryReplay(max).WithClock(clk.Now)
	full, accepted := 0, 0
	for i := 0; i < 10000; i++ {
		clk.Advance(time.Second)
		_, err := m.Seen(context.Background(), fmt.Sprint(i), clk.Now().Add(time.Duration(i%300)*time.Second))
		if errors.Is(err, ErrReplayFull) {
			full++
		} else if err != nil {
			t.Fatal(err)
		} else {
			accepted++
		}
		if m.Len() > max || len(m.exp) != len(m.seen) {
			t.Fatalf("at %d: %d entries, %d expiries", i, m.Len(), len(m.exp))
		}
	}
	if full == 0 {
		t.Fatal("the cache never filled: the test does not test the bound")
	}
	if accepted < 10*max {
		t.Fatalf("only %d keys accepted: expired entries do not free their place", accepted)
	}
}

// TestMemoryReplayConcurrent: of many goroutines presenting one key,
// exactly one is first (run with -race).
func TestMemoryReplayConcurrent(t *testing.T) {
	m := NewMemoryReplay(10000)
	until := time.Now().Add(time.Hour)
	const goroutines, keys = 16, 200
	var first [keys]atomic.Int32
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < keys; k++ {
				r, err := m.Seen(context.Background(), fmt.Sprint(k), until)
				if err != nil {
					t.Error(err)
					return
				}
				if !r {
					first[k].Add(1)
				}
				_ = m.Len()
			}
		}()
	}
	wg.Wait()
	for k := range first {
		if n := first[k].Load(); n != 1 {
			t.Fatalf("key %d accepted %d times", k, n)
		}
	}
}

// TestVerifyConcurrentReplay: one proof presented at once by many
// requests is accepted once.
func TestVerifyConcurrentReplay(t *testing.T) {
	clk := testkit.NewClock(t0)
	v := verifier(t, clk, Options{Replay: NewMemoryReplay(100).WithClock(clk.Now)})
	proof := signers()["ES256"].proof(t, stdClaims())
	var ok atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := v.Verify(context.Background(), proof, reqMethod, reqURL, ""); err == nil {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("accepted %d times", ok.Load())
	}
}
