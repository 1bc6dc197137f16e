package clientauth

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestRefreshTokenLeeway: the default, an explicit value and the bounds.
func TestRefreshTokenLeeway(t *testing.T) {
	for _, tc := range []struct {
		set, want Duration
		err       bool
	}{
		{0, Duration(DefaultLeeway), false},
		{Duration(10 * time.Second), Duration(10 * time.Second), false},
		{1, 1, false},
		{Duration(MaxLeeway), Duration(MaxLeeway), false},
		{Duration(MaxLeeway + 1), 0, true},
		{-1, 0, true},
	} {
		c := &Client{ID: "spa", AuthMethod: None, GrantTypes: []string{"authorization_code"}, RefreshTokenLeeway: tc.set}
		err := c.Prepare()
		if tc.err {
			if err == nil || !strings.Contains(err.Error(), "refresh_token_leeway must be between 0 and 1m0s") {
				t.Errorf("leeway %v: %v, want a bounds error", time.Duration(tc.set), err)
			}
			continue
		}
		if err != nil || c.RefreshTokenLeeway != tc.want {
			t.Errorf("leeway %v: %v, %v; want %v", time.Duration(tc.set), err, time.Duration(c.RefreshTokenLeeway), time.Duration(tc.want))
		}
	}
}

// TestDurationJSON: a Go duration string or integer nanoseconds.
func TestDurationJSON(t *testing.T) {
	for in, want := range map[string]Duration{`"30s"`: Duration(30 * time.Second), `"1m"`: Duration(time.Minute), `5000000000`: Duration(5 * time.Second), `0`: 0} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil || d != want {
			t.Errorf("%s: %v, %v; want %v", in, err, time.Duration(d), time.Duration(want))
		}
	}
	for _, in := range []string{`"soon"`, `true`, `1.5`, `{}`} {
		var d Duration
		err := json.Unmarshal([]byte(in), &d)
		if err == nil {
			t.Errorf("%s accepted as %v", in, time.Duration(d))
		}
		if in != `"soon"` && !strings.Contains(err.Error(), `duration must be a string like "30s" or integer nanoseconds`) {
			t.Errorf("%s: error %v", in, err)
		}
	}
}
