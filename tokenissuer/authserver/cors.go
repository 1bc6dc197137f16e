package authserver

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// corsMaxAge lets a browser cache a preflight for 10 minutes.
const corsMaxAge = "600"

// corsAllowHeaders are the request headers a trusted origin may send:
// what Okta's browser SDK sends (okta-auth-js 8.0.1 http/request.js:
// Accept, Content-Type, Authorization and X-Okta-User-Agent-Extended on
// every request), X-Requested-With, which its earlier versions sent,
// and DPoP, the proof of its `dpop: true` option (RFC 9449); the answer
// exposes DPoP-Nonce, which the SDK must read to retry with a nonce.
const corsAllowHeaders = "Accept, Authorization, Content-Type, DPoP, X-Okta-User-Agent-Extended, X-Requested-With"

// parseOrigins validates trusted origins: scheme, host and port only
// (RFC 6454 section 4), compared exactly as browsers send them.
func parseOrigins(list []string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, o := range list {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || strings.Contains(u.Host, "*") {
			return nil, fmt.Errorf("trusted origin %q must be scheme://host[:port], without path or wildcard", o)
		}
		host := strings.ToLower(u.Host)
		// Browsers omit a default port in Origin.
		host = strings.TrimSuffix(host, map[string]string{"https": ":443", "http": ":80"}[u.Scheme])
		out[u.Scheme+"://"+host] = true
	}
	return out, nil
}

// cors adds the CORS response headers of an endpoint open to fetch
// (endpoint.cors) for a trusted Origin and answers its preflight (Fetch
// standard, "CORS protocol"); it reports true when the request was a
// preflight and is answered. Untrusted origins get no
// CORS headers, so the browser withholds the response. Credentials
// (cookies) are allowed only on endpoints marked so (the Sessions API,
// which is the SSO cookie); the OAuth endpoints authenticate by
// parameters and bearer tokens and never allow them.
func (i *Issuer) cors(w http.ResponseWriter, r *http.Request, ep *endpoint) bool {
	methods := ep.cors
	if methods == "" || len(i.origins) == 0 {
		return false
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	if origin == "" || !i.origins[origin] {
		return false
	}
	h.Set("Access-Control-Allow-Origin", origin)
	if ep.credentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		h.Set("Access-Control-Expose-Headers", "WWW-Authenticate, DPoP-Nonce")
		return false
	}
	h.Set("Access-Control-Allow-Methods", methods)
	h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
	h.Set("Access-Control-Max-Age", corsMaxAge)
	w.WriteHeader(http.StatusNoContent)
	return true
}
