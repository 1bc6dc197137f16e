package clientauth

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/duration"
)

// TestRefreshTokenLeeway: the default, an explicit value and the bounds.
func TestRefreshTokenLeeway(t *testing.T) {
	for _, tc := range []struct {
		set, want duration.Duration
		err       bool
	}{
		{0, duration.Duration(DefaultLeeway), false},
		{duration.Duration(10 * time.Second), duration.Duration(10 * time.Second), false},
		{1, 1, false},
		{duration.Duration(MaxLeeway), duration.Duration(MaxLeeway), false},
		{duration.Duration(MaxLeeway + 1), 0, true},
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

// TestLeewayJSON: the leeway arrives as a duration string or integer
// nanoseconds (internal/duration tests the syntax).
func TestLeewayJSON(t *testing.T) {
	for in, want := range map[string]time.Duration{`"45s"`: 45 * time.Second, `5000000000`: 5 * time.Second} {
		var c Client
		if err := json.Unmarshal([]byte(`{"client_id":"c","refresh_token_leeway":`+in+`}`), &c); err != nil || time.Duration(c.RefreshTokenLeeway) != want {
			t.Errorf("%s: %v, %v; want %v", in, err, time.Duration(c.RefreshTokenLeeway), want)
		}
	}
}
