package caddymodule

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/apiaccess/caddy-apiaccess/internal/dpop"
	"github.com/apiaccess/caddy-apiaccess/internal/duration"
)

const target = "http://api.example.com/orders/1"

// TestDPoPForgedTable: the forged-token table's DPoP cases at the
// gateway (RFC 9449 sections 4.3, 7.1 and 7.2), on a route that allows
// DPoP (the default). Each proof is fresh unless the case says.
func TestDPoPForgedTable(t *testing.T) {
	is := newGWIssuer(t)
	rt := newGW(t, is, &RequireToken{})
	key, other := newClientKey(t), newClientKey(t)
	bound := is.token(t, key.jkt)
	bearer := is.token(t, "")
	privJWK := func(hdr, _ map[string]any) {
		m := map[string]any{}
		for k, v := range key.jwk {
			m[k] = v
		}
		m["d"] = "AAAA"
		hdr["jwk"] = m
	}
	replayed := key.proof(t, "GET", target, bound, nil)
	if o := serve(rt, req(t, "DPoP "+bound, replayed)); o.status != 200 {
		t.Fatalf("valid DPoP request: %v", o)
	}
	for _, c := range []struct {
		name   string
		auth   string
		proofs []string
		reason string
		code   string // the DPoP challenge's error
	}{
		{"replayed jti", "DPoP " + bound, []string{replayed}, "dpop_replayed", "invalid_dpop_proof"},
		{"proof for another method", "DPoP " + bound, []string{key.proof(t, "POST", target, bound, nil)}, "dpop_htm_mismatch", "invalid_dpop_proof"},
		{"proof for another URL", "DPoP " + bound, []string{key.proof(t, "GET", "http://api.example.com/orders/2", bound, nil)}, "dpop_htu_mismatch", "invalid_dpop_proof"},
		{"proof for another host", "DPoP " + bound, []string{key.proof(t, "GET", "http://evil.example.com/orders/1", bound, nil)}, "dpop_htu_mismatch", "invalid_dpop_proof"},
		{"proof for https", "DPoP " + bound, []string{key.proof(t, "GET", "https://api.example.com/orders/1", bound, nil)}, "dpop_htu_mismatch", "invalid_dpop_proof"},
		{"stale iat", "DPoP " + bound, []string{key.proof(t, "GET", target, bound, func(_, c map[string]any) { c["iat"] = time.Now().Add(-10 * time.Minute).Unix() })}, "dpop_iat_stale", "invalid_dpop_proof"},
		{"future iat", "DPoP " + bound, []string{key.proof(t, "GET", target, bound, func(_, c map[string]any) { c["iat"] = time.Now().Add(5 * time.Minute).Unix() })}, "dpop_iat_future", "invalid_dpop_proof"},
		{"proof by a key other than cnf.jkt", "DPoP " + bound, []string{other.proof(t, "GET", target, bound, nil)}, "dpop_key_mismatch", "invalid_token"},
		{"private key in jwk", "DPoP " + bound, []string{key.proof(t, "GET", target, bound, privJWK)}, "dpop_private_key", "invalid_dpop_proof"},
		{"alg none", "DPoP " + bound, []string{key.proof(t, "GET", target, bound, func(h, _ map[string]any) { h["alg"] = "none" })}, "dpop_malformed", "invalid_dpop_proof"},
		{"alg none with a signature", "DPoP " + bound, []string{key.proof(t, "GET", target, bound, func(h, _ map[string]any) { h["alg"] = "none" }) + "AAAA"}, "dpop_alg_not_allowed", "invalid_dpop_proof"},
		{"alg HS256", "DPoP " + bound, []string{key.proof(t, "GET", target, bound, func(h, _ map[string]any) { h["alg"] = "HS256" })}, "dpop_alg_not_allowed", "invalid_dpop_proof"},
		{"missing ath", "DPoP " + bound, []string{key.proof(t, "GET", target, "", nil)}, "dpop_ath_missing", "invalid_dpop_proof"},
		{"ath of another token", "DPoP " + bound, []string{key.proof(t, "GET", target, bearer, nil)}, "dpop_ath_mismatch", "invalid_dpop_proof"},
		{"bearer token sent as DPoP", "DPoP " + bearer, []string{key.proof(t, "GET", target, bearer, nil)}, "dpop_unbound_token", "invalid_token"},
		{"DPoP scheme without a proof", "DPoP " + bound, nil, "dpop_missing_proof", "invalid_dpop_proof"},
		{"two DPoP headers", "DPoP " + bound, []string{key.proof(t, "GET", target, bound, nil), key.proof(t, "GET", target, bound, nil)}, "dpop_multiple_proofs", "invalid_dpop_proof"},
		{"proof of garbage", "DPoP " + bound, []string{"not.a.proof"}, "dpop_malformed", "invalid_dpop_proof"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := serve(rt, req(t, c.auth, c.proofs...))
			if o.status != 401 || o.reason != c.reason {
				t.Fatalf("%v; want 401 %s", o, c.reason)
			}
			ch := o.hdr.Values("WWW-Authenticate")
			if len(ch) != 2 || !strings.HasPrefix(ch[0], `DPoP realm="api.example.com", error="`+c.code+`", error_description="`) ||
				!strings.HasSuffix(ch[0], `, algs="ES256 RS256 PS256 EdDSA"`) || ch[1] != `Bearer realm="api.example.com"` {
				t.Fatalf("challenges %q: want the DPoP one with error %s, then Bearer", ch, c.code)
			}
		})
	}

	t.Run("bound token sent as bearer", func(t *testing.T) {
		o := serve(rt, req(t, "Bearer "+bound))
		ch := o.hdr.Values("WWW-Authenticate")
		if o.status != 401 || o.reason != ReasonDPoPBoundAsBearer || len(ch) != 2 ||
			ch[0] != `Bearer realm="api.example.com", error="invalid_token", error_description="DPoP-bound access token sent without the DPoP scheme"` ||
			ch[1] != `DPoP realm="api.example.com", algs="ES256 RS256 PS256 EdDSA"` {
			t.Fatalf("%v", o)
		}
	})
	t.Run("bearer path unchanged", func(t *testing.T) {
		if o := serve(rt, req(t, "Bearer "+bearer)); o.status != 200 {
			t.Fatalf("bearer token: %v", o)
		}
		o := serve(rt, req(t, "Bearer "+bearer[:len(bearer)-4]+"AAAA"))
		if ch := o.hdr.Values("WWW-Authenticate"); o.status != 401 || o.reason != "bad_signature" || len(ch) != 2 || ch[0] != `Bearer realm="api.example.com", error="invalid_token"` {
			t.Fatalf("forged bearer token: %v", o)
		}
		o = serve(rt, req(t, ""))
		if ch := o.hdr.Values("WWW-Authenticate"); o.status != 401 || o.reason != "no_token" || len(ch) != 2 ||
			ch[0] != `Bearer realm="api.example.com"` || ch[1] != `DPoP realm="api.example.com", algs="ES256 RS256 PS256 EdDSA"` {
			t.Fatalf("no token: %v", o)
		}
	})
	t.Run("the token cache skips no proof", func(t *testing.T) {
		tok := is.token(t, key.jkt)
		for i := range 3 {
			if o := serve(rt, req(t, "DPoP "+tok, key.proof(t, "GET", target, tok, nil))); o.status != 200 {
				t.Fatalf("request %d: %v", i, o)
			}
		}
		// The token is cached now; a proof of another key still fails.
		if o := serve(rt, req(t, "DPoP "+tok, other.proof(t, "GET", target, tok, nil))); o.reason != ReasonDPoPKeyMismatch {
			t.Fatalf("cached token, proof of another key: %v", o)
		}
		if o := serve(rt, req(t, "DPoP "+tok)); o.reason != ReasonDPoPNoProof {
			t.Fatalf("cached token, no proof: %v", o)
		}
	})
	t.Run("scope failure answers in the DPoP scheme", func(t *testing.T) {
		rs := newGW(t, is, &RequireToken{Scopes: []string{"write"}})
		o := serve(rs, req(t, "DPoP "+bound, key.proof(t, "GET", target, bound, nil)))
		if ch := o.hdr.Values("WWW-Authenticate"); o.status != 403 || len(ch) != 1 ||
			ch[0] != `DPoP realm="api.example.com", error="insufficient_scope", scope="write", algs="ES256 RS256 PS256 EdDSA"` {
			t.Fatalf("%v", o)
		}
		// An invalid proof is an authentication failure first.
		if o := serve(rs, req(t, "DPoP "+bound, other.proof(t, "GET", target, bound, nil))); o.status != 401 || o.reason != ReasonDPoPKeyMismatch {
			t.Fatalf("bad proof, insufficient scope: %v", o)
		}
	})
}

func req(t *testing.T, auth string, proofs ...string) *reqRepl {
	t.Helper()
	var hdr []string
	if auth != "" {
		hdr = append(hdr, "Authorization", auth)
	}
	for _, p := range proofs {
		hdr = append(hdr, "DPoP", p)
	}
	r, repl := gwRequest("GET", target, hdr...)
	return &reqRepl{r, repl}
}

// TestDPoPRequired: only DPoP-bound tokens with a proof pass; the
// challenge is DPoP alone.
func TestDPoPRequired(t *testing.T) {
	is := newGWIssuer(t)
	rt := newGW(t, is, &RequireToken{DPoP: DPoPRequired, DPoPAlgorithms: []string{"ES256"}})
	key := newClientKey(t)
	bound, bearer := is.token(t, key.jkt), is.token(t, "")
	if o := serve(rt, req(t, "DPoP "+bound, key.proof(t, "GET", target, bound, nil))); o.status != 200 {
		t.Fatalf("DPoP: %v", o)
	}
	for _, c := range []struct{ name, auth, proof, reason, challenge string }{
		{"bearer token", "Bearer " + bearer, "", ReasonDPoPRequired, `DPoP realm="api.example.com", error="invalid_token", error_description="DPoP-bound access token required", algs="ES256"`},
		{"bound token as bearer", "Bearer " + bound, "", ReasonDPoPRequired, `DPoP realm="api.example.com", error="invalid_token", error_description="DPoP-bound access token required", algs="ES256"`},
		{"bearer token as DPoP", "DPoP " + bearer, key.proof(t, "GET", target, bearer, nil), ReasonDPoPUnbound, `DPoP realm="api.example.com", error="invalid_token", error_description="access token is not DPoP-bound", algs="ES256"`},
		{"no token", "", "", "no_token", `DPoP realm="api.example.com", algs="ES256"`},
	} {
		var proofs []string
		if c.proof != "" {
			proofs = append(proofs, c.proof)
		}
		o := serve(rt, req(t, c.auth, proofs...))
		if ch := o.hdr.Values("WWW-Authenticate"); o.status != 401 || o.reason != c.reason || len(ch) != 1 || ch[0] != c.challenge {
			t.Errorf("%s: %v; want 401 %s %q", c.name, o, c.reason, c.challenge)
		}
	}
}

// TestDPoPOff: the DPoP scheme is not taken; bearer tokens pass, bound
// ones do not (see RequireToken.DPoP), and the challenge is Bearer only.
func TestDPoPOff(t *testing.T) {
	is := newGWIssuer(t)
	rt := newGW(t, is, &RequireToken{DPoP: DPoPOff})
	key := newClientKey(t)
	bound, bearer := is.token(t, key.jkt), is.token(t, "")
	if o := serve(rt, req(t, "Bearer "+bearer)); o.status != 200 {
		t.Fatalf("bearer: %v", o)
	}
	o := serve(rt, req(t, "DPoP "+bound, key.proof(t, "GET", target, bound, nil)))
	if ch := o.hdr.Values("WWW-Authenticate"); o.status != 401 || o.reason != "no_token" || len(ch) != 1 || ch[0] != `Bearer realm="api.example.com"` {
		t.Fatalf("DPoP scheme on an off route: %v", o)
	}
	o = serve(rt, req(t, "Bearer "+bound))
	if ch := o.hdr.Values("WWW-Authenticate"); o.status != 401 || o.reason != ReasonDPoPBoundAsBearer || len(ch) != 1 ||
		ch[0] != `Bearer realm="api.example.com", error="invalid_token", error_description="DPoP-bound access token sent without the DPoP scheme"` {
		t.Fatalf("bound token as bearer: %v", o)
	}
}

// TestDPoPNonce: with a nonce secret, a proof without the server's
// nonce or with a stale one gets use_dpop_nonce and a fresh nonce;
// with it, it passes.
func TestDPoPNonce(t *testing.T) {
	t.Setenv("DPOP_NONCE_SECRET", "0123456789abcdef0123")
	is := newGWIssuer(t)
	rt := newGW(t, is, &RequireToken{DPoPNonceSecret: "{env.DPOP_NONCE_SECRET}", DPoPNoncePeriod: duration.Duration(time.Minute)})
	key := newClientKey(t)
	bound := is.token(t, key.jkt)
	o := serve(rt, req(t, "DPoP "+bound, key.proof(t, "GET", target, bound, nil)))
	nonce := o.hdr.Get("DPoP-Nonce")
	if ch := o.hdr.Values("WWW-Authenticate"); o.status != 401 || o.reason != "dpop_nonce_missing" || nonce == "" ||
		ch[0] != `DPoP realm="api.example.com", error="use_dpop_nonce", error_description="DPoP nonce required", algs="ES256 RS256 PS256 EdDSA"` {
		t.Fatalf("no nonce: %v nonce %q", o, nonce)
	}
	old := dpop.NewNonces([]byte("0123456789abcdef0123"), time.Minute, func() time.Time { return time.Now().Add(-time.Hour) }).Current()
	o = serve(rt, req(t, "DPoP "+bound, key.proof(t, "GET", target, bound, func(_, c map[string]any) { c["nonce"] = old })))
	if o.status != 401 || o.reason != "dpop_nonce_stale" || o.hdr.Get("DPoP-Nonce") != nonce {
		t.Fatalf("stale nonce: %v", o)
	}
	if o := serve(rt, req(t, "DPoP "+bound, key.proof(t, "GET", target, bound, func(_, c map[string]any) { c["nonce"] = nonce }))); o.status != 200 {
		t.Fatalf("with the nonce: %v", o)
	}
	// A failure that is not about the nonce sends none.
	o = serve(rt, req(t, "DPoP "+bound, key.proof(t, "POST", target, bound, func(_, c map[string]any) { c["nonce"] = nonce })))
	if o.reason != "dpop_htm_mismatch" || o.hdr.Get("DPoP-Nonce") != "" {
		t.Fatalf("other failure: %v nonce %q", o, o.hdr.Get("DPoP-Nonce"))
	}
}

// TestDPoPTarget: htu is the URL the client used: X-Forwarded-Proto only
// from a trusted proxy, dpop_origin when set, the path before rewrites.
func TestDPoPTarget(t *testing.T) {
	is := newGWIssuer(t)
	rt := newGW(t, is, &RequireToken{})
	key := newClientKey(t)
	tok := is.token(t, key.jkt)
	send := func(rt *RequireToken, htu string, trusted bool, setup func(r *http.Request)) outcome {
		rr := req(t, "DPoP "+tok, key.proof(t, "GET", htu, tok, nil))
		rr.r.Header.Set("X-Forwarded-Proto", "https")
		caddyhttp.SetVar(rr.r.Context(), caddyhttp.TrustedProxyVarKey, trusted)
		if setup != nil {
			setup(rr.r)
		}
		return serve(rt, rr)
	}
	if o := send(rt, "https://api.example.com/orders/1", true, nil); o.status != 200 {
		t.Errorf("https through a trusted proxy: %v", o)
	}
	if o := send(rt, "https://api.example.com/orders/1", false, nil); o.reason != "dpop_htu_mismatch" {
		t.Errorf("X-Forwarded-Proto of an untrusted client was believed: %v", o)
	}
	if o := send(rt, "http://api.example.com/orders/1", false, nil); o.status != 200 {
		t.Errorf("http, untrusted X-Forwarded-Proto ignored: %v", o)
	}
	rewrite := func(r *http.Request) { r.URL.Path, r.URL.RawPath = "/internal/v2/orders/1", "" }
	if o := send(rt, "http://api.example.com/orders/1", false, rewrite); o.status != 200 {
		t.Errorf("a rewrite changed the htu: %v", o)
	}
	if o := send(rt, "http://api.example.com/internal/v2/orders/1", false, rewrite); o.reason != "dpop_htu_mismatch" {
		t.Errorf("the rewritten path was taken for the htu: %v", o)
	}
	ro := newGW(t, is, &RequireToken{DPoPOrigin: "https://API.example.com:443/"})
	internal := func(r *http.Request) { r.Host = "backend:8080" }
	if o := send(ro, "https://api.example.com/orders/1", false, internal); o.status != 200 {
		t.Errorf("dpop_origin: %v", o)
	}
	if o := send(ro, "http://backend:8080/orders/1", true, internal); o.reason != "dpop_htu_mismatch" {
		t.Errorf("dpop_origin set, proof for the internal URL: %v", o)
	}
}

// TestDPoPProvisionErrors: bad settings fail at load.
func TestDPoPProvisionErrors(t *testing.T) {
	t.Setenv("SHORT_SECRET", "short")
	is := newGWIssuer(t)
	for _, c := range []struct {
		name string
		rt   RequireToken
		want string
	}{
		{"bad mode", RequireToken{DPoP: "maybe"}, `dpop: "maybe" is not one of required, allowed, off`},
		{"origin with a path", RequireToken{DPoPOrigin: "https://api.example.com/v1"}, "dpop_origin"},
		{"origin not http", RequireToken{DPoPOrigin: "ftp://api.example.com"}, "dpop_origin"},
		{"origin without host", RequireToken{DPoPOrigin: "https://"}, "dpop_origin"},
		{"origin with query", RequireToken{DPoPOrigin: "https://api.example.com?x=1"}, "dpop_origin"},
		{"short secret", RequireToken{DPoPNonceSecret: "{env.SHORT_SECRET}"}, "dpop_nonce_secret: at least 16 bytes"},
		{"missing secret", RequireToken{DPoPNonceSecret: "{env.NO_SUCH_SECRET_VAR}"}, "dpop_nonce_secret"},
		{"period without secret", RequireToken{DPoPNoncePeriod: duration.Duration(time.Minute)}, "dpop_nonce_period needs dpop_nonce_secret"},
		{"HS256", RequireToken{DPoPAlgorithms: []string{"ES256", "HS256"}}, `algorithm "HS256" is not allowed`},
		{"none", RequireToken{DPoPAlgorithms: []string{"none"}}, `algorithm "none" is not allowed`},
		{"negative replay cache", RequireToken{DPoPReplayCacheSize: -1}, "dpop_replay_cache_size must be positive"},
		{"settings with dpop off", RequireToken{DPoP: DPoPOff, DPoPOrigin: "https://api.example.com"}, "dpop off"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rt := c.rt
			err := provisionGW(t, is, &rt)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

// TestDPoPReplayShared: routes share the process's replay cache, so a
// proof used at one route is a replay at another with the same URL.
func TestDPoPReplayShared(t *testing.T) {
	is := newGWIssuer(t)
	a := newGW(t, is, &RequireToken{})
	b := newGW(t, is, &RequireToken{Scopes: []string{"read"}})
	key := newClientKey(t)
	tok := is.token(t, key.jkt)
	p := key.proof(t, "GET", target, tok, nil)
	if o := serve(a, req(t, "DPoP "+tok, p)); o.status != 200 {
		t.Fatalf("first use: %v", o)
	}
	if o := serve(b, req(t, "DPoP "+tok, p)); o.reason != "dpop_replayed" {
		t.Fatalf("replay at another route: %v", o)
	}
}
