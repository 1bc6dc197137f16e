package caddymodule

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/apiaccess/caddy-apiaccess/caddymodule/validator"
)

// normalize folds the spellings backends treat alike: case, and `_` or
// `.` for `-` (CGI, FastCGI and PHP map X_User_Id and X.User.Id onto
// X-User-Id's variable; Caddy lets them in when its server's
// expected_underscore_headers or expected_dot_headers allow them).
func normalize(h string) string {
	return headerFold.Replace(strings.ToLower(h))
}

var headerFold = strings.NewReplacer("_", "-", ".", "-")

// reservedHeaders may not be filled from claims: stripping them first
// would drop the token itself (Authorization, Cookie) or break the
// request's framing for the upstream.
var reservedHeaders = map[string]bool{
	"authorization": true, "proxy-authorization": true, "cookie": true, "host": true,
	"content-length": true, "content-type": true, "transfer-encoding": true,
	"connection": true, "upgrade": true, "te": true, "trailer": true, "keep-alive": true,
}

// stripForwarded removes every client-sent header that could pose as a
// forwarded claim, before anything else runs.
func stripForwarded(h http.Header, fwd []*ForwardClaim) {
	if len(fwd) == 0 {
		return
	}
	for name := range h {
		n := normalize(name)
		for _, f := range fwd {
			if normalize(f.Header) == n {
				delete(h, name)
				break
			}
		}
	}
}

// stripForwardedTrailers keeps client-sent trailer fields of forwarded
// names from the upstream, which reverse_proxy forwards from r.Trailer.
// net/http fills that map only when the body reaches EOF, and then with
// every trailer field the client sent, declared in the Trailer header or
// not (HTTP/1). So the names are removed now (the declaration) and again
// at EOF (the values), before reverse_proxy copies the map. Other
// trailers (checksums, Content-Digest) pass untouched.
func stripForwardedTrailers(r *http.Request, fwd []*ForwardClaim) {
	if len(fwd) == 0 || r.Trailer == nil {
		// A nil map stays nil here: net/http merges trailers into a new
		// map of its own request value, which no later handler sees.
		return
	}
	stripForwarded(r.Trailer, fwd)
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &trailerGuard{ReadCloser: r.Body, trailer: r.Trailer, fwd: fwd}
	}
}

// trailerGuard strips forwarded names from the trailers net/http merged
// in during the Read that reached EOF.
type trailerGuard struct {
	io.ReadCloser
	trailer http.Header
	fwd     []*ForwardClaim
}

func (g *trailerGuard) Read(p []byte) (int, error) {
	n, err := g.ReadCloser.Read(p)
	if err == io.EOF {
		stripForwarded(g.trailer, g.fwd)
	}
	return n, err
}

// forwardClaims sets the configured headers from the token's claims.
// A string with characters a header cannot carry is refused rather
// than altered.
func forwardClaims(h http.Header, fwd []*ForwardClaim, claims map[string]any) *validator.Failure {
	for _, f := range fwd {
		v, ok := claims[f.Claim]
		if !ok {
			continue
		}
		s, ok := claimString(v)
		if !ok {
			return &validator.Failure{Status: http.StatusUnauthorized, Code: "invalid_token", Reason: "claim_not_forwardable"}
		}
		h.Set(f.Header, s)
	}
	return nil
}

// claimString renders a claim: strings as-is, anything else as compact
// JSON. ok is false when the result cannot be a header value.
func claimString(v any) (string, bool) {
	s, isStr := v.(string)
	if !isStr {
		b, err := json.Marshal(v)
		if err != nil {
			return "", false
		}
		s = string(b)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return "", false
		}
	}
	return s, true
}

func validHeaderName(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// publish makes the accepted token visible to later handlers through
// placeholders; claims are rendered only when asked for.
func publish(repl *caddy.Replacer, res *validator.Result) {
	repl.Set("http.auth.user.id", res.Subject)
	repl.Set("http.auth.token.issuer", res.Issuer.URL)
	repl.Set("http.auth.token.client_id", clientID(res.Claims))
	repl.Set("http.auth.token.scopes", strings.Join(res.Scopes, " "))
	claims := res.Claims
	repl.Map(func(key string) (any, bool) {
		name, ok := strings.CutPrefix(key, "http.auth.token.claims.")
		if !ok {
			return nil, false
		}
		v, ok := claims[name]
		if !ok {
			return nil, false
		}
		s, _ := claimString(v)
		return s, true
	})
}
