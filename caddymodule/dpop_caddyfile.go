package caddymodule

import (
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/apiaccess/caddy-apiaccess/internal/caddyargs"
	"github.com/apiaccess/caddy-apiaccess/internal/dpop"
)

// parseDPoP parses the DPoP subdirectives of `require_token`:
//
//	dpop required|allowed|off
//	dpop_origin <origin>
//	dpop_algorithms <alg...>
//	dpop_nonce_secret <secret>
//	dpop_nonce_period <duration>
//	dpop_replay_cache_size <entries>
//
// each once. It reports false for any other subdirective. What can be
// checked without placeholders is checked here, so errors carry the
// line; the rest when the handler is provisioned.
func parseDPoP(d *caddyfile.Dispenser, once caddyargs.Once, rt *RequireToken) (bool, error) {
	var err error
	switch d.Val() {
	case "dpop":
		if err = caddyargs.One(d, once, &rt.DPoP); err == nil {
			switch rt.DPoP {
			case DPoPRequired, DPoPAllowed, DPoPOff:
			default:
				err = d.Errf("dpop %q: want required, allowed or off", rt.DPoP)
			}
		}
	case "dpop_origin":
		if err = caddyargs.One(d, once, &rt.DPoPOrigin); err == nil && !strings.Contains(rt.DPoPOrigin, "{") {
			if _, oerr := parseOrigin(rt.DPoPOrigin); oerr != nil {
				err = d.Errf("%v", oerr)
			}
		}
	case "dpop_algorithms":
		if err = caddyargs.List(d, once, &rt.DPoPAlgorithms); err == nil {
			var algs []jwa.SignatureAlgorithm
			for _, a := range rt.DPoPAlgorithms {
				algs = append(algs, jwa.SignatureAlgorithm(a))
			}
			if _, verr := dpop.New(dpop.Options{Algorithms: algs, KeyCacheSize: -1}); verr != nil {
				err = d.Errf("dpop_algorithms: %v", verr)
			}
		}
	case "dpop_nonce_secret":
		if err = caddyargs.One(d, once, &rt.DPoPNonceSecret); err == nil && !strings.Contains(rt.DPoPNonceSecret, "{") && len(rt.DPoPNonceSecret) < dpop.MinNonceSecret {
			err = d.Errf("dpop_nonce_secret: at least %d bytes (better: {env.NAME})", dpop.MinNonceSecret)
		}
	case "dpop_nonce_period":
		err = caddyargs.Duration(d, once, &rt.DPoPNoncePeriod)
	case "dpop_replay_cache_size":
		if err = caddyargs.Int(d, once, &rt.DPoPReplayCacheSize); err == nil && rt.DPoPReplayCacheSize <= 0 {
			err = d.Errf("dpop_replay_cache_size %d: must be a positive number of entries", rt.DPoPReplayCacheSize)
		}
	default:
		return false, nil
	}
	return true, err
}
