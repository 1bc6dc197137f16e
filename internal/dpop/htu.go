package dpop

import (
	"crypto/sha256"
	"encoding/base64"
	"net"
	"net/url"
	"strings"
)

// HTU is the htu of a request to u (RFC 9449 section 4.3): u without
// userinfo, query and fragment, normalised as RFC 3986 sections 6.2.2
// and 6.2.3 say, so that equivalent spellings compare equal: scheme and
// host in lower case, the scheme's default port dropped, percent-encodings
// in upper case with unreserved characters decoded, dot segments
// removed, and an empty path written "/".
func HTU(u *url.URL) string {
	var b strings.Builder
	scheme := strings.ToLower(u.Scheme)
	b.WriteString(scheme)
	b.WriteString("://")
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]" // IPv6 literal
	}
	b.WriteString(host)
	if port := u.Port(); port != "" && port != defaultPorts[scheme] {
		b.WriteString(":")
		b.WriteString(port)
	}
	p := removeDotSegments(normalizePercent(u.EscapedPath()))
	if p == "" {
		p = "/"
	}
	b.WriteString(p)
	return b.String()
}

var defaultPorts = map[string]string{"http": "80", "https": "443"}

// parseHTU parses an absolute http or https URI (an htu claim or the
// request URL) and returns its HTU.
func parseHTU(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || u.Host == "" {
		return "", false
	}
	if sc := strings.ToLower(u.Scheme); sc != "http" && sc != "https" {
		return "", false
	}
	if h := u.Hostname(); h == "" || strings.Contains(h, ":") && net.ParseIP(h) == nil {
		return "", false
	}
	return HTU(u), true
}

// ATH is the ath of an access token (RFC 9449 section 4.2): the
// base64url-encoded SHA-256 hash of its ASCII characters.
func ATH(accessToken string) string {
	h := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

const upperhex = "0123456789ABCDEF"

// normalizePercent writes percent-encodings in upper case and decodes
// those of unreserved characters (RFC 3986 sections 6.2.2.1, 6.2.2.2).
// p is an escaped path, so every '%' starts a valid triplet.
func normalizePercent(p string) string {
	if !strings.Contains(p, "%") {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] != '%' || i+2 >= len(p) {
			b.WriteByte(p[i])
			continue
		}
		c := unhex(p[i+1])<<4 | unhex(p[i+2])
		if unreserved(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(upperhex[c>>4])
			b.WriteByte(upperhex[c&15])
		}
		i += 2
	}
	return b.String()
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10
	}
	return 0
}

// unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~" (RFC 3986 section 2.3).
func unreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// removeDotSegments is RFC 3986 section 5.2.4.
func removeDotSegments(in string) string {
	if !strings.Contains(in, ".") {
		return in
	}
	var out []string
	pop := func() {
		if len(out) > 0 {
			out = out[:len(out)-1]
		}
	}
	for in != "" {
		switch {
		case strings.HasPrefix(in, "../"):
			in = in[3:]
		case strings.HasPrefix(in, "./"):
			in = in[2:]
		case strings.HasPrefix(in, "/./"):
			in = in[2:]
		case in == "/.":
			in = "/"
		case strings.HasPrefix(in, "/../"):
			in = in[3:]
			pop()
		case in == "/..":
			in = "/"
			pop()
		case in == "." || in == "..":
			in = ""
		default:
			i := strings.IndexByte(in[1:], '/')
			if i < 0 {
				out = append(out, in)
				in = ""
			} else {
				out = append(out, in[:i+1])
				in = in[i+1:]
			}
		}
	}
	return strings.Join(out, "")
}
