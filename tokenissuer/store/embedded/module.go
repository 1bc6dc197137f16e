package embedded

import (
	"context"
	"path/filepath"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

func init() {
	caddy.RegisterModule(Module{})
}

// dbs shares one open file across config reloads: a new config is
// provisioned before the old one is cleaned up, and bbolt allows only one
// open handle per file.
var dbs = caddy.NewUsagePool()

// Module is the embedded store as a Caddy guest module
// (`token_issuer.storage.embedded`). It is the default.
type Module struct {
	// Path of the bbolt file. Default: `token_issuer/issuer.db` in Caddy's
	// data directory. Placeholders such as `{env.*}` are expanded.
	Path string `json:"path,omitempty"`

	abs    string
	opened bool
	log    *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Module) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "token_issuer.storage.embedded",
		New: func() caddy.Module { return new(Module) },
	}
}

type poolDB struct{ *DB }

func (p poolDB) Destruct() error { return p.DB.Close() }

// Provision resolves the path. The file is opened by OpenStore, when
// the app starts: `caddy validate` must not take the file's lock from a
// running server.
func (m *Module) Provision(ctx caddy.Context) error {
	p := caddy.NewReplacer().ReplaceAll(m.Path, "")
	if p == "" {
		p = filepath.Join(caddy.AppDataDir(), "token_issuer", "issuer.db")
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return err
	}
	m.abs, m.log = abs, ctx.Logger()
	return nil
}

// OpenStore opens the file, or shares the handle a previous config has.
func (m *Module) OpenStore(context.Context) (store.Store, error) {
	v, _, err := dbs.LoadOrNew(m.abs, func() (caddy.Destructor, error) {
		db, err := Open(m.abs)
		if err != nil {
			return nil, err
		}
		return poolDB{db}, nil
	})
	if err != nil {
		return nil, err
	}
	m.opened = true
	m.log.Debug("embedded store open", zap.String("path", m.abs))
	return v.(poolDB).DB, nil
}

// Cleanup releases this config's use of the file; the last user closes it.
func (m *Module) Cleanup() error {
	if !m.opened {
		return nil
	}
	_, err := dbs.Delete(m.abs)
	return err
}

var (
	_ caddy.Provisioner  = (*Module)(nil)
	_ caddy.CleanerUpper = (*Module)(nil)
	_ store.Opener       = (*Module)(nil)
)
