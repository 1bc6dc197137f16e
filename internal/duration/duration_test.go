package duration

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"90s":            90 * time.Second,
		"1h30m":          90 * time.Minute,
		"7d":             7 * 24 * time.Hour,
		"1.5d":           36 * time.Hour,
		"1d12h":          36 * time.Hour,
		"-1d":            -24 * time.Hour,
		"0":              0,
		"250ms":          250 * time.Millisecond,
		"2d30m":          48*time.Hour + 30*time.Minute,
		"0.5d1s":         12*time.Hour + time.Second,
		"2h1d":           26 * time.Hour,
		"0.25d":          6 * time.Hour,
		"10d30m":         240*time.Hour + 30*time.Minute,
		"0.01d":          14*time.Minute + 24*time.Second, // 0.24h, not rounded
		"300000000000ns": 5 * time.Minute,
		"0s":             0,
	} {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "soon", "90days", "d", "1..5d", "5", "30", "1x", "1dd", "1 d"} {
		if got, err := Parse(in); !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) = %v, %v; want ErrSyntax", in, got, err)
		}
	}
}

// TestParseRange: a day count too large for a float64 is refused as
// out of range.
func TestParseRange(t *testing.T) {
	if _, err := Parse(strings.Repeat("9", 400) + "d"); !errors.Is(err, ErrRange) {
		t.Errorf("a 400-digit day count: err = %v, want ErrRange", err)
	}
	if _, err := Parse("3000000h"); !errors.Is(err, ErrRange) {
		t.Errorf("3000000h (over 290 years): err = %v, want ErrRange", err)
	}
}

func TestJSON(t *testing.T) {
	for in, want := range map[string]Duration{
		`"7d"`:          Duration(7 * 24 * time.Hour),
		`"30s"`:         Duration(30 * time.Second),
		`1000000000`:    Duration(time.Second),
		`"1d1h"`:        Duration(25 * time.Hour),
		`3600000000000`: Duration(time.Hour),
	} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil || d != want {
			t.Errorf("unmarshal %s = %v, %v; want %v", in, d, err, want)
		}
	}
	for _, in := range []string{`"7 days"`, `""`, `true`, `1.5`, `{}`, `[]`} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err == nil {
			t.Errorf("unmarshal %s: no error", in)
		}
	}
	// Written as nanoseconds, as caddy.Duration is, so adapted
	// Caddyfiles keep their JSON.
	b, err := json.Marshal(struct {
		D Duration `json:"d"`
	}{Duration(2 * time.Hour)})
	if err != nil || string(b) != `{"d":7200000000000}` {
		t.Errorf("marshal = %s, %v", b, err)
	}
}
