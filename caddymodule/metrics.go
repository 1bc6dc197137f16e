package caddymodule

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/apiaccess/caddy-apiaccess/internal/promreg"
)

// decisions is created once per process and registered into each
// config's registry, so `caddy reload` does not reset it (Caddy gives
// every config load a new registry).
var decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: "caddy",
	Subsystem: "require_token",
	Name:      "decisions_total",
	Help:      "Token decisions of require_token, by outcome (accepted, rejected) and rejection reason.",
}, []string{"outcome", "reason"})

// accepted is decisions{outcome="accepted",reason=""}, resolved once so
// an accepted request does not hash label values.
var accepted = decisions.WithLabelValues("accepted", "")

// metrics counts decisions by outcome and reason in Caddy's registry
// (served by Caddy's `metrics` handler and admin endpoint).
type metrics struct {
	decisions *prometheus.CounterVec
	accepted  prometheus.Counter
}

// newMetrics registers the gateway's collectors into reg (nil: none);
// several handlers of one config share them.
func newMetrics(reg *prometheus.Registry) (*metrics, error) {
	if err := promreg.Register(reg, decisions); err != nil {
		return nil, err
	}
	return &metrics{decisions: decisions, accepted: accepted}, nil
}

// accept counts an accepted request.
func (m *metrics) accept() { m.accepted.Inc() }

// observe counts a decision by outcome and reason.
func (m *metrics) observe(outcome, reason string) {
	m.decisions.WithLabelValues(outcome, reason).Inc()
}
