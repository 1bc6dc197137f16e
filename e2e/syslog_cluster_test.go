package e2e

import (
	"cmp"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/postgres/pgtest"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/syslog"
)

const (
	clusterAPIToken = "cluster-syslog-api-token-0123456789"
	// syslogAgent starts the User-Agent of every request the System Log
	// test sends; the node's name ends it, so each event names its node.
	syslogAgent = "apiaccess-e2e-syslog-cluster/"
)

// clusterEvent is what the test reads of a LogEvent.
type clusterEvent struct {
	UUID      string    `json:"uuid"`
	Published time.Time `json:"published"`
	EventType string    `json:"eventType"`
	Outcome   struct {
		Result string `json:"result"`
	} `json:"outcome"`
	Client struct {
		UserAgent struct {
			RawUserAgent string `json:"rawUserAgent"`
		} `json:"userAgent"`
	} `json:"client"`
	DebugContext struct {
		DebugData map[string]any `json:"debugData"`
	} `json:"debugContext"`
}

// what is the event as the test attributes it: node, type, outcome, grant.
func (e clusterEvent) what() string {
	grant, _ := e.DebugContext.DebugData["grantType"].(string)
	return strings.TrimPrefix(e.Client.UserAgent.RawUserAgent, syslogAgent) + " " + e.EventType + " " +
		e.Outcome.Result + " " + grant
}

// tokenAs is a token request at n with the client's credentials, sent
// with the User-Agent that marks n's events.
func (n *node) tokenAs(form url.Values) (int, map[string]any) {
	n.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, n.url+"/oauth2/default/v1/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", syslogAgent+n.name)
	req.SetBasicAuth(clusterClient, clusterSecret)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatalf("%s token: %v", n.name, err)
	}
	defer res.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(res.Body).Decode(&m)
	return res.StatusCode, m
}

var nextLink = regexp.MustCompile(`<([^>]*)>;\s*rel="next"`)

// logs is GET requestURI (path and query of /api/v1/logs) at n with the
// API token: the status, the events, the next link ("" if none) and the
// raw body.
func (n *node) logs(requestURI string) (int, []clusterEvent, string, string) {
	n.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, n.url+requestURI, nil)
	req.Header.Set("Authorization", "SSWS "+clusterAPIToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatalf("%s logs: %v", n.name, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var events []clusterEvent
	if res.StatusCode == 200 {
		if err := json.Unmarshal(raw, &events); err != nil {
			n.t.Fatalf("%s logs: %v in %s", n.name, err, raw)
		}
	}
	next := ""
	for _, l := range res.Header.Values("Link") {
		if m := nextLink.FindStringSubmatch(l); m != nil {
			next = m[1]
		}
	}
	return res.StatusCode, events, next, string(raw)
}

// awaitLogs asks requestURI at n until it answers at least want events
// (the sink writes every 500ms), and returns them with the raw body.
func (n *node) awaitLogs(requestURI string, want int, timeout time.Duration) ([]clusterEvent, string) {
	n.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		status, events, _, raw := n.logs(requestURI)
		if status != 200 {
			n.t.Fatalf("logs at %s: %d %s", n.name, status, raw)
		}
		if len(events) >= want {
			return events, raw
		}
		if time.Now().After(deadline) {
			var got []string
			for _, e := range events {
				got = append(got, e.what())
			}
			n.t.Fatalf("after %v, logs at %s has %d of %d events: %q", timeout, n.name, len(events), want, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// requestURI is the path and query of a next link: the link names the
// issuer's base URL (the load balancer), the test sends it to a node.
func requestURI(t *testing.T, link string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil || u.Path != "/api/v1/logs" {
		t.Fatalf("next link %q: %v", link, err)
	}
	return u.RequestURI()
}

func uuids(events []clusterEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.UUID
	}
	return out
}

// TestClusterSystemLogIsOne: two Caddy nodes on one PostgreSQL schema
// keep one System Log. Token requests go alternately to A and B, each
// node's marked by its User-Agent (client.userAgent.rawUserAgent); one
// GET /api/v1/logs at A answers the events of both nodes, in published
// order, and the same query at B answers the same events in the same
// order; paging with a small limit, page 1 at A, page 2 at B and so on,
// following the Link rel="next" cursors, yields each event exactly once.
// The same holds for a polling query (no until) once the events are
// syslog.PollSettle old.
func TestClusterSystemLogIsOne(t *testing.T) {
	dsn := pgtest.DSN(t)
	schema := pgtest.FreshSchema(t, "apiaccess_syslog_")
	bin := testkit.CaddyBinary(t)
	const base = "http://localhost:9482" // an issuer name, never listened on
	a := newNode(t, "node-A", base, testkit.CaddyPort(t), testkit.CaddyPort(t), dsn, schema, clusterAPIToken)
	b := newNode(t, "node-B", base, testkit.CaddyPort(t), testkit.CaddyPort(t), dsn, schema, clusterAPIToken)
	since := time.Now().Add(-time.Minute).UTC()
	a.launch(bin)
	b.launch(bin)
	a.wait()
	b.wait()

	// A grants client_credentials; B refuses an unknown scope and grants
	// a password grant. Interleaved, so the log interleaves the nodes.
	cc := url.Values{"grant_type": {"client_credentials"}, "scope": {"orders:read"}}
	badScope := url.Values{"grant_type": {"client_credentials"}, "scope": {"no-such-scope"}}
	pwd := url.Values{"grant_type": {"password"}, "username": {aliceLogin}, "password": {alicePass}, "scope": {"orders:read"}}
	var secrets []string
	for i, step := range []struct {
		n      *node
		form   url.Values
		status int
	}{{a, cc, 200}, {b, badScope, 400}, {a, cc, 200}, {b, pwd, 200}, {a, cc, 200}, {b, badScope, 400}} {
		status, m := step.n.tokenAs(step.form)
		if status != step.status {
			t.Fatalf("request %d at %s (%s): %d %v, want %d", i+1, step.n.name, step.form.Get("grant_type"), status, m, step.status)
		}
		if at, ok := m["access_token"].(string); ok {
			secrets = append(secrets, at)
		}
	}
	want := map[string]int{
		"node-A app.oauth2.as.token.grant.access_token SUCCESS client_credentials": 3,
		"node-B app.oauth2.as.token.grant FAILURE client_credentials":              2,
		"node-B app.oauth2.as.token.grant.access_token SUCCESS password":           1,
	}
	const total = 6

	// Bounded (since and until): a polling query (no until) ends
	// syslog.PollSettle (15s) before now.
	q := url.Values{
		"filter": {`client.userAgent.rawUserAgent sw "` + syslogAgent + `"`},
		"since":  {since.Format(time.RFC3339)},
		"until":  {time.Now().Add(time.Hour).UTC().Format(time.RFC3339)},
	}
	query := "/api/v1/logs?" + q.Encode()
	atA, raw := a.awaitLogs(query, total, 15*time.Second)
	got := map[string]int{}
	for _, e := range atA {
		got[e.what()]++
		if e.DebugContext.DebugData["clientId"] != clusterClient {
			t.Errorf("event %s: clientId %v", e.UUID, e.DebugContext.DebugData["clientId"])
		}
	}
	if len(atA) != total || !maps.Equal(got, want) {
		t.Fatalf("logs at A: %d events %v, want %d %v", len(atA), got, total, want)
	}
	if !slices.IsSortedFunc(atA, func(x, y clusterEvent) int {
		return cmp.Or(x.Published.Compare(y.Published), strings.Compare(x.UUID, y.UUID))
	}) {
		t.Errorf("logs at A not in published order: %v", atA)
	}
	if ids := slices.Compact(slices.Sorted(slices.Values(uuids(atA)))); len(ids) != total {
		t.Fatalf("logs at A: %d distinct uuids in %d events", len(ids), total)
	}
	for n, s := range append(secrets, clusterSecret, alicePass, clusterAPIToken) {
		if strings.Contains(raw, s) {
			t.Fatalf("the System Log holds a secret (number %d of the test's)", n+1)
		}
	}

	// The same query at B: the same events, in the same order.
	status, atB, _, rawB := b.logs(query)
	if status != 200 || !slices.Equal(uuids(atB), uuids(atA)) {
		t.Fatalf("logs at B: %d %v, want A's %v (%s)", status, uuids(atB), uuids(atA), rawB)
	}

	// Paged by 2, alternating nodes: page 1 at A, page 2 at B, ... The
	// cursors of one node's pages work at the other.
	q.Set("limit", "2")
	if paged := pageAcross(t, "/api/v1/logs?"+q.Encode(), false, a, b); !slices.Equal(paged, uuids(atA)) {
		t.Fatalf("paging across nodes: %v, want %v", paged, uuids(atA))
	}

	// Polling (since, no until: Okta's polling request) answers the same
	// events once they are syslog.PollSettle old, at either node, and so
	// does its paging across nodes, ending in an empty page that still
	// links on.
	pq := url.Values{"filter": q["filter"], "since": q["since"]}
	polled, _ := a.awaitLogs("/api/v1/logs?"+pq.Encode(), total, syslog.PollSettle+15*time.Second)
	if !slices.Equal(uuids(polled), uuids(atA)) {
		t.Fatalf("polling at A: %v, want %v", uuids(polled), uuids(atA))
	}
	if status, atB, _, rawB := b.logs("/api/v1/logs?" + pq.Encode()); status != 200 || !slices.Equal(uuids(atB), uuids(atA)) {
		t.Fatalf("polling at B: %d %v, want %v (%s)", status, uuids(atB), uuids(atA), rawB)
	}
	pq.Set("limit", "2")
	if paged := pageAcross(t, "/api/v1/logs?"+pq.Encode(), true, b, a); !slices.Equal(paged, uuids(atA)) {
		t.Fatalf("polling pages across nodes: %v, want %v", paged, uuids(atA))
	}
	for _, e := range atA {
		t.Logf("%s %s", e.Published.Format("15:04:05.000000"), e.what())
	}
}

// pageAcross follows the next links from uri, asking the nodes in turn
// (first page at nodes[0]), and returns the uuids of all pages. Bounded
// queries end with the page that has no next link; polling ones with
// the first empty page, which must still have one.
func pageAcross(t *testing.T, uri string, polling bool, nodes ...*node) []string {
	t.Helper()
	var paged []string
	for page := 0; ; page++ {
		n := nodes[page%len(nodes)]
		if page > 20 {
			t.Fatalf("more than 20 pages: %v", paged)
		}
		status, events, next, raw := n.logs(uri)
		if status != 200 || len(events) > 2 {
			t.Fatalf("page %d at %s: %d %s", page+1, n.name, status, raw)
		}
		paged = append(paged, uuids(events)...)
		switch {
		case polling && next == "":
			t.Fatalf("polling page %d at %s: no next link", page+1, n.name)
		case polling && len(events) == 0, next == "":
			return paged
		case len(events) == 0:
			t.Fatalf("page %d at %s: no events, but a next link", page+1, n.name)
		}
		uri = requestURI(t, next)
	}
}
