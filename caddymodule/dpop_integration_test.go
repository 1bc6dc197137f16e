package caddymodule

import (
	"io"
	"net/http"
	"testing"

	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
	"github.com/apiaccess/caddy-apiaccess/internal/testkit/caddytester"
)

// TestDPoPBehindProxy runs Caddy with a front proxy that rewrites the
// Host and a gateway server that trusts it: dpop_origin gives the htu
// the client used; without it, the front proxy's X-Forwarded-Proto is
// believed and a client's own is not; handle_path's rewrite does not
// change the htu.
func TestDPoPBehindProxy(t *testing.T) {
	is := newGWIssuer(t)
	key := newClientKey(t)
	front := testkit.ProcessPortString("gateway")
	back := testkit.ProcessPortString("dpop-backend")
	lone := testkit.ProcessPortString("dpop-untrusting")
	frontURL := "http://localhost:" + front
	cfg := `{
	admin ` + caddytester.AdminAddr() + `
	http_port ` + front + `
	https_port ` + testkit.ProcessPortString("gateway-https") + `
	grace_period 1ns
	skip_install_trust
	servers :` + back + ` {
		trusted_proxies static 127.0.0.1/32 ::1/128
	}
}

http://localhost:` + front + ` {
	reverse_proxy localhost:` + back + ` {
		header_up Host backend.internal
		header_up X-Forwarded-Proto https
	}
}

http://:` + back + ` {
	handle_path /api/* {
		require_token ` + is.url + ` ` + gwAudience + ` {
			dpop required
			dpop_origin ` + frontURL + `
		}
		respond "ok {http.auth.user.id}"
	}
	handle /direct/* {
		require_token ` + is.url + ` ` + gwAudience + ` {
			dpop required
		}
		respond "ok"
	}
	handle_errors {
		respond "denied: {http.auth.token.error}" {err.status_code}
	}
}

http://:` + lone + ` {
	require_token ` + is.url + ` ` + gwAudience + ` {
		dpop required
	}
	respond "ok"
	handle_errors {
		respond "denied: {http.auth.token.error}" {err.status_code}
	}
}
`
	caddytester.NewTester(t).InitServer(cfg, "caddyfile")
	tok := is.token(t, key.jkt)
	do := func(u, htu string, hdr ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("Authorization", "DPoP "+tok)
		req.Header.Set("DPoP", key.proof(t, "GET", htu, tok, nil))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	// Through the front proxy: the gateway sees Host backend.internal
	// and path /orders/1; the client used frontURL/api/orders/1.
	if code, body := do(frontURL+"/api/orders/1", frontURL+"/api/orders/1"); code != 200 || body != "ok user-1" {
		t.Errorf("dpop_origin behind the proxy: %d %q", code, body)
	}
	if code, body := do(frontURL+"/api/orders/1", "http://backend.internal/orders/1"); code != 401 || body != "denied: dpop_htu_mismatch" {
		t.Errorf("proof for the internal URL: %d %q", code, body)
	}
	// Without dpop_origin the Host (rewritten by the front) counts, and
	// the scheme the trusted front reports (https, as a TLS-terminating
	// load balancer would).
	if code, body := do(frontURL+"/direct/1", "https://backend.internal/direct/1"); code != 200 {
		t.Errorf("X-Forwarded-Proto of the trusted front: %d %q", code, body)
	}
	if code, body := do(frontURL+"/direct/1", "http://backend.internal/direct/1"); code != 401 || body != "denied: dpop_htu_mismatch" {
		t.Errorf("the trusted front's X-Forwarded-Proto was ignored: %d %q", code, body)
	}
	// A server that trusts no proxy ignores a client's X-Forwarded-Proto.
	loneURL := "http://localhost:" + lone
	if code, body := do(loneURL+"/x", "https://localhost:"+lone+"/x", "X-Forwarded-Proto", "https"); code != 401 || body != "denied: dpop_htu_mismatch" {
		t.Errorf("a client's X-Forwarded-Proto was believed: %d %q", code, body)
	}
	if code, body := do(loneURL+"/x", loneURL+"/x", "X-Forwarded-Proto", "https"); code != 200 {
		t.Errorf("direct request: %d %q", code, body)
	}
}
