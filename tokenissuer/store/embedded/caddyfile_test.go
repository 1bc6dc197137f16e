package embedded

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	for _, c := range []struct {
		in, want, err string
	}{
		{in: "embedded", want: `{}`},
		{in: "embedded /x.db", want: `{"path":"/x.db"}`},
		{in: "embedded {\npath /x.db\nlog_retention 30d\nlog_max_events 5000\n}",
			want: `{"path":"/x.db","log_retention":2592000000000000,"log_max_events":5000}`},
		{in: "embedded /a.db {\npath /b.db\n}", err: `duplicate subdirective "path"`},
		{in: "embedded {\nlog_retention 30m\n}", err: "must be at least 1h0m0s"},
		{in: "embedded {\nlog_retention 0s\n}", err: "zero would mean the default"},
		{in: "embedded {\nlog_max_events 0\n}", err: "at least 1"},
		{in: "embedded {\nlog_max_events many\n}", err: "at least 1"},
		{in: "embedded {\nlog_max_events 5 6\n}", err: "wrong argument count"},
		{in: "embedded {\nlog_max_events 5\nlog_max_events 6\n}", err: `duplicate subdirective "log_max_events"`},
		{in: "embedded {\nmax_events 5\n}", err: `unknown subdirective "max_events"`},
	} {
		var m Module
		err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser(c.in))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if got, _ := json.Marshal(m); string(got) != c.want {
			t.Errorf("%q: %s, want %s", c.in, got, c.want)
		}
	}
}

func TestCheckLogLimits(t *testing.T) {
	for _, c := range []struct {
		m    Module
		ok   bool
		r    time.Duration
		maxN int
	}{
		{Module{}, true, store.DefaultLogRetention, DefaultLogMaxEvents},
		{Module{LogRetention: 7 * 24 * 3600e9, LogMaxEvents: 10}, true, 7 * 24 * time.Hour, 10},
		{Module{LogRetention: 59 * 60e9}, false, 0, 0},
		{Module{LogRetention: -1}, false, 0, 0},
		{Module{LogMaxEvents: -1}, false, 0, 0},
	} {
		err := c.m.checkLog()
		if (err == nil) != c.ok {
			t.Errorf("%+v: checkLog = %v, want ok %v", c.m, err, c.ok)
			continue
		}
		if r, n := c.m.logLimits(); c.ok && (r != c.r || n != c.maxN) {
			t.Errorf("%+v: limits %v, %d, want %v, %d", c.m, r, n, c.r, c.maxN)
		}
	}
}
