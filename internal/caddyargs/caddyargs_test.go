package caddyargs

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/apiaccess/caddy-apiaccess/internal/configerr"
	"github.com/apiaccess/caddy-apiaccess/internal/duration"
)

// dispenser returns a dispenser at the first token of the line after
// the block opener `x {`, so tests read as a subdirective would.
func dispenser(t *testing.T, body string) *caddyfile.Dispenser {
	t.Helper()
	d := caddyfile.NewTestDispenser("x {\n" + body + "\n}")
	d.Next()
	if !d.NextBlock(0) {
		t.Fatal("no subdirective")
	}
	return d
}

func TestDurations(t *testing.T) {
	for _, tc := range []struct {
		body string
		read func(*caddyfile.Dispenser, Once, *duration.Duration) error
		want time.Duration
		err  string
	}{
		{"ttl 7d", Duration, 7 * 24 * time.Hour, ""},
		{"ttl 1d12h", Duration, 36 * time.Hour, ""},
		{"ttl soon", Duration, 0, `ttl "soon": not a duration; use a number and a unit (ns, us, ms, s, m, h, d), e.g. 90s, 15m, 7d, at Testfile:2`},
		{"ttl -5s", Duration, 0, `ttl "-5s": must not be negative, at Testfile:2`},
		{"ttl 0s", Duration, 0, `ttl "0s": zero would mean the default; give a positive duration, at Testfile:2`},
		{"ttl 0s", DurationOrZero, 0, ""},
		{"ttl -1s", DurationOrZero, 0, `ttl "-1s": must not be negative`},
		{"ttl off", DurationOrOff, -1, ""},
		{"ttl 2d", DurationOrOff, 48 * time.Hour, ""},
		{"ttl 0", DurationOrOff, 0, `ttl "0": give a positive duration, or off`},
		{"ttl never", DurationOrOff, 0, `ttl "never": not a duration`},
		{"ttl 1s 2s", Duration, 0, "wrong argument count"},
		{"ttl", Duration, 0, "wrong argument count"},
	} {
		var got duration.Duration
		err := tc.read(dispenser(t, tc.body), Once{}, &got)
		switch {
		case tc.err == "" && (err != nil || time.Duration(got) != tc.want):
			t.Errorf("%q: got %v, %v; want %v", tc.body, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v; want %q", tc.body, err, tc.err)
		}
	}
}

func TestOnceAndNames(t *testing.T) {
	d := caddyfile.NewTestDispenser("x {\nname a\nname b\nscope s\nscope s\nn 1x\n}")
	d.Next()
	once, names := Once{}, Names{}
	var s string
	d.NextBlock(0)
	if err := One(d, once, &s); err != nil || s != "a" {
		t.Fatalf("first: %v %q", err, s)
	}
	d.NextBlock(0)
	if err := One(d, once, &s); err == nil || err.Error() != `duplicate subdirective "name", at Testfile:3` {
		t.Errorf("repeat: %v", err)
	}
	d.RemainingArgs()
	d.NextBlock(0)
	if err := Name(d, names, &s); err != nil {
		t.Fatal(err)
	}
	d.NextBlock(0)
	if err := Name(d, names, &s); err == nil || err.Error() != `scope "s" defined twice, at Testfile:5` {
		t.Errorf("name twice: %v", err)
	}
	d.NextBlock(0)
	var n int
	if err := Int(d, once, &n); err == nil || err.Error() != `n "1x": not an integer, at Testfile:6` {
		t.Errorf("int: %v", err)
	}
}

func TestExpression(t *testing.T) {
	var s string
	if err := Expression(dispenser(t, "expression `a == b`"), Once{}, &s); err != nil || s != "a == b" {
		t.Errorf("%q %v", s, err)
	}
	err := Expression(dispenser(t, `expression a == b`), Once{}, &s)
	if err == nil || !strings.Contains(err.Error(), "wrong argument count: expression takes the expression as one token; wrap it in backquotes") {
		t.Errorf("split expression: %v", err)
	}
}

func TestPlaces(t *testing.T) {
	d := caddyfile.NewTestDispenser("root {\nclient c {\nsecret s\n}\n}")
	var p Places
	d.Next()
	p.Mark(d, nil, "")
	client := []configerr.Item{{Kind: "client", Name: "c"}}
	d.NextBlock(0)
	p.Mark(d, client, "")
	d.NextArg()
	d.NextBlock(1)
	p.Mark(d, client, "client_secret")
	for _, tc := range []struct {
		err  error
		want string
	}{
		{configerr.In("client", "c", configerr.Fieldf("client_secret", "bad")), `client "c": bad, at Testfile:3`},
		{configerr.In("client", "c", errors.New("bad")), `client "c": bad, at Testfile:2`},
		{configerr.In("client", "c", configerr.Fieldf("jwks", "bad")), `client "c": bad, at Testfile:2`},
		{configerr.In("client", "other", errors.New("bad")), `client "other": bad, at Testfile:1`},
		{errors.New("plain"), "plain, at Testfile:1"},
	} {
		if got := p.Wrap(tc.err); got.Error() != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}
