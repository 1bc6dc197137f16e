package authserver

import "time"

// Observer is told of every decision of the back-channel endpoints and
// every key rotation, for metrics. Calls come from request goroutines
// at once and must not block. Server is the authorization server's id
// (OrgID for the org server).
type Observer interface {
	// TokenRequest is one answer of the token endpoint: grantType as
	// the client sent it, outcome "success" or the OAuth error code
	// (RFC 6749 section 5.2, RFC 8628 section 3.5), elapsed from the
	// request's arrival to the answer.
	TokenRequest(server, grantType, outcome string, elapsed time.Duration)
	// Introspection is one answer of the introspection endpoint (RFC
	// 7662 section 2.2); failed requests (bad client) are not counted.
	Introspection(server string, active bool)
	// Revocation is one answer of the revocation endpoint: outcome
	// "success" (RFC 7009 section 2.2, also for unknown tokens),
	// "rate_limited" or the OAuth error code.
	Revocation(server, outcome string)
	// KeyRotation is one rotation of a server's signing keys; reason is
	// one of the Rotation* values.
	KeyRotation(server, reason string)
}

// Rotation reasons.
const (
	RotationScheduled = "scheduled"  // the key reached key_rotation_interval
	RotationAdmin     = "admin"      // the admin API asked for it
	RotationAlgChange = "alg_change" // the new signing_alg's key, published long enough, promoted at start
	RotationPublished = "published"  // signing_alg changed: a key of the new one published as NEXT
	RotationCreated   = "created"    // first keys of a server (empty store)
)

// rotationReason names for the Observer what logKeyRotation calls why.
func rotationReason(why string) string {
	switch why {
	case "manual":
		return RotationAdmin
	case "rotated":
		return RotationAlgChange
	}
	return why
}

// OutcomeSuccess is the outcome of an answered request.
const OutcomeSuccess = "success"

// noObserver is the Observer of an Issuer built without one.
type noObserver struct{}

func (noObserver) TokenRequest(string, string, string, time.Duration) {}
func (noObserver) Introspection(string, bool)                         {}
func (noObserver) Revocation(string, string)                          {}
func (noObserver) KeyRotation(string, string)                         {}
