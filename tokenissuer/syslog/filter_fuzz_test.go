package syslog

import (
	"testing"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// FuzzParseFilter: no input panics the parser or the evaluation of what
// it accepts, and every refusal is one of Okta's filter errors. The
// seed corpus is in testdata/fuzz/FuzzParseFilter.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{
		`eventType eq "user.session.start"`,
		`target.id eq "00u1" and (outcome.result eq "FAILURE" or not (actor.id pr))`,
		`debugContext.debugData.grantedScopes co "api" or client.ipAddress sw "10."`,
		`authenticationContext.authenticationStep ge 1.5e2`,
	} {
		f.Add(s)
	}
	events := []*store.LogEvent{sample(), {}, {Target: []store.LogTarget{{}}, DebugContext: &store.LogDebugContext{DebugData: map[string]any{"a": []any{nil, map[string]any{}}}}}}
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := ParseFilter(s)
		if err != nil {
			if err.Code != CodeInvalidFilter && err.Code != CodeSearchCriteria {
				t.Fatalf("%q: code %s", s, err.Code)
			}
			if flt != nil {
				t.Fatalf("%q: a filter and an error", s)
			}
			return
		}
		for _, e := range events {
			flt.Match(e)
		}
	})
}

// FuzzParseKeywords: q never panics and refusals are E0000001.
func FuzzParseKeywords(f *testing.F) {
	f.Add("Jane Doe")
	f.Add("XOxBw-2JIRn -- /a/b?c=d")
	f.Fuzz(func(t *testing.T, q string) {
		k, err := ParseKeywords(q)
		if err != nil {
			if err.Code != CodeValidation {
				t.Fatalf("%q: code %s", q, err.Code)
			}
			return
		}
		if k != nil {
			k.Match(sample())
			k.Match(&store.LogEvent{})
		}
	})
}
