// Package ui renders the issuer's pages: sign-in, consent, errors, and
// the OAuth 2.0 form_post response. The templates are embedded; a
// directory with files of the same names replaces them.
package ui

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

//go:embed templates/*.html
var builtin embed.FS

// Names of the templates a replacement directory must provide.
var Names = []string{"layout.html", "login.html", "consent.html", "error.html", "form_post.html", "device.html"}

// Optional templates a replacement directory may provide; the built-in
// one (inside the directory's layout) is used otherwise, so directories
// made before a template existed keep working.
var Optional = []string{"logout.html"}

// PostMessageTemplate is the okta_post_message response page. It is
// always the built-in one, never read from a replacement directory: it
// shows nothing, and its script is what keeps the response to the
// redirect URI's origin.
const PostMessageTemplate = "okta_post_message.html"

// Pages holds parsed templates.
type Pages struct {
	login, consent, errorPage, formPost, device, logout, postMessage *template.Template
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
	for name, dst := range map[string]**template.Template{"login.html": &p.login, "consent.html": &p.consent, "error.html": &p.errorPage, "form_post.html": &p.formPost, "device.html": &p.device, "logout.html": &p.logout} {
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

// Login is the sign-in page's data.
type Login struct {
	Title, Action, Txn, CSRF, LoginHint, Error string
}

// Scope is one line of the consent page.
type Scope struct{ Name, Description string }

// Consent is the consent page's data.
type Consent struct {
	Title, Action, Txn, CSRF, ClientName string
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

// RenderLogin, RenderConsent, RenderError and RenderFormPost write pages.
func (p *Pages) RenderLogin(w io.Writer, d Login) error       { return p.login.Execute(w, d) }
func (p *Pages) RenderConsent(w io.Writer, d Consent) error   { return p.consent.Execute(w, d) }
func (p *Pages) RenderError(w io.Writer, d Error) error       { return p.errorPage.Execute(w, d) }
func (p *Pages) RenderFormPost(w io.Writer, d FormPost) error { return p.formPost.Execute(w, d) }
