package caddymodule_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// freeLoopbackPort returns a TCP port on 127.0.0.1 that nothing listens
// on right now.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// runCaddy starts the test binary of Caddy as a child process on cfg,
// with its own data directory, and kills it at the end of the test.
func runCaddy(t *testing.T, name string, cfg map[string]any) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, name+".json")
	if err := os.WriteFile(path, []byte(mustJSON(t, cfg)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(caddyBinary(t), "run", "--config", path)
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
	})
}

// status GETs u with a bearer token and returns the status, 0 when the
// request fails.
func status(u, tok string) int {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

func headerKID(t *testing.T, tok string) string {
	t.Helper()
	m, err := jws.Parse([]byte(tok))
	if err != nil {
		t.Fatal(err)
	}
	return m.Signatures()[0].ProtectedHeaders().KeyID()
}

// TestEmergencyRotationReachesRemoteGateway (issue 10, "Key freshness
// at remote gateways"): the issuer and the gateway are two Caddy
// processes; the gateway fetches the issuer's keys over HTTP with the
// default min_refresh. Two admin rotations in a row activate a key no
// gateway has fetched (the NEXT published by the first rotation is
// promoted by the second at once). Tokens of that key are refused while
// the refetch is rate limited, and accepted within 15 s of the first
// one signed, even with forged kids arriving all the while.
func TestEmergencyRotationReachesRemoteGateway(t *testing.T) {
	issPort, issAdmin, gwPort, gwAdmin := freeLoopbackPort(t), freeLoopbackPort(t), freeLoopbackPort(t), freeLoopbackPort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", issPort)
	issuer := base + "/oauth2/default"
	gateway := fmt.Sprintf("http://127.0.0.1:%d/orders", gwPort)

	runCaddy(t, "issuer", map[string]any{
		"admin": map[string]any{"listen": fmt.Sprintf("127.0.0.1:%d", issAdmin)},
		"apps": map[string]any{
			"token_issuer": issuerApp(base, filepath.Join(t.TempDir(), "issuer.db")),
			"http": map[string]any{"servers": map[string]any{"issuer": map[string]any{
				"listen":          []string{fmt.Sprintf("127.0.0.1:%d", issPort)},
				"automatic_https": map[string]any{"disable": true},
				"routes":          []map[string]any{{"handle": []map[string]any{{"handler": "token_issuer"}}}},
			}}},
		},
	})
	runCaddy(t, "gateway", map[string]any{
		"admin": map[string]any{"listen": fmt.Sprintf("127.0.0.1:%d", gwAdmin)},
		"apps": map[string]any{"http": map[string]any{"servers": map[string]any{"gateway": map[string]any{
			"listen":          []string{fmt.Sprintf("127.0.0.1:%d", gwPort)},
			"automatic_https": map[string]any{"disable": true},
			"routes": []map[string]any{{"handle": []map[string]any{
				// min_refresh and key_refresh left at their defaults.
				{"handler": "require_token", "issuers": []map[string]any{{"url": issuer, "audience": []string{"api://default"}}}},
				{"handler": "static_response", "body": "ok"},
			}}},
		}}}},
	})
	waitFor(t, "the issuer", func() bool { return status(issuer+"/.well-known/openid-configuration", "") == 200 })
	waitFor(t, "the gateway", func() bool { return status(gateway, "") == 401 })

	// First use: the gateway fetches the JWKS (ACTIVE and NEXT).
	fetchedAt := time.Now()
	old := token(t, base, "default")
	if got := status(gateway, old); got != 200 {
		t.Fatalf("token of the published key: %d", got)
	}

	rotate := func() {
		t.Helper()
		res, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/token_issuer/default/keys/rotate", issAdmin), "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("rotate: %d", res.StatusCode)
		}
	}
	rotate()
	rotate()
	signedAt := time.Now()
	fresh := token(t, base, "default")
	if headerKID(t, fresh) == headerKID(t, old) {
		t.Fatal("the rotations did not change the signing key")
	}
	// The gateway does not know the key yet and may not refetch so soon
	// after its first fetch (checked only while that is surely so).
	if got := status(gateway, fresh); got != 401 && time.Since(fetchedAt) < 10*time.Second {
		t.Fatalf("token of the unpublished key right after the rotation: %d, want 401 (refetch rate limited)", got)
	}

	forger, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	forge := func() string {
		k, _ := jwk.FromRaw(forger)
		_ = k.Set(jwk.KeyIDKey, rand.Text())
		tok := jwt.New()
		_ = tok.Set(jwt.IssuerKey, issuer)
		_ = tok.Set(jwt.AudienceKey, "api://default")
		_ = tok.Set(jwt.ExpirationKey, time.Now().Add(time.Hour))
		b, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, k))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	// 15 s is the bound; 2 s more cover the fetch itself and the polling
	// on a loaded machine.
	const bound, slack = 15 * time.Second, 2 * time.Second
	for status(gateway, fresh) != 200 {
		if time.Since(signedAt) > bound+slack {
			t.Fatalf("token of the emergency key still refused %v after it was signed; want it accepted within %v", time.Since(signedAt).Round(time.Millisecond), bound)
		}
		if got := status(gateway, forge()); got != 401 {
			t.Fatalf("forged kid: %d", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("emergency key accepted %v after the first token it signed", time.Since(signedAt).Round(time.Millisecond))
	if got := status(gateway, old); got != 200 {
		t.Fatalf("token of the retired key after the refetch: %d, want 200 (it stays published)", got)
	}
}
