package authserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

const (
	parEP       = "/oauth2/default/v1/par"
	authorizeEP = "/oauth2/default/v1/authorize"
)

// parForm is a valid pushed request of client web.
func parForm(extra url.Values) url.Values {
	f := url.Values{"response_type": {"code"}, "redirect_uri": {webCB}, "scope": {"openid read"}, "state": {"st-1"}, "nonce": {"n-1"}}
	for k, v := range extra {
		f[k] = v
	}
	return f
}

// push pushes form as client and returns the request_uri, failing the
// test unless the answer is RFC 9126 section 2.2's.
func (e *flowEnv) push(client string, form url.Values) string {
	e.t.Helper()
	w := e.send(parEP, client, form)
	var body map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	uri, _ := body["request_uri"].(string)
	if w.Code != http.StatusCreated || !strings.HasPrefix(uri, requestURIPrefix) || len(uri) < len(requestURIPrefix)+40 || body["expires_in"] != float64(60) {
		e.t.Fatalf("push as %s: %d %s", client, w.Code, w.Body)
	}
	if w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Content-Type") != "application/json" {
		e.t.Fatalf("push answer headers: %v", w.Header())
	}
	return uri
}

// usePAR sends the browser to /v1/authorize with a request_uri.
func (e *flowEnv) usePAR(client, uri string, extra url.Values, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	e.t.Helper()
	q := url.Values{"client_id": {client}, "request_uri": {uri}}
	for k, v := range extra {
		q[k] = v
	}
	return e.browse(http.MethodGet, authorizeEP+"?"+q.Encode(), nil, cookies...)
}

// codeAt reads the code of a successful redirect to redirect, with the
// state wanted.
func codeAt(t *testing.T, w *httptest.ResponseRecorder, redirect, state string) string {
	t.Helper()
	loc, err := url.Parse(w.Header().Get("Location"))
	if w.Code != http.StatusFound || err != nil || !strings.HasPrefix(loc.String(), redirect+"?") {
		t.Fatalf("want a redirect to %s, got %d %q %s", redirect, w.Code, w.Header().Get("Location"), w.Body)
	}
	q := loc.Query()
	if q.Get("code") == "" || q.Get("state") != state {
		t.Fatalf("want a code and state %q, got %q", state, loc)
	}
	return q.Get("code")
}

// refusedPage checks an error page (no redirect) with status and text.
func refusedPage(t *testing.T, name string, w *httptest.ResponseRecorder, status int, text string) {
	t.Helper()
	if w.Code != status || w.Header().Get("Location") != "" || !strings.Contains(w.Body.String(), text) {
		t.Errorf("%s: want page %d %q, got %d %q %.300s", name, status, text, w.Code, w.Header().Get("Location"), w.Body)
	}
}

// TestPARCodeFlowOnce (RFC 9126 sections 2 and 4): a pushed request is
// answered 201 with a request_uri and expires_in; /v1/authorize with it
// and the client_id runs the pushed request (its state, redirect URI,
// scopes) to a code that redeems; the request_uri then is used up.
func TestPARCodeFlowOnce(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	sess := e.session("u1")
	uri := e.push("web", parForm(nil))
	code := codeAt(t, e.usePAR("web", uri, nil, sess), webCB, "st-1")
	status, tok := e.redeem("web", code, webCB, "")
	if status != http.StatusOK || tok["access_token"] == nil || tok["id_token"] == nil || tok["scope"] != "openid read" {
		t.Fatalf("redeem the code of a pushed request: %d %v", status, tok)
	}
	refusedPage(t, "second use", e.usePAR("web", uri, nil, sess), http.StatusBadRequest, "The authorize request_uri is invalid.")
}

// TestPARParametersBesideRequestURIIgnored (RFC 9126 section 4): only
// the pushed parameters count; a state, redirect URI, scope, prompt or
// PKCE challenge added in the browser is ignored.
func TestPARParametersBesideRequestURIIgnored(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	sess := e.session("u1")
	uri := e.push("web", parForm(nil))
	// A challenge in the URL is not the pushed request's (which has
	// none, a confidential client's choice): the code redeems without a
	// verifier.
	w := e.usePAR("web", uri, url.Values{"state": {"evil"}, "redirect_uri": {otherCB}, "scope": {"openid pay"},
		"code_challenge": {s256(strings.Repeat("c", 43))}, "code_challenge_method": {"S256"}}, sess)
	code := codeAt(t, w, webCB, "st-1")
	if status, tok := e.redeem("web", code, webCB, ""); status != http.StatusOK || tok["scope"] != "openid read" {
		t.Fatalf("redeem without a verifier: %d %v", status, tok)
	}
	// prompt=none in the URL, no session: the pushed request (which
	// may prompt) shows the sign-in page, not login_required.
	w = e.usePAR("web", e.push("web", parForm(nil)), url.Values{"prompt": {"none"}})
	if w.Code != http.StatusOK || w.Header().Get("Location") != "" || hidden(w.Body.String(), "txn") == "" {
		t.Fatalf("prompt=none beside request_uri: %d %q %.300s", w.Code, w.Header().Get("Location"), w.Body)
	}
}

// TestPARPublicClientPKCE: a public client pushes with its client_id
// alone (token_endpoint_auth_method none, as at the token endpoint), and
// the PKCE rule of /v1/authorize applies to the push.
func TestPARPublicClientPKCE(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	base := url.Values{"response_type": {"code"}, "redirect_uri": {pubCB}, "scope": {"openid read"}, "state": {"p"}}
	status, body := e.post(parEP, "pub", base)
	if status != http.StatusBadRequest || body["error"] != "invalid_request" || !strings.Contains(body["error_description"].(string), "PKCE") {
		t.Fatalf("public push without PKCE: %d %v", status, body)
	}
	verifier := strings.Repeat("v", 43)
	f := url.Values{"code_challenge": {s256(verifier)}, "code_challenge_method": {"S256"}}
	for k, v := range base {
		f[k] = v
	}
	uri := e.push("pub", f)
	code := codeAt(t, e.usePAR("pub", uri, nil, e.session("u1")), pubCB, "p")
	if status, tok := e.redeem("pub", code, pubCB, verifier); status != http.StatusOK {
		t.Fatalf("redeem with the verifier: %d %v", status, tok)
	}
}

// parCounter counts the pushed requests stored.
type parCounter struct {
	store.Store
	n atomic.Int32
}

func (c *parCounter) CreateRecord(ctx context.Context, ns, key string, v []byte, until time.Time) (bool, error) {
	if ns == store.NSPAR {
		c.n.Add(1)
	}
	return c.Store.CreateRecord(ctx, ns, key, v, until)
}

// TestPARRefusals: every refusal of the par endpoint, in RFC 6749
// section 5.2 form (RFC 9126 section 2.3) and Okta's words; none stores
// anything, and each is logged once as a refused authorization request.
func TestPARRefusals(t *testing.T) {
	counter := &parCounter{Store: embeddedStore(t)}
	e := newFlowEnvWith(t, "https://id.example.com", nil, counter)
	for _, tc := range []struct {
		name   string
		client string
		form   url.Values
		status int
		code   string
		desc   string
	}{
		{"request_uri pushed", "web", parForm(url.Values{"request_uri": {"urn:okta:x"}}), 400, "invalid_request", "The 'request_uri' parameter must not be present in the request."},
		{"request object", "web", parForm(url.Values{"request": {"eyJ.e30."}}), 400, "request_not_supported", ""},
		{"unregistered redirect URI", "web", parForm(url.Values{"redirect_uri": {otherCB}}), 400, "invalid_request", "The 'redirect_uri' parameter must be a Login redirect URI in the client app settings."},
		{"no redirect URI", "web", parForm(url.Values{"redirect_uri": {""}}), 400, "invalid_request", "Login redirect URI"},
		{"implicit", "web", parForm(url.Values{"response_type": {"token"}}), 400, "unsupported_response_type", ""},
		{"unknown scope", "web", parForm(url.Values{"scope": {"openid nope"}}), 400, "invalid_scope", ""},
		{"plain PKCE", "web", parForm(url.Values{"code_challenge": {strings.Repeat("a", 43)}, "code_challenge_method": {"plain"}}), 400, "invalid_request", "S256"},
		{"bad max_age", "web", parForm(url.Values{"max_age": {"soon"}}), 400, "invalid_request", "max_age"},
		{"bad response_mode", "web", parForm(url.Values{"response_mode": {"jwt"}}), 400, "invalid_request", ""},
		{"state too long", "web", parForm(url.Values{"state": {strings.Repeat("s", 2049)}}), 400, "invalid_request", "too long"},
		{"client without redirect URIs", "svc", url.Values{"response_type": {"code"}, "redirect_uri": {webCB}}, 400, "invalid_request", "Login redirect URI"},
		{"no client authentication", "", parForm(nil), 401, "invalid_client", ""},
		{"confidential client_id without credentials", "", parForm(url.Values{"client_id": {"web"}}), 401, "invalid_client", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.logs.FilterMessage(EventAuthorize).Len()
			status, body := e.post(parEP, tc.client, tc.form)
			if status != tc.status || body["error"] != tc.code || (tc.desc != "" && !strings.Contains(body["error_description"].(string), tc.desc)) {
				t.Errorf("want %d %s %q, got %d %v", tc.status, tc.code, tc.desc, status, body)
			}
			logged := e.logs.FilterMessage(EventAuthorize).All()[before:]
			if len(logged) != 1 || logged[0].ContextMap()["outcome"] != "FAILURE" || logged[0].ContextMap()["error"] != tc.code {
				t.Errorf("want one %s FAILURE event with error %s, got %v", EventAuthorize, tc.code, logged)
			}
		})
	}
	// A wrong secret.
	w := e.sendWith(parEP, parForm(nil), func(r *http.Request) { r.SetBasicAuth("web", "wrong") })
	if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "invalid_client") {
		t.Errorf("wrong secret: %d %s", w.Code, w.Body)
	}
	// Not a POST.
	w = e.browse(http.MethodGet, parEP+"?"+parForm(nil).Encode(), nil)
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != http.MethodPost {
		t.Errorf("GET: %d %v", w.Code, w.Header())
	}
	if n := counter.n.Load(); n != 0 {
		t.Errorf("refused pushes stored %d pushed requests", n)
	}
	// The counter counts: an accepted push is stored.
	e.push("web", parForm(nil))
	if n := counter.n.Load(); n != 1 {
		t.Errorf("an accepted push stored %d pushed requests, want 1", n)
	}
}

// sendWith posts form to path, letting auth authenticate the request.
func (e *flowEnv) sendWith(path string, form url.Values, auth func(*http.Request)) *httptest.ResponseRecorder {
	e.t.Helper()
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	auth(r)
	w := httptest.NewRecorder()
	e.iss.ServeHTTP(w, r)
	return w
}

// TestPARAuthorizeRefusals: /v1/authorize refuses an unknown, malformed,
// foreign-server or other client's request_uri, and one sent beside a
// request object, on a page (nothing has verified a redirect URI); a
// wrong client_id does not use the handle up.
func TestPARAuthorizeRefusals(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	sess := e.session("u1")
	uri := e.push("web", parForm(nil))
	refusedPage(t, "unknown handle", e.usePAR("web", requestURIPrefix+randomToken(), nil, sess), 400, "The authorize request_uri is invalid.")
	refusedPage(t, "other prefix", e.usePAR("web", "urn:ietf:params:oauth:request_uri:"+strings.TrimPrefix(uri, requestURIPrefix), nil, sess), 400, "The authorize request_uri is invalid.")
	refusedPage(t, "empty", e.usePAR("web", "", nil, sess), 400, "The authorize request_uri is invalid.")
	refusedPage(t, "too long", e.usePAR("web", uri+strings.Repeat("a", 300), nil, sess), 400, "The authorize request_uri is invalid.")
	refusedPage(t, "other client", e.usePAR("other", uri, nil, sess), 400, "The &#39;client_id&#39; parameter does not match the expected value for the provided request_uri.")
	refusedPage(t, "no client_id", e.usePAR("", uri, nil, sess), 400, "does not match the expected value")
	if ev := e.event(EventAuthorize); ev["error"] != "invalid_request_uri" || ev["client_id"] != nil {
		t.Errorf("a request_uri sent without its client_id is logged as %v, want invalid_request_uri", ev)
	}
	refusedPage(t, "with a request object", e.usePAR("web", uri, url.Values{"request": {"eyJ.e30."}}, sess), 400, "must not contain both a request object and a request uri")
	org := e.browse(http.MethodGet, "/oauth2/v1/authorize?"+url.Values{"client_id": {"web"}, "request_uri": {uri}}.Encode(), nil, sess)
	refusedPage(t, "other server", org, 400, "The request_uri was issued for another authorization server.")
	// Its record is kept under the hash of the handle, not the handle
	// (checked while it exists).
	handle := strings.TrimPrefix(uri, requestURIPrefix)
	if _, err := e.st.GetRecord(context.Background(), store.NSPAR, refreshHash(handle)); err != nil {
		t.Fatalf("no pushed request under the hash of its handle: %v", err)
	}
	if _, err := e.st.GetRecord(context.Background(), store.NSPAR, handle); err == nil {
		t.Fatal("a pushed request is stored under the handle itself")
	}
	// None of these used it up.
	codeAt(t, e.usePAR("web", uri, nil, sess), webCB, "st-1")
	// The handle is never logged (it is a bearer credential, like a code).
	for _, entry := range e.logs.All() {
		b, _ := json.Marshal(entry.ContextMap())
		if strings.Contains(string(b)+entry.Message, handle) {
			t.Fatalf("the request_uri is in the log: %s %s", entry.Message, b)
		}
	}
}

// TestPARExpiry: a request_uri is good for expires_in seconds by the
// issuer's clock, not one second more.
func TestPARExpiry(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	sess := e.session("u1")
	fresh := e.push("web", parForm(nil))
	stale := e.push("web", parForm(nil))
	e.clock.Advance(parLifetime - time.Second)
	codeAt(t, e.usePAR("web", fresh, nil, sess), webCB, "st-1")
	e.clock.Advance(time.Second)
	refusedPage(t, "expired", e.usePAR("web", stale, nil, sess), 400, "The authorize request_uri is invalid.")
}

// TestPARConcurrentUseOnce: of many simultaneous uses of one
// request_uri exactly one gets a code (the store's atomic consume).
func TestPARConcurrentUseOnce(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	sess := e.session("u1")
	uri := e.push("web", parForm(nil))
	const n = 8
	codes := make([]int, n)
	var wg sync.WaitGroup
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[k] = e.usePAR("web", uri, nil, sess).Code
		}()
	}
	wg.Wait()
	won := 0
	for _, c := range codes {
		switch c {
		case http.StatusFound:
			won++
		case http.StatusBadRequest:
		default:
			t.Errorf("unexpected status %d", c)
		}
	}
	if won != 1 {
		t.Fatalf("want exactly one use to win, got %d of %v", won, codes)
	}
}

// TestPARRequiredByClient (RFC 9126 section 6): a client that requires
// pushed requests has its plain authorization requests refused at its
// redirect URI; its pushed ones work. Other clients are not affected.
func TestPARRequiredByClient(t *testing.T) {
	e := newFlowEnvWith(t, "https://id.example.com", func(o *Options) {
		for _, c := range o.Clients {
			if c.ID == "web" {
				c.RequirePushedAuthorizationRequests = true
			}
		}
	}, nil)
	sess := e.session("u1")
	q := url.Values{"client_id": {"web"}, "response_type": {"code"}, "scope": {"openid read"}, "state": {"s"}, "redirect_uri": {webCB}}
	w := e.browse(http.MethodGet, authorizeEP+"?"+q.Encode(), nil, sess)
	loc, _ := url.Parse(w.Header().Get("Location"))
	if w.Code != http.StatusFound || !strings.HasPrefix(loc.String(), webCB+"?") || loc.Query().Get("error") != "invalid_request" ||
		!strings.Contains(loc.Query().Get("error_description"), "pushed authorization requests") || loc.Query().Get("code") != "" || loc.Query().Get("state") != "s" {
		t.Fatalf("plain request of a client requiring PAR: %d %q", w.Code, w.Header().Get("Location"))
	}
	codeAt(t, e.usePAR("web", e.push("web", parForm(nil)), nil, sess), webCB, "st-1")
	// The same by POST (OpenID Connect Core section 3.1.2.1).
	w = e.browse(http.MethodPost, authorizeEP, q, sess)
	loc, _ = url.Parse(w.Header().Get("Location"))
	if w.Code != http.StatusFound || !strings.HasPrefix(loc.String(), webCB+"?") || loc.Query().Get("error") != "invalid_request" ||
		!strings.Contains(loc.Query().Get("error_description"), "pushed authorization requests") || loc.Query().Get("code") != "" {
		t.Fatalf("plain POSTed request of a client requiring PAR: %d %q", w.Code, w.Header().Get("Location"))
	}
	w = e.browse(http.MethodPost, authorizeEP, url.Values{"client_id": {"web"}, "request_uri": {e.push("web", parForm(nil))}}, sess)
	codeAt(t, w, webCB, "st-1")
	q.Set("client_id", "other")
	q.Set("redirect_uri", otherCB)
	codeAt(t, e.browse(http.MethodGet, authorizeEP+"?"+q.Encode(), nil, sess), otherCB, "s")
}

// TestPAROrgServer: the org server has its own par endpoint, and its
// handles work only there.
func TestPAROrgServer(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	sess := e.session("u1")
	w := e.send("/oauth2/v1/par", "web", parForm(url.Values{"scope": {"openid"}}))
	var body map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	uri, _ := body["request_uri"].(string)
	if w.Code != http.StatusCreated || uri == "" {
		t.Fatalf("org push: %d %s", w.Code, w.Body)
	}
	refusedPage(t, "custom server", e.usePAR("web", uri, nil, sess), 400, "another authorization server")
	org := e.browse(http.MethodGet, "/oauth2/v1/authorize?"+url.Values{"client_id": {"web"}, "request_uri": {uri}}.Encode(), nil, sess)
	codeAt(t, org, webCB, "st-1")
}

// TestPARPrivateKeyJWT: a private_key_jwt client pushes with an
// assertion whose audience is the par endpoint (RFC 9126 section 2);
// its credentials are not kept with the pushed request.
func TestPARPrivateKeyJWT(t *testing.T) {
	raw, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	priv, _ := jwk.FromRaw(raw)
	_ = priv.Set(jwk.KeyIDKey, "k1")
	_ = priv.Set(jwk.AlgorithmKey, jwa.ES256)
	pub, _ := priv.PublicKey()
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	jwks, _ := json.Marshal(set)
	e := newFlowEnvWith(t, "https://id.example.com", func(o *Options) {
		o.Clients = append(o.Clients, &clientauth.Client{ID: "jwt", AuthMethod: clientauth.PrivateKeyJWT, JWKS: jwks,
			GrantTypes: []string{GrantAuthorizationCode}, RedirectURIs: []string{webCB}})
	}, nil)
	now := e.clock.Now()
	claims, _ := json.Marshal(map[string]any{"iss": "jwt", "sub": "jwt", "aud": "https://id.example.com" + parEP,
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": randomToken()})
	assertion, err := jws.Sign(claims, jws.WithKey(jwa.ES256, priv))
	if err != nil {
		t.Fatal(err)
	}
	f := parForm(url.Values{"client_assertion_type": {clientauth.AssertionType}, "client_assertion": {string(assertion)}, "client_id": {"jwt"}})
	uri := e.push("", f)
	rec, err := e.st.GetRecord(context.Background(), store.NSPAR, refreshHash(strings.TrimPrefix(uri, requestURIPrefix)))
	if err != nil || strings.Contains(string(rec), "client_assertion") || strings.Contains(string(rec), string(assertion)) {
		t.Fatalf("stored pushed request: %v %s", err, rec)
	}
	codeAt(t, e.usePAR("jwt", uri, nil, e.session("u1")), webCB, "st-1")
}

// TestPARDiscovery (RFC 9126 section 5): both documents name the par
// endpoint and say pushed requests are not required server-wide, and
// that request objects by reference are not supported.
func TestPARDiscovery(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	for _, doc := range []string{"/oauth2/default/.well-known/openid-configuration", "/oauth2/default/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
		w := e.browse(http.MethodGet, doc, nil)
		var md map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &md)
		want := strings.TrimSuffix(md["token_endpoint"].(string), "/token") + "/par"
		if md["pushed_authorization_request_endpoint"] != want || md["require_pushed_authorization_requests"] != false {
			t.Errorf("%s: par endpoint %v (want %s), required %v", doc, md["pushed_authorization_request_endpoint"], want, md["require_pushed_authorization_requests"])
		}
		// Request objects by reference are not fetched (an absent flag
		// would mean they are, OpenID Connect Discovery 1.0 section 3).
		if v, ok := md["request_uri_parameter_supported"]; !ok || v != false {
			t.Errorf("%s: request_uri_parameter_supported %v (present %v), want false", doc, v, ok)
		}
	}
}

// TestPARAuthorizeByPost: the request_uri may come in a POSTed
// authorization request too (OpenID Connect Core section 3.1.2.1).
func TestPARAuthorizeByPost(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	uri := e.push("web", parForm(nil))
	w := e.browse(http.MethodPost, authorizeEP, url.Values{"client_id": {"web"}, "request_uri": {uri}}, e.session("u1"))
	codeAt(t, w, webCB, "st-1")
}

// TestPARValidatedAgainWhenUsed (RFC 9126 section 4): the pushed
// parameters are checked again at /v1/authorize, against the
// configuration of that moment: a redirect URI unregistered since the
// push gets no redirect.
func TestPARValidatedAgainWhenUsed(t *testing.T) {
	var web *clientauth.Client
	e := newFlowEnvWith(t, "https://id.example.com", func(o *Options) {
		for _, c := range o.Clients {
			if c.ID == "web" {
				web = c
			}
		}
	}, nil)
	uri := e.push("web", parForm(nil))
	got, ok := e.iss.auth.Client("web")
	if !ok || got != web {
		t.Fatal("the issuer copies its clients: change this test to reload the configuration instead")
	}
	web.RedirectURIs = []string{otherCB}
	refusedPage(t, "unregistered since the push", e.usePAR("web", uri, nil, e.session("u1")), 400, "The redirect URI is not registered for this client.")
}

// TestPARCORS: a browser app of a trusted origin may push (a public
// SPA's fetch), as it may call the token endpoint; other origins get no
// CORS answer.
func TestPARCORS(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	e.iss.origins, _ = parseOrigins([]string{"https://pub.test"})
	for origin, allowed := range map[string]bool{"https://pub.test": true, "https://evil.test": false} {
		r := httptest.NewRequest(http.MethodOptions, parEP, nil)
		r.Header.Set("Origin", origin)
		r.Header.Set("Access-Control-Request-Method", "POST")
		w := httptest.NewRecorder()
		e.iss.ServeHTTP(w, r)
		got := w.Header().Get("Access-Control-Allow-Origin")
		if allowed != (got == origin) || (allowed && !strings.Contains(w.Header().Get("Access-Control-Allow-Methods"), "POST")) {
			t.Errorf("preflight from %s: %d %v", origin, w.Code, w.Header())
		}
	}
}

// pushedRecord reads the stored pushed request of request_uri uri.
func (e *flowEnv) pushedRecord(uri string) string {
	e.t.Helper()
	rec, err := e.st.GetRecord(context.Background(), store.NSPAR, refreshHash(strings.TrimPrefix(uri, requestURIPrefix)))
	if err != nil {
		e.t.Fatalf("no pushed request stored: %v", err)
	}
	return string(rec)
}

// TestPARSecretPostNotKept: a client_secret_post client's secret
// authenticates the push and is not kept with the pushed request.
func TestPARSecretPostNotKept(t *testing.T) {
	e := newFlowEnvWith(t, "https://id.example.com", func(o *Options) {
		o.Clients = append(o.Clients, &clientauth.Client{ID: "post", Secret: "post-secret-value", AuthMethod: clientauth.SecretPost,
			GrantTypes: []string{GrantAuthorizationCode}, RedirectURIs: []string{webCB}})
	}, nil)
	uri := e.push("", parForm(url.Values{"client_id": {"post"}, "client_secret": {"post-secret-value"}}))
	if rec := e.pushedRecord(uri); strings.Contains(rec, "client_secret") || strings.Contains(rec, "post-secret-value") || !strings.Contains(rec, `"cid":"post"`) {
		t.Fatalf("stored pushed request: %s", rec)
	}
	codeAt(t, e.usePAR("post", uri, nil, e.session("u1")), webCB, "st-1")
}

// TestPARKeepsOnlyAuthorizeParameters: what is stored is what
// /v1/authorize reads, within its limits: other pushed parameters are
// dropped, repeated scopes and prompt values kept once.
func TestPARKeepsOnlyAuthorizeParameters(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	junk := strings.Repeat("j", 16<<10)
	uri := e.push("web", parForm(url.Values{"filler": {junk}, "claims": {`{"id_token":{}}`}, "display": {"page"},
		"scope": {strings.TrimSpace(strings.Repeat("openid read ", 1500))}, "prompt": {strings.TrimSpace(strings.Repeat("login ", 1500))},
		"max_age": {strings.Repeat("0", 3000) + "300"}}))
	rec := e.pushedRecord(uri)
	var p pushedRequest
	if err := json.Unmarshal([]byte(rec), &p); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"client_id": "web", "response_type": "code", "redirect_uri": webCB, "scope": "openid read",
		"state": "st-1", "nonce": "n-1", "prompt": "login", "max_age": "300"}
	if len(rec) > 1024 || !reflect.DeepEqual(p.Params, want) {
		t.Fatalf("stored %d bytes: %.600v, want %v", len(rec), p.Params, want)
	}
	// And it still runs as pushed: prompt=login shows the sign-in page
	// despite the session.
	if w := e.usePAR("web", uri, nil, e.session("u1")); w.Code != http.StatusOK || hidden(w.Body.String(), "txn") == "" {
		t.Fatalf("use: %d %.300s", w.Code, w.Body)
	}
}

// TestPARRetryAfterStoreFailure: when the pending request cannot be
// stored the page says "try again" (503), and trying again works: the
// handle is used only once the pending request exists.
func TestPARRetryAfterStoreFailure(t *testing.T) {
	st := &flakyStore{Store: embeddedStore(t)}
	e := newFlowEnvWith(t, "https://id.example.com", nil, st)
	uri := e.push("web", parForm(nil))
	st.set("PutRecord")
	refusedPage(t, "store down", e.usePAR("web", uri, nil), http.StatusServiceUnavailable, "Try again in a moment.")
	st.set("")
	w := e.usePAR("web", uri, nil)
	if w.Code != http.StatusOK || hidden(w.Body.String(), "txn") == "" || cookieOf(w, txnCookieName) == nil {
		t.Fatalf("retry after the outage: %d %.300s", w.Code, w.Body)
	}
	// With a session and a scope that needs consent, the consent page
	// stores the pending request: its failure leaves the handle usable
	// too.
	sess := e.session("u1")
	uri = e.push("web", parForm(url.Values{"scope": {"openid pay"}}))
	st.set("PutRecord")
	refusedPage(t, "store down at consent", e.usePAR("web", uri, nil, sess), http.StatusServiceUnavailable, "Try again in a moment.")
	st.set("")
	if w := e.usePAR("web", uri, nil, sess); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "Make payments") {
		t.Fatalf("consent after the outage: %d %.300s", w.Code, w.Body)
	}
	refusedPage(t, "used", e.usePAR("web", uri, nil, sess), http.StatusBadRequest, "The authorize request_uri is invalid.")
}

// TestPARSignInAndReload (RFC 9126 section 4 allows a reload): the
// browser that got the sign-in page of a pushed request may load its
// URL again and gets the same page, the same pending request; any
// other browser is refused. Signing in there issues the code of the
// pushed request; after that the URL is refused everywhere.
func TestPARSignInAndReload(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	uri := e.push("web", parForm(nil))
	w := e.usePAR("web", uri, nil)
	page, txn := w.Body.String(), cookieOf(w, txnCookieName)
	if w.Code != http.StatusOK || txn == nil || hidden(page, "txn") != txn.Value || hidden(page, "csrf") == "" {
		t.Fatalf("sign-in page: %d %v %.300s", w.Code, txn, page)
	}
	again := e.usePAR("web", uri, nil, txn)
	if again.Code != http.StatusOK || hidden(again.Body.String(), "txn") != txn.Value || hidden(again.Body.String(), "csrf") != hidden(page, "csrf") {
		t.Fatalf("reload by the same browser: %d %.300s", again.Code, again.Body)
	}
	refusedPage(t, "another browser", e.usePAR("web", uri, nil), 400, "The authorize request_uri is invalid.")
	q := url.Values{"client_id": {"web"}, "response_type": {"code"}, "scope": {"openid"}, "state": {"s"}, "redirect_uri": {webCB}}
	foreign := cookieOf(e.browse(http.MethodGet, authorizeEP+"?"+q.Encode(), nil), txnCookieName)
	refusedPage(t, "a browser with another pending request", e.usePAR("web", uri, nil, foreign), 400, "The authorize request_uri is invalid.")
	refusedPage(t, "same browser, other client", e.usePAR("other", uri, nil, txn), 400, "does not match the expected value")

	f := url.Values{"txn": {hidden(page, "txn")}, "csrf": {hidden(page, "csrf")}, "username": {"alice@example.com"}, "password": {alicePassword}}
	code := codeAt(t, e.browse(http.MethodPost, "/oauth2/v1/signin", f, txn), webCB, "st-1")
	status, tok := e.redeem("web", code, webCB, "")
	if status != http.StatusOK || tok["id_token"] == nil || tok["scope"] != "openid read" {
		t.Fatalf("redeem: %d %v", status, tok)
	}
	if claims := payload(t, tok["id_token"].(string)); claims["nonce"] != "n-1" || claims["sub"] != "u1" {
		t.Fatalf("id token of the pushed request: %v", claims)
	}
	refusedPage(t, "reload after sign-in", e.usePAR("web", uri, nil, txn), 400, "The authorize request_uri is invalid.")
}

// TestPARConcurrentSignInPagesOnce: of simultaneous uses by browsers
// without a session, exactly one gets a sign-in page.
func TestPARConcurrentSignInPagesOnce(t *testing.T) {
	e := newFlowEnv(t, "https://id.example.com")
	uri := e.push("web", parForm(nil))
	const n = 8
	codes := make([]int, n)
	var wg sync.WaitGroup
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[k] = e.usePAR("web", uri, nil).Code
		}()
	}
	wg.Wait()
	won := 0
	for _, c := range codes {
		switch c {
		case http.StatusOK:
			won++
		case http.StatusBadRequest:
		default:
			t.Errorf("unexpected status %d", c)
		}
	}
	if won != 1 {
		t.Fatalf("want exactly one sign-in page, got %d of %v", won, codes)
	}
}
