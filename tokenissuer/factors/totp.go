package factors

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"image/png"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters: what Google Authenticator and Okta Verify's code mode
// use (RFC 6238 section 4: 30 s steps, T0 = 0, HMAC-SHA-1; 6 digits,
// RFC 4226 section 5.3), with a 160-bit secret (RFC 4226 section 4 R6).
const (
	totpPeriod     = 30
	totpDigits     = otp.DigitsSix
	totpSecretSize = 20
	// totpSkew is how many steps either side of the current one are
	// accepted, for clock drift and typing time (RFC 6238 section 5.2).
	totpSkew = 1
	// qrSize is the enrollment QR code's width and height in pixels.
	qrSize = 256
)

// TOTPEnrollment is what the enrollment page shows once: the secret as
// text (base32, RFC 4648 section 6, as authenticator apps take it), the
// otpauth:// URI and that URI as a QR code (PNG).
type TOTPEnrollment struct {
	FactorID string
	Secret   string
	URL      string
	QRPNG    []byte
}

// sealKID binds a sealed TOTP secret to its user and factor: the seal's
// key id is checked on opening, so a sealed secret copied to another
// user's record (or factor) does not open. Factor ids hold no ':'.
func sealKID(uid, factorID string) string { return "totp:" + uid + ":" + factorID }

// EnrollTOTP starts enrolling an authenticator app for uid: a new
// secret, sealed, in a PENDING_ACTIVATION factor that replaces any older
// pending TOTP factor (ACTIVE ones stay). account is the name the app
// shows beside the issuer (uid if empty). ActivateTOTP completes it.
func (m *Manager) EnrollTOTP(ctx context.Context, uid, account string) (TOTPEnrollment, error) {
	if m.sealer == nil {
		return TOTPEnrollment{}, errors.New("factors: TOTP needs a sealer")
	}
	if uid == "" {
		return TOTPEnrollment{}, errNoUser
	}
	if account == "" {
		account = uid
	}
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer: m.issuer, AccountName: account,
		Period: totpPeriod, Digits: totpDigits, SecretSize: totpSecretSize, Algorithm: otp.AlgorithmSHA1,
	})
	if err != nil {
		return TOTPEnrollment{}, fmt.Errorf("factors: generating a TOTP secret: %w", err)
	}
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(key.Secret())
	if err != nil {
		return TOTPEnrollment{}, err
	}
	img, err := key.Image(qrSize, qrSize)
	if err != nil {
		return TOTPEnrollment{}, fmt.Errorf("factors: drawing the QR code: %w", err)
	}
	var qr bytes.Buffer
	if err := png.Encode(&qr, img); err != nil {
		return TOTPEnrollment{}, err
	}
	id := newID()
	sealed, err := m.sealer.Seal(sealKID(uid, id), raw)
	if err != nil {
		return TOTPEnrollment{}, fmt.Errorf("factors: sealing the TOTP secret: %w", err)
	}
	f := Factor{ID: id, Kind: KindTOTP, Status: StatusPending, Name: "Authenticator app", Created: m.now().UTC(), Secret: sealed}
	err = m.update(ctx, uid, func(r *record) error {
		kept := make([]Factor, 0, len(r.Factors)+1)
		for _, o := range r.Factors {
			if o.Kind != KindTOTP || o.Status != StatusPending {
				kept = append(kept, o)
			}
		}
		r.Factors = append(kept, f)
		return nil
	})
	if err != nil {
		return TOTPEnrollment{}, err
	}
	return TOTPEnrollment{FactorID: id, Secret: key.Secret(), URL: key.URL(), QRPNG: qr.Bytes()}, nil
}

// ActivateTOTP completes an enrollment: a right code (adjacent steps
// accepted) makes the pending factor ACTIVE and counts as its first use,
// so that code cannot sign in afterwards. Errors: ErrNotFound (no such
// TOTP factor), ErrNotPending, ErrBadCode.
func (m *Manager) ActivateTOTP(ctx context.Context, uid, factorID, code string) error {
	now := m.now()
	return m.update(ctx, uid, func(r *record) error {
		for i := range r.Factors {
			f := &r.Factors[i]
			if f.ID != factorID || f.Kind != KindTOTP {
				continue
			}
			if f.Status != StatusPending {
				return ErrNotPending
			}
			if now.Sub(f.Created) > PendingLifetime {
				return ErrNotFound // an enrollment left unfinished
			}
			step, err := m.checkTOTP(uid, f, code, now.Unix())
			if err != nil {
				return err
			}
			f.Status, f.Activated, f.LastUsed, f.LastStep = StatusActive, now.UTC(), now.UTC(), step
			return nil
		}
		return ErrNotFound
	})
}

// VerifyTOTP checks code against uid's ACTIVE TOTP factors and returns
// the factor it belongs to (without secret). A code of the current or
// an adjacent time step is accepted once: the accepted step must be
// later than the factor's last one, and recording it is part of the
// same atomic update, cluster-wide. Errors: ErrNoFactor (no active TOTP
// factor), ErrReplayed (the code's step, or a later one, was already
// used), ErrBadCode.
func (m *Manager) VerifyTOTP(ctx context.Context, uid, code string) (Factor, error) {
	now := m.now()
	var used Factor
	err := m.update(ctx, uid, func(r *record) error {
		result := ErrNoFactor
		for i := range r.Factors {
			f := &r.Factors[i]
			if f.Kind != KindTOTP || f.Status != StatusActive {
				continue
			}
			step, err := m.checkTOTP(uid, f, code, now.Unix())
			switch {
			case err == nil:
				f.LastStep, f.LastUsed = step, now.UTC()
				used = f.public()
				return nil
			case errors.Is(err, ErrReplayed), errors.Is(err, ErrBadCode):
				if result != ErrReplayed {
					result = err
				}
			default:
				return err
			}
		}
		return result
	})
	if err != nil {
		return Factor{}, err
	}
	return used, nil
}

// checkTOTP returns the latest time step within the skew of unix whose
// code is code and that is later than f.LastStep; ErrReplayed when code
// matches only steps already used, ErrBadCode when it matches none or
// is not 6 digits. Every candidate is compared, in constant time.
func (m *Manager) checkTOTP(uid string, f *Factor, code string, unix int64) (int64, error) {
	code = normalizeTOTP(code)
	if !validTOTP(code) {
		return 0, ErrBadCode
	}
	if m.sealer == nil {
		return 0, errors.New("factors: TOTP needs a sealer")
	}
	raw, err := m.sealer.Open(sealKID(uid, f.ID), f.Secret)
	if err != nil {
		return 0, fmt.Errorf("factors: opening the secret of TOTP factor %s: %w", f.ID, err)
	}
	secret := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw)
	cur := unix / totpPeriod // RFC 6238 section 4.2: T = floor((now - T0) / X)
	best, matched := int64(-1), false
	for step := cur - totpSkew; step <= cur+totpSkew; step++ {
		if step < 0 {
			continue
		}
		want, err := hotp.GenerateCodeCustom(secret, uint64(step), hotp.ValidateOpts{Digits: totpDigits, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			return 0, err
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			matched = true
			if step > f.LastStep {
				best = step
			}
		}
	}
	switch {
	case best >= 0:
		return best, nil
	case matched:
		return 0, ErrReplayed
	default:
		return 0, ErrBadCode
	}
}

// normalizeTOTP drops the spaces apps show in the middle of a code
// ("123 456") and around it.
func normalizeTOTP(code string) string {
	return strings.ReplaceAll(strings.TrimSpace(code), " ", "")
}

// validTOTP: exactly the right number of ASCII digits.
func validTOTP(code string) bool {
	if len(code) != totpDigits.Length() {
		return false
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return false
		}
	}
	return true
}

// PendingLifetime bounds a TOTP enrollment: a pending factor older than
// this cannot be activated (start again).
const PendingLifetime = time.Hour

// PendingTOTP shows the enrollment of uid's pending TOTP factor again
// (its QR code and key, for a page answered with a wrong code): the same
// secret the user already scanned. ErrNotFound when there is no such
// pending factor, or it is older than PendingLifetime.
func (m *Manager) PendingTOTP(ctx context.Context, uid, factorID, account string) (TOTPEnrollment, error) {
	r, err := m.load(ctx, uid)
	if err != nil {
		return TOTPEnrollment{}, err
	}
	for _, f := range r.Factors {
		if f.ID != factorID || f.Kind != KindTOTP || f.Status != StatusPending || m.now().Sub(f.Created) > PendingLifetime {
			continue
		}
		raw, err := m.sealer.Open(sealKID(uid, f.ID), f.Secret)
		if err != nil {
			return TOTPEnrollment{}, fmt.Errorf("factors: opening a TOTP secret: %w", err)
		}
		if account == "" {
			account = uid
		}
		key, err := totp.Generate(totp.GenerateOpts{
			Issuer: m.issuer, AccountName: account, Secret: raw,
			Period: totpPeriod, Digits: totpDigits, SecretSize: totpSecretSize, Algorithm: otp.AlgorithmSHA1,
		})
		if err != nil {
			return TOTPEnrollment{}, err
		}
		img, err := key.Image(qrSize, qrSize)
		if err != nil {
			return TOTPEnrollment{}, fmt.Errorf("factors: drawing the QR code: %w", err)
		}
		var qr bytes.Buffer
		if err := png.Encode(&qr, img); err != nil {
			return TOTPEnrollment{}, err
		}
		return TOTPEnrollment{FactorID: f.ID, Secret: key.Secret(), URL: key.URL(), QRPNG: qr.Bytes()}, nil
	}
	return TOTPEnrollment{}, ErrNotFound
}
