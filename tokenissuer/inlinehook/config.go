// Package inlinehook is Okta's token inline hook,
// `com.okta.oauth2.tokens.transform` (developer.okta.com "Token inline
// hook reference"): the request an authorization server POSTs to an
// external service before it mints tokens, the call itself (timeout,
// one retry, 256 KB answer), and the JSON Patch commands of the answer
// (`com.okta.identity.patch`, `com.okta.access.patch`) applied to the
// claims with Okta's reserved-claim rules. It does not import Caddy.
package inlinehook

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/configerr"
	"github.com/apiaccess/caddy-apiaccess/internal/duration"
)

// Okta's names and limits.
const (
	// EventType is the hook type and the request's eventType.
	EventType = "com.okta.oauth2.tokens.transform"
	// CommandIdentityPatch modifies the ID token, CommandAccessPatch
	// the access token.
	CommandIdentityPatch = "com.okta.identity.patch"
	CommandAccessPatch   = "com.okta.access.patch"
	// DefaultTimeout is Okta's: "When Okta calls an external service,
	// it enforces a default timeout of three seconds" (Inline hooks,
	// "Time out and retry"); it is also the most a hook may take here.
	DefaultTimeout = 3 * time.Second
	MaxTimeout     = DefaultTimeout
	// MaxResponseSize: "The size of your response payload must be less
	// than 256 KB."
	MaxResponseSize = 256 * 1024
	// MinLifetime and MaxLifetime bound /token/lifetime/expiration:
	// "a minimum of five minutes (300 seconds) and a maximum of 24
	// hours (86,400 seconds)".
	MinLifetime = 5 * time.Minute
	MaxLifetime = 24 * time.Hour
	// DefaultAuthHeader is the header the secret goes in (Okta's
	// channel.config.authScheme with type HEADER, key Authorization).
	DefaultAuthHeader = "Authorization"
)

// Config is one token inline hook, defined once and named by the
// access-policy rules that run it (Okta's inline hook object: name and
// channel.config uri, authScheme and headers).
type Config struct {
	// Name identifies the hook; a rule's `inline_hook` names it.
	// Required; unique.
	Name string `json:"name"`
	// URL is the external service's endpoint (Okta's
	// channel.config.uri), which receives an HTTPS POST. Must be https,
	// except on a loopback host (`localhost` or a literal 127.0.0.0/8
	// or ::1 address) where http is allowed for development; such a
	// call never goes through a proxy. Required.
	URL string `json:"url"`
	// Authorization is the secret sent in the AuthHeader of every call
	// (Okta's authScheme value), normally a placeholder such as
	// `{env.HOOK_SECRET}` resolved at provision. Never logged.
	// Default: none sent.
	Authorization string `json:"authorization,omitempty"`
	// AuthHeader is the header that carries Authorization (Okta's
	// authScheme key). Default: `Authorization`.
	AuthHeader string `json:"auth_header,omitempty"`
	// Headers are more headers sent with every call (Okta's
	// channel.config.headers), by name. Their values are not logged
	// either.
	Headers map[string]string `json:"headers,omitempty"`
	// Timeout bounds the whole call, a retry included; at most 3s,
	// Okta's. Default: 3s.
	Timeout duration.Duration `json:"timeout,omitempty"`
}

// reservedHeaders are set by the call itself.
var reservedHeaders = map[string]bool{"Content-Type": true, "Accept": true, "Content-Length": true, "Host": true}

// Validate checks c as the configuration is compiled; errors name the
// field (never the secret).
func (c *Config) Validate() error {
	if c.Name == "" {
		return errors.New("name is required")
	}
	if err := CheckURL(c.URL); err != nil {
		return configerr.Field("url", err)
	}
	if c.Timeout < 0 || time.Duration(c.Timeout) > MaxTimeout {
		return configerr.Fieldf("timeout", "timeout %s must be positive and at most %s (Okta's)", time.Duration(c.Timeout), MaxTimeout)
	}
	if c.AuthHeader != "" && !validHeaderName(c.AuthHeader) {
		return configerr.Fieldf("auth_header", "auth_header %q is not a header name", c.AuthHeader)
	}
	if reservedHeaders[http.CanonicalHeaderKey(c.authHeader())] {
		return configerr.Fieldf("auth_header", "auth_header %q is set by the call itself", c.AuthHeader)
	}
	if strings.ContainsAny(c.Authorization, "\r\n") {
		return configerr.Fieldf("authorization", "authorization must be one line")
	}
	for k, v := range c.Headers {
		if !validHeaderName(k) || reservedHeaders[http.CanonicalHeaderKey(k)] || strings.EqualFold(k, c.authHeader()) {
			return configerr.Fieldf("headers", "header %q cannot be set", k)
		}
		if strings.ContainsAny(v, "\r\n") {
			return configerr.Fieldf("headers", "header %q: the value must be one line", k)
		}
	}
	return nil
}

func (c *Config) authHeader() string {
	if c.AuthHeader == "" {
		return DefaultAuthHeader
	}
	return c.AuthHeader
}

func (c *Config) timeout() time.Duration {
	if c.Timeout == 0 {
		return DefaultTimeout
	}
	return time.Duration(c.Timeout)
}

// CheckURL requires an absolute https URL without user info or
// fragment; http only for a loopback host (Okta: "Okta uses an HTTPS
// POST request to call your service").
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("url %q must be an absolute https URL", redact(raw))
	}
	if u.User != nil || u.Fragment != "" {
		return fmt.Errorf("url %q must have no user info or fragment", redact(raw))
	}
	if u.Scheme == "http" && !IsLoopback(u.Hostname()) {
		return fmt.Errorf("url %q must use https (http only for a loopback host)", redact(raw))
	}
	return nil
}

// IsLoopback reports whether host names this machine only: the name
// localhost or a literal loopback address. Other names under .localhost
// are not: Go resolves them through DNS (RFC 6761 section 6.3 only asks
// resolvers to keep them local), and ProxyFromEnvironment would send
// them, the secret header with them, to HTTP_PROXY.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// redact is a URL for messages: no user info, query or fragment, which
// may hold secrets.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	u.User, u.RawQuery, u.Fragment, u.RawFragment = nil, "", "", ""
	return u.String()
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune("\"(),/:;<=>?@[\\]{}", r) {
			return false
		}
	}
	return true
}
