package tokenissuer

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"

	"github.com/apiaccess/caddy-apiaccess/internal/caddyargs"
	"github.com/apiaccess/caddy-apiaccess/internal/duration"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/hashgate"
)

// PasswordChecks bounds the password hash checks that run at once, for
// the whole app: every user password checked by the sign-in page and
// the password grant (and client secrets). An argon2id check holds its
// memory parameter for its whole run, so without a bound a burst of
// unauthenticated sign-ins can exhaust the memory of the process.
// Checks beyond the bound wait in a queue; when the queue is full, or a
// check has waited too long, the request is answered 503 with
// Retry-After (the password grant with `temporarily_unavailable`).
type PasswordChecks struct {
	// Concurrency is the most checks running at once. Default: the
	// number of CPU cores Go uses (GOMAXPROCS).
	Concurrency int `json:"concurrency,omitempty"`

	// Memory is the most memory, in bytes, the running checks may hold
	// together. An argon2id check holds its `m` parameter (64 MiB for
	// the hashes `caddy apiaccess-hash-password` makes), a bcrypt check
	// almost nothing. A single check larger than this still runs, alone.
	// At least 1 MiB. Default: 256 MiB. The Caddyfile takes a size such
	// as `256MiB`.
	Memory int64 `json:"memory,omitempty"`

	// Queue is the most checks waiting for a slot; more are refused at
	// once. Default: 64.
	Queue int `json:"queue,omitempty"`

	// Wait is how long a check waits for a slot before it is refused.
	// Default: 2s.
	Wait duration.Duration `json:"wait,omitempty"`
}

// hashGate builds the gate p describes; nil p means the defaults.
func (p *PasswordChecks) hashGate() (*hashgate.Gate, error) {
	if p == nil {
		return hashgate.New(hashgate.Config{}), nil
	}
	switch {
	case p.Concurrency < 0:
		return nil, fmt.Errorf("password_checks: concurrency must be at least 1")
	case p.Queue < 0:
		return nil, fmt.Errorf("password_checks: queue must be at least 1")
	case p.Wait < 0:
		return nil, fmt.Errorf("password_checks: wait must be positive")
	case p.Memory < 0 || (p.Memory > 0 && p.Memory < 1<<20):
		return nil, fmt.Errorf("password_checks: memory must be at least 1MiB")
	}
	return hashgate.New(hashgate.Config{Concurrency: p.Concurrency, MemoryKiB: p.Memory >> 10, Queue: p.Queue, Wait: time.Duration(p.Wait)}), nil
}

// parsePasswordChecks reads
//
//	password_checks {
//		concurrency <n>
//		memory <size>
//		queue <n>
//		wait <duration>
//	}
func parsePasswordChecks(d *caddyfile.Dispenser) (*PasswordChecks, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	p := &PasswordChecks{}
	once := caddyargs.Once{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "concurrency":
			err = positiveIntArg(d, once, &p.Concurrency)
		case "queue":
			err = positiveIntArg(d, once, &p.Queue)
		case "wait":
			err = caddyargs.Duration(d, once, &p.Wait)
		case "memory":
			var s string
			if err = caddyargs.One(d, once, &s); err == nil {
				n, perr := humanize.ParseBytes(s)
				switch {
				case perr != nil:
					err = d.Errf("memory %q: not a size such as 256MiB", s)
				case n < 1<<20 || n > 1<<50:
					err = d.Errf("memory %q: must be at least 1MiB", s)
				default:
					p.Memory = int64(n)
				}
			}
		default:
			err = caddyargs.Unknown(d)
		}
		if err != nil {
			return nil, err
		}
	}
	return p, nil
}

// positiveIntArg is intArg refusing zero and negative values, which the
// JSON would read as the default.
func positiveIntArg(d *caddyfile.Dispenser, once caddyargs.Once, dst *int) error {
	name := d.Val()
	if err := caddyargs.Int(d, once, dst); err != nil {
		return err
	}
	if *dst < 1 {
		return d.Errf("%s %d: must be at least 1", name, *dst)
	}
	return nil
}
