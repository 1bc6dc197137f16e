// Package clientauth authenticates OAuth clients at the token,
// introspection and revocation endpoints (RFC 6749 section 2.3,
// RFC 7523 section 3 private_key_jwt).
package clientauth

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"golang.org/x/crypto/bcrypt"

	"github.com/apiaccess/caddy-apiaccess/internal/configerr"
	"github.com/apiaccess/caddy-apiaccess/internal/duration"
)

// Client authentication methods (RFC 7591 section 2 names).
const (
	SecretBasic   = "client_secret_basic"
	SecretPost    = "client_secret_post"
	PrivateKeyJWT = "private_key_jwt"
	None          = "none"
)

// Client is an OAuth client registered in configuration.
type Client struct {
	// ID is the client_id. Required, unique.
	ID string `json:"client_id"`
	// Name is shown in logs and available to claim expressions as
	// `client.name`. Default: the ID.
	Name string `json:"name,omitempty"`
	// Secret in plaintext, normally a placeholder such as
	// `{env.BILLING_SECRET}` that is resolved at load. Use Secret or
	// SecretHash, not both; neither for private_key_jwt.
	Secret string `json:"client_secret,omitempty"`
	// SecretHash is a bcrypt hash of the secret (`caddy hash-password`
	// prints one).
	SecretHash string `json:"client_secret_hash,omitempty"`
	// AuthMethod is how the client authenticates at the token endpoint:
	// `client_secret_basic` (default), `client_secret_post`,
	// `private_key_jwt`, or `none` for a public client (a browser or
	// native app without a secret; it must use PKCE).
	AuthMethod string `json:"token_endpoint_auth_method,omitempty"`
	// GrantTypes the client may use. Default: `["client_credentials"]`.
	GrantTypes []string `json:"grant_types,omitempty"`
	// JWKS holds the client's public keys inline (a JWK Set) for
	// private_key_jwt.
	JWKS json.RawMessage `json:"jwks,omitempty"`
	// JWKSURI is where the client publishes its public keys for
	// private_key_jwt. Fetched on first use, never at load; reused for
	// 15 minutes, refetched for an unknown kid at most once a minute.
	// A fetch reads at most 1 MiB, takes at most 10s (5s to connect,
	// 5s to the headers), follows redirects only within the URL's
	// origin, uses no proxy, and reaches an internal address
	// (loopback, private, link-local) only when the URL names it
	// (https://10.0.0.5/jwks, http://localhost:8400/jwks), never
	// through a host name. Plain http is accepted for a loopback host
	// only.
	JWKSURI string `json:"jwks_uri,omitempty"`
	// RedirectURIs the authorization endpoint may send this client back
	// to, compared exactly (no wildcards, no prefix match). Each is an
	// https URL, an http URL to a loopback host (localhost, 127.0.0.0/8,
	// [::1]) or a private-use scheme in reverse domain form
	// (com.example.app:/callback, RFC 8252 section 7.1); never with a
	// fragment. Anything else fails at load.
	RedirectURIs []string `json:"redirect_uris,omitempty"`
	// PostLogoutRedirectURIs the logout endpoint may redirect to, exact,
	// under the same rules as RedirectURIs.
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris,omitempty"`
	// RefreshTokenRotation is `rotate` (default: every use returns a new
	// refresh token, and reuse of a replaced one revokes the family) or
	// `static` (the same token until it expires).
	RefreshTokenRotation string `json:"refresh_token_rotation,omitempty"`
	// RefreshTokenLeeway lets a replaced refresh token be used again for
	// this long (a retried request), at most 60s. Default: 30s (zero
	// means the default; give 1ns for practically none).
	RefreshTokenLeeway duration.Duration `json:"refresh_token_leeway,omitempty"`
	// DPoPBoundAccessTokens requires a DPoP proof (RFC 9449) on every
	// token request of this client, so all its access tokens are bound
	// to its key (Okta's application setting "Require DPoP header in
	// token requests", `dpop_bound_access_tokens`, RFC 9449 section 5.2).
	DPoPBoundAccessTokens bool `json:"dpop_bound_access_tokens,omitempty"`
	// RequirePushedAuthorizationRequests refuses this client's
	// authorization requests unless they were pushed first (RFC 9126
	// section 6, `require_pushed_authorization_requests` client
	// metadata): /v1/authorize then needs a request_uri from /v1/par.
	// Default false: both kinds are accepted. Only with the
	// authorization_code grant and redirect_uris (a configuration error
	// otherwise: it would do nothing).
	RequirePushedAuthorizationRequests bool `json:"require_pushed_authorization_requests,omitempty"`
	// OktaAPIScopes are the org server's Okta API scopes granted to this
	// client (Okta's "Okta API Scopes" tab): it may get an org access
	// token for them with client_credentials. Known: ssf.read and
	// ssf.manage (the SSF Transmitter API, the revocation feed).
	OktaAPIScopes []string `json:"okta_api_scopes,omitempty"`

	keys jwk.Set
}

// Prepare applies defaults and validates the client. Its errors are
// configerr errors in the item `client <id>`.
func (c *Client) Prepare() error {
	return configerr.In("client", c.ID, c.prepare())
}

func (c *Client) prepare() error {
	if c.ID == "" {
		return configerr.Fieldf("client_id", "client_id is required")
	}
	if strings.ContainsAny(c.ID, ":\x00") {
		return configerr.Fieldf("client_id", "client_id may not contain ':' or NUL")
	}
	if c.Name == "" {
		c.Name = c.ID
	}
	if c.AuthMethod == "" {
		c.AuthMethod = SecretBasic
	}
	if len(c.GrantTypes) == 0 {
		c.GrantTypes = []string{"client_credentials"}
	}
	switch c.AuthMethod {
	case SecretBasic, SecretPost:
		if (c.Secret == "") == (c.SecretHash == "") {
			return fmt.Errorf("exactly one of client_secret and client_secret_hash is required for %s", c.AuthMethod)
		}
		if c.SecretHash != "" {
			if _, err := bcrypt.Cost([]byte(c.SecretHash)); err != nil {
				return configerr.Fieldf("client_secret_hash", "client_secret_hash is not a bcrypt hash")
			}
		}
		if len(c.JWKS) > 0 || c.JWKSURI != "" {
			return fmt.Errorf("jwks and jwks_uri only apply to private_key_jwt")
		}
	case PrivateKeyJWT:
		if c.Secret != "" || c.SecretHash != "" {
			return fmt.Errorf("a private_key_jwt client has no secret")
		}
		if (len(c.JWKS) == 0) == (c.JWKSURI == "") {
			return fmt.Errorf("exactly one of jwks and jwks_uri is required for private_key_jwt")
		}
		if len(c.JWKS) > 0 {
			set, err := jwk.Parse(c.JWKS)
			if err != nil {
				return configerr.Fieldf("jwks", "jwks: %w", err)
			}
			if err := onlyPublic(set); err != nil {
				return configerr.Fieldf("jwks", "jwks: %w", err)
			}
			if !hasSignatureKey(set) {
				return configerr.Fieldf("jwks", "jwks: no key for signatures (every key has a use or key_ops other than sig/verify)")
			}
			c.keys = set
		}
		if c.JWKSURI != "" {
			u, err := url.Parse(c.JWKSURI)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return configerr.Fieldf("jwks_uri", "jwks_uri must be an absolute http(s) URL")
			}
			// Keys read over plain http could be swapped on the way, and
			// whoever swaps them signs assertions as this client.
			if u.Scheme == "http" && !loopbackHost(u.Hostname()) {
				return configerr.Fieldf("jwks_uri", "jwks_uri over http only to a loopback host (localhost, 127.0.0.1, ::1); use https")
			}
		}
	case None:
		if c.Secret != "" || c.SecretHash != "" || len(c.JWKS) > 0 || c.JWKSURI != "" {
			return fmt.Errorf("a public client (none) has no secret or keys")
		}
		// Token exchange too: without a credential anyone holding a user's
		// token could turn it into one for another API (Okta offers the
		// grant to service apps only), and the grant refuses public clients.
		if slices.Contains(c.GrantTypes, "client_credentials") || slices.Contains(c.GrantTypes, "password") ||
			slices.Contains(c.GrantTypes, "urn:ietf:params:oauth:grant-type:token-exchange") {
			return configerr.Fieldf("grant_types", "a public client cannot use client_credentials, password or token exchange")
		}
	default:
		return configerr.Fieldf("token_endpoint_auth_method", "unsupported token_endpoint_auth_method %q (use client_secret_basic, client_secret_post, private_key_jwt or none)", c.AuthMethod)
	}
	for _, sc := range c.OktaAPIScopes {
		if !slices.Contains(OktaAPIScopes, sc) {
			return configerr.Fieldf("okta_api_scopes", "unknown Okta API scope %q (known: %s)", sc, strings.Join(OktaAPIScopes, ", "))
		}
	}
	if len(c.OktaAPIScopes) > 0 && !slices.Contains(c.GrantTypes, "client_credentials") {
		return configerr.Fieldf("okta_api_scopes", "okta_api_scopes are granted by client_credentials, which grant_types lacks")
	}
	for _, g := range c.GrantTypes {
		if g == "" {
			return configerr.Fieldf("grant_types", "empty grant type")
		}
	}
	for _, u := range c.RedirectURIs {
		if err := CheckRedirectURI(u); err != nil {
			return configerr.Fieldf("redirect_uris", "redirect_uris: %q %w", u, err)
		}
	}
	// RFC 9126 section 6: the requirement is on authorization requests,
	// which only the code flow makes, to a registered redirect URI.
	if c.RequirePushedAuthorizationRequests && !slices.Contains(c.GrantTypes, "authorization_code") {
		return configerr.Fieldf("require_pushed_authorization_requests", "require_pushed_authorization_requests applies to authorization requests of the authorization_code grant, which grant_types lacks")
	}
	if c.RequirePushedAuthorizationRequests && len(c.RedirectURIs) == 0 {
		return configerr.Fieldf("require_pushed_authorization_requests", "require_pushed_authorization_requests needs redirect_uris: without one no authorization request can succeed")
	}
	for _, u := range c.PostLogoutRedirectURIs {
		if err := CheckRedirectURI(u); err != nil {
			return configerr.Fieldf("post_logout_redirect_uris", "post_logout_redirect_uris: %q %w", u, err)
		}
	}
	switch c.RefreshTokenRotation {
	case "":
		c.RefreshTokenRotation = RotateRefresh
	case RotateRefresh, StaticRefresh:
	default:
		return configerr.Fieldf("refresh_token_rotation", "refresh_token_rotation must be rotate or static")
	}
	if c.RefreshTokenLeeway == 0 {
		c.RefreshTokenLeeway = duration.Duration(DefaultLeeway)
	}
	if c.RefreshTokenLeeway < 0 || time.Duration(c.RefreshTokenLeeway) > MaxLeeway {
		return configerr.Fieldf("refresh_token_leeway", "refresh_token_leeway must be between 0 and %s", MaxLeeway)
	}
	return nil
}

// OktaAPIScopes are the Okta API scopes the org server grants (Okta's
// SSF Transmitter API: ssf.read to read streams and poll, ssf.manage to
// create, change and delete them).
var OktaAPIScopes = []string{"ssf.read", "ssf.manage"}

// Refresh-token rotation modes and leeway.
const (
	RotateRefresh = "rotate"
	StaticRefresh = "static"
	DefaultLeeway = 30 * time.Second
	MaxLeeway     = time.Minute
)

// AllowsGrant reports whether the client may use grant type g.
func (c *Client) AllowsGrant(g string) bool { return slices.Contains(c.GrantTypes, g) }

// onlyPublic refuses symmetric and private keys: a client's key set must
// never let an HMAC secret or a private key in (RFC 7523 section 3).
func onlyPublic(set jwk.Set) error {
	if set.Len() == 0 {
		return fmt.Errorf("no keys")
	}
	for i := range set.Len() {
		k, _ := set.Key(i)
		switch k.KeyType() {
		case "RSA", "EC", "OKP":
		default:
			return fmt.Errorf("key type %q is not allowed", k.KeyType())
		}
		switch k.(type) {
		case jwk.RSAPrivateKey, jwk.ECDSAPrivateKey, jwk.OKPPrivateKey:
			return fmt.Errorf("private key material is not allowed")
		}
	}
	return nil
}
