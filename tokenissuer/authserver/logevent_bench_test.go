//go:build unix

package authserver_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/authserver"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/keys"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/embedded"
)

// discardLog is an EventLog that keeps nothing: the cost of building
// and queueing the events alone.
type discardLog struct{ n atomic.Int64 }

func (d *discardLog) AppendEvents(_ context.Context, evs []store.LogEvent) error {
	d.n.Add(int64(len(evs)))
	return nil
}
func (*discardLog) QueryEvents(context.Context, store.LogQuery) ([]store.LogEvent, bool, error) {
	return nil, false, nil
}
func (*discardLog) PurgeEvents(context.Context, time.Time) error { return nil }

// newLoggedBenchIssuer is newBenchIssuer on an embedded store whose
// System Log is el(st) (nil: none).
func newLoggedBenchIssuer(b *testing.B, alg string, el func(store.Store) store.EventLog) *authserver.Issuer {
	b.Helper()
	st, err := embedded.Open(filepath.Join(b.TempDir(), "db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	o := authserver.Options{
		BaseURL: "http://issuer.test",
		Servers: map[string]*authserver.ServerConfig{"default": {
			SigningAlg: alg,
			Scopes:     []*authserver.Scope{{Name: "billing:read", Default: true}},
			Policies: []*policy.Policy{{Name: "p", Clients: []string{benchClient}, Rules: []*policy.Rule{{
				Name: "r", GrantTypes: []string{authserver.GrantClientCredentials}, Scopes: []string{"*"}}}}},
		}},
		Clients: []*clientauth.Client{{ID: benchClient, Secret: benchSecret}},
		Logger:  benchLogger(),
	}
	if el != nil {
		o.EventLog = el(st)
	}
	iss, err := authserver.New(o)
	if err != nil {
		b.Fatal(err)
	}
	sealer, err := keys.NewSealer([]byte("bench-seal-secret-0123456789abcdef"))
	if err != nil {
		b.Fatal(err)
	}
	if err := iss.Start(context.Background(), st, sealer); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(iss.StopEvents)
	return iss
}

// BenchmarkSystemLog is BenchmarkClientCredentials/RS256 on the
// embedded store without a stored System Log ("off"), with one whose
// store discards the batches ("discard": building and queueing the
// events), and with the embedded store's own EventLog ("embedded",
// when the store implements it). Target (issue 12): "embedded" costs at
// most 1.1 x "off" per grant.
func BenchmarkSystemLog(b *testing.B) {
	variants := []struct {
		name string
		el   func(store.Store) store.EventLog
	}{
		{"off", nil},
		{"discard", func(store.Store) store.EventLog { return &discardLog{} }},
		{"embedded", func(st store.Store) store.EventLog {
			el, _ := st.(store.EventLog)
			return el
		}},
	}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			var probe store.EventLog
			if v.el != nil {
				st, err := embedded.Open(filepath.Join(b.TempDir(), "probe"))
				if err != nil {
					b.Fatal(err)
				}
				probe = v.el(st)
				_ = st.Close()
				if probe == nil {
					b.Skip("the embedded store keeps no System Log (store.EventLog) yet")
				}
			}
			benchGrants(b, newLoggedBenchIssuer(b, "RS256", v.el))
		})
	}
}
