// Package tokenissuer is the Caddy glue of the issuer: the `token_issuer`
// app (configuration, keys, state, maintenance) and the
// `http.handlers.token_issuer` handler that serves its endpoints.
package tokenissuer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/internal/configerr"
	"github.com/apiaccess/caddy-apiaccess/internal/duration"
	"github.com/apiaccess/caddy-apiaccess/internal/gatewaylog"
	"github.com/apiaccess/caddy-apiaccess/internal/ssf"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/authserver"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	_ "github.com/apiaccess/caddy-apiaccess/tokenissuer/directory/filesource" // default directory
	_ "github.com/apiaccess/caddy-apiaccess/tokenissuer/directory/staticsource"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/inlinehook"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/keys"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	_ "github.com/apiaccess/caddy-apiaccess/tokenissuer/store/embedded" // default storage
	_ "github.com/apiaccess/caddy-apiaccess/tokenissuer/store/postgres" // shared storage
)

func init() {
	caddy.RegisterModule(App{})
}

// Defaults.
const (
	DefaultKeyRotationInterval = 90 * 24 * time.Hour
	DefaultMaintenanceInterval = time.Minute
	// maxMaintenanceInterval keeps every node's JWKS within a quarter of
	// keys.Publication of a key another node wrote.
	maxMaintenanceInterval = 15 * time.Minute
	minKeyRotationInterval = time.Hour
)

// App is the `token_issuer` app: an org authorization server at
// BaseURL and any number of custom authorization servers at
// BaseURL/oauth2/{id}, Okta-compatible in paths, token shape and errors.
// The `token_issuer` HTTP handler serves their endpoints.
type App struct {
	// BaseURL is the org authorization server's issuer identifier and
	// the root of every endpoint, e.g. `https://id.example.com`. Tokens
	// carry it in `iss`, so it must be the URL clients use. Required.
	BaseURL string `json:"base_url,omitempty"`

	// Org configures the org authorization server.
	Org *OrgConfig `json:"org,omitempty"`

	// AuthorizationServers are the custom authorization servers by id;
	// each is served at `{base_url}/oauth2/{id}`. Ids are 1-64 letters,
	// digits, `-` or `_`; `v1` and `org` are reserved.
	AuthorizationServers map[string]*authserver.ServerConfig `json:"authorization_servers,omitempty"`

	// Clients are the OAuth clients known to every authorization server;
	// policies decide what each may get where. Secrets may use
	// placeholders such as `{env.NAME}` and `{file.path}`.
	Clients []*clientauth.Client `json:"clients,omitempty"`

	// StorageRaw holds signing keys and revocations. Default:
	// `{"module": "embedded"}`, a bbolt file in Caddy's data directory.
	StorageRaw json.RawMessage `json:"storage,omitempty" caddy:"namespace=token_issuer.storage inline_key=module"`

	// DirectoryRaw is where users come from for password and browser
	// flows, e.g. `{"source": "file", "path": "/etc/caddy/users.json"}`.
	// Default: none, and no user can sign in.
	DirectoryRaw json.RawMessage `json:"directory,omitempty" caddy:"namespace=token_issuer.directory inline_key=source"`

	// TemplatesDir holds replacements for the sign-in pages: files named
	// layout.html, login.html, consent.html, error.html, form_post.html
	// and device.html (Go html/template; see tokenissuer/ui/templates for
	// the built-in ones and the data each receives). Default: built-in.
	TemplatesDir string `json:"templates_dir,omitempty"`

	// TrustedOrigins are web origins (`scheme://host[:port]`) whose
	// browser apps may call discovery, keys, token, introspect, revoke,
	// userinfo and device authorization with fetch: those endpoints
	// answer them with CORS headers (Okta's Trusted Origins). Needed for
	// single-page apps using the code flow with PKCE. No wildcards;
	// cookies are never shared cross-origin. Default: none.
	TrustedOrigins []string `json:"trusted_origins,omitempty"`

	// APITokens are the Okta API tokens that may call the issuer's
	// management APIs with `Authorization: SSWS <token>`: the System Log
	// API, `GET {base_url}/api/v1/logs`. Each is at least 20 characters,
	// normally a placeholder such as `{env.OKTA_API_TOKEN}` resolved at
	// provision; tokens are compared in constant time and never logged.
	// The Sessions API takes the SSO cookie, not these. Default: none,
	// and those APIs answer every call 401.
	APITokens []string `json:"api_tokens,omitempty"`

	// Authenticators are the factor kinds users may enroll and sign in
	// with beside the password: `totp` (RFC 6238 codes, as Google
	// Authenticator or Okta Verify show) and `webauthn` (passkeys and
	// security keys, the phishing-resistant one). Default: both.
	Authenticators []string `json:"authenticators,omitempty"`

	// SignOnPolicies decide, per client and per user or group, what a
	// sign-in needs: the password only, a second factor (any, or
	// phishing-resistant only), re-authentication after a maximum
	// session age or on every sign-in, or deny (Okta's global session
	// and authentication policies). Evaluated by priority; the first
	// rule whose people match decides, and a policy with no matching
	// rule passes to the next. Clients must be known; a policy needs at
	// least one rule. Default: none, and the password alone signs in.
	SignOnPolicies []*policy.SignOnPolicy `json:"sign_on_policies,omitempty"`

	// InlineHooks are Okta's token inline hooks
	// (`com.okta.oauth2.tokens.transform`): external services that an
	// access-policy rule (its `inline_hook`) has called before tokens
	// are minted, to add, replace or remove claims and change lifetimes,
	// or deny the request. Each has a unique name and an https URL
	// (http only on loopback); its `authorization` and `headers` may
	// use placeholders such as `{env.HOOK_SECRET}`, resolved at
	// provision and never logged. Default: none.
	InlineHooks []*inlinehook.Config `json:"inline_hooks,omitempty"`

	// PasswordChecks bounds the password hash checks running at once
	// (memory and cores), see PasswordChecks. Default: as many as cores,
	// 256 MiB, a queue of 64, 2s wait.
	PasswordChecks *PasswordChecks `json:"password_checks,omitempty"`

	// KeyEncryptionSecret encrypts private signing keys at rest; at least
	// 32 bytes, normally `{env.NAME}`. Every instance sharing a store
	// needs the same one. Default: a random secret generated into
	// `token_issuer/seal.key` (mode 0600) in Caddy's data directory, with
	// a warning at start.
	KeyEncryptionSecret string `json:"key_encryption_secret,omitempty"`

	// KeyRotationInterval is how long a key signs before it is rotated
	// automatically; at least 1h. Default: 90 days.
	KeyRotationInterval duration.Duration `json:"key_rotation_interval,omitempty"`

	// MaintenanceInterval is how often due rotations are performed,
	// keys written by other nodes loaded, and expired revocations
	// purged. At most 15m: the other nodes of a cluster publish a new
	// NEXT key at their next maintenance, and it must be published
	// well within the hour after which a key of a new signing_alg signs.
	// Default: 1m.
	MaintenanceInterval duration.Duration `json:"maintenance_interval,omitempty"`

	issuer  *authserver.Issuer
	events  *storeEventLog // the store's System Log, once open
	storage store.Opener
	secret  []byte
	ctx     caddy.Context
	cancel  context.CancelFunc
	log     *zap.Logger
}

// OrgConfig configures the org authorization server.
type OrgConfig struct {
	// SigningAlg signs its tokens: `RS256` (default), `ES256` or `EdDSA`.
	SigningAlg string `json:"signing_alg,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "token_issuer",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision resolves placeholders and compiles the configuration. It
// opens nothing: that happens in Start.
func (a *App) Provision(ctx caddy.Context) error {
	a.ctx, a.log = ctx, ctx.Logger()
	repl := caddy.NewReplacer()
	resolve := func(what, s string) (string, error) {
		v, err := repl.ReplaceOrErr(s, true, true)
		if err != nil {
			return "", fmt.Errorf("%s: %w", what, err)
		}
		return v, nil
	}
	var err error
	if a.BaseURL, err = resolve("base_url", a.BaseURL); err != nil {
		return err
	}
	for _, c := range a.Clients {
		if c.Secret != "" {
			if c.Secret, err = resolve("client "+c.ID+" client_secret", c.Secret); err != nil {
				return err
			}
			if c.Secret == "" {
				return fmt.Errorf("client %q: client_secret resolved to an empty value", c.ID)
			}
		}
	}
	for n, tok := range a.APITokens {
		if a.APITokens[n], err = resolve(fmt.Sprintf("api_token %d", n+1), tok); err != nil {
			return err
		}
	}
	if err := resolveHooks(a.InlineHooks, resolve); err != nil {
		return err
	}
	if a.TemplatesDir, err = resolve("templates_dir", a.TemplatesDir); err != nil {
		return err
	}
	if a.KeyEncryptionSecret != "" {
		s, err := resolve("key_encryption_secret", a.KeyEncryptionSecret)
		if err != nil {
			return err
		}
		if err := checkSecretLen(s); err != nil {
			return err
		}
		a.secret = []byte(s)
	}
	if err := a.checkSettings(); err != nil {
		return err
	}
	if a.KeyRotationInterval == 0 {
		a.KeyRotationInterval = duration.Duration(DefaultKeyRotationInterval)
	}
	if a.MaintenanceInterval == 0 {
		a.MaintenanceInterval = duration.Duration(DefaultMaintenanceInterval)
	}
	var dir directory.Directory
	if a.DirectoryRaw != nil {
		mod, err := ctx.LoadModule(a, "DirectoryRaw")
		if err != nil {
			return fmt.Errorf("loading directory: %w", err)
		}
		var ok bool
		if dir, ok = mod.(directory.Directory); !ok {
			return fmt.Errorf("directory module %T does not look users up", mod)
		}
	}
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	gate, err := a.PasswordChecks.hashGate()
	if err != nil {
		return err
	}
	opts := a.issuerOptions()
	opts.HashGate, opts.Directory, opts.Logger, opts.Observer = gate, dir, a.log, observer{}
	a.events = &storeEventLog{}
	opts.EventLog = a.events
	if a.issuer, err = authserver.New(opts); err != nil {
		return err
	}
	if a.StorageRaw == nil {
		a.StorageRaw = json.RawMessage(`{"module":"embedded"}`)
	}
	mod, err := ctx.LoadModule(a, "StorageRaw")
	if err != nil {
		return fmt.Errorf("loading storage: %w", err)
	}
	st, ok := mod.(store.Opener)
	if !ok {
		return fmt.Errorf("storage module %T does not open a store", mod)
	}
	a.storage = st
	if u, _ := url.Parse(a.BaseURL); u != nil && u.Scheme == "http" && !isLoopback(u.Hostname()) {
		a.log.Warn("base_url is plain HTTP: tokens and client secrets cross the network in the clear; use https", zap.String("base_url", a.BaseURL))
	}
	return nil
}

// issuerOptions is the configuration of the protocol core, whose
// constructor makes every check of the servers and clients.
func (a *App) issuerOptions() authserver.Options {
	o := authserver.Options{
		TemplatesDir:   a.TemplatesDir,
		TrustedOrigins: a.TrustedOrigins,
		BaseURL:        a.BaseURL,
		Servers:        a.AuthorizationServers,
		Clients:        a.Clients,
		APITokens:      a.APITokens,
		SignOnPolicies: a.SignOnPolicies,
		Authenticators: a.Authenticators,
		InlineHooks:    a.InlineHooks,
	}
	if a.Org != nil {
		o.OrgSigningAlg = a.Org.SigningAlg
	}
	return o
}

// checkSettings checks the app's own settings; zero means the default.
func (a *App) checkSettings() error {
	if a.KeyRotationInterval != 0 && time.Duration(a.KeyRotationInterval) < minKeyRotationInterval {
		return configerr.Fieldf("key_rotation_interval", "key_rotation_interval must be at least %s", minKeyRotationInterval)
	}
	if a.MaintenanceInterval < 0 {
		return configerr.Fieldf("maintenance_interval", "maintenance_interval must be positive")
	}
	if time.Duration(a.MaintenanceInterval) > maxMaintenanceInterval {
		return configerr.Fieldf("maintenance_interval", "maintenance_interval must be at most %s", maxMaintenanceInterval)
	}
	if _, err := a.PasswordChecks.hashGate(); err != nil {
		return configerr.Field("password_checks", err)
	}
	return nil
}

func checkSecretLen(s string) error {
	if len(s) < keys.MinSecretLen {
		return configerr.Fieldf("key_encryption_secret", "key_encryption_secret must be at least %d bytes", keys.MinSecretLen)
	}
	return nil
}

// checkParsed runs, for the Caddyfile adapter, the checks Provision
// runs: on a copy of the configuration (the checks fill in defaults and
// sort rules, which the adapted JSON must not show), without what only
// the running Caddy knows: placeholders (a value holding one is checked
// at provision) and the templates directory.
func checkParsed(app *App) error {
	raw, err := json.Marshal(app)
	if err != nil {
		return err
	}
	var c App
	if err := json.Unmarshal(raw, &c); err != nil {
		return err
	}
	if err := c.checkSettings(); err != nil {
		return err
	}
	if s := c.KeyEncryptionSecret; s != "" && !strings.Contains(s, "{") {
		if err := checkSecretLen(s); err != nil {
			return err
		}
	}
	o := c.issuerOptions()
	o.TemplatesDir = ""
	if strings.Contains(o.BaseURL, "{") {
		o.BaseURL = "https://base-url.invalid"
	}
	o.APITokens = nil // checked per line by the parser, placeholders at provision
	o.InlineHooks = hooksToCheck(o.InlineHooks)
	_, err = authserver.New(o)
	return err
}

// isLoopback reports whether host names this machine only.
func isLoopback(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Start opens the store, loads or creates signing keys and starts the
// maintenance loop.
func (a *App) Start() error {
	st, err := a.storage.OpenStore(a.ctx)
	if err != nil {
		return err
	}
	if el, ok := st.(store.EventLog); ok {
		a.events.open(el)
	} else {
		a.log.Warn("the storage module keeps no System Log: events go to Caddy's log only", zap.String("storage", fmt.Sprintf("%T", st)))
	}
	st = countStoreErrors(st)
	secret := a.secret
	if secret == nil {
		if secret, err = a.generatedSecret(); err != nil {
			return err
		}
	}
	sealer, err := keys.NewSealer(secret)
	if err != nil {
		return err
	}
	// Prove the secret on every server's stored keys before any server
	// writes: one refused later would leave the others sealed with it.
	var ids []string
	for _, s := range a.issuer.Servers() {
		ids = append(ids, s.ID)
	}
	if err := keys.CheckSecret(a.ctx, st, sealer, time.Now(), ids...); err != nil {
		return a.secretError(err)
	}
	mctx, cancel := context.WithCancel(a.ctx)
	a.cancel = cancel
	if err := a.issuer.Start(mctx, st, sealer); err != nil {
		cancel()
		return a.secretError(err)
	}
	go a.issuer.Maintain(mctx, time.Duration(a.MaintenanceInterval), time.Duration(a.KeyRotationInterval))
	return nil
}

// secretError explains a start refused because the secret does not
// open the stored keys, naming the setting but never the secret.
func (a *App) secretError(err error) error {
	if !errors.Is(err, keys.ErrUnseal) {
		return err
	}
	which := "key_encryption_secret"
	if a.secret == nil {
		which = "no key_encryption_secret is set and the generated secret (token_issuer/seal.key in Caddy's data directory)"
	}
	return fmt.Errorf("%s does not open the signing keys already in the store; start with the key_encryption_secret that sealed them (every instance sharing a store needs the same one): %w", which, err)
}

// generatedSecret reads or creates the key-encryption secret file.
func (a *App) generatedSecret() ([]byte, error) {
	path := filepath.Join(caddy.AppDataDir(), "token_issuer", "seal.key")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return nil, err
		}
		b = []byte(hex.EncodeToString(raw))
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("creating %s: %w", path, err)
		}
		if _, err := f.Write(b); err != nil {
			f.Close()
			return nil, err
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is readable by others (mode %v); chmod 600 it", path, fi.Mode().Perm())
	}
	a.log.Warn("no key_encryption_secret configured: signing keys are sealed with a generated secret stored beside them; set key_encryption_secret (e.g. {env.APIACCESS_KEY_SECRET}) in production and share it between instances",
		zap.String("secret_file", path))
	return []byte(strings.TrimSpace(string(b))), nil
}

// Stop writes the System Log events still queued and ends the
// maintenance loop.
func (a *App) Stop() error {
	if a.issuer != nil {
		a.issuer.StopEvents()
	}
	if a.cancel != nil {
		a.cancel()
	}
	return nil
}

// storeEventLog is the issuer's EventLog: the store's, which is only
// opened at Start (after the issuer is built at Provision). Until then,
// and for a store that keeps no log, events are discarded (they are in
// Caddy's log).
type storeEventLog struct {
	el atomic.Pointer[store.EventLog]
}

func (l *storeEventLog) open(el store.EventLog) { l.el.Store(&el) }

func (l *storeEventLog) AppendEvents(ctx context.Context, events []store.LogEvent) error {
	if el := l.el.Load(); el != nil {
		return (*el).AppendEvents(ctx, events)
	}
	return nil
}

func (l *storeEventLog) QueryEvents(ctx context.Context, q store.LogQuery) ([]store.LogEvent, bool, error) {
	if el := l.el.Load(); el != nil {
		return (*el).QueryEvents(ctx, q)
	}
	return nil, false, store.ErrNoEventLog
}

func (l *storeEventLog) PurgeEvents(ctx context.Context, before time.Time) error {
	if el := l.el.Load(); el != nil {
		return (*el).PurgeEvents(ctx, before)
	}
	return nil
}

// Issuer returns the protocol core (for the handler and admin API).
func (a *App) Issuer() *authserver.Issuer { return a.issuer }

var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
)

// PublicKeys gives the gateway (`require_token`) in-process access to
// the published keys of the authorization server whose issuer is iss:
// current returns the live set (nil before Start), so a rotation is
// seen at once. org reports the org authorization server, whose access
// tokens no API may accept.
func (a *App) PublicKeys(iss string) (current func() jwk.Set, org bool, ok bool) {
	if a.issuer == nil {
		return nil, false, false
	}
	s, found := a.issuer.ServerByIssuer(iss)
	if !found {
		return nil, false, false
	}
	issuer := a.issuer
	return func() jwk.Set {
		// Started is an atomic load ordered after Start set the keys.
		if !issuer.Started() {
			return nil
		}
		if set := s.Keys().Current(); set != nil {
			return set.Public
		}
		return nil
	}, s.Org, true
}

// Audiences gives the gateway (`require_token`) the audiences the
// authorization server whose issuer is iss writes into access tokens'
// `aud` (one per server, Okta style), so that a route accepting none of
// them is reported at load. ok is false for an unknown issuer.
func (a *App) Audiences(iss string) (aud []string, ok bool) {
	if a.issuer == nil {
		return nil, false
	}
	s, found := a.issuer.ServerByIssuer(iss)
	if !found {
		return nil, false
	}
	return []string{s.Audience}, true
}

// RevocationView gives `require_token` handlers of this Caddy the
// revocations in force of every authorization server of it (the feed's
// content, kept in memory by the issuer): a token revoked here is
// refused by them before the revocation is answered, and one revoked at
// another node of a cluster within the feed's head poll.
func (a *App) RevocationView() (*ssf.Revocations, bool) {
	if a.issuer == nil {
		return nil, false
	}
	return a.issuer.RevocationView(), true
}

// RevocationViewAge is how long ago RevocationView last caught up with
// the revocations of every node (the store's feed); ok false before the
// first time, or without an issuer. A route applies its stale_after to
// it as to a remote feed.
func (a *App) RevocationViewAge() (time.Duration, bool) {
	if a.issuer == nil {
		return 0, false
	}
	return a.issuer.RevocationViewAge()
}

// RecordGatewayDecision gives `require_token` handlers of this Caddy
// the issuer's System Log (gatewaylog.Recorder): their decisions are
// queued as events beside the issuer's own. Before Provision, nothing.
func (a *App) RecordGatewayDecision(d gatewaylog.Decision) {
	if a.issuer != nil {
		a.issuer.RecordGatewayDecision(d)
	}
}

var _ gatewaylog.Recorder = (*App)(nil)
