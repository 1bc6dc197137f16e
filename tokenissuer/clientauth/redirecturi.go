package clientauth

import (
	"errors"
	"net"
	"net/url"
	"strings"
)

// CheckRedirectURI enforces what a registered redirect or post-logout
// redirect URI may be: https; http only to a loopback host (RFC 8252
// section 7.3, native apps listening locally; RFC 9700 section 2.6
// forbids cleartext elsewhere); or a private-use scheme in reverse
// domain form such as com.example.app:/cb (RFC 8252 section 7.1). Never
// a fragment (RFC 6749 section 3.1.2).
func CheckRedirectURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("is not a URI")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return errors.New("must not have a fragment")
	}
	switch {
	case u.Scheme == "https":
		// An opaque URI (https:host) has no Host either.
		if u.Host == "" {
			return errors.New("must be an absolute https URL with a host")
		}
	case u.Scheme == "http":
		if u.Host == "" {
			return errors.New("must be an absolute URL with a host")
		}
		if !loopbackHost(u.Hostname()) {
			return errors.New("uses http for a host that is not loopback: use https (http is only for localhost, 127.0.0.0/8 and [::1])")
		}
	case strings.Contains(u.Scheme, "."):
		// RFC 8252 section 7.1: "com.example.app:/path", a path after
		// the scheme (or an authority), not an opaque part.
		if u.Opaque != "" {
			return errors.New("with a private-use scheme must be of the form com.example.app:/path")
		}
	default:
		return errors.New("must use https, http to a loopback host, or a private-use scheme in reverse domain form (com.example.app:/path)")
	}
	return nil
}

// loopbackHost reports whether host (no brackets, no port) is localhost
// or a loopback address: 127.0.0.0/8 or ::1.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
