// Package promreg registers package-level Prometheus collectors into
// the registry of each Caddy config.
//
// Caddy gives every config load a fresh registry (caddy.Context's
// GetMetricsRegistry, a new pedantic registry per NewContext), so a
// collector created at Provision would restart from zero on every
// `caddy reload`. Collectors created once per process and registered
// into each new registry keep counting across reloads.
package promreg

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Register adds cs to reg; a collector already in reg (a second module
// instance of the same config) is not an error. A different collector
// under the same name is, since it would not be the one counting. A
// nil reg (unit tests without Caddy) registers nothing.
func Register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for _, c := range cs {
		err := reg.Register(c)
		var are prometheus.AlreadyRegisteredError
		switch {
		case err == nil:
		case errors.As(err, &are) && are.ExistingCollector == c:
		default:
			return fmt.Errorf("registering metrics: %w", err)
		}
	}
	return nil
}
