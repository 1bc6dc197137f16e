// Package hashgate bounds the password and secret hash checks that run
// at once, and orders the token signatures (authserver's signGate, sized
// to the cores only). An argon2id check holds its memory parameter (64 MiB by
// default) for its whole run and a bcrypt check a core for ~50-800 ms;
// without a bound, a few hundred unauthenticated sign-ins exhaust the
// memory of the process and every site it serves. Checks beyond the
// bound wait in a FIFO queue for a short deadline and are refused with
// ErrBusy after it, or at once when the queue is full, so the caller can
// answer 503 with Retry-After.
package hashgate

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// ErrBusy means no slot became free in time, or the queue was full.
var ErrBusy = errors.New("too many checks in progress")

// Defaults of Config.
const (
	DefaultMemoryKiB = 256 << 10 // 256 MiB: four default argon2id checks
	DefaultWait      = 2 * time.Second
	DefaultQueue     = 64
)

// minCostKiB is charged for a check that names less (bcrypt's state is a
// few KiB), so memory is never the bound that lets more checks run than
// the concurrency allows.
const minCostKiB = 64

// Config sizes a Gate. Zero fields take the defaults.
type Config struct {
	// Concurrency is the most checks running at once. Default: the
	// number of usable CPU cores (GOMAXPROCS).
	Concurrency int
	// MemoryKiB is the most memory the running checks may hold together,
	// in KiB. A single check larger than this still runs, alone.
	// Default 256 MiB.
	MemoryKiB int64
	// Wait is how long a check waits for a slot before ErrBusy.
	// Default 2s.
	Wait time.Duration
	// Queue is the most checks waiting at once; more are refused at
	// once. Default 64.
	Queue int
}

// Gate admits hash checks. The zero value is not usable; use New.
type Gate struct {
	cpu, mem *semaphore.Weighted
	memKiB   int64
	wait     time.Duration
	queue    int64
	waiting  atomic.Int64
}

// New returns a Gate sized by c.
func New(c Config) *Gate {
	if c.Concurrency <= 0 {
		c.Concurrency = runtime.GOMAXPROCS(0)
	}
	if c.MemoryKiB <= 0 {
		c.MemoryKiB = DefaultMemoryKiB
	}
	if c.Wait <= 0 {
		c.Wait = DefaultWait
	}
	if c.Queue <= 0 {
		c.Queue = DefaultQueue
	}
	return &Gate{
		cpu:    semaphore.NewWeighted(int64(c.Concurrency)),
		mem:    semaphore.NewWeighted(c.MemoryKiB),
		memKiB: c.MemoryKiB,
		wait:   c.Wait,
		queue:  int64(c.Queue),
	}
}

// Run runs fn, a check holding about memKiB of memory, once a slot is
// free. It returns ErrBusy (fn not run) when none is free within the
// gate's wait or the queue is full, and ctx's error when ctx ends first.
func (g *Gate) Run(ctx context.Context, memKiB int64, fn func()) error {
	cost := min(max(memKiB, minCostKiB), g.memKiB)
	// Fast path: a free slot needs no queue place.
	if g.cpu.TryAcquire(1) {
		if g.mem.TryAcquire(cost) {
			defer g.release(cost)
			fn()
			return nil
		}
		g.cpu.Release(1)
	}
	if g.waiting.Add(1) > g.queue {
		g.waiting.Add(-1)
		return ErrBusy
	}
	wctx, cancel := context.WithTimeout(ctx, g.wait)
	err := g.acquire(wctx, cost)
	cancel()
	g.waiting.Add(-1)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return ErrBusy
	}
	defer g.release(cost)
	fn()
	return nil
}

func (g *Gate) acquire(ctx context.Context, cost int64) error {
	if err := g.cpu.Acquire(ctx, 1); err != nil {
		return err
	}
	if err := g.mem.Acquire(ctx, cost); err != nil {
		g.cpu.Release(1)
		return err
	}
	return nil
}

func (g *Gate) release(cost int64) {
	g.mem.Release(cost)
	g.cpu.Release(1)
}

// RetryAfter is a fair Retry-After for an ErrBusy answer.
func (g *Gate) RetryAfter() time.Duration { return max(g.wait, time.Second) }
