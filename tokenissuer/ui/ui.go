// Package ui renders the issuer's pages: sign-in, consent, errors, and
// the OAuth 2.0 form_post response. The templates are embedded; a
// directory with files of the same names replaces them.
package ui

import (
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"
)

//go:embed templates/*.html
var builtin embed.FS

// Names of the templates a replacement directory must provide.
var Names = []string{"layout.html", "login.html", "consent.html", "error.html", "form_post.html", "device.html"}

// Optional templates a replacement directory may provide; the built-in
// one (inside the directory's layout) is used otherwise, so directories
// made before a template existed keep working.
var Optional = []string{"logout.html", "device_done.html", "factor.html", "enroll.html", "recovery_codes.html", "settings.html", "settings_totp.html"}

// PostMessageTemplate is the okta_post_message response page. It is
// always the built-in one, never read from a replacement directory: it
// shows nothing, and its script is what keeps the response to the
// redirect URI's origin.
const PostMessageTemplate = "okta_post_message.html"

// Pages holds parsed templates.
type Pages struct {
	login, consent, errorPage, formPost, device, deviceDone, logout, postMessage *template.Template
	factor, enroll, recoveryCodes, settings, settingsTOTP                        *template.Template
}

// Load parses the built-in templates, or those in dir when set.
func Load(dir string) (*Pages, error) {
	read := func(name string) (string, error) {
		if dir != "" {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if !(errors.Is(err, fs.ErrNotExist) && slices.Contains(Optional, name)) {
				return string(b), err
			}
		}
		b, err := builtin.ReadFile("templates/" + name)
		return string(b), err
	}
	layout, err := read("layout.html")
	if err != nil {
		return nil, err
	}
	parse := func(name string) (*template.Template, error) {
		body, err := read(name)
		if err != nil {
			return nil, err
		}
		t, err := template.New(name).Parse(layout)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", "layout.html", err)
		}
		if t, err = t.Parse(body); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return t, nil
	}
	p := &Pages{}
	for name, dst := range map[string]**template.Template{"login.html": &p.login, "consent.html": &p.consent, "error.html": &p.errorPage, "form_post.html": &p.formPost, "device.html": &p.device,
		"device_done.html": &p.deviceDone, "logout.html": &p.logout,
		"factor.html": &p.factor, "enroll.html": &p.enroll, "recovery_codes.html": &p.recoveryCodes,
		"settings.html": &p.settings, "settings_totp.html": &p.settingsTOTP} {
		if *dst, err = parse(name); err != nil {
			return nil, err
		}
	}
	pm, err := builtin.ReadFile("templates/" + PostMessageTemplate)
	if err != nil {
		return nil, err
	}
	if p.postMessage, err = template.New(PostMessageTemplate).Parse(string(pm)); err != nil {
		return nil, fmt.Errorf("%s: %w", PostMessageTemplate, err)
	}
	return p, nil
}

// Login is the sign-in page's data. ClientName names the application
// asking; LoginHint fills the username field (the client's login_hint,
// or what the user typed before a failed attempt; never the password).
type Login struct {
	Title, Action, Txn, CSRF, LoginHint, Error string
	ClientName                                 string
}

// Scope is one line of the consent page.
type Scope struct{ Name, Description string }

// Consent is the consent page's data. Login is the signed-in user;
// the page's "Not you?" form posts Txn and CSRF to Action with
// decision=switch, which ends the session and shows the sign-in page
// for the same pending request.
type Consent struct {
	Title, Action, Txn, CSRF, ClientName string
	Login                                string
	Scopes                               []Scope
}

// Error is the error page's data. Error is a generic, safe message.
type Error struct{ Title, Error string }

// FormPost is the form_post response (OAuth 2.0 Form Post Response Mode).
type FormPost struct {
	Action string
	Params map[string]string
}

// PostMessage is the okta_post_message response (Okta's /authorize
// reference, response_mode okta_post_message): a page that posts Data
// to its parent (iframe) or opener (popup) window, for Origin only (the
// redirect URI's origin, never "*"). Nonce is the script's CSP nonce.
type PostMessage struct {
	Nonce, Origin string
	Data          map[string]string
}

// RenderPostMessage writes the okta_post_message page.
func (p *Pages) RenderPostMessage(w io.Writer, d PostMessage) error {
	return p.postMessage.Execute(w, d)
}

// Logout is the RP-initiated logout page's data: the confirmation
// (OpenID Connect RP-Initiated Logout 1.0 section 2) whose form posts
// Params and CSRF back to Action, or, when Done, the signed-out page.
type Logout struct {
	Title, Site, ClientName, Login, Action, CSRF string
	Params                                       map[string]string
	Done                                         bool
	Message                                      string
}

// RenderLogout writes the logout confirmation or signed-out page.
func (p *Pages) RenderLogout(w io.Writer, d Logout) error { return p.logout.Execute(w, d) }

// Device is the device page's data: the user-code entry form (Entry
// binds it to the browser), or, with Txn set, the approval of a device
// showing its UserCode and the client; Check asks the user to confirm
// that the code matches their device.
type Device struct {
	Title, Action, UserCode, Error, Entry string
	Txn, CSRF, ClientName                 string
	Scopes                                []Scope
	Check                                 bool
}

// RenderDevice writes the user-code entry or device approval page.
func (p *Pages) RenderDevice(w io.Writer, d Device) error { return p.device.Execute(w, d) }

// DeviceDone is the page after the user decided on a device: Approved
// says the device is connected to ClientName, else it was refused.
type DeviceDone struct {
	Title, ClientName string
	Approved          bool
}

// RenderDeviceDone writes the device flow's result page.
func (p *Pages) RenderDeviceDone(w io.Writer, d DeviceDone) error { return p.deviceDone.Execute(w, d) }

// RenderLogin, RenderConsent, RenderError and RenderFormPost write pages.
func (p *Pages) RenderLogin(w io.Writer, d Login) error       { return p.login.Execute(w, d) }
func (p *Pages) RenderConsent(w io.Writer, d Consent) error   { return p.consent.Execute(w, d) }
func (p *Pages) RenderError(w io.Writer, d Error) error       { return p.errorPage.Execute(w, d) }
func (p *Pages) RenderFormPost(w io.Writer, d FormPost) error { return p.formPost.Execute(w, d) }

// WebAuthn is a WebAuthn ceremony on a page: Options is the JSON the
// browser half (webauthn.js at Script, with its Integrity) passes to
// navigator.credentials; empty, the page offers none.
type WebAuthn struct {
	Options, Script, Integrity string
}

// Factor is the second-factor page's data: what the user may answer
// with (a TOTP code, a recovery code, a WebAuthn key), posted with Txn
// and CSRF to Action as `method` and `code` or `webauthn_response`.
type Factor struct {
	Title, Action, Txn, CSRF, ClientName, Login, Error string
	TOTP, Recovery                                     bool
	WebAuthn                                           WebAuthn
}

// RenderFactor writes the second-factor page.
func (p *Pages) RenderFactor(w io.Writer, d Factor) error { return p.factor.Execute(w, d) }

// Enroll is the enrollment page's data: a TOTP authenticator app (its
// QR code as a PNG, and the secret as text for typing in) confirmed by
// a code, and/or a WebAuthn key to register.
type Enroll struct {
	Title, Action, Txn, CSRF, ClientName, Login, Error string
	TOTPQR                                             template.URL // a data: URL of the PNG
	TOTPSecret                                         string
	// TOTPURI is the otpauth: link, for an authenticator app on the
	// same device; the issuer makes it (pquerna/otp), never the user.
	TOTPURI  template.URL
	WebAuthn WebAuthn
}

// PNGDataURL is png as a data: URL for an <img>; only for images the
// issuer made itself.
func PNGDataURL(png []byte) template.URL {
	return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png))
}

// RenderEnroll writes the enrollment page.
func (p *Pages) RenderEnroll(w io.Writer, d Enroll) error { return p.enroll.Execute(w, d) }

// RecoveryCodes is the page that shows new recovery codes once; its
// form posts Txn and CSRF to Action to go on.
type RecoveryCodes struct {
	Title, Action, Txn, CSRF string
	Codes                    []string
}

// RenderRecoveryCodes writes the recovery codes page.
func (p *Pages) RenderRecoveryCodes(w io.Writer, d RecoveryCodes) error {
	return p.recoveryCodes.Execute(w, d)
}

// FactorLine is one factor on the self-service page.
type FactorLine struct {
	ID, Kind, Name    string
	Created, LastUsed time.Time
}

// Settings is the self-service page's data: the user's factors (each
// with a remove form), the recovery codes left, new codes to show once,
// and the forms to add an authenticator app or a WebAuthn key; every
// form posts Txn, CSRF and an `action` to Action.
type Settings struct {
	Title, Action, Txn, CSRF, Login, Error, Notice string
	Factors                                        []FactorLine
	RecoveryLeft                                   int
	NewCodes                                       []string
	TOTPOffered                                    bool
	WebAuthn                                       WebAuthn
}

// RenderSettings writes the self-service page.
func (p *Pages) RenderSettings(w io.Writer, d Settings) error { return p.settings.Execute(w, d) }

// SettingsTOTP is the page that adds an authenticator app from the
// self-service page: QR code, key, and the confirming code.
type SettingsTOTP struct {
	Title, Action, Txn, CSRF, Login, Error, FactorID string
	QR                                               template.URL
	Secret                                           string
}

// RenderSettingsTOTP writes the authenticator app page of the settings.
func (p *Pages) RenderSettingsTOTP(w io.Writer, d SettingsTOTP) error {
	return p.settingsTOTP.Execute(w, d)
}
