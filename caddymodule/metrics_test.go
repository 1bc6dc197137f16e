package caddymodule

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// acceptedIn reads decisions{outcome="accepted"} as reg reports it.
func acceptedIn(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "caddy_require_token_decisions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == "accepted" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatal("no accepted decisions in the registry")
	return 0
}

// A reload provisions the handler again with a fresh registry; the
// count it reports goes on from the old config's.
func TestMetricsSurviveANewRegistry(t *testing.T) {
	old := prometheus.NewPedanticRegistry()
	m, err := newMetrics(old)
	if err != nil {
		t.Fatal(err)
	}
	before := acceptedIn(t, old)
	m.accept()
	if _, err := newMetrics(old); err != nil {
		t.Fatalf("a second handler of the same config: %v", err)
	}
	next := prometheus.NewPedanticRegistry()
	m2, err := newMetrics(next)
	if err != nil {
		t.Fatal(err)
	}
	m2.accept()
	if got := acceptedIn(t, next); got != before+2 {
		t.Fatalf("after reload: accepted = %v, want %v", got, before+2)
	}
}
