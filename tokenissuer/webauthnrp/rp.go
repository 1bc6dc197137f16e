package webauthnrp

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
	"github.com/go-webauthn/webauthn/webauthn"
)

// Timeout bounds a ceremony: the browser is told it (options timeout)
// and Finish* refuses a session older than it.
const Timeout = 5 * time.Minute

// MaxCredentials bounds the credentials of one user taken into a
// ceremony, which keeps a session small (it lists their ids).
const MaxCredentials = 20

// MaxResponse bounds the browser's answer (JSON) that Finish* parses.
const MaxResponse = 64 << 10

// Errors. Finish* wraps the library's reason in ErrRefused; the message
// is for the log (it holds no secret), not for the user.
var (
	// ErrUnsupportedOrigin: the base URL cannot host WebAuthn (not https
	// nor http://localhost, or an IP address, which is no RP id).
	ErrUnsupportedOrigin  = errors.New("webauthn: base URL is not a secure-context origin with a domain name")
	ErrSessionInvalid     = errors.New("webauthn: session malformed or of another ceremony")
	ErrSessionExpired     = errors.New("webauthn: session expired")
	ErrNoCredentials      = errors.New("webauthn: user has no credentials")
	ErrTooManyCredentials = errors.New("webauthn: user has too many credentials")
	ErrAlreadyRegistered  = errors.New("webauthn: credential already registered for this user")
	// ErrCloned: the assertion's sign count did not increase (§6.1.1):
	// the authenticator may have been cloned.
	ErrCloned  = errors.New("webauthn: sign count did not increase (possible cloned authenticator)")
	ErrRefused = errors.New("webauthn: response refused")
)

// RP is a Relying Party for one issuer. Safe for concurrent use.
type RP struct {
	wa     *webauthn.WebAuthn
	id     string
	origin string
	now    func() time.Time
}

// New makes the RP of the issuer at baseURL; displayName is shown by
// authenticators (rp.name).
func New(baseURL, displayName string) (*RP, error) {
	u, err := url.Parse(baseURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%w: %q", ErrUnsupportedOrigin, baseURL)
	}
	host := strings.ToLower(u.Hostname())
	secure := u.Scheme == "https" || (u.Scheme == "http" && (host == "localhost" || strings.HasSuffix(host, ".localhost")))
	if !secure || net.ParseIP(host) != nil {
		return nil, fmt.Errorf("%w: %q", ErrUnsupportedOrigin, baseURL)
	}
	if displayName == "" {
		displayName = host
	}
	origin := u.Scheme + "://" + strings.ToLower(u.Host)
	wa, err := webauthn.New(&webauthn.Config{
		RPID:                  host,
		RPDisplayName:         displayName,
		RPOrigins:             []string{origin},
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementPreferred,
			UserVerification: protocol.VerificationPreferred,
		},
		// The browser is told Timeout; the server enforces it from the
		// session's own expiry (session.go), on rp.now.
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Timeout: Timeout, TimeoutUVD: Timeout},
			Registration: webauthn.TimeoutConfig{Timeout: Timeout, TimeoutUVD: Timeout},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedOrigin, err)
	}
	return &RP{wa: wa, id: host, origin: origin, now: time.Now}, nil
}

// ID is the RP id (the base URL's host).
func (rp *RP) ID() string { return rp.id }

// Origin is the one origin accepted in clientDataJSON.
func (rp *RP) Origin() string { return rp.origin }

// User is the account in a ceremony.
type User struct {
	// ID is the user handle: UserHandle(uid).
	ID []byte
	// Name (the login) and DisplayName are shown by authenticators
	// (user.name, user.displayName); never used to decide anything.
	Name, DisplayName string
	// Credentials are the user's stored credentials, each the JSON
	// FinishRegistration or FinishLogin returned.
	Credentials [][]byte
}

// NewUser is the User of directory user uid.
func NewUser(uid, login, displayName string, creds [][]byte) User {
	return User{ID: UserHandle(uid), Name: login, DisplayName: displayName, Credentials: creds}
}

// UserHandle is the user handle of user id uid: SHA-256 of
// "apiaccess webauthn user\x00" + uid (32 bytes), stable across login
// changes and revealing nothing but itself (§14.6.1, user handle
// contents).
func UserHandle(uid string) []byte {
	h := sha256.Sum256([]byte("apiaccess webauthn user\x00" + uid))
	return h[:]
}

// waUser adapts User to the library, credentials decoded.
type waUser struct {
	u     User
	creds []webauthn.Credential
}

func (w *waUser) WebAuthnID() []byte                         { return w.u.ID }
func (w *waUser) WebAuthnName() string                       { return w.u.Name }
func (w *waUser) WebAuthnDisplayName() string                { return w.u.DisplayName }
func (w *waUser) WebAuthnCredentials() []webauthn.Credential { return w.creds }

func adapt(u User) (*waUser, error) {
	if len(u.ID) == 0 || len(u.ID) > 64 {
		return nil, errors.New("webauthn: user handle must be 1 to 64 bytes")
	}
	if len(u.Credentials) > MaxCredentials {
		return nil, ErrTooManyCredentials
	}
	w := &waUser{u: u}
	if w.u.Name == "" {
		w.u.Name = "user"
	}
	if w.u.DisplayName == "" {
		w.u.DisplayName = w.u.Name
	}
	for i, b := range u.Credentials {
		c, err := decodeCredential(b)
		if err != nil {
			return nil, fmt.Errorf("webauthn: stored credential %d: %w", i, err)
		}
		w.creds = append(w.creds, c)
	}
	return w, nil
}

func decodeCredential(b []byte) (webauthn.Credential, error) {
	var c webauthn.Credential
	if err := json.Unmarshal(b, &c); err != nil {
		return c, err
	}
	if len(c.ID) == 0 || len(c.PublicKey) == 0 {
		return c, errors.New("no id or public key")
	}
	return c, nil
}

func (w *waUser) has(id []byte) bool {
	for _, c := range w.creds {
		if bytes.Equal(c.ID, id) {
			return true
		}
	}
	return false
}

func (w *waUser) descriptors() []protocol.CredentialDescriptor {
	return webauthn.Credentials(w.creds).CredentialDescriptors()
}

// credParams: ES256, EdDSA, RS256 (§5.3, most authenticators do ES256;
// Windows Hello TPM keys are RS256).
var credParams = []protocol.CredentialParameter{
	{Type: protocol.PublicKeyCredentialType, Algorithm: webauthncose.AlgES256},
	{Type: protocol.PublicKeyCredentialType, Algorithm: webauthncose.AlgEdDSA},
	{Type: protocol.PublicKeyCredentialType, Algorithm: webauthncose.AlgRS256},
}

// refused wraps a library error: its details and debug info, for the log.
func refused(err error) error {
	var pe *protocol.Error
	var uc *protocol.ErrorUnknownCredential
	switch {
	case errors.As(err, &uc) && uc.Err != nil:
		pe = uc.Err
	case errors.As(err, &pe):
	default:
		return fmt.Errorf("%w: %v", ErrRefused, err)
	}
	// A challenge mismatch's debug info quotes both challenges: left out.
	if pe.DevInfo != "" && !strings.Contains(strings.ToLower(pe.Details), "challenge") {
		return fmt.Errorf("%w: %s (%s)", ErrRefused, pe.Details, pe.DevInfo)
	}
	return fmt.Errorf("%w: %s", ErrRefused, pe.Details)
}
