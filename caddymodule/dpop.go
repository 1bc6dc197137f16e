package caddymodule

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/caddymodule/validator"
	"github.com/apiaccess/caddy-apiaccess/internal/dpop"
)

// Values of `dpop`: whether a route takes DPoP-bound tokens (RFC 9449).
const (
	// DPoPRequired: only DPoP-bound tokens with a valid proof pass.
	DPoPRequired = "required"
	// DPoPAllowed (the default): bearer tokens pass as before, DPoP-bound
	// tokens need the DPoP scheme and a valid proof.
	DPoPAllowed = "allowed"
	// DPoPOff: the DPoP scheme is not taken; DPoP-bound tokens are still
	// refused as bearer tokens.
	DPoPOff = "off"
)

// Defaults of the DPoP settings.
const (
	DefaultDPoPReplayCacheSize = 100000
	DefaultDPoPNoncePeriod     = 5 * time.Minute
)

// Rejection reasons of the DPoP checks; a refused proof's reason is
// "dpop_" and the internal/dpop reason (e.g. dpop_htu_mismatch).
const (
	ReasonDPoPNoProof        = "dpop_missing_proof"
	ReasonDPoPMultipleProofs = "dpop_multiple_proofs"
	ReasonDPoPRequired       = "dpop_required"
	ReasonDPoPBoundAsBearer  = "dpop_bound_token"
	ReasonDPoPUnbound        = "dpop_unbound_token"
	ReasonDPoPBadCnf         = "dpop_bad_cnf"
	ReasonDPoPKeyMismatch    = "dpop_key_mismatch"
	ReasonDPoPUnavailable    = "dpop_unavailable"
)

var dpopDescriptions = map[string]string{
	ReasonDPoPNoProof:        "DPoP proof missing",
	ReasonDPoPMultipleProofs: "more than one DPoP header",
	ReasonDPoPRequired:       "DPoP-bound access token required",
	ReasonDPoPBoundAsBearer:  "DPoP-bound access token sent without the DPoP scheme",
	ReasonDPoPUnbound:        "access token is not DPoP-bound",
	ReasonDPoPBadCnf:         "access token cnf claim invalid",
	ReasonDPoPKeyMismatch:    "Invalid DPoP key binding",
}

// dpopDescription is the error_description of a DPoP reason, "" for
// any other reason. Fixed texts: nothing of the token or proof.
func dpopDescription(reason string) string {
	if d, ok := dpopDescriptions[reason]; ok {
		return d
	}
	if r, ok := strings.CutPrefix(reason, "dpop_"); ok {
		return (&dpop.Error{Reason: r}).Description()
	}
	return ""
}

// tokenScheme is how the token came.
type tokenScheme uint8

const (
	schemeOther  tokenScheme = iota // cookie or query parameter
	schemeBearer                    // Authorization: Bearer
	schemeDPoP                      // Authorization: DPoP
)

// dpopGate is a route's DPoP set-up; nil when `dpop` is off.
type dpopGate struct {
	mode string
	v    *dpop.Verifier
	// origin is `dpop_origin` (scheme://host[:port]), or "".
	origin string
	// algs is the challenge's algs parameter.
	algs string
	log  *zap.Logger
}

// dpopReplays shares one replay cache per size across routes and
// config reloads, so a proof used on one route or before a reload is a
// replay on another or after it (RFC 9449 section 11.1).
var dpopReplays = caddy.NewUsagePool()

type pooledReplay struct{ *dpop.MemoryReplay }

func (pooledReplay) Destruct() error { return nil }

// provisionDPoP checks the DPoP settings and builds the gate.
func (rt *RequireToken) provisionDPoP() error {
	mode := rt.DPoP
	if mode == "" {
		mode = DPoPAllowed
	}
	switch mode {
	case DPoPRequired, DPoPAllowed, DPoPOff:
	default:
		return fmt.Errorf("dpop: %q is not one of %s, %s, %s", rt.DPoP, DPoPRequired, DPoPAllowed, DPoPOff)
	}
	if mode == DPoPOff {
		if rt.DPoPOrigin != "" || len(rt.DPoPAlgorithms) > 0 || rt.DPoPNonceSecret != "" || rt.DPoPNoncePeriod != 0 || rt.DPoPReplayCacheSize != 0 {
			return fmt.Errorf("dpop off: dpop_origin, dpop_algorithms, dpop_nonce_secret, dpop_nonce_period and dpop_replay_cache_size have no use")
		}
		return nil
	}
	g := &dpopGate{mode: mode, log: rt.log}
	if rt.DPoPOrigin != "" {
		o, err := parseOrigin(rt.DPoPOrigin)
		if err != nil {
			return err
		}
		g.origin = o
	}
	opts := dpop.Options{}
	for _, a := range rt.DPoPAlgorithms {
		opts.Algorithms = append(opts.Algorithms, jwa.SignatureAlgorithm(a))
	}
	secret, err := caddy.NewReplacer().ReplaceOrErr(rt.DPoPNonceSecret, true, true)
	if err != nil {
		return fmt.Errorf("dpop_nonce_secret: %w", err)
	}
	period := time.Duration(rt.DPoPNoncePeriod)
	switch {
	case period < 0:
		return fmt.Errorf("dpop_nonce_period must be positive")
	case period > 0 && rt.DPoPNonceSecret == "":
		return fmt.Errorf("dpop_nonce_period needs dpop_nonce_secret")
	case period == 0:
		period = DefaultDPoPNoncePeriod
	}
	if rt.DPoPNonceSecret != "" {
		if len(secret) < dpop.MinNonceSecret {
			return fmt.Errorf("dpop_nonce_secret: at least %d bytes", dpop.MinNonceSecret)
		}
		opts.Nonces = dpop.NewNonces([]byte(secret), period, nil)
	}
	size := rt.DPoPReplayCacheSize
	switch {
	case size == 0:
		size = DefaultDPoPReplayCacheSize
	case size < 0:
		return fmt.Errorf("dpop_replay_cache_size must be positive (a replay cache cannot be turned off)")
	}
	key := "dpop-replay|" + strconv.Itoa(size)
	rp, _, err := dpopReplays.LoadOrNew(key, func() (caddy.Destructor, error) {
		return pooledReplay{dpop.NewMemoryReplay(size)}, nil
	})
	if err != nil {
		return err
	}
	rt.cleanup = append(rt.cleanup, func() { _, _ = dpopReplays.Delete(key) })
	opts.Replay = rp.(pooledReplay).MemoryReplay
	if g.v, err = dpop.New(opts); err != nil {
		return fmt.Errorf("dpop_algorithms: %w", err)
	}
	g.algs = strings.Join(g.v.Algorithms(), " ")
	rt.dpop = g
	return nil
}

// parseOrigin checks `dpop_origin`: an http(s) origin, nothing more.
func parseOrigin(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Hostname() == "" ||
		u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", fmt.Errorf("dpop_origin %q: want an origin such as https://api.example.com (scheme, host and optional port; no path)", s)
	}
	return u.Scheme + "://" + u.Host, nil
}

// validate checks tok as it came (scheme) and, for DPoP, its proof.
func (rt *RequireToken) validate(r *http.Request, tok string, scheme tokenScheme) (*validator.Result, *validator.Failure) {
	if scheme == schemeDPoP {
		return rt.dpop.validate(rt.v, r, tok)
	}
	if rt.dpop != nil && rt.dpop.mode == DPoPRequired {
		// Refused before any token check: the route takes no other.
		return nil, &validator.Failure{Status: http.StatusUnauthorized, Code: "invalid_token", Reason: ReasonDPoPRequired}
	}
	return rt.v.ValidateWith(r.Context(), tok, r, refuseBound)
}

// refuseBound refuses a DPoP-bound token sent as a bearer token (RFC
// 9449 section 7.2), whatever the route's mode: the binding is the
// issuer's word that the token needs its key.
func refuseBound(claims map[string]any) *validator.Failure {
	if _, ok := claims["cnf"]; !ok {
		return nil
	}
	switch jkt, f := boundKey(claims); {
	case f != nil:
		return f
	case jkt != "":
		return &validator.Failure{Status: http.StatusUnauthorized, Code: "invalid_token", Reason: ReasonDPoPBoundAsBearer}
	}
	return nil
}

// boundKey is the token's cnf.jkt (RFC 9449 section 6.1), "" when it
// has none. A cnf that is not an object or a jkt that is not a
// non-empty string is refused.
func boundKey(claims map[string]any) (string, *validator.Failure) {
	raw, ok := claims["cnf"]
	if !ok {
		return "", nil
	}
	cnf, ok := raw.(map[string]any)
	if !ok {
		return "", &validator.Failure{Status: http.StatusUnauthorized, Code: "invalid_token", Reason: ReasonDPoPBadCnf}
	}
	rawJKT, ok := cnf["jkt"]
	if !ok {
		return "", nil // bound otherwise (e.g. mTLS, RFC 8705), which we do not check
	}
	jkt, ok := rawJKT.(string)
	if !ok || jkt == "" {
		return "", &validator.Failure{Status: http.StatusUnauthorized, Code: "invalid_token", Reason: ReasonDPoPBadCnf}
	}
	return jkt, nil
}

func invalidProof(reason string) *validator.Failure {
	return &validator.Failure{Status: http.StatusUnauthorized, Code: dpop.CodeInvalidProof, Reason: reason}
}

// validate checks a token sent with the DPoP scheme: exactly one proof
// (RFC 9449 section 4.3, check 1), the token as for bearer tokens, then
// on every request, cached token or not, the proof for this request and
// token and the token's binding to the proof's key (sections 4.3, 6.1
// and 7.1).
func (g *dpopGate) validate(v *validator.Validator, r *http.Request, tok string) (*validator.Result, *validator.Failure) {
	proofs := r.Header.Values("DPoP")
	switch {
	case len(proofs) == 0:
		return nil, invalidProof(ReasonDPoPNoProof)
	case len(proofs) > 1:
		return nil, invalidProof(ReasonDPoPMultipleProofs)
	}
	ctx := r.Context()
	return v.ValidateWith(ctx, tok, r, func(claims map[string]any) *validator.Failure {
		jkt, f := boundKey(claims)
		switch {
		case f != nil:
			return f
		case jkt == "":
			return &validator.Failure{Status: http.StatusUnauthorized, Code: "invalid_token", Reason: ReasonDPoPUnbound}
		}
		method, target, ok := g.target(r)
		if !ok {
			return invalidProof("dpop_" + dpop.ReasonHTUMismatch)
		}
		p, err := g.v.Verify(ctx, proofs[0], method, target, tok)
		if err != nil {
			var e *dpop.Error
			if errors.As(err, &e) {
				return &validator.Failure{Status: http.StatusUnauthorized, Code: e.Code, Reason: "dpop_" + e.Reason}
			}
			if !errors.Is(err, context.Canceled) {
				g.log.Error("DPoP proof check failed on the server's side", zap.Error(err))
			}
			return &validator.Failure{Status: http.StatusServiceUnavailable, Reason: ReasonDPoPUnavailable}
		}
		if subtle.ConstantTimeCompare([]byte(p.JKT), []byte(jkt)) != 1 {
			return &validator.Failure{Status: http.StatusUnauthorized, Code: "invalid_token", Reason: ReasonDPoPKeyMismatch}
		}
		return nil
	})
}

// target is the method and URL the client used (RFC 9449 section 4.3:
// htm and htu), before any rewrite of this Caddy: Caddy's original
// request. The scheme and host are `dpop_origin` when set; else the
// scheme is X-Forwarded-Proto when the request came from one of the
// server's `trusted_proxies` (a client's own is ignored), else the
// connection's, and the host is the request's Host. ok is false for a
// request target that is not a path (OPTIONS *).
func (g *dpopGate) target(r *http.Request) (method, target string, ok bool) {
	method, path := r.Method, r.URL.EscapedPath()
	if or, isReq := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); isReq && or.URL != nil {
		method, path = or.Method, or.URL.EscapedPath()
	}
	if path == "" {
		path = "/"
	}
	if path[0] != '/' {
		return "", "", false
	}
	if g.origin != "" {
		return method, g.origin + path, true
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); trusted {
		// The first value is the proxy's own (the one nearest the client
		// when proxies append).
		p, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
		switch p = strings.ToLower(strings.TrimSpace(p)); p {
		case "http", "https":
			scheme = p
		}
	}
	return method, scheme + "://" + r.Host + path, true
}

// setChallenges writes the answer's WWW-Authenticate (RFC 6750 section
// 3, RFC 9449 sections 7.1 and 7.2) and, for use_dpop_nonce, DPoP-Nonce
// (section 9). With DPoP off it is the Bearer challenge alone. Else the
// error goes on the challenge of the scheme the request used (DPoP on a
// route that requires it); a 401 of a route that takes both schemes
// offers both, the one with the error first; a 400 or 403 answers in
// the request's scheme only.
func (rt *RequireToken) setChallenges(h http.Header, f *validator.Failure, realm string, scheme tokenScheme) {
	if f.Status == http.StatusServiceUnavailable {
		h.Set("Retry-After", "5")
		return
	}
	params := ""
	if f.Code != "" {
		params += `, error="` + f.Code + `"`
		if d := dpopDescription(f.Reason); d != "" {
			params += `, error_description="` + d + `"`
		}
	}
	if f.Scope != "" {
		params += ", scope=" + strconv.Quote(f.Scope)
	}
	bearer := "Bearer realm=" + strconv.Quote(realm)
	g := rt.dpop
	if g == nil {
		h.Set("WWW-Authenticate", bearer+params)
		return
	}
	dp := "DPoP realm=" + strconv.Quote(realm)
	onDPoP := g.mode == DPoPRequired || scheme == schemeDPoP
	if onDPoP {
		dp += params
	} else {
		bearer += params
	}
	dp += `, algs="` + g.algs + `"`
	switch {
	case g.mode == DPoPRequired:
		h.Set("WWW-Authenticate", dp)
	case f.Status != http.StatusUnauthorized && onDPoP:
		h.Set("WWW-Authenticate", dp)
	case f.Status != http.StatusUnauthorized:
		h.Set("WWW-Authenticate", bearer)
	case onDPoP:
		h.Set("WWW-Authenticate", dp)
		h.Add("WWW-Authenticate", bearer)
	default:
		h.Set("WWW-Authenticate", bearer)
		h.Add("WWW-Authenticate", dp)
	}
	if f.Code == dpop.CodeUseNonce {
		if n := g.v.Nonce(); n != "" {
			h.Set("DPoP-Nonce", n)
		}
	}
}
