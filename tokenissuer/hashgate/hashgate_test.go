package hashgate

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// running tracks how many fns run at once and the memory they hold.
type running struct {
	n, mem, peakN, peakMem atomic.Int64
}

func (r *running) hold(memKiB int64, release <-chan struct{}) func() {
	return func() {
		n, m := r.n.Add(1), r.mem.Add(memKiB)
		for p := r.peakN.Load(); n > p && !r.peakN.CompareAndSwap(p, n); p = r.peakN.Load() {
		}
		for p := r.peakMem.Load(); m > p && !r.peakMem.CompareAndSwap(p, m); p = r.peakMem.Load() {
		}
		<-release
		r.n.Add(-1)
		r.mem.Add(-memKiB)
	}
}

// runAll starts k checks, waits until want of them run, then releases
// them and returns the errors.
func runAll(t *testing.T, g *Gate, k int, memKiB int64, r *running, want int64) []error {
	t.Helper()
	release := make(chan struct{})
	errs := make([]error, k)
	var wg sync.WaitGroup
	for j := range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[j] = g.Run(context.Background(), memKiB, r.hold(memKiB, release))
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.n.Load() < want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	return errs
}

func TestConcurrencyBound(t *testing.T) {
	g := New(Config{Concurrency: 3, MemoryKiB: 1 << 30, Wait: 5 * time.Second, Queue: 100})
	var r running
	errs := runAll(t, g, 20, 0, &r, 3)
	for _, err := range errs {
		if err != nil {
			t.Fatalf("check refused: %v", err)
		}
	}
	if p := r.peakN.Load(); p != 3 {
		t.Fatalf("peak concurrency %d, want 3", p)
	}
}

func TestMemoryBound(t *testing.T) {
	// 64 MiB checks under a 256 MiB budget: four at once, whatever the
	// concurrency allows.
	g := New(Config{Concurrency: 16, MemoryKiB: 256 << 10, Wait: 5 * time.Second, Queue: 100})
	var r running
	errs := runAll(t, g, 12, 64<<10, &r, 4)
	for _, err := range errs {
		if err != nil {
			t.Fatalf("check refused: %v", err)
		}
	}
	if p := r.peakMem.Load(); p != 256<<10 {
		t.Fatalf("peak memory %d KiB, want 262144", p)
	}
}

func TestOversizedCheckRunsAlone(t *testing.T) {
	g := New(Config{Concurrency: 4, MemoryKiB: 1024})
	ran := false
	if err := g.Run(context.Background(), 1<<20, func() { ran = true }); err != nil || !ran {
		t.Fatalf("oversized check: ran=%v err=%v", ran, err)
	}
}

func TestQueueFullRefusesAtOnce(t *testing.T) {
	g := New(Config{Concurrency: 1, Wait: time.Minute, Queue: 2})
	block := make(chan struct{})
	started := make(chan struct{})
	go g.Run(context.Background(), 0, func() { close(started); <-block })
	<-started
	// Two wait in the queue...
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); _ = g.Run(context.Background(), 0, func() {}) }()
	}
	for g.waiting.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	// ...so a third is refused without waiting for the minute.
	start := time.Now()
	err := g.Run(context.Background(), 0, func() { t.Error("ran past a full queue") })
	if !errors.Is(err, ErrBusy) || time.Since(start) > time.Second {
		t.Fatalf("got %v after %v, want ErrBusy at once", err, time.Since(start))
	}
	close(block)
	wg.Wait()
	if w := g.waiting.Load(); w != 0 {
		t.Fatalf("%d still counted as waiting", w)
	}
}

func TestWaitDeadline(t *testing.T) {
	g := New(Config{Concurrency: 1, Wait: 50 * time.Millisecond})
	block := make(chan struct{})
	started := make(chan struct{})
	go g.Run(context.Background(), 0, func() { close(started); <-block })
	<-started
	err := g.Run(context.Background(), 0, func() { t.Error("ran without a slot") })
	close(block)
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("got %v, want ErrBusy", err)
	}
	// The slot comes back: the next check runs.
	if err := g.Run(context.Background(), 0, func() {}); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

func TestContextEnds(t *testing.T) {
	g := New(Config{Concurrency: 1, Wait: time.Minute})
	block := make(chan struct{})
	started := make(chan struct{})
	go g.Run(context.Background(), 0, func() { close(started); <-block })
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for g.waiting.Load() < 1 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	err := g.Run(ctx, 0, func() { t.Error("ran without a slot") })
	close(block)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestDefaults(t *testing.T) {
	g := New(Config{})
	if g.memKiB != DefaultMemoryKiB || g.wait != DefaultWait || g.queue != DefaultQueue {
		t.Fatalf("defaults: mem %d wait %v queue %d", g.memKiB, g.wait, g.queue)
	}
	if g.RetryAfter() < time.Second {
		t.Fatalf("RetryAfter %v", g.RetryAfter())
	}
}
