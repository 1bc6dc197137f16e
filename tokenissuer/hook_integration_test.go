package tokenissuer_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
	"github.com/apiaccess/caddy-apiaccess/internal/testkit/caddytester"
)

// TestInlineHookThroughCaddy: a Caddyfile whose rule runs a token
// inline hook, served by real Caddy; a golang.org/x/oauth2 client
// credentials client gets a token the hook patched (a claim added, the
// lifetime shortened), verified against the issuer's published keys;
// the hook got the secret from the {env.*} placeholder; a hook answer
// with an error object denies the next request with Okta's answer.
func TestInlineHookThroughCaddy(t *testing.T) {
	const secret = "Bearer caddy-hook-secret-0123"
	t.Setenv("APIACCESS_TEST_HOOK_SECRET", secret)
	var (
		mu      sync.Mutex
		auths   []string
		deny    bool
		eventTy []string
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			EventType string `json:"eventType"`
			Data      struct {
				Access struct {
					Claims map[string]any `json:"claims"`
				} `json:"access"`
			} `json:"data"`
		}
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &req)
		mu.Lock()
		auths, eventTy = append(auths, r.Header.Get("Authorization")), append(eventTy, req.EventType)
		d := deny
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if d {
			_, _ = io.WriteString(w, `{"error":{"errorSummary":"Account on hold"}}`)
			return
		}
		_, _ = io.WriteString(w, `{"commands":[{"type":"com.okta.access.patch","value":[
			{"op":"add","path":"/claims/account","value":{"id":"acct-42","plan":"gold"}},
			{"op":"replace","path":"/token/lifetime/expiration","value":900}]}]}`)
	}))
	defer hook.Close()

	port := testkit.ProcessPortString("hook-issuer")
	base := "http://localhost:" + port
	cfg := `{
	admin ` + caddytester.AdminAddr() + `
	http_port ` + port + `
	https_port ` + testkit.ProcessPortString("hook-issuer-https") + `
	grace_period 1ns
	skip_install_trust
	token_issuer {
		base_url ` + base + `
		key_encryption_secret integration-test-seal-secret-0123456789
		storage embedded ` + filepath.Join(t.TempDir(), "issuer.db") + `
		inline_hook enrich {
			url ` + hook.URL + `/token-hook
			authorization {env.APIACCESS_TEST_HOOK_SECRET}
			timeout 2s
		}
		client svc {
			secret svc-secret-0123456789
		}
		authorization_server default {
			scope read
			policy p {
				clients *
				rule r {
					grant_types client_credentials
					scopes read
					inline_hook enrich
				}
			}
		}
	}
}
` + base + ` {
	token_issuer
}
`
	caddytester.NewTester(t).InitServer(cfg, "caddyfile")

	cc := clientcredentials.Config{ClientID: "svc", ClientSecret: "svc-secret-0123456789",
		TokenURL: base + "/oauth2/default/v1/token", Scopes: []string{"read"}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tok, err := cc.Token(ctx)
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	if d := time.Until(tok.Expiry); d < 13*time.Minute || d > 16*time.Minute {
		t.Errorf("expires in %s, want the hook's 900s", d)
	}
	keys, err := jwk.Fetch(ctx, base+"/oauth2/default/v1/keys")
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.Parse([]byte(tok.AccessToken), jwt.WithKeySet(keys), jwt.WithIssuer(base+"/oauth2/default"), jwt.WithAudience("api://default"))
	if err != nil {
		t.Fatalf("the issued token does not verify: %v", err)
	}
	account, _ := parsed.Get("account")
	if b, _ := json.Marshal(account); string(b) != `{"id":"acct-42","plan":"gold"}` {
		t.Errorf("account claim %s", b)
	}
	if life := parsed.Expiration().Sub(parsed.IssuedAt()); life != 900*time.Second {
		t.Errorf("lifetime %s, want 15m", life)
	}
	if cid, _ := parsed.Get("cid"); cid != "svc" {
		t.Errorf("cid %v", cid)
	}

	mu.Lock()
	deny = true
	mu.Unlock()
	_, err = cc.Token(ctx)
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "server_error" || re.ErrorDescription != "Account on hold" {
		t.Errorf("denied request: %v, want server_error \"Account on hold\"", err)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(auths) != 2 || auths[0] != secret || auths[1] != secret {
		t.Errorf("hook calls carried Authorization %q, want %q twice", auths, secret)
	}
	if eventTy[0] != "com.okta.oauth2.tokens.transform" {
		t.Errorf("eventType %q", eventTy[0])
	}
}
