package tokenissuer_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/okta/okta-sdk-golang/v5/okta"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
	"github.com/apiaccess/caddy-apiaccess/internal/testkit/caddytester"
)

// Okta's management SDKs read the issuer's System Log (GET
// /api/v1/logs) unchanged: @okta/okta-sdk-nodejs 8.1.0 (pinned in
// tokenissuer/interop/package.json) through node, and
// okta-sdk-golang/v5 v5.0.2 (pinned in go.mod) here.

// wantEvent is one System Log event a grant of the test produces.
type wantEvent struct {
	EventType string `json:"eventType"`
	Result    string `json:"result"`
	Actor     string `json:"actor"`
}

const (
	grantEvent  = "app.oauth2.as.token.grant"              // a refused token request
	accessEvent = "app.oauth2.as.token.grant.access_token" // an issued access token
)

// TestSystemLogOktaSDKs: with an API token configured, grants of three
// clients (two refused for a wrong secret) become more System Log
// events than one page of 2; Okta's Node and Go management SDKs page
// through a bounded window of them by the Link header, each event once,
// in order, with Okta's LogEvent fields; a filter on eventType returns
// only the refused grants; a wrong API token gives each SDK's error
// with E0000011.
func TestSystemLogOktaSDKs(t *testing.T) {
	startLogEnv(t)
	// The window: from a whole second (the Go SDK sends since and until
	// in RFC 3339 without fractions) after the issuer started, to one
	// after the grants.
	since := time.Now().UTC().Truncate(time.Second).Add(time.Second)
	testkit.WaitFor(t, "the window's start", 2*time.Second, func() bool { return !time.Now().Before(since) })

	cc := func(extra ...string) url.Values {
		f := url.Values{"grant_type": {"client_credentials"}, "scope": {"billing:read"}}
		for i := 0; i+1 < len(extra); i += 2 {
			f.Set(extra[i], extra[i+1])
		}
		return f
	}
	grants := []struct {
		form   url.Values
		auth   func(*http.Request)
		status int
		want   wantEvent
	}{
		{cc(), basicAuth(basicID, basicSec), 200, wantEvent{accessEvent, "SUCCESS", basicID}},
		{cc(), basicAuth(basicID, "wrong-"+basicSec), 401, wantEvent{grantEvent, "FAILURE", basicID}},
		{cc("client_id", postID, "client_secret", postSec), nil, 200, wantEvent{accessEvent, "SUCCESS", postID}},
		{cc(), basicAuth(otherID, "wrong-"+otherSec), 401, wantEvent{grantEvent, "FAILURE", otherID}},
		{cc(), basicAuth(basicID, basicSec), 200, wantEvent{accessEvent, "SUCCESS", basicID}},
	}
	var want []wantEvent
	for n, g := range grants {
		res, body := post(t, "/oauth2/default/v1/token", g.form, g.auth)
		if res.StatusCode != g.status {
			t.Fatalf("grant %d: %d %v, want %d", n+1, res.StatusCode, body, g.status)
		}
		want = append(want, g.want)
	}
	until := time.Now().UTC().Truncate(time.Second).Add(time.Second)
	sinceS, untilS := since.Format(time.RFC3339), until.Format(time.RFC3339)

	// The events are written in batches: wait until the window holds
	// them all, as the API itself answers.
	testkit.WaitFor(t, "the grants' events in the System Log", 10*time.Second, func() bool {
		var events []map[string]any
		req := mustReq(http.MethodGet, base+"/api/v1/logs?"+url.Values{"since": {sinceS}, "until": {untilS}}.Encode())
		req.Header.Set("Authorization", "SSWS "+logAPIToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		return res.StatusCode == 200 && json.NewDecoder(res.Body).Decode(&events) == nil && len(events) >= len(want)
	})

	t.Run("node", func(t *testing.T) {
		node := needNode(t, "@okta/okta-sdk-nodejs")
		wantJSON, _ := json.Marshal(want)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, node, "--test", "tokenissuer/interop/okta-sdk-syslog.test.mjs")
		cmd.Dir = ".." // the repository root
		cmd.Env = append(os.Environ(),
			"APIACCESS_BASE="+base,
			"APIACCESS_API_TOKEN="+logAPIToken,
			"APIACCESS_SINCE="+sinceS,
			"APIACCESS_UNTIL="+untilS,
			"APIACCESS_WANT="+string(wantJSON),
			"NO_COLOR=1",
		)
		runNodeTest(t, cmd)
	})

	t.Run("go", func(t *testing.T) {
		client := oktaLogClient(t, logAPIToken)
		list := func(filter string) ([]okta.LogEvent, int) {
			t.Helper()
			req := client.SystemLogAPI.ListLogEvents(context.Background()).Since(since).Until(until).Limit(2)
			if filter != "" {
				req = req.Filter(filter)
			}
			events, resp, err := req.Execute()
			pages := 1
			for err == nil && resp.HasNextPage() {
				var page []okta.LogEvent
				resp, err = resp.Next(&page)
				events = append(events, page...)
				pages++
			}
			if err != nil {
				t.Fatalf("ListLogEvents (page %d): %v %s", pages, err, errBody(err))
			}
			return events, pages
		}
		events, pages := list("")
		checkLogEvents(t, events, want)
		if pages < (len(want)+1)/2 {
			t.Errorf("%d events in %d pages of 2", len(events), pages)
		}

		var refused []wantEvent
		for _, w := range want {
			if w.EventType == grantEvent {
				refused = append(refused, w)
			}
		}
		events, _ = list(`eventType eq "` + grantEvent + `"`)
		checkLogEvents(t, events, refused)

		_, resp, err := oktaLogClient(t, "wrong-"+logAPIToken).SystemLogAPI.ListLogEvents(context.Background()).Since(since).Until(until).Execute()
		var apiErr *okta.GenericOpenAPIError
		if !errors.As(err, &apiErr) || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong API token: %v (%T)", err, err)
		}
		var body okta.Error
		if json.Unmarshal(apiErr.Body(), &body) != nil || body.GetErrorCode() != "E0000011" || body.GetErrorSummary() != "Invalid token provided" || body.GetErrorId() == "" {
			t.Fatalf("wrong API token: %s", apiErr.Body())
		}
	})
}

// startLogEnv starts the standard issuer with the API token logAPIToken.
func startLogEnv(t *testing.T) {
	t.Helper()
	e := newEnv(t)
	var cfg map[string]any
	if err := json.Unmarshal([]byte(e.config), &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["apps"].(map[string]any)["token_issuer"].(map[string]any)["api_tokens"] = []string{logAPIToken}
	b, _ := json.Marshal(cfg)
	e.tester = caddytester.NewTester(t)
	e.tester.InitServer(string(b), "json")
}

// oktaLogClient is an okta-sdk-golang client of the issuer as Okta
// documents it (org URL and API token). v5.0.2 has no HTTPS check
// (WithTestingDisableHttpsCheck, its documented option, sets a field
// nothing reads), but NewConfiguration keeps only the org URL's
// hostname (cfg.Host = purl.Hostname()): with a port, requests go to
// the scheme's default port. The exported Configuration.Host puts the
// port back.
func oktaLogClient(t *testing.T, token string) *okta.APIClient {
	t.Helper()
	cfg, err := okta.NewConfiguration(okta.WithOrgUrl(base), okta.WithToken(token), okta.WithTestingDisableHttpsCheck(true))
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Host = u.Host
	return okta.NewAPIClient(cfg)
}

// checkLogEvents compares what the Go SDK listed with the grants made:
// each once, in order, with Okta's fields.
func checkLogEvents(t *testing.T, events []okta.LogEvent, want []wantEvent) {
	t.Helper()
	var got []wantEvent
	uuids, txns := map[string]bool{}, map[string]bool{}
	var last time.Time
	for _, e := range events {
		got = append(got, wantEvent{e.GetEventType(), e.Outcome.GetResult(), e.Actor.GetId()})
		if e.Actor.GetType() == "" || e.Client.GetIpAddress() == "" || e.Transaction.GetId() == "" || e.GetUuid() == "" || e.GetDisplayMessage() == "" {
			b, _ := json.Marshal(e)
			t.Errorf("event fields: %s", b)
		}
		if uuids[e.GetUuid()] || txns[e.Transaction.GetId()] {
			t.Errorf("event %s (transaction %s) twice", e.GetUuid(), e.Transaction.GetId())
		}
		uuids[e.GetUuid()], txns[e.Transaction.GetId()] = true, true
		if p := e.GetPublished(); p.IsZero() || p.Before(last) {
			t.Errorf("published %v after %v", p, last)
		} else {
			last = p
		}
	}
	if len(got) != len(want) {
		t.Fatalf("events:\n got %v\nwant %v", got, want)
	}
	for n := range want {
		if got[n] != want[n] {
			t.Fatalf("events:\n got %v\nwant %v", got, want)
		}
	}
}

// errBody is the response body an okta-sdk-golang error carries.
func errBody(err error) string {
	var apiErr *okta.GenericOpenAPIError
	if errors.As(err, &apiErr) {
		return string(apiErr.Body())
	}
	return ""
}
