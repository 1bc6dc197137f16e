package authserver

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/bcrypt"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientip"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/keys"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/embedded"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/postgres"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/postgres/pgtest"
)

const (
	alicePass   = "alice-correct-password"
	redirectURI = "https://app.test/cb"
	pkceS256    = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
)

// signInEnv is one or more Issuers ("nodes") on one store, each behind
// a real HTTP server, with users alice (active) and bob (suspended). A
// request's client address is taken from the test header X-Test-Client
// (what the Caddy glue does with client_ip), else the socket's.
type signInEnv struct {
	t     *testing.T
	nodes []*Issuer
	urls  []string
	logs  *observer.ObservedLogs
	hc    *http.Client
}

func testBcrypt(t testing.TB, pw string) string { return testBcryptCost(t, pw, bcrypt.MinCost) }

func testBcryptCost(t testing.TB, pw string, cost int) string {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func embeddedStore(t *testing.T) store.Store {
	st, err := embedded.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// postgresStore is a throwaway schema on APIACCESS_POSTGRES_DSN's server
// (skipped without one, failing under APIACCESS_STRICT=1).
func postgresStore(t *testing.T) store.Store {
	schema := pgtest.FreshSchema(t, "apiaccess_signin_")
	st, err := postgres.Open(context.Background(), postgres.Config{DSN: pgtest.DSN(t), Schema: schema, MaxConns: 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// defaultUsers are alice (active) and bob (suspended, same password),
// with bcrypt at cost.
func defaultUsers(t *testing.T, cost int) []*directory.User {
	return []*directory.User{
		{ID: "00u1alice", Login: "alice@example.com", PasswordHash: testBcryptCost(t, alicePass, cost)},
		{ID: "00u2bob", Login: "bob@example.com", PasswordHash: testBcryptCost(t, alicePass, cost), Status: directory.StatusSuspended},
	}
}

func newSignInEnv(t *testing.T, st store.Store, nodes int, users []*directory.User, tweak func(*Options)) *signInEnv {
	t.Helper()
	if users == nil {
		users = defaultUsers(t, bcrypt.MinCost)
	}
	dir, err := directory.NewFile(users)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	e := &signInEnv{t: t, logs: logs, hc: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	sealer, _ := keys.NewSealer([]byte("signin-seal-secret-0123456789abcdef"))
	for range nodes {
		o := Options{
			BaseURL:   "http://issuer.test",
			Directory: dir,
			Servers: map[string]*ServerConfig{"default": {SigningAlg: "ES256", Scopes: []*Scope{{Name: "orders:read"}},
				Policies: []*policy.Policy{{Name: "p", Clients: []string{"*"}, Rules: []*policy.Rule{{Name: "r",
					GrantTypes: []string{GrantAuthorizationCode, GrantPassword}, Scopes: []string{"*"}}}}}}},
			Clients: []*clientauth.Client{{ID: "web", Secret: "web-secret", GrantTypes: []string{GrantAuthorizationCode, GrantPassword},
				RedirectURIs: []string{redirectURI}}},
			Logger: zap.New(core),
		}
		if tweak != nil {
			tweak(&o)
		}
		iss, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		iss.slowStep = 0
		if err := iss.Start(context.Background(), st, sealer); err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if ip := r.Header.Get("X-Test-Client"); ip != "" {
				r = r.WithContext(clientip.With(r.Context(), ip))
			}
			if !iss.ServeHTTP(w, r) {
				http.NotFound(w, r)
			}
		}))
		t.Cleanup(srv.Close)
		e.nodes = append(e.nodes, iss)
		e.urls = append(e.urls, srv.URL)
	}
	return e
}

// pending is a sign-in page as a browser holds it.
type pending struct {
	node      int
	txn, csrf string
	cookies   []*http.Cookie
}

// open starts an authorization at node and returns its sign-in page.
func (e *signInEnv) open(node int) pending {
	e.t.Helper()
	q := url.Values{"client_id": {"web"}, "response_type": {"code"}, "redirect_uri": {redirectURI}, "scope": {"orders:read"},
		"state": {"s"}, "code_challenge": {pkceS256}, "code_challenge_method": {"S256"}}
	resp, err := e.hc.Get(e.urls[node] + "/oauth2/default/v1/authorize?" + q.Encode())
	if err != nil {
		e.t.Fatal(err)
	}
	page := readBody(resp)
	return pending{node: node, txn: formField(e.t, page, "txn"), csrf: formField(e.t, page, "csrf"), cookies: resp.Cookies()}
}

// result is the answer to a posted page.
type result struct {
	status   int
	location string
	body     string
	cookies  []*http.Cookie
}

// session reports whether the answer started an SSO session.
func (r result) session() bool {
	for _, c := range r.cookies {
		if c.Name == sessionCookie && c.Value != "" {
			return true
		}
	}
	return false
}

// code is the authorization code the answer redirects with, if any.
func (r result) code() string {
	u, err := url.Parse(r.location)
	if err != nil {
		return ""
	}
	return u.Query().Get("code")
}

func (e *signInEnv) post(p pending, path string, form url.Values, client string, extra ...*http.Cookie) result {
	e.t.Helper()
	form.Set("txn", p.txn)
	form.Set("csrf", p.csrf)
	req, _ := http.NewRequest(http.MethodPost, e.urls[p.node]+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if client != "" {
		req.Header.Set("X-Test-Client", client)
	}
	for _, c := range append(p.cookies, extra...) {
		req.AddCookie(c)
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Error(err)
		return result{}
	}
	body := readBody(resp)
	return result{status: resp.StatusCode, location: resp.Header.Get("Location"), body: body, cookies: resp.Cookies()}
}

func (e *signInEnv) signIn(p pending, login, password, client string) result {
	e.t.Helper()
	return e.post(p, "/oauth2/v1/signin", url.Values{"username": {login}, "password": {password}}, client)
}

func readBody(resp *http.Response) string {
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

func formField(t *testing.T, page, name string) string {
	t.Helper()
	i := strings.Index(page, `name="`+name+`" value="`)
	if i < 0 {
		t.Fatalf("no %s field on the page: %.300s", name, page)
	}
	rest := page[i+len(`name="`+name+`" value="`):]
	return rest[:strings.IndexByte(rest, '"')]
}

// lockoutRace replays finding 1 (alice's hash at bcrypt's default
// cost, ~60 ms, the window the old count-after-check left open): 9 wrong
// passwords, then 60 wrong ones
// released together (spread over the nodes, each with a fresh sign-in
// page, as an attacker would), then the right one as guess 70. Counting
// after the check let all 60 be checked and guess 70 in; counted
// before, at most the 10th guess is checked and guess 70 is refused.
func lockoutRace(t *testing.T, e *signInEnv) {
	const login = "alice@example.com"
	for n := range 9 {
		if r := e.signIn(e.open(0), login, "wrong-"+string(rune('a'+n)), ""); r.status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d, want 401", n+1, r.status)
		}
	}
	const k = 60
	pages := make([]pending, k)
	for j := range pages {
		pages[j] = e.open(j % len(e.nodes))
	}
	results := make([]result, k)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for j := range k {
		wg.Go(func() {
			<-start
			results[j] = e.signIn(pages[j], login, "guess-"+pages[j].txn[:8], "")
		})
	}
	close(start)
	wg.Wait()
	checked := 0
	for _, r := range results {
		switch r.status {
		case http.StatusUnauthorized:
			checked++
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		default:
			t.Fatalf("parallel guess answered %d: %.200s", r.status, r.body)
		}
	}
	if checked > 1 {
		t.Errorf("%d of %d parallel guesses after 9 failures were checked; the limit of %d leaves 1", checked, k, maxUserFailures)
	}
	r := e.signIn(e.open(len(e.nodes)-1), login, alicePass, "")
	if r.session() || r.code() != "" || r.status != http.StatusTooManyRequests {
		t.Fatalf("the right password as guess 70: %d session=%v code=%q, want 429 and nothing", r.status, r.session(), r.code())
	}
}

func TestSignInLockoutUnderParallelGuesses(t *testing.T) {
	lockoutRace(t, newSignInEnv(t, embeddedStore(t), 1, defaultUsers(t, bcrypt.DefaultCost), nil))
}

// Two nodes on one PostgreSQL: the count is the database's, so guesses
// spread over the nodes are bounded together.
func TestSignInLockoutAcrossNodesOnPostgres(t *testing.T) {
	lockoutRace(t, newSignInEnv(t, postgresStore(t), 2, defaultUsers(t, bcrypt.DefaultCost), nil))
}

// A success clears the login's count (and does not use up the
// address's), so a user who mistypes a few times is not locked later.
func TestSignInSuccessClearsCount(t *testing.T) {
	e := newSignInEnv(t, embeddedStore(t), 1, nil, nil)
	for round := range 3 {
		for range maxUserFailures - 1 {
			if r := e.signIn(e.open(0), "alice@example.com", "wrong", ""); r.status != http.StatusUnauthorized {
				t.Fatalf("round %d: failure answered %d", round, r.status)
			}
		}
		if r := e.signIn(e.open(0), "alice@example.com", alicePass, ""); r.code() == "" || !r.session() {
			t.Fatalf("round %d: the right password after %d failures: %d %q", round, maxUserFailures-1, r.status, r.location)
		}
	}
	// 60 successes from one address stay under the address limit.
	for n := range maxAddrFailures + 10 {
		if r := e.signIn(e.open(0), "alice@example.com", alicePass, ""); r.code() == "" {
			t.Fatalf("success %d from one address: %d", n+1, r.status)
		}
	}
}

// Password spraying from one IPv6 /64: every address of the /64 counts
// as one, so after maxAddrFailures attempts the whole /64 is locked,
// while alice signs in from another network. One host holds a /64; per
// address, it would get a fresh count for every guess.
func TestSignInAddressLimitCountsIPv6By64(t *testing.T) {
	e := newSignInEnv(t, embeddedStore(t), 1, nil, nil)
	locked := 0
	for n := range maxAddrFailures + 20 {
		r := e.signIn(e.open(0), fmt.Sprintf("user%d@example.com", n), "guess", fmt.Sprintf("2001:db8:1:2::%x", n+1))
		switch r.status {
		case http.StatusUnauthorized:
		case http.StatusTooManyRequests:
			locked++
		default:
			t.Fatalf("guess %d: %d", n+1, r.status)
		}
	}
	if locked != 20 {
		t.Fatalf("%d of %d guesses from one /64 refused, want the 20 past the address limit of %d", locked, maxAddrFailures+20, maxAddrFailures)
	}
	if r := e.signIn(e.open(0), "alice@example.com", alicePass, "2001:db8:1:3::1"); r.code() == "" {
		t.Fatalf("alice from the next /64: %d", r.status)
	}
}
