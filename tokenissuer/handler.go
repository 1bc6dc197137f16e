package tokenissuer

import (
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/authserver"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientip"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler serves the endpoints of the `token_issuer` app: discovery
// (`/.well-known/openid-configuration`, `/.well-known/oauth-authorization-server`,
// and their `/oauth2/{id}/...` forms), `keys`, `token`, `introspect`
// and `revoke` under `/oauth2/v1/` (org) and `/oauth2/{id}/v1/` (custom),
// relative to the path of `base_url`. An unknown path under the
// issuer's namespaces (`/oauth2/...`, `/api/v1/...` and its
// `/.well-known/...` documents) is a 404 in Okta's error shape
// (`E0000007`); requests outside them go to the next handler.
type Handler struct {
	issuer *authserver.Issuer
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.token_issuer",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision finds the `token_issuer` app.
func (h *Handler) Provision(ctx caddy.Context) error {
	app, err := ctx.App("token_issuer")
	if err != nil {
		return fmt.Errorf("token_issuer handler needs the token_issuer app: %w", err)
	}
	h.issuer = app.(*App).Issuer()
	if h.issuer == nil {
		return fmt.Errorf("token_issuer app is not configured (set base_url in the token_issuer global option)")
	}
	return nil
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	// Throttles key on Caddy's client IP, which honours trusted_proxies.
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		r = r.WithContext(clientip.With(r.Context(), ip))
	}
	// System Log events name the request by Caddy's request UUID, the
	// one its access log then shows.
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		r = r.WithContext(authserver.WithRequestID(r.Context(), func() string {
			id, _ := repl.GetString("http.request.uuid")
			return id
		}))
	}
	if h.issuer.ServeHTTP(w, r) {
		return nil
	}
	return next.ServeHTTP(w, r)
}

var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
