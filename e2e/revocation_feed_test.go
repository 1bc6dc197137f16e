package e2e

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
)

// The revocation feed across processes (issue 14): process A is the
// issuer, an SSF transmitter; process B is only a gateway whose
// require_token follows A's feed (RFC 8936 poll delivery) and fetches
// A's keys over HTTP.

const (
	feedClient = "gateway-feed"
	feedSecret = "gateway-feed-secret-0123456789"
)

// feedIssuerConfig is process A: the issuer on an embedded store in
// dir, the default server of issuerApp, and a client that may read and
// manage SSF streams (okta_api_scopes).
func feedIssuerConfig(t *testing.T, base string, port, admin int, dbPath string) string {
	t.Helper()
	app := issuerApp(base, dbPath)
	app["clients"] = append(app["clients"].([]map[string]any), map[string]any{
		"client_id": feedClient, "client_secret": feedSecret,
		"grant_types": []string{"client_credentials"}, "okta_api_scopes": []string{"ssf.read", "ssf.manage"},
	})
	return mustJSON(t, map[string]any{
		"admin": map[string]any{"listen": fmt.Sprintf("127.0.0.1:%d", admin)},
		"apps": map[string]any{
			"token_issuer": app,
			"http": map[string]any{"servers": map[string]any{"issuer": map[string]any{
				"listen":          []string{fmt.Sprintf("127.0.0.1:%d", port)},
				"automatic_https": map[string]any{"disable": true},
				"routes":          []map[string]any{{"handle": []map[string]any{{"handler": "token_issuer"}}}},
			}}},
		},
	})
}

// feedGatewayConfig is process B: require_token for A's default server
// (keys over HTTP) following A's feed with on_stale fail, in front of
// a static_response; refusals answer "denied: REASON".
func feedGatewayConfig(t *testing.T, base string, port, admin int, staleAfter string) string {
	t.Helper()
	return mustJSON(t, map[string]any{
		"admin": map[string]any{"listen": fmt.Sprintf("127.0.0.1:%d", admin)},
		"apps": map[string]any{"http": map[string]any{"servers": map[string]any{"gateway": map[string]any{
			"listen":          []string{fmt.Sprintf("127.0.0.1:%d", port)},
			"automatic_https": map[string]any{"disable": true},
			"routes": []map[string]any{{"handle": []map[string]any{
				{"handler": "require_token", "issuers": []map[string]any{{"url": base + "/oauth2/default", "audience": []string{"api://default"}}},
					"revocations": map[string]any{"feed": base, "client_id": feedClient, "client_secret": feedSecret,
						"stale_after": staleAfter, "on_stale": "fail"}},
				{"handler": "static_response", "body": "ok"},
			}}},
			"errors": map[string]any{"routes": []map[string]any{{"handle": []map[string]any{
				{"handler": "static_response", "body": "denied: {http.auth.token.error}"}}}}},
		}}}},
	})
}

// feedNode is a Caddy process of these tests with its config written
// to a file; its log is kept across restarts and shown on failure.
func feedNode(t *testing.T, name, cfg string) *node {
	t.Helper()
	dir := t.TempDir()
	n := &node{t: t, name: name, cfg: filepath.Join(dir, "caddy.json"), dir: dir, logPath: filepath.Join(dir, "caddy.log")}
	if err := os.WriteFile(n.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.stop()
		if t.Failed() {
			b, _ := os.ReadFile(n.logPath)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			t.Logf("%s log (last lines):\n%s", n.name, strings.Join(lines[max(0, len(lines)-30):], "\n"))
		}
	})
	return n
}

// feedHTTP keeps connections to both processes open for the load and
// the polls (the default transport keeps only two per host).
var feedHTTP = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}

// gwCall GETs the gateway with tok and returns the status, the body
// and the header; err when the request failed.
func gwCall(gateway, tok string) (int, string, http.Header, error) {
	req, _ := http.NewRequest(http.MethodGet, gateway, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := feedHTTP.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header, err
}

// revokeAt revokes an access token at the issuer as its client (RFC
// 7009) and fails t unless the answer is 200.
func revokeAt(t *testing.T, base, tok string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/oauth2/default/v1/revoke", strings.NewReader(url.Values{"token": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, clientSec)
	res, err := feedHTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("revoke: %d %s", res.StatusCode, b)
	}
}

// refusedRevoked reports whether the answer is require_token's refusal
// of a revoked token: 401 invalid_token, reason revoked.
func refusedRevoked(code int, body string, h http.Header) bool {
	return code == 401 && body == "denied: revoked" && strings.Contains(h.Get("WWW-Authenticate"), `error="invalid_token"`)
}

// mintTokens gets n access tokens of the default server.
func mintTokens(t *testing.T, base string, n int) []string {
	t.Helper()
	out := make([]string, n)
	for i := range out {
		out[i] = token(t, base, "default")
	}
	return out
}

// checkGateway fails t unless every revoked token is refused as
// revoked and every kept one passes.
func checkGateway(t *testing.T, when, gateway string, revoked, kept []string) {
	t.Helper()
	for i, tok := range revoked {
		if code, body, h, err := gwCall(gateway, tok); err != nil || !refusedRevoked(code, body, h) {
			t.Fatalf("%s: revoked token %d: %d %q %q %v, want 401 invalid_token, reason revoked", when, i, code, body, h.Get("WWW-Authenticate"), err)
		}
	}
	for i, tok := range kept {
		if code, body, _, err := gwCall(gateway, tok); err != nil || code != 200 || body != "ok" {
			t.Fatalf("%s: unrevoked token %d: %d %q %v, want 200", when, i, code, body, err)
		}
	}
}

// percentile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// TestRevocationFeedTwoProcesses: 100 tokens revoked one at a time at
// the issuer are each refused by the remote gateway (401, reason
// revoked) within 5 s of the revocation's answer, while a background
// load of unrevoked tokens keeps passing. The latencies (revoke answer
// to the gateway's first refusal) are logged for BENCHMARKS.
func TestRevocationFeedTwoProcesses(t *testing.T) {
	const (
		nRevoke = 100
		nKeep   = 20
		bound   = 5 * time.Second // correctness bound, not the target
	)
	bin := testkit.CaddyBinary(t)
	aPort, aAdmin, bPort, bAdmin := testkit.CaddyPort(t), testkit.CaddyPort(t), testkit.CaddyPort(t), testkit.CaddyPort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", aPort)
	gateway := fmt.Sprintf("http://127.0.0.1:%d/orders", bPort)
	a := feedNode(t, "process A (issuer)", feedIssuerConfig(t, base, aPort, aAdmin, filepath.Join(t.TempDir(), "issuer.db")))
	b := feedNode(t, "process B (gateway)", feedGatewayConfig(t, base, bPort, bAdmin, "15s"))
	a.launch(bin)
	b.launch(bin)
	testkit.WaitFor(t, "the issuer", 20*time.Second, func() bool { return status(base+"/oauth2/default/.well-known/openid-configuration", "") == 200 })

	toks := mintTokens(t, base, nRevoke+nKeep)
	revoke, keep := toks[:nRevoke], toks[nRevoke:]
	// on_stale fail: the first 200 also says the feed answered.
	testkit.WaitFor(t, "the gateway to serve (its feed synced)", 20*time.Second, func() bool { return status(gateway, keep[0]) == 200 })
	checkGateway(t, "before any revocation", gateway, nil, toks)

	// Background load of unrevoked tokens, counted.
	var (
		served, failed atomic.Int64
		firstFailure   atomic.Value
		stop           = make(chan struct{})
		wg             sync.WaitGroup
	)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				code, body, _, err := gwCall(gateway, keep[i%len(keep)])
				if err != nil || code != 200 {
					if failed.Add(1) == 1 {
						firstFailure.Store(fmt.Sprintf("%d %q %v", code, body, err))
					}
					continue
				}
				served.Add(1)
			}
		}()
	}
	loadStart := time.Now()
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopLoad)

	lat := make([]time.Duration, 0, nRevoke)
	atOnce := 0 // refused at the first request after the revocation's answer
	for i, tok := range revoke {
		revokeAt(t, base, tok)
		answered := time.Now()
		for try := 0; ; try++ {
			code, body, h, err := gwCall(gateway, tok)
			if err != nil {
				t.Fatalf("revoked token %d at the gateway: %v", i, err)
			}
			if refusedRevoked(code, body, h) {
				lat = append(lat, time.Since(answered))
				if try == 0 {
					atOnce++
				}
				break
			}
			if code != 200 {
				t.Fatalf("revoked token %d at the gateway: %d %q %q, want 200 until refused as revoked", i, code, body, h.Get("WWW-Authenticate"))
			}
			if time.Since(answered) > bound {
				t.Fatalf("revoked token %d still accepted %v after the revocation was answered", i, bound)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	stopLoad()
	loadFor := time.Since(loadStart)

	if n := failed.Load(); n > 0 {
		t.Errorf("%d requests of the background load (unrevoked tokens) failed; first: %v", n, firstFailure.Load())
	}
	// No revocation is forgotten, no unrevoked token refused.
	checkGateway(t, "after the revocations", gateway, revoke, keep)
	// The refusals are counted by reason.
	res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", bAdmin))
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(metrics), `reason="revoked"`) {
		t.Errorf("gateway metrics count no refusal with reason revoked")
	}

	slices.Sort(lat)
	t.Logf("revocation to refusal at the remote gateway, %d revocations (%d refused at the first request): p50 %v, p90 %v, p99 %v, max %v",
		len(lat), atOnce, percentile(lat, 0.50).Round(time.Microsecond), percentile(lat, 0.90).Round(time.Microsecond),
		percentile(lat, 0.99).Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond))
	t.Logf("background load: %d requests of unrevoked tokens served in %v (%.0f/s, 4 goroutines), %d failed",
		served.Load(), loadFor.Round(time.Millisecond), float64(served.Load())/loadFor.Seconds(), failed.Load())
	if served.Load() == 0 {
		t.Error("the background load served nothing")
	}
}

// TestRevocationFeedIssuerRestart: the gateway survives the issuer's
// restart. With the issuer down, a gateway with on_stale fail answers
// 503 (reason revocation_feed_stale) once stale_after passed; with the
// issuer back it serves again, still refuses what was revoked before,
// and follows new revocations on its stream. A gateway started afresh
// catches up on a new stream: it refuses every token revoked before it
// started.
func TestRevocationFeedIssuerRestart(t *testing.T) {
	const staleAfter = 12 * time.Second // above the transmitter's 10 s poll hold
	bin := testkit.CaddyBinary(t)
	aPort, aAdmin, bPort, bAdmin := testkit.CaddyPort(t), testkit.CaddyPort(t), testkit.CaddyPort(t), testkit.CaddyPort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", aPort)
	gateway := fmt.Sprintf("http://127.0.0.1:%d/orders", bPort)
	a := feedNode(t, "process A (issuer)", feedIssuerConfig(t, base, aPort, aAdmin, filepath.Join(t.TempDir(), "issuer.db")))
	b := feedNode(t, "process B (gateway)", feedGatewayConfig(t, base, bPort, bAdmin, staleAfter.String()))
	issuerUp := func() bool { return status(base+"/oauth2/default/.well-known/openid-configuration", "") == 200 }
	a.launch(bin)
	b.launch(bin)
	testkit.WaitFor(t, "the issuer", 20*time.Second, issuerUp)

	toks := mintTokens(t, base, 10)
	revoked, kept := toks[:5], toks[5:]
	testkit.WaitFor(t, "the gateway to serve (its feed synced)", 20*time.Second, func() bool { return status(gateway, kept[0]) == 200 })
	for _, tok := range revoked {
		revokeAt(t, base, tok)
	}
	testkit.WaitFor(t, "the gateway to refuse the revoked tokens", 5*time.Second, func() bool {
		code, body, h, _ := gwCall(gateway, revoked[len(revoked)-1])
		return refusedRevoked(code, body, h)
	})
	checkGateway(t, "issuer up", gateway, revoked, kept)

	// The issuer stops: the feed goes stale, and on_stale fail refuses.
	a.stop()
	stopped := time.Now()
	var retryAfter string
	testkit.WaitFor(t, "503 revocation_feed_stale with the issuer down", staleAfter+5*time.Second, func() bool {
		code, body, h, _ := gwCall(gateway, kept[0])
		retryAfter = h.Get("Retry-After")
		return code == 503 && body == "denied: revocation_feed_stale"
	})
	if retryAfter == "" {
		t.Error("503 revocation_feed_stale without Retry-After")
	}
	t.Logf("stale after %v with the issuer down (stale_after %v)", time.Since(stopped).Round(time.Millisecond), staleAfter)

	// The issuer is back on the same store: the gateway serves again on
	// its stream, remembers, and follows a new revocation.
	a.launch(bin)
	testkit.WaitFor(t, "the issuer restarted", 20*time.Second, issuerUp)
	restarted := time.Now()
	testkit.WaitFor(t, "the gateway to serve again", 15*time.Second, func() bool { return status(gateway, kept[0]) == 200 })
	t.Logf("the gateway served again %v after the issuer answered", time.Since(restarted).Round(time.Millisecond))
	checkGateway(t, "issuer restarted", gateway, revoked, kept)
	revokeAt(t, base, kept[0])
	revoked, kept = append(revoked, kept[0]), kept[1:]
	testkit.WaitFor(t, "the gateway to refuse a token revoked after the issuer's restart", 5*time.Second, func() bool {
		code, body, h, _ := gwCall(gateway, revoked[len(revoked)-1])
		return refusedRevoked(code, body, h)
	})
	checkGateway(t, "revoked after the issuer's restart", gateway, revoked, kept)

	// A gateway started afresh has nothing in memory: it catches up from
	// the issuer's retained events on a new stream.
	b.stop()
	b.launch(bin)
	testkit.WaitFor(t, "the restarted gateway to serve (its feed synced)", 20*time.Second, func() bool { return status(gateway, kept[0]) == 200 })
	checkGateway(t, "gateway restarted", gateway, revoked, kept)
}
