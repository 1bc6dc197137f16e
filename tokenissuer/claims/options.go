package claims

import "github.com/apiaccess/caddy-apiaccess/internal/configerr"

// options checks and copies Okta's per-claim options, Disabled and
// AlwaysIncludeInToken, into cc (whose token kind is already set).
func (cc *compiled) options(c *Claim) error {
	cc.disabled, cc.always = c.Disabled, true
	if c.AlwaysIncludeInToken != nil {
		cc.always = *c.AlwaysIncludeInToken
	}
	if !cc.always && cc.token != IDToken {
		return configerr.Fieldf("always_include_in_token", "always_include_in_token false applies to id_token claims only; access-token claims are always included")
	}
	return nil
}

// goesInto reports whether the claim is computed for kind: never when
// disabled; for IDToken only when always included; for Userinfo every
// ID-token claim.
func (cc *compiled) goesInto(kind string) bool {
	switch {
	case cc.disabled:
		return false
	case kind == Userinfo:
		return cc.token == IDToken
	case kind == IDToken:
		return cc.token == IDToken && cc.always
	}
	return cc.token == kind
}
