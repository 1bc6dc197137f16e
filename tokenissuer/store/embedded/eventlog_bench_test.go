package embedded

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// benchEvents is the size of the benchmarks' log.
const benchEvents = 1_000_000

var (
	benchOnce sync.Once
	benchDB   *DB
	benchDir  string
	benchErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDB != nil {
		benchDB.Close()
	}
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

// benchTypes are the event types of the benchmark log, one event in
// ten of each.
var benchTypes = []string{
	"app.oauth2.as.token.grant.access_token", "app.oauth2.as.token.grant.id_token",
	"app.oauth2.as.token.grant.refresh_token", "app.oauth2.as.authorize.code",
	"user.session.start", "user.session.end", "app.oauth2.as.token.revoke",
	"policy.evaluate_sign_on", "user.authentication.sso", "apiaccess.gateway.decision",
}

func benchEvent(i int, base time.Time) store.LogEvent {
	reason := "Access token issued"
	ua := "okta-sdk-nodejs/7.0.0 node/20"
	return store.LogEvent{
		UUID:           fmt.Sprintf("%08x-1b2c-4d5e-8f90-%012x", i, i*7919),
		Published:      base.Add(time.Duration(i) * time.Millisecond),
		EventType:      benchTypes[i%len(benchTypes)],
		Version:        "0",
		Severity:       "INFO",
		DisplayMessage: "OAuth2 access token is granted",
		Actor:          &store.LogActor{ID: "0oa1client", Type: "PublicClientApp", AlternateID: "reporting", DisplayName: "reporting"},
		Client: &store.LogClient{UserAgent: &store.LogUserAgent{RawUserAgent: ua, OS: "Unknown", Browser: "UNKNOWN"},
			Zone: "null", Device: "Unknown", IPAddress: "203.0.113.7"},
		Outcome:               &store.LogOutcome{Result: "SUCCESS", Reason: &reason},
		Target:                []store.LogTarget{{ID: "aus1default", Type: "AuthorizationServer", AlternateID: "default", DisplayName: "default"}},
		Transaction:           &store.LogTransaction{Type: "WEB", ID: fmt.Sprintf("tx%010d", i)},
		DebugContext:          &store.LogDebugContext{DebugData: map[string]any{"grantType": "client_credentials", "grantedScopes": "billing:read", "requestUri": "/oauth2/default/v1/token", "jti": fmt.Sprintf("AT.%d", i)}},
		AuthenticationContext: &store.LogAuthenticationCtx{AuthenticationStep: 0, ExternalSessionID: "unknown"},
		SecurityContext:       &store.LogSecurityContext{},
		Request:               &store.LogRequest{IPChain: []store.LogIPAddress{{IP: "203.0.113.7", Version: "V4"}}},
	}
}

// benchLog is a store holding benchEvents events, one per millisecond,
// built once per test binary.
func benchLog(b *testing.B) *DB {
	b.Helper()
	benchOnce.Do(func() {
		if benchDir, benchErr = os.MkdirTemp("", "eventlog-bench"); benchErr != nil {
			return
		}
		path := filepath.Join(benchDir, "log.db")
		if benchDB, benchErr = Open(path); benchErr != nil {
			return
		}
		benchDB.db.NoSync = true // the fill only; queries do not write
		defer func() { benchDB.db.NoSync = false }()
		start := time.Now()
		base := time.Unix(1_700_000_000, 0).UTC()
		batch := make([]store.LogEvent, 0, 10_000)
		for i := range benchEvents {
			batch = append(batch, benchEvent(i, base))
			if len(batch) == cap(batch) {
				if benchErr = benchDB.AppendEvents(context.Background(), batch); benchErr != nil {
					return
				}
				batch = batch[:0]
			}
		}
		if benchErr = benchDB.db.Sync(); benchErr != nil {
			return
		}
		fi, _ := os.Stat(path)
		fmt.Fprintf(os.Stderr, "benchmark log: %d events appended in %v, file %d MB\n",
			benchEvents, time.Since(start).Round(time.Millisecond), fi.Size()>>20)
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchDB
}

// BenchmarkQueryEventsNewestFiltered: the newest 100 events of one type
// (one event in ten), as `GET /api/v1/logs?filter=eventType eq "..."
// &sortOrder=DESCENDING&limit=100` asks.
func BenchmarkQueryEventsNewestFiltered(b *testing.B) {
	db := benchLog(b)
	want := benchTypes[0]
	q := store.LogQuery{Limit: 100, Descending: true, Match: func(e *store.LogEvent) bool { return e.EventType == want }}
	b.ResetTimer()
	for b.Loop() {
		got, more, err := db.QueryEvents(context.Background(), q)
		if err != nil || len(got) != 100 || !more {
			b.Fatalf("%d events, more %v, %v", len(got), more, err)
		}
	}
}

// BenchmarkQueryEventsPage: one page of 1000 events of a paged scan,
// each page after the previous one's cursor (wrapping at the end), so
// pages come from all over the log.
func BenchmarkQueryEventsPage(b *testing.B) {
	db := benchLog(b)
	q := store.LogQuery{Limit: store.MaxLogLimit}
	b.ResetTimer()
	for b.Loop() {
		got, more, err := db.QueryEvents(context.Background(), q)
		if err != nil {
			b.Fatal(err)
		}
		q.After = ""
		if more {
			q.After = store.LogCursor(&got[len(got)-1])
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/store.MaxLogLimit, "ns/event")
}

// BenchmarkQueryEventsNoMatch: the worst case, a filter no event
// matches, which reads (and decodes) the whole log.
func BenchmarkQueryEventsNoMatch(b *testing.B) {
	db := benchLog(b)
	q := store.LogQuery{Limit: 100, Match: func(e *store.LogEvent) bool { return e.EventType == "none" }}
	b.ResetTimer()
	for b.Loop() {
		if got, _, err := db.QueryEvents(context.Background(), q); err != nil || len(got) != 0 {
			b.Fatalf("%d events, %v", len(got), err)
		}
	}
}
