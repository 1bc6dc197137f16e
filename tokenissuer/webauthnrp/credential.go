package webauthnrp

import (
	"fmt"

	"github.com/google/uuid"
)

// Info is what a stored credential says about itself, for lists of
// factors and for the amr claim.
type Info struct {
	ID []byte
	// AAGUID names the authenticator model (all zeros when it does not
	// say, as with attestation none on many platforms).
	AAGUID string
	// Transports the browser reported (usb, nfc, ble, hybrid, internal).
	Transports []string
	// Attachment: "platform", "cross-platform" or "" (not reported).
	Attachment string
	SignCount  uint32
	// UserVerified: the authenticator verified the user at registration
	// (go-webauthn keeps the registration's flag; each sign-in's is what
	// FinishLogin returns).
	UserVerified bool
	// BackupEligible: a multi-device credential (a synced passkey);
	// BackupState: it is backed up now (§6.1.3).
	BackupEligible, BackupState bool
	// Discoverable: the credProps extension reported a resident key
	// (nil: not reported).
	Discoverable *bool
}

// CredentialInfo decodes a stored credential.
func CredentialInfo(credJSON []byte) (Info, error) {
	c, err := decodeCredential(credJSON)
	if err != nil {
		return Info{}, fmt.Errorf("webauthn: stored credential: %w", err)
	}
	in := Info{
		ID:             c.ID,
		Attachment:     string(c.Authenticator.Attachment),
		SignCount:      c.Authenticator.SignCount,
		UserVerified:   c.Flags.UserVerified,
		BackupEligible: c.Flags.BackupEligible,
		BackupState:    c.Flags.BackupState,
		Discoverable:   c.Extensions.RK,
	}
	if a, err := uuid.FromBytes(c.Authenticator.AAGUID); err == nil {
		in.AAGUID = a.String()
	}
	for _, t := range c.Transport {
		in.Transports = append(in.Transports, string(t))
	}
	return in, nil
}

// AMR is the amr claim values (RFC 8176 §2) of one sign-in with the
// credential credJSON, userVerified as FinishLogin returned it:
//
//   - "hwk" (proof of possession of a hardware-secured key) for a
//     single-device credential (backup eligible flag clear, §6.1.3: the
//     key cannot leave the authenticator), "swk" (software-secured key)
//     for a multi-device one (a synced passkey, whose key a provider
//     copies between devices). With attestation none this is the
//     authenticator's own claim, not verified against metadata.
//   - "user" (presence test): user presence is checked on every
//     assertion.
//   - "mfa" when the authenticator verified the user (UV flag: a PIN or
//     biometric on the device), which makes the key alone two factors.
//
// The caller adds "pwd" for a password step, and "mfa" when the
// password and the key together make two factors. Every WebAuthn
// credential is phishing resistant (bound to the RP id and origin).
func AMR(credJSON []byte, userVerified bool) ([]string, error) {
	in, err := CredentialInfo(credJSON)
	if err != nil {
		return nil, err
	}
	key := "hwk"
	if in.BackupEligible {
		key = "swk"
	}
	if userVerified {
		return []string{key, "user", "mfa"}, nil
	}
	return []string{key, "user"}, nil
}
