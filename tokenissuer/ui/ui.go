// Package ui renders the issuer's pages: sign-in, consent, errors, and
// the OAuth 2.0 form_post response. The templates are embedded; a
// directory with files of the same names replaces them.
package ui

import (
	"embed"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
)

//go:embed templates/*.html
var builtin embed.FS

// Names of the templates a replacement directory must provide.
var Names = []string{"layout.html", "login.html", "consent.html", "error.html", "form_post.html", "device.html"}

// Pages holds parsed templates.
type Pages struct {
	login, consent, errorPage, formPost, device *template.Template
}

// Load parses the built-in templates, or those in dir when set.
func Load(dir string) (*Pages, error) {
	read := func(name string) (string, error) {
		if dir != "" {
			b, err := os.ReadFile(filepath.Join(dir, name))
			return string(b), err
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
	for name, dst := range map[string]**template.Template{"login.html": &p.login, "consent.html": &p.consent, "error.html": &p.errorPage, "form_post.html": &p.formPost, "device.html": &p.device} {
		if *dst, err = parse(name); err != nil {
			return nil, err
		}
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

// Device is the user-code entry page's data.
type Device struct{ Title, Action, UserCode, Error string }

// RenderDevice writes the user-code entry page.
func (p *Pages) RenderDevice(w io.Writer, d Device) error { return p.device.Execute(w, d) }

// RenderLogin, RenderConsent, RenderError and RenderFormPost write pages.
func (p *Pages) RenderLogin(w io.Writer, d Login) error       { return p.login.Execute(w, d) }
func (p *Pages) RenderConsent(w io.Writer, d Consent) error   { return p.consent.Execute(w, d) }
func (p *Pages) RenderError(w io.Writer, d Error) error       { return p.errorPage.Execute(w, d) }
func (p *Pages) RenderFormPost(w io.Writer, d FormPost) error { return p.formPost.Execute(w, d) }
