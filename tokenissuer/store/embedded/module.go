package embedded

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/internal/duration"
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

	// LogRetention is how long System Log events are kept; older ones
	// are deleted by the issuer's maintenance. At least 1h. Default: 90
	// days, as Okta keeps its System Log.
	LogRetention duration.Duration `json:"log_retention,omitempty"`

	// LogMaxEvents bounds the System Log: beyond it the oldest events
	// are deleted by the issuer's maintenance (so the log may exceed it
	// by what one maintenance interval writes). A typical event takes
	// about 2 KB of the file, so the default bound is about 2 GB; deleted
	// events leave free pages that new ones reuse, the file does not
	// shrink. Default: 1000000.
	LogMaxEvents int `json:"log_max_events,omitempty"`

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
	if err := m.checkLog(); err != nil {
		return err
	}
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

// minLogRetention keeps a typo (`90` for `90d` is refused by the
// parser, but `90m` is not) from emptying the log every minute.
const minLogRetention = time.Hour

func (m *Module) checkLog() error {
	if m.LogRetention != 0 && time.Duration(m.LogRetention) < minLogRetention {
		return fmt.Errorf("embedded storage: log_retention %s must be at least %s", m.LogRetention, minLogRetention)
	}
	if m.LogMaxEvents < 0 {
		return fmt.Errorf("embedded storage: log_max_events %d must be at least 1", m.LogMaxEvents)
	}
	return nil
}

// logLimits are the configured limits, defaults filled in.
func (m *Module) logLimits() (time.Duration, int) {
	r, n := time.Duration(m.LogRetention), m.LogMaxEvents
	if r == 0 {
		r = store.DefaultLogRetention
	}
	if n == 0 {
		n = DefaultLogMaxEvents
	}
	return r, n
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
	db := v.(poolDB).DB
	// A handle shared with the previous config takes this one's limits.
	db.SetLogLimits(m.logLimits())
	m.log.Debug("embedded store open", zap.String("path", m.abs))
	return db, nil
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
