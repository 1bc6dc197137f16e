// Package directory holds the people who sign in: users with a login, a
// password hash, a status, profile attributes and group memberships.
// Sources are Caddy guest modules (`token_issuer.directory.*`); the
// default reads a file.
package directory

import (
	"context"
	"errors"
	"strings"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/hashgate"
)

// User statuses (Okta's names, lower case).
const (
	StatusActive    = "active"
	StatusSuspended = "suspended"
	StatusLocked    = "locked"
)

// User is one person.
type User struct {
	// ID is the stable user id, the `uid` claim. Required, unique.
	ID string `json:"id"`
	// Login is what the user types to sign in and the `sub` of their
	// tokens (Okta's shape); compared case-insensitively. Required.
	Login string `json:"login"`
	// PasswordHash is a bcrypt hash or an argon2id PHC string
	// (`caddy apiaccess-hash-password` prints one). Empty: the user
	// cannot sign in with a password.
	PasswordHash string `json:"password_hash,omitempty"`
	// Status is `active` (default), `suspended` or `locked`; only
	// active users sign in or keep getting tokens.
	Status string `json:"status,omitempty"`
	// Profile attributes, e.g. `email`, `given_name`, `family_name`,
	// `name`, `phone_number`, `address`, and anything else; claim
	// expressions see them as `user.profile`.
	Profile map[string]any `json:"profile,omitempty"`
	// Groups the user belongs to, by name.
	Groups []string `json:"groups,omitempty"`
}

// Active reports whether the user may sign in and get tokens.
func (u *User) Active() bool { return u.Status == "" || u.Status == StatusActive }

// InGroup reports membership of group g.
func (u *User) InGroup(g string) bool {
	for _, x := range u.Groups {
		if x == g {
			return true
		}
	}
	return false
}

// ErrNotFound means no such user.
var ErrNotFound = errors.New("no such user")

// Directory looks users up. Implementations are safe for concurrent use.
type Directory interface {
	UserByLogin(ctx context.Context, login string) (*User, error)
	UserByID(ctx context.Context, id string) (*User, error)
}

// NormalizeLogin is the form logins are compared in.
func NormalizeLogin(l string) string { return strings.ToLower(strings.TrimSpace(l)) }

// ErrBadCredentials is the one answer for an unknown login, a wrong
// password and a user without a password.
var ErrBadCredentials = errors.New("bad credentials")

// verify is VerifyPassword; tests observe which hash was checked.
var verify = VerifyPassword

// CheckPassword finds the user by login and verifies the password
// through gate (nil: no bound), at the same cost whether or not the
// login exists: an unknown login, and a user without a password, are
// checked against d's dummy hash for that login (DummyHasher). A user
// who is not active is returned with the credentials checked, so the
// caller can say so only after a correct password. It returns
// hashgate.ErrBusy, or ctx's error, when the check did not run.
func CheckPassword(ctx context.Context, d Directory, gate *hashgate.Gate, login, password string) (*User, error) {
	u, err := d.UserByLogin(ctx, login)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	hash := dummyFor(d, login)
	if u != nil && u.PasswordHash != "" {
		hash = u.PasswordHash
	}
	ok := false
	check := func() { ok = verify(hash, password) }
	if gate == nil {
		check()
	} else if err := gate.Run(ctx, MemoryKiB(hash), check); err != nil {
		return nil, err
	}
	if u == nil || u.PasswordHash == "" || !ok {
		return nil, ErrBadCredentials
	}
	return u, nil
}
