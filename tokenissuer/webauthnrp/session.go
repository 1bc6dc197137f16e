package webauthnrp

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
)

// Ceremony kinds a session is for.
const (
	kindRegistration = "registration"
	kindLogin        = "login"
	kindDiscoverable = "discoverable"
)

// session is the opaque state between Begin* and Finish*: the kind of
// ceremony, its expiry, and go-webauthn's SessionData (challenge, user
// handle, allowed credential ids, user verification). At most
// MaxCredentials ids of at most 1023 bytes (§5.8.3) bound its size;
// typically a few hundred bytes.
type session struct {
	Kind    string               `json:"kind"`
	Expires time.Time            `json:"exp"`
	Data    webauthn.SessionData `json:"data"`
}

func (rp *RP) seal(kind string, d *webauthn.SessionData) ([]byte, error) {
	s := session{Kind: kind, Expires: rp.now().Add(Timeout).UTC(), Data: *d}
	return json.Marshal(s)
}

// open decodes a session of the given kind that has not expired.
func (rp *RP) open(kind string, b []byte) (webauthn.SessionData, error) {
	var s session
	if err := json.Unmarshal(b, &s); err != nil {
		return webauthn.SessionData{}, fmt.Errorf("%w: %v", ErrSessionInvalid, err)
	}
	if s.Kind != kind || s.Data.Challenge == "" || s.Expires.IsZero() {
		return webauthn.SessionData{}, ErrSessionInvalid
	}
	if !rp.now().Before(s.Expires) {
		return webauthn.SessionData{}, ErrSessionExpired
	}
	return s.Data, nil
}
