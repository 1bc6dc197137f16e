package authserver

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/apiaccess/caddy-apiaccess/internal/configerr"
	"github.com/apiaccess/caddy-apiaccess/internal/dpop"
	"github.com/apiaccess/caddy-apiaccess/internal/ssf"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/claims"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/factors"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/hashgate"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/inlinehook"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/keys"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/ui"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/webauthnrp"
)

// Grant types.
const (
	GrantClientCredentials = "client_credentials"
	GrantPassword          = "password"
	GrantRefreshToken      = "refresh_token"
	GrantAuthorizationCode = "authorization_code"
	// GrantTokenExchange is RFC 8693's grant (Okta's On-Behalf-Of Token
	// Exchange, token_exchange.go).
	GrantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
)

// ruleGrants are the grant types a rule can name; a refresh is judged by
// the grant that started its family.
var ruleGrants = []string{GrantClientCredentials, GrantPassword, GrantAuthorizationCode, GrantDeviceCode, GrantTokenExchange}

// OrgID names the org authorization server in logs and the admin API.
const OrgID = "org"

// Options configure an Issuer.
type Options struct {
	// BaseURL is the org authorization server's issuer, e.g.
	// https://id.example.com; custom servers live under /oauth2/{id}.
	BaseURL string
	// OrgSigningAlg signs the org server's tokens; default RS256.
	OrgSigningAlg string
	// Servers are the custom authorization servers by id.
	Servers map[string]*ServerConfig
	// Clients registered with the issuer.
	Clients []*clientauth.Client
	// Directory holds the users of password and browser flows; nil
	// means no user can sign in.
	Directory directory.Directory
	// TemplatesDir replaces the built-in sign-in pages (see ui.Names).
	TemplatesDir string
	// TrustedOrigins may call the fetch endpoints from a browser (CORS).
	TrustedOrigins []string
	// HashGate bounds the password (and client secret) hash checks that
	// run at once, for the whole process: every check of a user's
	// password on the sign-in page and in the password grant goes
	// through it. Default: hashgate.New with its defaults.
	HashGate *hashgate.Gate
	// Logger receives one event per decision.
	Logger *zap.Logger
	// Observer is told of every token, introspection and revocation
	// answer and every key rotation (metrics); nil: nobody.
	Observer Observer
	// EventLog keeps the System Log: every event also goes there, in
	// Okta's LogEvent shape, written in batches in the background
	// (Start starts the writer, StopEvents flushes and stops it); an
	// Observer that implements EventObserver is told of events lost.
	// It also answers the System Log API (`GET /api/v1/logs`). Nil:
	// events go to Logger only, and the API reads the store given to
	// Start when that store keeps the log.
	EventLog store.EventLog
	// Now is the clock; default time.Now.
	Now func() time.Time
	// APITokens are the Okta API tokens that may call the management
	// APIs (`Authorization: SSWS <token>`): the System Log API. Each is
	// at least MinAPITokenLength characters. None: no call is
	// authorized. The Sessions API takes the SSO cookie instead.
	APITokens []string
	// SignOnPolicies decide what a user's sign-in to each client needs
	// (second factor, re-authentication, deny); see
	// policy.EvaluateSignOn. None: the password alone, for everyone.
	SignOnPolicies []*policy.SignOnPolicy
	// Authenticators are the factor kinds offered (policy.Authenticator*);
	// default: all (policy.DefaultAuthenticators).
	Authenticators []string
	// InlineHooks are the token inline hooks the access-policy rules
	// of custom servers may name (token_hook.go), with placeholders
	// resolved. None: no rule may name one.
	InlineHooks []*inlinehook.Config
}

// GroupLister is a Directory that can name every group its users are
// in; New then refuses sign-on rules naming another group.
type GroupLister interface {
	Groups() []string
}

// Issuer serves the org authorization server and every custom one.
type Issuer struct {
	base     string
	basePath string // path of base ("" for a host root)
	org      *Server
	servers  map[string]*Server
	clients  []*clientauth.Client
	dir      directory.Directory
	pages    *ui.Pages
	log      *zap.Logger
	obs      Observer
	now      func() time.Time
	origins  map[string]bool  // trusted CORS origins
	gate     *hashgate.Gate   // every password check runs through it
	routes   map[string]route // every path served (routes.go)
	spaces   []string         // path prefixes that are the issuer's
	inflight inFlight         // password checks running, per login
	slowStep time.Duration    // slowStep; tests set 0 to not wait
	sink     *eventSink       // System Log writer; nil: none
	denials  *denyGuard       // gateway refusals each client address may log
	accepted *summaries       // gateway acceptances, summarised per second
	// gatewayBudget bounds the gateway events of all routes together.
	gatewayBudget *rate.Limiter

	startMu sync.Mutex
	started atomic.Bool
	store   store.Store
	auth    *clientauth.Authenticator

	eventLog  store.EventLog      // System Log API (syslog_api.go)
	apiTokens [][sha256.Size]byte // hashes of Options.APITokens

	signOn         []*policy.SignOnPolicy // checked by New (policy.CompileSignOn)
	authenticators []string               // offered factor kinds, defaulted
	// factors are users' second factors (set by Start: they live in the
	// store); rp is the WebAuthn Relying Party, nil when WebAuthn is not
	// offered or base_url cannot be an RP origin.
	factors *factors.Manager
	rp      *webauthnrp.RP
	// dpop verifies DPoP proofs at the token endpoint (set by Start).
	dpop *dpop.Verifier
	// dpopUserinfo verifies userinfo's proofs: no server nonce (dpop.go).
	dpopUserinfo *dpop.Verifier
	// feed is the revocation feed (ssf_*.go), nil when the store keeps
	// no feed log; view holds what it published, for require_token in
	// this Caddy; stopFeed ends its follower.
	feed     feedQueue
	view     *ssf.Revocations
	stopFeed context.CancelFunc
	// viewSynced is when the view last caught up with the feed (Unix
	// nanoseconds; 0: never).
	viewSynced atomic.Int64
}

// HashGate is the gate every password check of this Issuer runs
// through; client secret checks (bcrypt) are to share it.
func (i *Issuer) HashGate() *hashgate.Gate { return i.gate }

// Server is one authorization server.
type Server struct {
	ID       string
	Org      bool
	Issuer   string
	Audience string
	// prefix is the endpoint path prefix: /oauth2/v1 or /oauth2/{id}/v1.
	prefix     string
	endpoints  string // absolute URL of prefix
	alg        jwa.SignatureAlgorithm
	grantTypes []string
	scopes     map[string]*Scope
	scopeOrder []*Scope
	defaults   []string
	policies   *policy.Set
	claims     *claims.Set
	subject    *claims.Subject
	retention  time.Duration
	keys       *keys.Manager
	metadata   map[string][]byte
	// trusted are the other servers whose access tokens this one takes
	// as subject and actor tokens of a token exchange (set by New).
	trusted map[string]*Server
	// log carries the server's fields, encoded once.
	log *zap.Logger
	// hooks are the token inline hooks by name (token_hook.go).
	hooks map[string]*inlinehook.Hook
	// cfg is the configuration the server was compiled from and loaded
	// when, for the Authorization Servers API (authservers_api.go).
	cfg    *ServerConfig
	loaded time.Time
}

// New validates options and compiles the servers. It does no I/O: the
// store is attached by Start.
func New(o Options) (*Issuer, error) {
	u, err := url.Parse(o.BaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, configerr.Fieldf("base_url", "base_url %q must be an absolute http(s) URL without query or fragment", o.BaseURL)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.HashGate == nil {
		o.HashGate = hashgate.New(hashgate.Config{})
	}
	if o.Observer == nil {
		o.Observer = noObserver{}
	}
	i := &Issuer{view: ssf.NewRevocations(), base: strings.TrimRight(o.BaseURL, "/"), basePath: strings.TrimRight(u.Path, "/"), servers: map[string]*Server{}, log: o.Logger, now: o.Now, clients: o.Clients, dir: o.Directory, slowStep: slowStep, gate: o.HashGate, obs: o.Observer}
	if o.EventLog != nil {
		eo, _ := o.Observer.(EventObserver)
		i.sink = newEventSink(o.EventLog, o.Logger, eo)
		var lost func(int)
		if eo != nil {
			lost = eo.EventsSuppressed
		}
		i.denials = newDenyGuard(lost)
		i.accepted = newSummaries()
		i.gatewayBudget = rate.NewLimiter(gatewayRate, gatewayBurst)
		i.sink.onTick = i.dueSummaries
	}
	i.view.Now = o.Now
	i.eventLog = o.EventLog
	if i.apiTokens, err = apiTokenHashes(o.APITokens); err != nil {
		return nil, err
	}
	if i.origins, err = parseOrigins(o.TrustedOrigins); err != nil {
		return nil, configerr.Field("trusted_origins", err)
	}
	if i.pages, err = ui.Load(o.TemplatesDir); err != nil {
		return nil, configerr.Field("templates_dir", fmt.Errorf("templates: %w", err))
	}
	ids := map[string]bool{}
	for _, c := range o.Clients {
		if err := c.Prepare(); err != nil {
			return nil, err
		}
		if ids[c.ID] {
			return nil, configerr.In("client", c.ID, errors.New("defined twice"))
		}
		if c.ID == SettingsClientID {
			return nil, configerr.In("client", c.ID, errors.New("the id names the self-service page in sign-on policies; choose another"))
		}
		ids[c.ID] = true
	}
	hooks, err := compileHooks(o.InlineHooks)
	if err != nil {
		return nil, err
	}
	org, err := i.compile(OrgID, true, &ServerConfig{SigningAlg: o.OrgSigningAlg})
	if err != nil {
		return nil, err
	}
	i.org = org
	// In order of id, so that of two mistakes the same is reported.
	serverIDs := make([]string, 0, len(o.Servers))
	for id := range o.Servers {
		serverIDs = append(serverIDs, id)
	}
	slices.Sort(serverIDs)
	for _, id := range serverIDs {
		cfg := o.Servers[id]
		if err := ValidID(id); err != nil {
			return nil, err
		}
		s, err := i.compile(id, false, cfg)
		if err != nil {
			return nil, configerr.In("authorization_server", id, err)
		}
		for _, p := range s.policies.Policies() {
			for _, c := range p.Clients {
				if c != policy.Any && !ids[c] {
					return nil, configerr.In("authorization_server", id, configerr.In("policy", p.Name, configerr.Fieldf("clients", "unknown client %q", c)))
				}
			}
		}
		if err := s.useHooks(hooks); err != nil {
			return nil, configerr.In("authorization_server", id, err)
		}
		i.servers[id] = s
	}
	if err := i.linkTrusted(o.Servers); err != nil {
		return nil, err
	}
	if err := policy.CheckAuthenticators(o.Authenticators); err != nil {
		return nil, err
	}
	signOnClients := map[string]bool{SettingsClientID: true} // the self-service page (settings.go)
	for id := range ids {
		signOnClients[id] = true
	}
	known := policy.SignOnKnown{Clients: signOnClients, Authenticators: o.Authenticators}
	if gl, ok := o.Directory.(GroupLister); ok {
		known.Groups = map[string]bool{}
		for _, g := range gl.Groups() {
			known.Groups[g] = true
		}
	}
	if err := policy.CompileSignOn(o.SignOnPolicies, known); err != nil {
		return nil, err
	}
	i.signOn, i.authenticators = o.SignOnPolicies, policy.Authenticators(o.Authenticators)
	if slices.Contains(i.authenticators, policy.AuthenticatorWebAuthn) {
		// The RP id is base_url's host: WebAuthn needs https (or
		// http://localhost) and a name, not an IP address.
		if i.rp, err = webauthnrp.New(i.base, u.Hostname()); err != nil {
			if len(o.Authenticators) > 0 {
				return nil, configerr.Field("authenticators", fmt.Errorf("webauthn: %w", err))
			}
			i.rp = nil // offered by default only: left out
			i.authenticators = slices.DeleteFunc(slices.Clone(i.authenticators), func(a string) bool { return a == policy.AuthenticatorWebAuthn })
			for _, p := range o.SignOnPolicies {
				for _, r := range p.Rules {
					if r.Factor == policy.FactorPhishingResistant {
						return nil, configerr.Field("sign_on_policies", fmt.Errorf("policy %q rule %q: phishing_resistant needs WebAuthn, which base_url %s cannot offer: %w", p.Name, r.Name, i.base, err))
					}
				}
			}
		}
	}
	i.routes, i.spaces = i.buildRoutes(), i.namespaces()
	return i, nil
}

func (i *Issuer) compile(id string, org bool, cfg *ServerConfig) (*Server, error) {
	s := &Server{ID: id, Org: org, scopes: map[string]*Scope{}}
	if org {
		s.Issuer, s.Audience, s.prefix = i.base, i.base, "/oauth2/v1"
		s.grantTypes = []string{GrantClientCredentials, GrantAuthorizationCode, GrantRefreshToken}
		if len(cfg.Scopes)+len(cfg.Claims)+len(cfg.Policies) > 0 {
			return nil, fmt.Errorf("the org authorization server has no custom scopes, claims or policies")
		}
	} else {
		s.Issuer, s.prefix = i.base+"/oauth2/"+id, "/oauth2/"+id+"/v1"
		s.Audience = cfg.Audience
		if s.Audience == "" {
			s.Audience = "api://" + id
		}
		s.grantTypes = []string{GrantClientCredentials, GrantPassword, GrantAuthorizationCode, GrantDeviceCode, GrantRefreshToken, GrantTokenExchange}
	}
	var err error
	if s.alg, err = keys.ParseAlg(cfg.SigningAlg); err != nil {
		return nil, configerr.Field("signing_alg", err)
	}
	for _, sc := range withSystemScopes(cfg.Scopes) {
		if err := sc.validate(); err != nil {
			return nil, configerr.In("scope", sc.Name, err)
		}
		if s.scopes[sc.Name] != nil {
			return nil, configerr.In("scope", sc.Name, errors.New("defined twice"))
		}
		s.scopes[sc.Name] = sc
		s.scopeOrder = append(s.scopeOrder, sc)
		if sc.Default {
			s.defaults = append(s.defaults, sc.Name)
		}
	}
	known := map[string]bool{}
	for n := range s.scopes {
		known[n] = true
	}
	if s.policies, err = policy.NewSet(cfg.Policies, known, ruleGrants); err != nil {
		return nil, err
	}
	if s.claims, err = claims.Compile(cfg.Claims, func(n string) bool { return known[n] }); err != nil {
		return nil, err
	}
	if s.subject, err = claims.CompileSubject(cfg.Subject); err != nil {
		return nil, configerr.Field("subject", err)
	}
	s.endpoints = i.base + s.prefix
	s.log = i.log.With(zap.String("authorization_server", s.ID), zap.String("issuer", s.Issuer))
	// A retired key stays published while tokens it signed may live.
	s.retention = policy.DefaultAccessTokenLifetime
	for _, p := range s.policies.Policies() {
		for _, r := range p.Rules {
			s.retention = max(s.retention, r.Lifetime())
			if r.InlineHook != "" { // a hook may lengthen the tokens
				s.retention = max(s.retention, inlinehook.MaxLifetime)
			}
		}
	}
	s.retention += 5 * time.Minute
	s.metadata = s.buildMetadata(i.clients)
	s.cfg, s.loaded = cfg, i.now()
	return s, nil
}

// orgName names the issuer to people (authenticator apps, passkey
// prompts): base_url's host.
func (i *Issuer) orgName() string {
	if u, err := url.Parse(i.base); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	return i.base
}

// Servers returns every authorization server, org first.
func (i *Issuer) Servers() []*Server {
	out := []*Server{i.org}
	ids := make([]string, 0, len(i.servers))
	for id := range i.servers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		out = append(out, i.servers[id])
	}
	return out
}

// Server returns a server by id; OrgID names the org server.
func (i *Issuer) Server(id string) (*Server, bool) {
	if id == OrgID {
		return i.org, true
	}
	s, ok := i.servers[id]
	return s, ok
}

// ServerByIssuer returns the server whose issuer identifier is iss.
func (i *Issuer) ServerByIssuer(iss string) (*Server, bool) {
	if iss == i.org.Issuer {
		return i.org, true
	}
	if id, ok := strings.CutPrefix(iss, i.base+"/oauth2/"); ok {
		s, ok := i.servers[id]
		return s, ok
	}
	return nil, false
}

// Start attaches the store, creates or loads every server's keys and
// makes the endpoints live. It is idempotent.
func (i *Issuer) Start(ctx context.Context, st store.Store, sealer *keys.Sealer) error {
	i.startMu.Lock()
	defer i.startMu.Unlock()
	if i.started.Load() {
		return nil
	}
	i.store = st
	if el, ok := st.(store.EventLog); ok && i.eventLog == nil {
		i.eventLog = el
	}
	i.auth = clientauth.New(i.clients, st, i.now, clientauth.WithHashGate(i.gate))
	i.factors = factors.New(st, sealer, i.orgName(), i.now)
	if err := i.startDPoP(st, sealer); err != nil {
		return err
	}
	for _, s := range i.Servers() {
		s.keys = keys.NewManager(s.ID, s.alg, st, sealer, s.retention, i.now)
		what, err := s.keys.Ensure(ctx)
		if err != nil {
			return fmt.Errorf("authorization server %q: %w", s.ID, err)
		}
		if what != "" {
			i.logKeyRotation(s, what, "")
		}
	}
	if err := i.startFeed(ctx, st); err != nil {
		return err
	}
	// The writer starts last: Caddy does not stop an app whose Start
	// failed, so a writer started before a failing Ensure would leak.
	if i.sink != nil {
		i.sink.start()
	}
	i.started.Store(true)
	return nil
}

// StopEvents writes the System Log events still queued and stops their
// writer (waiting at most 10 s in all for the store); call it when the issuer
// stops, before the store closes. Events logged afterwards are only in
// the Caddy log (and counted as dropped).
func (i *Issuer) StopEvents() {
	if i.stopFeed != nil {
		i.stopFeed()
	}
	if i.sink != nil {
		for _, ev := range i.summaryEvents(i.accepted.close()) {
			i.sink.add(ev)
		}
		i.sink.close()
	}
}

// Started reports whether Start completed; afterwards every server's
// Keys is set.
func (i *Issuer) Started() bool { return i.started.Load() }

// Keys returns the key manager of a server (nil before Start).
func (s *Server) Keys() *keys.Manager { return s.keys }

// Maintain rotates keys that are due and purges expired marks, every
// tick, until ctx ends. Panics are recovered and logged: maintenance
// must never take the server down.
func (i *Issuer) Maintain(ctx context.Context, tick, rotateEvery time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			i.maintainOnce(ctx, rotateEvery)
		}
	}
}

func (i *Issuer) maintainOnce(ctx context.Context, rotateEvery time.Duration) {
	defer func() {
		if r := recover(); r != nil {
			i.log.Error("token issuer maintenance panicked", zap.Any("panic", r))
		}
	}()
	if !i.started.Load() {
		return
	}
	for _, s := range i.Servers() {
		rotated, err := s.keys.RotateIfDue(ctx, rotateEvery)
		if err != nil {
			i.log.Error("key maintenance failed", zap.String("authorization_server", s.ID), zap.Error(err))
			continue
		}
		if rotated {
			i.logKeyRotation(s, "scheduled", "")
		}
	}
	if err := i.store.Purge(ctx, i.now()); err != nil {
		i.log.Error("purging expired marks failed", zap.Error(err))
	}
}

// RotateKeys rotates a server's keys now (admin API).
func (i *Issuer) RotateKeys(ctx context.Context, id string) (string, error) {
	s, ok := i.Server(id)
	if !ok {
		return "", fmt.Errorf("unknown authorization server %q", id)
	}
	if !i.started.Load() {
		return "", fmt.Errorf("issuer not started")
	}
	kid, err := s.keys.Rotate(ctx)
	if err != nil {
		return "", err
	}
	i.logKeyRotation(s, "manual", kid)
	return kid, nil
}
