package authserver

import (
	"context"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/factors"
)

// factorStep is what the factor step of a sign-in does for a user whose
// sign-in needs a factor (need.factor is not FactorNone).
type factorStep int

const (
	// stepFactor: the second-factor page, for the user's usable factors.
	stepFactor factorStep = iota
	// stepPasswordOnly: no usable factor under acr
	// urn:okta:loa:2fa:any:ifpossible, the password is enough.
	stepPasswordOnly
	// stepEnroll: the enrollment page (a user with no factor at all,
	// a rule that enrolls at sign-in, a factor kind this issuer offers).
	stepEnroll
	// stepStronger: refused with msgStrongerFactor (403): the user has
	// factors, none the rule accepts.
	stepStronger
	// stepNoFactor: refused with msgNoFactor (403): no factor, and
	// enrollment is denied or no offered kind meets the rule.
	stepNoFactor
)

// factorStepFor decides the factor step for user u under n, reading
// (never writing) the user's factors: askFactor acts on it, the token
// preview reports it, so the two cannot disagree. usable are the
// factors that can meet n.
func (i *Issuer) factorStepFor(ctx context.Context, u *directory.User, n need) (factorStep, []factors.Factor, error) {
	usable, err := i.usableFactors(ctx, u, n)
	if err != nil {
		return 0, nil, err
	}
	switch {
	case len(usable) > 0:
		return stepFactor, usable, nil
	case n.ifPossible:
		return stepPasswordOnly, nil, nil
	}
	// Enrollment at sign-in is for a user with no factor at all: one
	// who has a factor proves it before adding another (at the
	// self-service page), or a password alone would add a factor of
	// the attacker's choosing to their account.
	active, err := i.factors.Active(ctx, u.ID)
	if err != nil {
		return 0, nil, err
	}
	switch {
	case len(active) > 0:
		return stepStronger, nil, nil
	case !n.enroll || !i.canEnroll(n):
		return stepNoFactor, nil, nil
	}
	return stepEnroll, nil, nil
}
