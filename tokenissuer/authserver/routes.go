package authserver

import (
	"net/http"
	"strings"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
)

// errUnavailable answers requests that arrive before Start finished.
var errUnavailable = &oauth.Error{Code: "temporarily_unavailable", Status: http.StatusServiceUnavailable,
	Description: "The authorization server is starting. Try again shortly."}

// ServeHTTP serves every issuer endpoint (Okta's paths, DESIGN.md
// "Authorization servers"). It reports false for paths that are not
// the issuer's, so a caller can pass them on.
func (i *Issuer) ServeHTTP(w http.ResponseWriter, r *http.Request) bool {
	bp := i.basePath
	p := r.URL.Path
	// RFC 8414 section 3.1: the well-known segment goes between host and
	// the issuer's path.
	if rest, ok := strings.CutPrefix(p, "/.well-known/oauth-authorization-server"+bp); ok {
		switch {
		case rest == "":
			i.serve(w, r, i.org, ".well-known/"+docOAuth)
			return true
		case strings.HasPrefix(rest, "/oauth2/"):
			id := strings.TrimPrefix(rest, "/oauth2/")
			if s, ok := i.servers[id]; ok {
				i.serve(w, r, s, ".well-known/"+docOAuth)
			} else {
				oauth.WriteError(w, oauth.ErrNotFound)
			}
			return true
		}
	}
	rest, ok := strings.CutPrefix(p, bp)
	if !ok {
		return false
	}
	if rest == "/.well-known/"+docOIDC || rest == "/.well-known/"+docOAuth {
		i.serve(w, r, i.org, rest[1:])
		return true
	}
	rest, ok = strings.CutPrefix(rest, "/oauth2/")
	if !ok {
		return false
	}
	if ep, ok := strings.CutPrefix(rest, "v1/"); ok {
		i.serve(w, r, i.org, "v1/"+ep)
		return true
	}
	id, sub, _ := strings.Cut(rest, "/")
	s, found := i.servers[id]
	if !found {
		oauth.WriteError(w, oauth.ErrNotFound)
		return true
	}
	i.serve(w, r, s, sub)
	return true
}

// serve dispatches one server's endpoint by its path below the server.
func (i *Issuer) serve(w http.ResponseWriter, r *http.Request, s *Server, ep string) {
	if i.cors(w, r, ep) {
		return
	}
	if !i.started.Load() {
		oauth.WriteError(w, errUnavailable) // with Retry-After, as every 503
		return
	}
	switch ep {
	case ".well-known/" + docOIDC:
		s.serveMetadata(w, r, docOIDC)
	case ".well-known/" + docOAuth:
		s.serveMetadata(w, r, docOAuth)
	case "v1/keys":
		s.serveKeys(w, r)
	case "v1/token":
		i.serveBackChannel(w, r, s, tokenEndpoint)
	case "v1/introspect":
		i.serveBackChannel(w, r, s, introspectEndpoint)
	case "v1/revoke":
		i.serveBackChannel(w, r, s, revokeEndpoint)
	case "v1/userinfo":
		i.serveUserinfo(w, r, s)
	case "v1/authorize":
		i.serveAuthorize(w, r, s)
	case "v1/device/authorize":
		i.serveBackChannel(w, r, s, deviceAuthorizeEndpoint)
	case "v1/logout":
		i.serveLogout(w, r, s)
	case "v1/device", "v1/signin", "v1/consent":
		// Pages shared by every server live only under the org's path.
		if !s.Org {
			oauth.WriteError(w, oauth.ErrNotFound)
			return
		}
		orgPages[ep](i, w, r)
	default:
		oauth.WriteError(w, oauth.ErrNotFound)
	}
}

// orgPages are the browser pages of the SSO session.
var orgPages = map[string]func(*Issuer, http.ResponseWriter, *http.Request){
	"v1/device":  (*Issuer).serveDevicePage,
	"v1/signin":  (*Issuer).serveSignIn,
	"v1/consent": (*Issuer).serveConsent,
}
