// Package tokentime holds what both halves agree on about the times in
// a JWT, so that a token one accepts is not refused by the other.
package tokentime

import "time"

// Skew is the clock skew allowed on iat, nbf and exp: require_token's
// default, and the issuer's when it reads tokens as a gateway would (a
// token exchange's subject and actor tokens). Nodes' clocks differ by a
// little; a token fresh from one node must not look issued in the
// future to another.
const Skew = 30 * time.Second
