package tokenissuer

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/authserver"
)

// value is what reg reports for the series of family name whose
// labels are exactly labels ("k=v,k=v"): a counter's value, or a
// histogram's observation count and sum; found is false when absent.
type value struct {
	found bool
	count float64
	n     uint64
	sum   float64
}

func series(t *testing.T, reg *prometheus.Registry, name, labels string) value {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var got []string
			for _, l := range m.GetLabel() {
				got = append(got, l.GetName()+"="+l.GetValue())
			}
			if strings.Join(got, ",") == labels {
				h := m.GetHistogram()
				return value{true, m.GetCounter().GetValue(), h.GetSampleCount(), h.GetSampleSum()}
			}
		}
	}
	return value{}
}

// count is a counter's value (0 when the series does not exist yet).
func count(t *testing.T, reg *prometheus.Registry, name, labels string) float64 {
	t.Helper()
	return series(t, reg, name, labels).count
}

func newTestRegistry(t *testing.T) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := registerMetrics(reg); err != nil {
		t.Fatal(err)
	}
	return reg
}

// The observer counts each answer under bounded labels: a grant type
// the issuer does not know is "other", whatever the client sent.
func TestObserverCounts(t *testing.T) {
	reg := newTestRegistry(t)
	const (
		tokens = "caddy_token_issuer_token_requests_total"
		lat    = "caddy_token_issuer_token_request_duration_seconds"
	)
	var o authserver.Observer = observer{}
	okBefore := count(t, reg, tokens, "grant_type=client_credentials,outcome=success,server=m1")
	otherBefore := count(t, reg, tokens, "grant_type=other,outcome=unsupported_grant_type,server=m1")
	latBefore := series(t, reg, lat, "grant_type=client_credentials,server=m1")

	o.TokenRequest("m1", authserver.GrantClientCredentials, "success", 3*time.Millisecond)
	o.TokenRequest("m1", "urn:made-up:1", "unsupported_grant_type", time.Millisecond)
	o.TokenRequest("m1", "urn:made-up:2", "unsupported_grant_type", time.Millisecond)
	o.TokenRequest("m1", "", "unsupported_grant_type", time.Millisecond)

	if d := count(t, reg, tokens, "grant_type=client_credentials,outcome=success,server=m1") - okBefore; d != 1 {
		t.Errorf("success counted %v times", d)
	}
	if d := count(t, reg, tokens, "grant_type=other,outcome=unsupported_grant_type,server=m1") - otherBefore; d != 3 {
		t.Errorf("unknown grant types counted %v times under other", d)
	}
	if series(t, reg, tokens, "grant_type=urn:made-up:1,outcome=unsupported_grant_type,server=m1").found {
		t.Error("a client-chosen grant type became a label value")
	}
	latAfter := series(t, reg, lat, "grant_type=client_credentials,server=m1")
	if d := latAfter.n - latBefore.n; d != 1 {
		t.Errorf("latency histogram got %d observations, want 1", d)
	}
	if d := latAfter.sum - latBefore.sum; d < 0.0029 || d > 0.0031 {
		t.Errorf("latency sum grew by %v s, want the 3 ms observed", d)
	}

	cases := []struct {
		do           func()
		name, labels string
	}{
		{func() { o.Introspection("m1", true) }, "caddy_token_issuer_introspections_total", "active=true,server=m1"},
		{func() { o.Introspection("m1", false) }, "caddy_token_issuer_introspections_total", "active=false,server=m1"},
		{func() { o.Revocation("m1", "success") }, "caddy_token_issuer_revocations_total", "outcome=success,server=m1"},
		{func() { o.Revocation("m1", "invalid_client") }, "caddy_token_issuer_revocations_total", "outcome=invalid_client,server=m1"},
		{func() { o.KeyRotation("m1", authserver.RotationAdmin) }, "caddy_token_issuer_key_rotations_total", "reason=admin,server=m1"},
	}
	for _, c := range cases {
		before := count(t, reg, c.name, c.labels)
		c.do()
		if d := count(t, reg, c.name, c.labels) - before; d != 1 {
			t.Errorf("%s{%s} went up by %v, want 1", c.name, c.labels, d)
		}
	}
}

// A reloaded config registers the same collectors into its new
// registry, which reports the counts so far.
func TestMetricsSurviveANewRegistry(t *testing.T) {
	old := newTestRegistry(t)
	if err := registerMetrics(old); err != nil {
		t.Fatalf("registering twice into one registry: %v", err)
	}
	observer{}.Revocation("m2", "success")
	next := newTestRegistry(t)
	if got := count(t, next, "caddy_token_issuer_revocations_total", "outcome=success,server=m2"); got != 1 {
		t.Fatalf("the next config's registry reports %v revocations, want 1", got)
	}
}
