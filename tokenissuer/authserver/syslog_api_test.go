package authserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/embedded"
)

const (
	logsToken  = "00abcdefghijklmnopqrstuvwxyz0123456789ABCD"
	logsToken2 = "00ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxw"
	logsBase   = "https://id.example.com/tenant"
)

var logsEpoch = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// logsIssuer is an issuer on a fresh embedded store (its EventLog)
// holding n events, one a second from an hour before the clock, every
// third a FAILURE, with its log observer at debug level.
func logsIssuer(t *testing.T, n int) (*Issuer, *testkit.Clock, *observer.ObservedLogs) {
	t.Helper()
	clock := testkit.NewClock(logsEpoch)
	core, logs := observer.New(zapcore.DebugLevel)
	iss, err := New(Options{BaseURL: logsBase, Now: clock.Now, Logger: zap.New(core), APITokens: []string{logsToken, logsToken2}})
	if err != nil {
		t.Fatal(err)
	}
	db, err := embedded.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	startIssuer(t, iss, db)
	appendLogEvents(t, db, 0, n)
	return iss, clock, logs
}

func appendLogEvents(t *testing.T, el store.EventLog, from, to int) {
	t.Helper()
	var evs []store.LogEvent
	for k := from; k < to; k++ {
		result := "SUCCESS"
		if k%3 == 0 {
			result = "FAILURE"
		}
		evs = append(evs, store.LogEvent{
			UUID: fmt.Sprintf("evt-%04d", k), Published: logsEpoch.Add(-time.Hour + time.Duration(k)*time.Second),
			EventType: "app.oauth2.as.token.grant.access_token", Version: "0", Severity: "INFO",
			Actor:   &store.LogActor{ID: fmt.Sprintf("0oaclient%d", k%4), Type: "PublicClientApp", AlternateID: "svc"},
			Outcome: &store.LogOutcome{Result: result},
			Target:  []store.LogTarget{{ID: "aus-default", Type: "AuthorizationServer"}},
		})
	}
	if err := el.AppendEvents(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
}

// getLogs calls the System Log API with the first token; url is a path
// and query below the base, or an absolute next link.
func getLogs(t *testing.T, iss *Issuer, target string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	target = strings.TrimPrefix(target, "https://id.example.com")
	r := httptest.NewRequest(http.MethodGet, "https://id.example.com"+target, nil)
	if header == nil {
		header = []string{"SSWS " + logsToken}
	}
	for _, h := range header {
		r.Header.Add("Authorization", h)
	}
	rec := httptest.NewRecorder()
	if !iss.ServeHTTP(rec, r) {
		t.Fatalf("GET %s: not served", target)
	}
	return rec
}

var linkRE = regexp.MustCompile(`^<([^>]+)>; rel="(self|next)"$`)

// links reads the Link headers: one per relation.
func links(t *testing.T, rec *httptest.ResponseRecorder) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, h := range rec.Header().Values("Link") {
		m := linkRE.FindStringSubmatch(h)
		if m == nil || out[m[2]] != "" {
			t.Fatalf("Link %q", h)
		}
		out[m[2]] = m[1]
	}
	if out["self"] == "" {
		t.Fatalf("no self link: %q", rec.Header().Values("Link"))
	}
	return out
}

func logEvents(t *testing.T, rec *httptest.ResponseRecorder) []store.LogEvent {
	t.Helper()
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	var evs []store.LogEvent
	if strings.TrimSpace(rec.Body.String()) == "null" {
		t.Fatal("null, not an array")
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &evs); err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestLogsPagingBounded: a bounded query paged by its next links sees
// every matching event once, in order, and the last page has no next
// link; DESCENDING pages backwards the same way.
func TestLogsPagingBounded(t *testing.T) {
	iss, _, _ := logsIssuer(t, 250)
	for _, desc := range []bool{false, true} {
		q := url.Values{"since": {logsEpoch.Add(-2 * time.Hour).Format(time.RFC3339)}, "until": {logsEpoch.Format(time.RFC3339)},
			"limit": {"40"}, "filter": {`outcome.result eq "SUCCESS"`}}
		if desc {
			q.Set("sortOrder", "DESCENDING")
		}
		next := "/tenant/api/v1/logs?" + q.Encode()
		var got []string
		pages := 0
		for next != "" {
			rec := getLogs(t, iss, next)
			evs := logEvents(t, rec)
			l := links(t, rec)
			if pages == 0 && l["self"] != logsBase+"/api/v1/logs?"+q.Encode() {
				t.Errorf("self %s", l["self"])
			}
			if len(evs) > 40 {
				t.Fatalf("page of %d", len(evs))
			}
			for _, e := range evs {
				got = append(got, e.UUID)
			}
			next = l["next"]
			if pages++; pages > 20 {
				t.Fatal("pages never end")
			}
		}
		var want []string
		for k := 0; k < 250; k++ {
			if k%3 != 0 {
				want = append(want, fmt.Sprintf("evt-%04d", k))
			}
		}
		if desc {
			for a, b := 0, len(want)-1; a < b; a, b = a+1, b-1 {
				want[a], want[b] = want[b], want[a]
			}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("descending %v: got %d events %v..., want %d", desc, len(got), got[:min(5, len(got))], len(want))
		}
		if pages != (len(want)+39)/40 {
			t.Errorf("descending %v: %d pages", desc, pages)
		}
	}
}

// TestLogsPolling: a request without until always has a next link,
// even for an empty page, and following it later sees events written
// since, with no duplicates.
func TestLogsPolling(t *testing.T) {
	iss, clock, _ := logsIssuer(t, 5)
	rec := getLogs(t, iss, "/tenant/api/v1/logs?since="+url.QueryEscape(logsEpoch.Add(-2*time.Hour).Format(time.RFC3339))+"&limit=3")
	evs := logEvents(t, rec)
	next := links(t, rec)["next"]
	if len(evs) != 3 || next == "" || strings.Contains(next, "until=") {
		t.Fatalf("first poll: %d events, next %q", len(evs), next)
	}
	rec = getLogs(t, iss, next)
	if evs = logEvents(t, rec); len(evs) != 2 || evs[0].UUID != "evt-0003" {
		t.Fatalf("second poll: %v", evs)
	}
	next = links(t, rec)["next"]
	rec = getLogs(t, iss, next)
	if evs = logEvents(t, rec); len(evs) != 0 {
		t.Fatalf("caught up: %v", evs)
	}
	again := links(t, rec)["next"]
	if again != next {
		t.Errorf("empty poll moved: %s, was %s", again, next)
	}
	// New events arrive; the same link now finds them.
	appendLogEvents(t, iss.eventLog, 5, 7)
	clock.Advance(time.Minute)
	if evs = logEvents(t, getLogs(t, iss, again)); len(evs) != 2 || evs[0].UUID != "evt-0005" || evs[1].UUID != "evt-0006" {
		t.Errorf("after new events: %v", evs)
	}
	// A request with neither since nor until polls from a week ago.
	rec = getLogs(t, iss, "/tenant/api/v1/logs")
	if evs = logEvents(t, rec); len(evs) != 7 || links(t, rec)["next"] == "" {
		t.Errorf("no parameters: %d events, links %v", len(evs), rec.Header().Values("Link"))
	}
	// A batch stored late, holding an event published just before now,
	// is not skipped: polling pages end syslog.PollSettle before now.
	rec = getLogs(t, iss, "/tenant/api/v1/logs?since="+url.QueryEscape(clock.Now().Add(-time.Minute).Format(time.RFC3339)))
	poll := links(t, rec)["next"]
	late := store.LogEvent{UUID: "evt-late", Published: clock.Now().Add(-5 * time.Second), EventType: "user.session.start", Version: "0", Severity: "INFO"}
	if err := iss.eventLog.AppendEvents(context.Background(), []store.LogEvent{late}); err != nil {
		t.Fatal(err)
	}
	if evs = logEvents(t, getLogs(t, iss, poll)); len(evs) != 0 {
		t.Fatalf("an event younger than the settle time was served: %v", evs)
	}
	clock.Advance(20 * time.Second)
	if evs = logEvents(t, getLogs(t, iss, poll)); len(evs) != 1 || evs[0].UUID != "evt-late" {
		t.Fatalf("the late event after the settle time: %v", evs)
	}
	// limit=0 answers [] and, polling, still a next link.
	rec = getLogs(t, iss, "/tenant/api/v1/logs?limit=0")
	if evs = logEvents(t, rec); len(evs) != 0 || links(t, rec)["next"] == "" {
		t.Errorf("limit=0: %d events", len(evs))
	}
}

// TestLogsParameters: q, limit defaults and bounds, and Okta's errors
// for bad parameters, in Okta's shape.
func TestLogsParameters(t *testing.T) {
	iss, _, _ := logsIssuer(t, 120)
	if evs := logEvents(t, getLogs(t, iss, "/tenant/api/v1/logs")); len(evs) != 100 {
		t.Errorf("default limit: %d", len(evs))
	}
	if evs := logEvents(t, getLogs(t, iss, "/tenant/api/v1/logs?limit=1000")); len(evs) != 120 {
		t.Errorf("limit=1000: %d", len(evs))
	}
	if evs := logEvents(t, getLogs(t, iss, "/tenant/api/v1/logs?q=0oaclient1+success")); len(evs) != 20 {
		t.Errorf("q: %d events", len(evs)) // k%4==1 and k%3!=0: 30 - 10
	}
	for _, tc := range []struct{ query, code, summary string }{
		{"limit=1001", "E0000001", "Api validation failed: 'limit': must be an integer between 0 and 1000."},
		{"limit=-5", "E0000001", "Api validation failed: 'limit'"},
		{"until=2025-06-01", "E0000001", "Api validation failed: 'until': The date format in your query is not recognized."},
		{"since=tomorrow", "E0000001", "Api validation failed: 'since': The date format"},
		{"sortOrder=RANDOM", "E0000001", "'sortOrder'"},
		{"after=bogus", "E0000001", "'after'"},
		{"filter=" + url.QueryEscape(`eventType eqq "x"`), "E0000053", "Invalid filter 'eventType eqq \"x\"': Unrecognized attribute operator 'eqq' at position 10"},
		{"filter=" + url.QueryEscape(`(eventType eq "x"`), "E0000053", "Unbalanced '('"},
		{"filter=" + url.QueryEscape(`nope eq "x"`), "E0000053", "field is not valid: nope"},
		{"filter=" + url.QueryEscape(`debugContext.debugData.url co "/oauth/"`), "E0000031", "The supplied combination of operator and field is not currently supported. Operator: co, Field: debugContext.debugData.url"},
		{"q=" + strings.Repeat("x", 41), "E0000001", "Freeform search cannot contain items longer than 40 characters"},
		{"limit=%zz", "E0000001", "malformed"},
	} {
		rec := getLogs(t, iss, "/tenant/api/v1/logs?"+tc.query)
		var body struct {
			Code    string `json:"errorCode"`
			Summary string `json:"errorSummary"`
			Link    string `json:"errorLink"`
			ID      string `json:"errorId"`
			Causes  []struct {
				Summary string `json:"errorSummary"`
			} `json:"errorCauses"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != 400 {
			t.Errorf("%s: %d %s", tc.query, rec.Code, rec.Body)
			continue
		}
		if body.Code != tc.code || !strings.HasPrefix(body.Summary, tc.summary) && !strings.Contains(body.Summary, tc.summary) || body.Link != tc.code || !strings.HasPrefix(body.ID, "oae") || body.Causes == nil {
			t.Errorf("%s: %+v", tc.query, body)
		}
	}
	rec := getLogs(t, iss, "/tenant/api/v1/logs?until=x")
	if !strings.Contains(rec.Body.String(), `"errorCauses":[{"errorSummary":"until: The date format in your query is not recognized. Please enter dates using ISO8601 string format."},{"errorSummary":"until: must be a valid date-time or empty."}]`) {
		t.Errorf("causes: %s", rec.Body)
	}
}

// TestLogsAuth: only `Authorization: SSWS <configured token>` reads the
// log; anything else is Okta's 401 E0000011, and no token reaches the
// issuer's log.
func TestLogsAuth(t *testing.T) {
	iss, _, logs := logsIssuer(t, 3)
	for _, tc := range []struct {
		name   string
		header []string
		want   int
	}{
		{"right token", []string{"SSWS " + logsToken}, 200},
		{"second token", []string{"SSWS " + logsToken2}, 200},
		{"scheme case-insensitive", []string{"ssws " + logsToken}, 200},
		{"missing", []string{}, 401},
		{"empty", []string{""}, 401},
		{"scheme only", []string{"SSWS"}, 401},
		{"scheme and space", []string{"SSWS "}, 401},
		{"bearer scheme", []string{"Bearer " + logsToken}, 401},
		{"basic scheme", []string{"Basic " + logsToken}, 401},
		{"wrong token", []string{"SSWS " + strings.Repeat("x", len(logsToken))}, 401},
		{"prefix of token", []string{"SSWS " + logsToken[:30]}, 401},
		{"token and more", []string{"SSWS " + logsToken + "x"}, 401},
		{"two headers", []string{"SSWS " + logsToken, "SSWS " + logsToken}, 401},
	} {
		r := httptest.NewRequest(http.MethodGet, "https://id.example.com/tenant/api/v1/logs", nil)
		for _, h := range tc.header {
			r.Header.Add("Authorization", h)
		}
		rec := httptest.NewRecorder()
		iss.ServeHTTP(rec, r)
		if rec.Code != tc.want {
			t.Errorf("%s: %d %s", tc.name, rec.Code, rec.Body)
			continue
		}
		if tc.want == 401 {
			var body oktaError
			if json.Unmarshal(rec.Body.Bytes(), &body) != nil || body.Code != "E0000011" || body.Summary != "Invalid token provided" || rec.Header().Get("WWW-Authenticate") != "SSWS" {
				t.Errorf("%s: %s", tc.name, rec.Body)
			}
			if rec.Header().Get("Link") != "" {
				t.Errorf("%s: links without a token", tc.name)
			}
		}
	}
	// A method other than GET, with the token: 405; without: 401 first.
	r := httptest.NewRequest(http.MethodPost, "https://id.example.com/tenant/api/v1/logs", nil)
	r.Header.Set("Authorization", "SSWS "+logsToken)
	rec := httptest.NewRecorder()
	iss.ServeHTTP(rec, r)
	if rec.Code != 405 || rec.Header().Get("Allow") != "GET" {
		t.Errorf("POST: %d", rec.Code)
	}
	// The org server's path only: no System Log under a custom server.
	if rec := getLogs(t, iss, "/tenant/oauth2/default/api/v1/logs"); rec.Code != 404 {
		t.Errorf("custom server path: %d", rec.Code)
	}
	for _, e := range logs.All() {
		line := fmt.Sprintf("%s %v", e.Message, e.ContextMap())
		if strings.Contains(line, logsToken) || strings.Contains(line, logsToken2) || strings.Contains(line, logsToken[:20]) {
			t.Errorf("a token in the log: %s", line)
		}
	}
}

// TestLogsNoTokens: an issuer without API tokens authorizes no call,
// and one whose store keeps no log answers 501.
func TestLogsNoTokens(t *testing.T) {
	iss, err := New(Options{BaseURL: logsBase})
	if err != nil {
		t.Fatal(err)
	}
	startIssuer(t, iss, nil)
	if rec := getLogs(t, iss, "/tenant/api/v1/logs"); rec.Code != 401 {
		t.Errorf("no tokens configured: %d", rec.Code)
	}
	if rec := getLogs(t, iss, "/tenant/api/v1/logs", "SSWS "); rec.Code != 401 {
		t.Errorf("empty token, no tokens configured: %d", rec.Code)
	}
	if _, err := New(Options{BaseURL: logsBase, APITokens: []string{"short"}}); err == nil || !strings.Contains(err.Error(), "api_token must be at least 20 characters") || strings.Contains(err.Error(), "short\"") {
		t.Errorf("short token: %v", err)
	}
	iss, _ = New(Options{BaseURL: logsBase, APITokens: []string{logsToken}})
	db, err := embedded.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	startIssuer(t, iss, noLogStore{db})
	if rec := getLogs(t, iss, "/tenant/api/v1/logs"); rec.Code != 501 || !strings.Contains(rec.Body.String(), "E0000052") {
		t.Errorf("no event log: %d %s", rec.Code, rec.Body)
	}
}

// noLogStore hides the embedded store's EventLog.
type noLogStore struct{ store.Store }

// noLog is an EventLog stand-in for a storage that keeps no log (what
// the Caddy app passes until, and unless, its store keeps one).
type noLog struct{}

func (noLog) AppendEvents(context.Context, []store.LogEvent) error { return store.ErrNoEventLog }
func (noLog) QueryEvents(context.Context, store.LogQuery) ([]store.LogEvent, bool, error) {
	return nil, false, store.ErrNoEventLog
}
func (noLog) PurgeEvents(context.Context, time.Time) error { return store.ErrNoEventLog }

// TestLogsWithoutEventLog: a storage that keeps no System Log answers
// Okta's 501 E0000052, not an empty log that a poller would follow
// forever.
func TestLogsWithoutEventLog(t *testing.T) {
	iss, err := New(Options{BaseURL: logsBase, Logger: zap.NewNop(), APITokens: []string{logsToken}, EventLog: noLog{}})
	if err != nil {
		t.Fatal(err)
	}
	db, err := embedded.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	startIssuer(t, iss, db)
	rec := getLogs(t, iss, "/tenant/api/v1/logs?since=2026-01-01T00:00:00Z")
	if rec.Code != http.StatusNotImplemented || !strings.Contains(rec.Body.String(), "E0000052") {
		t.Fatalf("no System Log: %d %s", rec.Code, rec.Body)
	}
}
