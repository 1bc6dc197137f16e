package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/caddymodule/keyset"
	"github.com/apiaccess/caddy-apiaccess/caddymodule/validator"
)

// inProcessIssuer is what the `token_issuer` app offers, so keys of an
// issuer in the same Caddy are read without HTTP. The gateway does not
// import the issuer: any app with this method will do, and by offering
// it promises what `token_issuer` does: every access token it signs
// carries `typ` "at+jwt" (RFC 9068 section 2.1), so a token of its
// issuers without it (an ID token, typ "JWT") is refused.
type inProcessIssuer interface {
	PublicKeys(iss string) (current func() jwk.Set, org bool, ok bool)
}

// issuedAudiences is offered by the `token_issuer` app beside
// inProcessIssuer: the audiences the authorization server whose issuer
// is iss writes into `aud`, so that a route accepting none of them is
// reported at load instead of refusing every token.
type issuedAudiences interface {
	Audiences(iss string) (aud []string, ok bool)
}

// warnUnissuedAudience warns when is names an issuer of this Caddy that
// issues none of the audiences is accepts: every token would be refused
// as wrong_audience. It reads configuration only (no network).
func warnUnissuedAudience(in issuedAudiences, is *validator.Issuer, log *zap.Logger) {
	issued, ok := in.Audiences(is.URL)
	if !ok || len(is.Audiences) == 0 { // no audience at all is an error later
		return
	}
	for _, a := range is.Audiences {
		if slices.Contains(issued, a) {
			return
		}
	}
	log.Warn("require_token accepts no audience this issuer issues: every token of it will be refused (wrong_audience)",
		zap.String("issuer", is.URL), zap.Strings("issued_audiences", issued), zap.Strings("accepted_audiences", is.Audiences))
}

// localIssuer returns the `token_issuer` app of this Caddy, when there
// is one, without provisioning anything else.
func localIssuer(ctx caddy.Context) any {
	app, err := ctx.AppIfConfigured("token_issuer")
	if err != nil {
		return nil
	}
	return app
}

// remotes shares fetched key sets across handlers and config reloads,
// so a reload neither refetches nor loses keys.
var remotes = caddy.NewUsagePool()

type pooledRemote struct {
	*keyset.Remote
	cancel context.CancelFunc
}

func (p pooledRemote) Destruct() error {
	p.cancel()
	return nil
}

type keySources struct {
	ctx  caddy.Context
	log  *zap.Logger
	keys []string
}

func newKeySources(ctx caddy.Context, log *zap.Logger) *keySources {
	return &keySources{ctx: ctx, log: log}
}

// Defaults of fetched key sets.
const (
	defaultKeyRefresh = 15 * time.Minute
	defaultMinRefresh = keyset.DefaultMinRefresh
)

func (k *keySources) source(ic *IssuerConfig) (keyset.Source, error) {
	if ic.JWKSURI == "" {
		if app, err := k.ctx.AppIfConfigured("token_issuer"); err == nil {
			if in, ok := app.(inProcessIssuer); ok {
				if current, org, ok := in.PublicKeys(ic.URL); ok {
					if org {
						return nil, fmt.Errorf("issuer %s is the org authorization server: its access tokens are only for its own userinfo endpoint; use a custom authorization server", ic.URL)
					}
					return keyset.NewInProcess(current, true), nil
				}
			}
		}
	}
	refresh, minRefresh := time.Duration(ic.KeyRefresh), time.Duration(ic.MinRefresh)
	if refresh == 0 {
		refresh = defaultKeyRefresh
	}
	if minRefresh == 0 {
		minRefresh = defaultMinRefresh
	}
	if refresh < 0 || minRefresh < 0 {
		return nil, fmt.Errorf("issuer %s: key_refresh and min_refresh must be positive", ic.URL)
	}
	if !strings.HasPrefix(ic.URL, "https://") && !strings.HasPrefix(ic.URL, "http://") {
		return nil, fmt.Errorf("issuer %s: must be an http(s) URL", ic.URL)
	}
	key := strings.Join([]string{ic.URL, ic.JWKSURI, refresh.String(), minRefresh.String()}, "|")
	log := k.log
	v, _, err := remotes.LoadOrNew(key, func() (caddy.Destructor, error) {
		ctx, cancel := context.WithCancel(context.Background())
		r := &keyset.Remote{
			Issuer: ic.URL, JWKSURI: ic.JWKSURI, MinRefresh: minRefresh, RefreshEvery: refresh,
			Client: &http.Client{Timeout: 10 * time.Second},
			OnError: func(err error) {
				log.Warn("fetching issuer keys failed; keeping the keys already known", zap.String("issuer", ic.URL), zap.Error(err))
			},
		}
		go func() {
			defer func() {
				if p := recover(); p != nil {
					log.Error("key refresh panicked", zap.Any("panic", p))
				}
			}()
			r.Run(ctx)
		}()
		return pooledRemote{Remote: r, cancel: cancel}, nil
	})
	if err != nil {
		return nil, err
	}
	k.keys = append(k.keys, key)
	return v.(pooledRemote).Remote, nil
}

func (k *keySources) release() {
	for _, key := range k.keys {
		_, _ = remotes.Delete(key)
	}
}
