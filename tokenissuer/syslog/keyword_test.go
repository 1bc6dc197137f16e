package syslog

import (
	"strings"
	"testing"
)

// TestKeywordSemantics: every keyword must match a value or a word of
// one exactly, ignoring case; hyphenated values match by part.
func TestKeywordSemantics(t *testing.T) {
	e := sample()
	for _, tc := range []struct {
		q    string
		want bool
	}{
		{"SUCCESS", true},
		{"success", true},
		{"succ", false}, // exact, not prefix
		{"Jane Doe", true},
		{"jane doe", true},
		{"Jane Smith", false}, // all must match
		{"San Francisco", true},
		{"jane@example.com", true},
		{"184.73.186.14", true},
		{"XOxBw-2JIRnCFd0gG0GjHAAABjY", true},
		{"XOxBw", true},
		{"2JIRnCFd0gG0GjHAAABjY", true},
		{"2JIRn", false},
		{"client_credentials", true},
		{"api:write", true},            // inside a debugData array
		{"token", true},                // a word of /oauth2/default/v1/token
		{"okta-sdk-golang", true},      // a word of the user agent
		{"golang", true},               // its hyphen part
		{"00T94e3cn9kSEO3c51s5", true}, // transaction detail
		{"app.oauth2.as.token.grant.access_token", true},
		{"oauth2", true},
		{"2025", false}, // published is not searched
		{"nothing-here", false},
	} {
		k, err := ParseKeywords(tc.q)
		if err != nil {
			t.Fatalf("%q: %v", tc.q, err)
		}
		if got := k.Match(e); got != tc.want {
			t.Errorf("q=%q: got %v, want %v", tc.q, got, tc.want)
		}
	}
}

// TestKeywordLimits: Okta's 40 characters per keyword and 10 keywords,
// answered as E0000001; a blank q is no constraint.
func TestKeywordLimits(t *testing.T) {
	if k, err := ParseKeywords("   "); k != nil || err != nil {
		t.Errorf("blank q: %v %v", k, err)
	}
	if _, err := ParseKeywords(strings.Repeat("é", 40)); err != nil {
		t.Errorf("40 characters: %v", err)
	}
	_, err := ParseKeywords("ok " + strings.Repeat("x", 41))
	if err == nil || err.Code != CodeValidation || err.Summary != "Api validation failed: 'q': Freeform search cannot contain items longer than 40 characters. Please shorten the items in your search or use an advanced filter to query by specific fields." {
		t.Errorf("41 characters: %+v", err)
	}
	if _, err := ParseKeywords(strings.Repeat("a ", 10)); err != nil {
		t.Errorf("10 keywords: %v", err)
	}
	if _, err := ParseKeywords(strings.Repeat("a ", 11)); err == nil || err.Code != CodeValidation {
		t.Errorf("11 keywords: %+v", err)
	}
}
