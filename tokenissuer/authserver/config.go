// Package authserver is the issuer's protocol core: the org and custom
// authorization servers and their endpoints, free of Caddy.
package authserver

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/apiaccess/caddy-apiaccess/internal/configerr"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/claims"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
)

// ServerConfig configures one custom authorization server.
type ServerConfig struct {
	// Name is shown to people; default: the server's id.
	Name string `json:"name,omitempty"`
	// Description is free text for people.
	Description string `json:"description,omitempty"`
	// Audience is the `aud` of every access token this server issues.
	// Default: `api://{id}`.
	Audience string `json:"audience,omitempty"`
	// SigningAlg signs access tokens: `RS256` (default), `ES256` or
	// `EdDSA`. Changing it rotates the keys at the next start.
	SigningAlg string `json:"signing_alg,omitempty"`
	// Scopes this server knows. A scope not listed here is refused with
	// `invalid_scope`.
	Scopes []*Scope `json:"scopes,omitempty"`
	// Claims are custom access-token claims.
	Claims []*claims.Claim `json:"claims,omitempty"`
	// Subject, when set, computes the `sub` of access tokens issued for
	// a user (Okta lets a custom authorization server map its `sub`
	// claim), in CEL or Okta Expression Language, checked at load.
	// Default: the user's login. A result that is not a non-empty
	// string keeps the login and is logged as a warning.
	Subject *claims.SubjectExpr `json:"subject,omitempty"`
	// Policies decide which client gets which scopes with which token
	// lifetime. Without a policy nothing is issued.
	Policies []*policy.Policy `json:"policies,omitempty"`
	// TrustedServers are the ids of other custom authorization servers
	// of this issuer whose access tokens this server accepts as the
	// subject (and actor) token of a token exchange (Okta's "trusted
	// servers"). A server always accepts its own tokens. Default: none.
	TrustedServers []string `json:"trusted_servers,omitempty"`
}

// Scope is a custom scope.
type Scope struct {
	// Name as requested in `scope` and written into `scp`. Required;
	// printable ASCII without space, `"` or `\` (RFC 6749 section 3.3).
	Name string `json:"name"`
	// Description is shown to people.
	Description string `json:"description,omitempty"`
	// Default scopes are granted when a request asks for none.
	Default bool `json:"default,omitempty"`
	// Consent is `implicit` (default) or `required`; required scopes are
	// confirmed by the user in browser flows.
	Consent string `json:"consent,omitempty"`
	// Publish lists the scope in discovery metadata (`scopes_supported`).
	// Default: false, like Okta's "do not include in public metadata".
	Publish bool `json:"publish,omitempty"`
}

// scopeToken is RFC 6749 section 3.3's scope-token.
var scopeToken = regexp.MustCompile(`^[\x21\x23-\x5B\x5D-\x7E]+$`)

// idPattern limits server ids to what is safe in a URL path segment.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// reservedIDs collide with org-AS paths (`/oauth2/v1/...`) or the
// admin API's name for the org server.
var reservedIDs = map[string]bool{"v1": true, "org": true}

// ValidID checks a custom authorization server id.
func ValidID(id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("authorization server id %q: use 1-64 letters, digits, '-' or '_'", id)
	}
	if reservedIDs[id] {
		return fmt.Errorf("authorization server id %q is reserved", id)
	}
	return nil
}

func (s *Scope) validate() error {
	if !scopeToken.MatchString(s.Name) {
		return errors.New("invalid name (RFC 6749 section 3.3)")
	}
	switch s.Consent {
	case "", "implicit", "required":
	default:
		return configerr.Fieldf("consent", "consent must be implicit or required")
	}
	return nil
}
