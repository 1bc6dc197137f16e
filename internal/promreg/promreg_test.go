package promreg

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// value is the counter's value as the registry reports it.
func value(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("%s not in the registry", name)
	return 0
}

// A collector registered into a second registry (the next config)
// keeps its count; registering it twice into one is not an error.
func TestRegisterKeepsCountAcrossRegistries(t *testing.T) {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "t_total", Help: "t"})
	first := prometheus.NewPedanticRegistry()
	if err := Register(first, c); err != nil {
		t.Fatal(err)
	}
	if err := Register(first, c); err != nil {
		t.Fatalf("second instance in one config: %v", err)
	}
	c.Add(3)
	second := prometheus.NewPedanticRegistry()
	if err := Register(second, c); err != nil {
		t.Fatal(err)
	}
	if v := value(t, second, "t_total"); v != 3 {
		t.Fatalf("the next config's registry reports %v, want 3", v)
	}
}

// Another collector under the same name is refused: it would not be
// the one that counts.
func TestRegisterRefusesAForeignCollector(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	a := prometheus.NewCounter(prometheus.CounterOpts{Name: "t_total", Help: "t"})
	b := prometheus.NewCounter(prometheus.CounterOpts{Name: "t_total", Help: "t"})
	if err := Register(reg, a); err != nil {
		t.Fatal(err)
	}
	if err := Register(reg, b); err == nil {
		t.Fatal("a second collector named t_total was accepted")
	}
	if err := Register(nil, a); err != nil {
		t.Fatalf("nil registry: %v", err)
	}
}
