package webauthnrp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// BeginLogin starts an assertion by u (§5.5
// PublicKeyCredentialRequestOptions): allowCredentials u's credentials,
// user verification preferred. ErrNoCredentials when u has none.
func (rp *RP) BeginLogin(u User) (optionsJSON []byte, session []byte, err error) {
	w, err := adapt(u)
	if err != nil {
		return nil, nil, err
	}
	if len(w.creds) == 0 {
		return nil, nil, ErrNoCredentials
	}
	assertion, sd, err := rp.wa.BeginLogin(w)
	if err != nil {
		return nil, nil, fmt.Errorf("webauthn: begin login: %w", err)
	}
	return rp.sealLogin(kindLogin, assertion, sd)
}

func (rp *RP) sealLogin(kind string, a *protocol.CredentialAssertion, sd *webauthn.SessionData) ([]byte, []byte, error) {
	optionsJSON, err := json.Marshal(a)
	if err != nil {
		return nil, nil, err
	}
	session, err := rp.seal(kind, sd)
	if err != nil {
		return nil, nil, err
	}
	return optionsJSON, session, nil
}

// FinishLogin checks the browser's assertion (§7.2) against the
// BeginLogin that made session, for the same u: the credential must be
// one of u's, signed over this challenge for this RP id and origin, with
// user presence. It returns the credential's id, its updated JSON (sign
// count, flags) to store in place of the old one, and whether the
// authenticator verified the user (UV flag; see AMR). A sign count that
// does not increase is ErrCloned. A credential removed from u since
// BeginLogin makes the session unusable (refused).
func (rp *RP) FinishLogin(u User, session []byte, responseJSON []byte) (credID []byte, updatedCredJSON []byte, userVerified bool, err error) {
	sd, err := rp.open(kindLogin, session)
	if err != nil {
		return nil, nil, false, err
	}
	w, err := adapt(u)
	if err != nil {
		return nil, nil, false, err
	}
	parsed, err := parseAssertion(responseJSON)
	if err != nil {
		return nil, nil, false, err
	}
	return rp.validate(w, parsed, func() (*webauthn.Credential, error) {
		return rp.wa.ValidateLogin(w, sd, parsed)
	})
}

func parseAssertion(responseJSON []byte) (*protocol.ParsedCredentialAssertionData, error) {
	if len(responseJSON) > MaxResponse {
		return nil, fmt.Errorf("%w: response too large", ErrRefused)
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(responseJSON)
	if err != nil {
		return nil, refused(err)
	}
	return parsed, nil
}

// validate runs the library's check, then refuses a clone (the library
// only flags it).
func (rp *RP) validate(w *waUser, parsed *protocol.ParsedCredentialAssertionData, check func() (*webauthn.Credential, error)) ([]byte, []byte, bool, error) {
	for i := range w.creds {
		w.creds[i].Authenticator.CloneWarning = false // set by this check only
	}
	cred, err := check()
	if err != nil {
		return nil, nil, false, refused(err)
	}
	if cred.Authenticator.CloneWarning {
		return nil, nil, false, ErrCloned
	}
	b, err := json.Marshal(cred)
	if err != nil {
		return nil, nil, false, err
	}
	return bytes.Clone(cred.ID), b, parsed.Response.AuthenticatorData.Flags.HasUserVerified(), nil
}

// BeginDiscoverableLogin starts an assertion for an unknown user (a
// passkey sign-in: no allowCredentials, the authenticator offers the
// RP's discoverable credentials), user verification preferred.
func (rp *RP) BeginDiscoverableLogin() (optionsJSON []byte, session []byte, err error) {
	assertion, sd, err := rp.wa.BeginDiscoverableLogin()
	if err != nil {
		return nil, nil, fmt.Errorf("webauthn: begin discoverable login: %w", err)
	}
	return rp.sealLogin(kindDiscoverable, assertion, sd)
}

// ErrUnknownUser is what a FinishDiscoverableLogin lookup returns for a
// user handle it does not know.
var ErrUnknownUser = errors.New("webauthn: unknown user handle")

// FinishDiscoverableLogin checks an assertion answering
// BeginDiscoverableLogin. lookup finds the user of the assertion's user
// handle (the caller keeps UserHandle(uid) -> uid, e.g. written at
// registration) and returns it with its credentials. Returns that user
// and what FinishLogin returns.
func (rp *RP) FinishDiscoverableLogin(session []byte, responseJSON []byte, lookup func(userHandle []byte) (User, error)) (u User, credID []byte, updatedCredJSON []byte, userVerified bool, err error) {
	sd, err := rp.open(kindDiscoverable, session)
	if err != nil {
		return User{}, nil, nil, false, err
	}
	parsed, err := parseAssertion(responseJSON)
	if err != nil {
		return User{}, nil, nil, false, err
	}
	handle := parsed.Response.UserHandle
	if len(handle) == 0 {
		return User{}, nil, nil, false, fmt.Errorf("%w: no user handle (not a discoverable credential)", ErrRefused)
	}
	if u, err = lookup(bytes.Clone(handle)); err != nil {
		return User{}, nil, nil, false, err
	}
	w, err := adapt(u)
	if err != nil {
		return User{}, nil, nil, false, err
	}
	credID, updatedCredJSON, userVerified, err = rp.validate(w, parsed, func() (*webauthn.Credential, error) {
		_, c, err := rp.wa.ValidatePasskeyLogin(func(_, _ []byte) (webauthn.User, error) { return w, nil }, sd, parsed)
		return c, err
	})
	if err != nil {
		return User{}, nil, nil, false, err
	}
	return u, credID, updatedCredJSON, userVerified, nil
}
