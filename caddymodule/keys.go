package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/caddymodule/keyset"
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
