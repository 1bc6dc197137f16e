package tokenissuer

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI adds key management to Caddy's admin API:
//
//	GET  /token_issuer/{as}/keys         the key records (no key material)
//	POST /token_issuer/{as}/keys/rotate  rotate now; answers the new active kid
//	POST /token_issuer/{as}/preview      token preview (admin_preview.go)
//	GET  /token_issuer/servers           the custom servers as GET /api/v1/authorizationServers lists them
//
// {as} is a custom authorization server id, or `org`.
type adminAPI struct {
	app *App
}

func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.token_issuer",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Provision finds the app if the config has one.
func (a *adminAPI) Provision(ctx caddy.Context) error {
	if app, err := ctx.AppIfConfigured("token_issuer"); err == nil {
		a.app, _ = app.(*App)
	}
	return nil
}

// Routes implements caddy.AdminRouter.
func (a *adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/token_issuer/", Handler: caddy.AdminHandlerFunc(a.serve)}}
}

func (a *adminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	if a.app == nil || a.app.Issuer() == nil {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("token_issuer is not configured")}
	}
	iss := a.app.Issuer()
	if r.URL.Path == "/token_issuer/servers" {
		if r.Method != http.MethodGet {
			return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed", r.Method)}
		}
		w.Header().Set("Content-Type", "application/json")
		return json.NewEncoder(w).Encode(iss.AuthorizationServerList())
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/token_issuer/"), "/")
	if len(parts) == 2 && parts[1] == "preview" {
		return a.servePreview(w, r, iss, parts[0])
	}
	if len(parts) < 2 || parts[1] != "keys" || len(parts) > 3 || (len(parts) == 3 && parts[2] != "rotate") {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("unknown path %s", r.URL.Path)}
	}
	s, ok := iss.Server(parts[0])
	if !ok {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("unknown authorization server %q", parts[0])}
	}
	w.Header().Set("Content-Type", "application/json")
	if len(parts) == 2 {
		if r.Method != http.MethodGet {
			return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed", r.Method)}
		}
		set := s.Keys()
		if set == nil || set.Current() == nil {
			return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: fmt.Errorf("keys not loaded yet")}
		}
		return json.NewEncoder(w).Encode(set.Current().Records)
	}
	if r.Method != http.MethodPost {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed", r.Method)}
	}
	kid, err := iss.RotateKeys(r.Context(), s.ID)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
	}
	return json.NewEncoder(w).Encode(map[string]string{"authorization_server": s.ID, "active_kid": kid})
}

var (
	_ caddy.AdminRouter = (*adminAPI)(nil)
	_ caddy.Provisioner = (*adminAPI)(nil)
)
