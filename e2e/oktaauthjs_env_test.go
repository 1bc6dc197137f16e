package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
	"github.com/apiaccess/caddy-apiaccess/internal/testkit/headless"
)

// okta-auth-js's browser bundle, as npm installs it from
// tokenissuer/interop/package.json (npm ci --prefix tokenissuer/interop).
const oktaAuthJSBundle = "../tokenissuer/interop/node_modules/@okta/okta-auth-js/dist/okta-auth-js.min.js"

// The people and the client of the okta-auth-js tests. The password
// hash is Caddyfile.example's (demo-password).
const (
	sdkUser       = "alice@example.com"
	sdkUserID     = "00u1alice"
	sdkPassword   = "demo-password"
	sdkPassHash   = "$2a$12$gTYxbFtSul1WXKDfVekdjuv28Ex9JYkC9rmj9/ezDSJEGSO2eSq7."
	sdkClientID   = "sdk-spa"
	sdkOrderScope = "orders:read"
)

// sdkEnv is one Caddy serving, over HTTPS with its internal CA, the
// issuer at https://localhost:P (org server and the custom server
// "default") and, on another site, https://127.0.0.1:Q, the test app
// (a static page with Okta's SDK) and an API behind require_token; and
// one Chromium that trusts that CA.
type sdkEnv struct {
	app     string          // the app's origin
	base    string          // the issuer's origin, the org server's issuer
	custom  string          // the custom authorization server's issuer
	http    *http.Client    // trusts Caddy's internal CA
	browser context.Context // Chromium's first tab
}

// sdkCaddyfile is the whole configuration; {NAMES} are filled in.
const sdkCaddyfile = `{
	admin off
	# Caddy's internal CA signs both sites; it is not installed in the
	# system's trust store (the browser is told about it).
	local_certs
	skip_install_trust
	http_port {HTTP_PORT}
	auto_https disable_redirects
	servers {
		protocols h1 h2
	}
	token_issuer {
		base_url {BASE}
		directory static {
			user {USER} {
				id {USER_ID}
				password_hash {PASS_HASH}
				profile name "Alice Example"
				profile given_name Alice
				profile email {USER}
			}
		}
		{ISSUER_EXTRA}
		trusted_origins {APP}
		client {CLIENT} {
			name "SDK test app"
			auth_method none
			grant_types authorization_code refresh_token
			redirect_uris {APP}/custom/callback {APP}/org/callback {APP}/fragment/callback
			# signOut() comes back to window.location.origin by default.
			post_logout_redirect_uris {APP} {APP}/
		}
		authorization_server default {
			audience api://default
			scope {ORDERS} {
				description "Read orders"
				consent required
				publish
			}
			# No test consents to it.
			scope orders:write {
				description "Change orders"
				consent required
			}
			policy "SDK app" {
				clients {CLIENT}
				rule "People" {
					grant_types authorization_code
					scopes *
					access_token_lifetime 10m
					refresh_token_lifetime 1d
				}
			}
		}
	}
}

{BASE} {
	bind 127.0.0.1
	tls internal
	token_issuer
}

{APP} {
	bind 127.0.0.1
	tls internal
	handle /api/* {
		require_token {CUSTOM} api://default {
			scopes {ORDERS}
		}
		header Content-Type application/json
		respond ` + "`" + `{"sub":"{http.auth.token.claims.sub}","cid":"{http.auth.token.claims.cid}"}` + "`" + ` 200
	}
	handle /config.js {
		header Content-Type "text/javascript; charset=utf-8"
		respond ` + "`" + `window.APP_CONFIG = {"clientId": "{CLIENT}", "profiles": {
			"custom": {"issuer": "{CUSTOM}", "scopes": ["openid", "profile", "email", "{ORDERS}"]},
			"fragment": {"issuer": "{CUSTOM}", "scopes": ["openid", "profile", "email", "{ORDERS}"], "responseMode": "fragment"},
			"org": {"issuer": "{BASE}", "scopes": ["openid", "profile", "email"]}}};` + "`" + ` 200
	}
	handle /sdk/okta-auth-js.min.js {
		root * {SDK_DIR}
		rewrite * /okta-auth-js.min.js
		file_server
	}
	handle {
		root * {PAGE_DIR}
		try_files {path} /app.html
		file_server
	}
	{APP_EXTRA}
}
`

// startSDKEnv starts the Caddy and the Chromium of the okta-auth-js
// tests; it skips t (fails it under APIACCESS_STRICT=1) without the
// SDK's node_modules or without Chromium.
func startSDKEnv(t *testing.T, ctx context.Context) *sdkEnv {
	t.Helper()
	return startSDKEnvWith(t, ctx, "")
}

// startSDKEnvWith is startSDKEnv with more settings of the token_issuer
// app (Caddyfile lines, such as a sign-on policy).
func startSDKEnvWith(t *testing.T, ctx context.Context, issuerExtra string) *sdkEnv {
	t.Helper()
	return startSDKEnvSites(t, ctx, issuerExtra, "")
}

// startSDKEnvSites is startSDKEnvWith with more directives of the app's
// site too (routes of a test's own). Both extras may use the {NAMES} of
// sdkCaddyfile ({BASE}, {APP}, {PAGE_DIR}, {SDK_DIR} and so on).
func startSDKEnvSites(t *testing.T, ctx context.Context, issuerExtra, appExtra string) *sdkEnv {
	t.Helper()
	bundle, err := filepath.Abs(oktaAuthJSBundle)
	if err == nil {
		_, err = os.Stat(bundle)
	}
	testkit.Need(t, err == nil, "no okta-auth-js bundle (npm ci --prefix tokenissuer/interop)")
	_, err = os.Stat(headless.Exe)
	testkit.Need(t, err == nil, "no Chromium at "+headless.Exe+" (apt-get install chromium)")
	pageDir, err := filepath.Abs("testdata/oktaauthjs")
	if err != nil {
		t.Fatal(err)
	}

	appPort, issuerPort := testkit.CaddyPort(t), testkit.CaddyPort(t)
	e := &sdkEnv{
		app:  "https://127.0.0.1:" + strconv.Itoa(appPort),
		base: "https://localhost:" + strconv.Itoa(issuerPort),
	}
	e.custom = e.base + "/oauth2/default"
	cfg := strings.NewReplacer("{ISSUER_EXTRA}", issuerExtra, "{APP_EXTRA}", appExtra).Replace(sdkCaddyfile)
	cfg = strings.NewReplacer(
		"{HTTP_PORT}", strconv.Itoa(testkit.CaddyPort(t)),
		"{BASE}", e.base, "{CUSTOM}", e.custom, "{APP}", e.app,
		"{USER}", sdkUser, "{USER_ID}", sdkUserID, "{PASS_HASH}", sdkPassHash,
		"{CLIENT}", sdkClientID, "{ORDERS}", sdkOrderScope,
		"{SDK_DIR}", filepath.Dir(bundle), "{PAGE_DIR}", pageDir,
	).Replace(cfg)

	dir := t.TempDir()
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	cmd := exec.Command(testkit.CaddyBinary(t), "run", "--config", path, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	cmd.Stdout, cmd.Stderr = io.Discard, &logs
	proc := testkit.Start(t, cmd)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Caddy's log:\n%s", tail(logs.String(), 60))
		}
	})

	// The internal CA exists once Caddy has provisioned it; the sites
	// answer once their certificates are issued.
	root := filepath.Join(dir, "caddy", "pki", "authorities", "local", "root.crt")
	testkit.WaitFor(t, "Caddy's internal CA", 20*time.Second, func() bool {
		select {
		case <-proc.Done():
			t.Fatalf("Caddy exited: %v\n%s", proc.Wait(), tail(logs.String(), 40))
		default:
		}
		_, err := os.Stat(root)
		return err == nil
	})
	pool := x509.NewCertPool()
	rootPEM, err := os.ReadFile(root)
	if err != nil || !pool.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("reading Caddy's root certificate: %v", err)
	}
	tlsConf := &tls.Config{RootCAs: pool}
	e.http = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConf}}
	t.Cleanup(e.http.CloseIdleConnections)
	testkit.WaitFor(t, "the issuer and the app over HTTPS", 20*time.Second, func() bool {
		return e.status(e.custom+"/.well-known/openid-configuration") == 200 && e.status(e.app+"/config.js") == 200
	})

	// Chromium trusts the CA by the SPKI hashes of the certificates the
	// two sites present (--ignore-certificate-errors-spki-list, which
	// needs a user data directory: headless.Chromium gives one), rather
	// than ignoring every certificate error.
	spki := append(presentedSPKIs(t, tlsConf, e.app), presentedSPKIs(t, tlsConf, e.base)...)
	spki = append(spki, spkiHash(t, rootPEM))
	e.startBrowser(t, ctx, chromedp.Flag("ignore-certificate-errors-spki-list", strings.Join(spki, ",")))
	return e
}

// status GETs u and returns the status code, 0 when the request fails.
func (e *sdkEnv) status(u string) int {
	res, err := e.http.Get(u)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// presentedSPKIs connects to origin, verifying its chain against the
// internal CA, and returns the SPKI hashes (base64 of SHA-256) of the
// certificates it presents.
func presentedSPKIs(t *testing.T, conf *tls.Config, origin string) []string {
	t.Helper()
	host := strings.TrimPrefix(origin, "https://")
	c := conf.Clone()
	c.ServerName, _, _ = strings.Cut(host, ":")
	conn, err := tls.Dial("tcp", strings.Replace(host, "localhost", "127.0.0.1", 1), c)
	if err != nil {
		t.Fatalf("TLS to %s: %v", origin, err)
	}
	defer conn.Close()
	var out []string
	for _, cert := range conn.ConnectionState().PeerCertificates {
		sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
		out = append(out, base64.StdEncoding.EncodeToString(sum[:]))
	}
	return out
}

func spkiHash(t *testing.T, certPEM []byte) string {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	if b == nil {
		t.Fatal("no PEM block in Caddy's root certificate")
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
