package webauthnrp

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// BeginRegistration starts adding a credential for u (§5.4
// PublicKeyCredentialCreationOptions): attestation none, resident key
// preferred (a passkey where the authenticator can), user verification
// preferred, platform or roaming authenticators, ES256/EdDSA/RS256, the
// credProps extension (whether a passkey was made), and u's existing
// credentials excluded so one authenticator is not registered twice.
// optionsJSON is for webauthn.js; session is for FinishRegistration.
func (rp *RP) BeginRegistration(u User) (optionsJSON []byte, session []byte, err error) {
	w, err := adapt(u)
	if err != nil {
		return nil, nil, err
	}
	if len(w.creds) >= MaxCredentials {
		return nil, nil, ErrTooManyCredentials
	}
	creation, sd, err := rp.wa.BeginRegistration(w,
		webauthn.WithCredentialParameters(credParams),
		webauthn.WithExclusions(w.descriptors()),
		webauthn.WithExtensions(webauthn.WithExtensionCredProps()),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("webauthn: begin registration: %w", err)
	}
	if optionsJSON, err = json.Marshal(creation); err != nil {
		return nil, nil, err
	}
	if session, err = rp.seal(kindRegistration, sd); err != nil {
		return nil, nil, err
	}
	return optionsJSON, session, nil
}

// FinishRegistration checks the browser's answer (§7.1) to the
// BeginRegistration that made session, for the same u, and returns the
// new credential's id and its JSON to store. A credential u already has
// is refused with ErrAlreadyRegistered. Credential ids are looked up per
// user only (every ceremony knows its user, a discoverable one by the
// user handle), so another user's credential with the same id cannot
// be confused with this one (§7.1 step 26 is then moot).
func (rp *RP) FinishRegistration(u User, session []byte, responseJSON []byte) (credID []byte, credJSON []byte, err error) {
	sd, err := rp.open(kindRegistration, session)
	if err != nil {
		return nil, nil, err
	}
	w, err := adapt(u)
	if err != nil {
		return nil, nil, err
	}
	if len(responseJSON) > MaxResponse {
		return nil, nil, fmt.Errorf("%w: response too large", ErrRefused)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(responseJSON)
	if err != nil {
		return nil, nil, refused(err)
	}
	cred, err := rp.wa.CreateCredential(w, sd, parsed)
	if err != nil {
		return nil, nil, refused(err)
	}
	if w.has(cred.ID) {
		return nil, nil, ErrAlreadyRegistered
	}
	if len(w.creds) >= MaxCredentials {
		return nil, nil, ErrTooManyCredentials
	}
	if credJSON, err = json.Marshal(cred); err != nil {
		return nil, nil, err
	}
	return bytes.Clone(cred.ID), credJSON, nil
}
