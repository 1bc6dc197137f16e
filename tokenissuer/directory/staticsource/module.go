// Package staticsource is a directory written into the configuration
// itself, as the Caddy guest module `token_issuer.directory.static`: for
// demos, tests and small fixed sets of users. Larger or changing sets
// belong in a file (`token_issuer.directory.file`).
package staticsource

import (
	"context"
	"strings"
	"unicode"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/apiaccess/caddy-apiaccess/internal/caddyargs"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
)

func init() {
	caddy.RegisterModule(Module{})
}

// Module holds users given in the configuration.
type Module struct {
	// Users, in the schema of a directory file's `users`
	// (id, login, password_hash, status, profile, groups). Only password
	// hashes belong here, never passwords: `caddy apiaccess-hash-password`
	// prints one.
	Users []*directory.User `json:"users,omitempty"`

	dir *directory.File
}

// CaddyModule returns the Caddy module information.
func (Module) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "token_issuer.directory.static",
		New: func() caddy.Module { return new(Module) },
	}
}

// Provision validates the users exactly as a directory file is
// validated; a bad entry fails the config load with the reason.
func (m *Module) Provision(caddy.Context) error {
	var err error
	m.dir, err = directory.NewFile(m.Users)
	return err
}

// UserByLogin implements directory.Directory.
func (m *Module) UserByLogin(ctx context.Context, login string) (*directory.User, error) {
	return m.dir.UserByLogin(ctx, login)
}

// UserByID implements directory.Directory.
func (m *Module) UserByID(ctx context.Context, id string) (*directory.User, error) {
	return m.dir.UserByID(ctx, id)
}

// UnmarshalCaddyfile reads:
//
//	static {
//		user <login> {
//			id <id>
//			password_hash <hash>
//			status active|suspended|locked
//			profile <attribute> <value>
//			groups <group...>
//		}
//	}
//
// Profile values are strings here; structured attributes (such as an
// OIDC `address` object) need the JSON form or a directory file.
func (m *Module) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the source name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		if d.Val() != "user" {
			return caddyargs.Unknown(d)
		}
		u := &directory.User{}
		if !d.Args(&u.Login) || d.NextArg() {
			return d.Err("user takes exactly one login")
		}
		if strings.ContainsFunc(u.Login, unicode.IsControl) {
			return d.Errf("user login %q has a control character", u.Login)
		}
		once, profile := caddyargs.Once{}, caddyargs.Names{}
		for nesting := d.Nesting(); d.NextBlock(nesting); {
			key := d.Val()
			if key != "profile" && key != "groups" {
				if err := once.Check(d); err != nil {
					return err
				}
			}
			switch key {
			case "id":
				if !d.Args(&u.ID) || d.NextArg() {
					return d.ArgErr()
				}
				// Ids are parts of store keys joined by NUL (directory.NewFile).
				if strings.ContainsFunc(u.ID, unicode.IsControl) {
					return d.Errf("user id %q has a control character", u.ID)
				}
			case "password_hash":
				if !d.Args(&u.PasswordHash) || d.NextArg() {
					return d.ArgErr()
				}
			case "status":
				if !d.Args(&u.Status) || d.NextArg() {
					return d.ArgErr()
				}
			case "profile":
				var k, v string
				if !d.Args(&k, &v) || d.NextArg() {
					return d.Err("profile takes an attribute name and one value")
				}
				if u.Profile == nil {
					u.Profile = map[string]any{}
				}
				if err := profile.Add(d, "profile", k); err != nil {
					return err
				}
				u.Profile[k] = v
			case "groups":
				gs := d.RemainingArgs()
				if len(gs) == 0 {
					return d.ArgErr()
				}
				u.Groups = append(u.Groups, gs...)
			default:
				return caddyargs.Unknown(d)
			}
		}
		m.Users = append(m.Users, u)
	}
	if len(m.Users) == 0 {
		return d.Err("directory static: at least one user is required")
	}
	return nil
}

// DummyHash implements directory.DummyHasher.
func (m *Module) DummyHash(login string) string { return m.dir.DummyHash(login) }

// Groups names the groups of the configured users: they are all there
// is, so a sign-on rule naming another group is a mistake caught at
// load (authserver.GroupLister). The file source does not offer it:
// its file may change while the configuration stays.
func (m *Module) Groups() []string { return m.dir.Groups() }

var (
	_ caddyfile.Unmarshaler = (*Module)(nil)
	_ caddy.Provisioner     = (*Module)(nil)
	_ directory.Directory   = (*Module)(nil)
	_ directory.DummyHasher = (*Module)(nil)
)
