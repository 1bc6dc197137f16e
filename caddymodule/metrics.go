package caddymodule

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics counts decisions by outcome and reason in Caddy's registry
// (served by Caddy's `metrics` handler and admin endpoint).
type metrics struct {
	decisions *prometheus.CounterVec
	// accepted is decisions{outcome="accepted",reason=""}, resolved once
	// so an accepted request does not hash label values.
	accepted prometheus.Counter
}

func newMetrics(reg *prometheus.Registry) (*metrics, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy",
		Subsystem: "require_token",
		Name:      "decisions_total",
		Help:      "Token decisions of require_token, by outcome (accepted, rejected) and rejection reason.",
	}, []string{"outcome", "reason"})
	if reg == nil {
		return &metrics{decisions: c, accepted: c.WithLabelValues("accepted", "")}, nil
	}
	if err := reg.Register(c); err != nil {
		// Several handlers (and a reloaded config) share one collector.
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, err
		}
		c = are.ExistingCollector.(*prometheus.CounterVec)
	}
	return &metrics{decisions: c, accepted: c.WithLabelValues("accepted", "")}, nil
}

// accept counts an accepted request.
func (m *metrics) accept() { m.accepted.Inc() }

// observe counts a decision by outcome and reason.
func (m *metrics) observe(outcome, reason string) {
	m.decisions.WithLabelValues(outcome, reason).Inc()
}
