// Package filesource is the default directory source: a JSON file of
// users (schema: directory.FileData), as the Caddy guest module
// `token_issuer.directory.file`. It is read when the config loads, so
// `caddy reload` picks up changes.
package filesource

import (
	"context"
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/internal/caddyargs"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
)

func init() {
	caddy.RegisterModule(Module{})
}

// Module reads users from a file.
type Module struct {
	// Path of the JSON users file. Required; placeholders are expanded.
	Path string `json:"path,omitempty"`

	dir *directory.File
}

// CaddyModule returns the Caddy module information.
func (Module) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "token_issuer.directory.file",
		New: func() caddy.Module { return new(Module) },
	}
}

// Provision reads and validates the file (a local read, not a network
// call). A bad file fails the config load with the reason.
func (m *Module) Provision(ctx caddy.Context) error {
	p, err := caddy.NewReplacer().ReplaceOrErr(m.Path, true, true)
	if err != nil {
		return fmt.Errorf("directory path: %w", err)
	}
	if p == "" {
		return fmt.Errorf("directory: path is required")
	}
	if m.dir, err = directory.LoadFile(p); err != nil {
		return err
	}
	ctx.Logger().Info("directory loaded", zap.String("path", p), zap.Int("users", m.dir.Len()))
	return nil
}

// UserByLogin implements directory.Directory.
func (m *Module) UserByLogin(ctx context.Context, login string) (*directory.User, error) {
	return m.dir.UserByLogin(ctx, login)
}

// UserByID implements directory.Directory.
func (m *Module) UserByID(ctx context.Context, id string) (*directory.User, error) {
	return m.dir.UserByID(ctx, id)
}

// UnmarshalCaddyfile reads `file <path>` or `file { path <path> }`.
func (m *Module) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the source name
	if d.NextArg() {
		m.Path = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	once := caddyargs.Once{"path": m.Path != ""}
	for d.NextBlock(0) {
		switch d.Val() {
		case "path":
			if err := caddyargs.One(d, once, &m.Path); err != nil {
				return err
			}
		default:
			return caddyargs.Unknown(d)
		}
	}
	if m.Path == "" {
		return d.Err("directory file: a path is required")
	}
	return nil
}

// DummyHash implements directory.DummyHasher.
func (m *Module) DummyHash(login string) string { return m.dir.DummyHash(login) }

var (
	_ caddyfile.Unmarshaler = (*Module)(nil)
	_ caddy.Provisioner     = (*Module)(nil)
	_ directory.Directory   = (*Module)(nil)
	_ directory.DummyHasher = (*Module)(nil)
)
