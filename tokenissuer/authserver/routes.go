package authserver

import (
	"net/http"
	"strings"

	"github.com/apiaccess/caddy-apiaccess/internal/ssf"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
)

// errUnavailable answers requests that arrive before Start finished.
var errUnavailable = &oauth.Error{Code: "temporarily_unavailable", Status: http.StatusServiceUnavailable,
	Description: "The authorization server is starting. Try again shortly."}

// endpoint is one endpoint of an authorization server.
type endpoint struct {
	// cors lists the methods a browser app may call it with by fetch
	// from a trusted origin (Okta's Trusted Origins of the CORS kind);
	// pages the browser navigates to (authorize, sign-in, consent,
	// logout) have none and never answer cross-origin reads.
	cors string
	// credentials: a trusted origin's fetch may carry cookies
	// (Access-Control-Allow-Credentials), for the endpoints that read
	// the SSO session cookie (Okta's Sessions API).
	credentials bool
	// orgOnly: a page shared by every server, served only under the
	// org server's path.
	orgOnly bool
	serve   func(i *Issuer, w http.ResponseWriter, r *http.Request, s *Server)
}

// endpoints are every server's endpoints by path below the server's
// root (Okta's paths, DESIGN.md "Authorization servers"). Method checks
// stay in each handler: each answers its own 405 with Allow.
var endpoints = map[string]*endpoint{
	".well-known/" + docOIDC:  {cors: "GET", serve: metadata(docOIDC)},
	".well-known/" + docOAuth: {cors: "GET", serve: metadata(docOAuth)},
	"v1/keys":                 {cors: "GET", serve: func(_ *Issuer, w http.ResponseWriter, r *http.Request, s *Server) { s.serveKeys(w, r) }},
	"v1/token":                {cors: "POST", serve: backChannelOf(tokenEndpoint)},
	"v1/introspect":           {cors: "POST", serve: backChannelOf(introspectEndpoint)},
	"v1/revoke":               {cors: "POST", serve: backChannelOf(revokeEndpoint)},
	"v1/device/authorize":     {cors: "POST", serve: backChannelOf(deviceAuthorizeEndpoint)},
	"v1/par":                  {cors: "POST", serve: backChannelOf(parEndpoint)},
	"v1/userinfo":             {cors: "GET, POST", serve: (*Issuer).serveUserinfo},
	"v1/authorize":            {serve: (*Issuer).serveAuthorize},
	"v1/logout":               {serve: (*Issuer).serveLogout},
	// The browser pages of the SSO session.
	"v1/device": {orgOnly: true, serve: page((*Issuer).serveDevicePage)},
	"v1/signin": {orgOnly: true, serve: page((*Issuer).serveSignIn)},
	// The factor step of a sign-in (mfa_pages.go) and its script.
	"v1/signin/factor":      {orgOnly: true, serve: page((*Issuer).serveFactor)},
	"v1/static/webauthn.js": {orgOnly: true, serve: page((*Issuer).serveWebAuthnScript)},
	"v1/consent":            {orgOnly: true, serve: page((*Issuer).serveConsent)},
}

func metadata(doc string) func(*Issuer, http.ResponseWriter, *http.Request, *Server) {
	return func(_ *Issuer, w http.ResponseWriter, r *http.Request, s *Server) { s.serveMetadata(w, r, doc) }
}

func backChannelOf(b *backChannel) func(*Issuer, http.ResponseWriter, *http.Request, *Server) {
	return func(i *Issuer, w http.ResponseWriter, r *http.Request, s *Server) { i.serveBackChannel(w, r, s, b) }
}

func page(f func(*Issuer, http.ResponseWriter, *http.Request)) func(*Issuer, http.ResponseWriter, *http.Request, *Server) {
	return func(i *Issuer, w http.ResponseWriter, r *http.Request, _ *Server) { f(i, w, r) }
}

// route is what one path of the issuer serves.
type route struct {
	server *Server
	ep     *endpoint
}

// buildRoutes is the issuer's route table: every path it serves, by
// exact path ({base} is the path of base_url):
//
//	{base}/.well-known/{doc}                  org discovery
//	{base}/oauth2/v1/{endpoint}               org endpoints and pages
//	{base}/oauth2/{server}/.well-known/{doc}  custom discovery
//	{base}/oauth2/{server}/v1/{endpoint}      custom endpoints
//	{base}/api/v1/sessions/me[/...]           Sessions API (sessions_api.go)
//	{base}/api/v1/logs                        System Log API (syslog_api.go)
//	{base}/api/v1/users/{id}/grants[/...]     User Grants API (grants_api.go),
//	{base}/api/v1/users/{id}/clients[/...]    by prefix: the paths hold ids
//	{base}/api/v1/authorizationServers[/...]  Authorization Servers API
//	                                          (authservers_api.go), by prefix
//	{base}/api/v1/apps/{id}/tokens[/...]      Application Tokens API
//	                                          (subject_revoke.go, tokens_api.go)
//	{base}/api/v1/ssf/stream[/status|/verification]  SSF Transmitter API
//	{base}/api/v1/ssf/poll/{stream}           its poll endpoint (ssf_poll.go)
//	/.well-known/ssf-configuration{base path} SSF metadata (SSF 7.2)
//	/.well-known/oauth-authorization-server{issuer path}
//	                                          RFC 8414 section 3.1: the
//	                                          well-known segment goes between
//	                                          host and the issuer's path
func (i *Issuer) buildRoutes() map[string]route {
	routes := map[string]route{}
	for _, s := range i.Servers() {
		root := i.basePath + "/oauth2/" + s.ID // custom servers: issuer path, and parent of v1/
		wellKnown, v1 := root, root
		if s.Org {
			wellKnown, v1 = i.basePath, i.basePath+"/oauth2"
		}
		for name, ep := range endpoints {
			switch {
			case ep.orgOnly && !s.Org:
			case strings.HasPrefix(name, ".well-known/"):
				routes[wellKnown+"/"+name] = route{s, ep}
			default:
				routes[v1+"/"+name] = route{s, ep}
			}
		}
		routes["/.well-known/"+docOAuth+wellKnown] = route{s, endpoints[".well-known/"+docOAuth]}
		if s.Org {
			routes[i.basePath+settingsPath] = route{s, settingsEndpoint}
			for name, ep := range sessionsAPI {
				routes[i.basePath+"/"+name] = route{s, ep}
			}
			for name, ep := range adminAPI { // syslog_api.go
				routes[i.basePath+"/"+name] = route{s, ep}
			}
			for name, ep := range ssfAPI { // ssf_api.go
				routes[i.basePath+"/"+name] = route{s, ep}
			}
			routes[ssf.WellKnownPath+i.basePath] = route{s, ssfConfigEndpoint}
		}
	}
	return routes
}

// namespaces are the path prefixes that belong to the issuer: under
// them an unknown path is a 404, never the next handler's answer.
func (i *Issuer) namespaces() []string {
	b := i.basePath
	return []string{b + "/oauth2", b + "/api/v1", b + "/enduser", b + "/.well-known/" + docOIDC, b + "/.well-known/" + docOAuth, "/.well-known/" + docOAuth + b, ssf.WellKnownPath + b}
}

// ServeHTTP serves every issuer endpoint. It reports false for paths
// outside the issuer's namespaces, so a caller can pass them on; an
// unknown path inside them is answered 404 in Okta's error shape.
func (i *Issuer) ServeHTTP(w http.ResponseWriter, r *http.Request) bool {
	p := r.URL.Path
	rt, ok := i.routes[p]
	if !ok && strings.HasPrefix(p, i.basePath+"/"+usersAPIPath) {
		rt, ok = route{i.org, usersAPI}, true // grants_api.go
	}
	if !ok && strings.HasPrefix(p, i.basePath+"/"+appsAPIPath) {
		rt, ok = route{i.org, appsAPI}, true // subject_revoke.go
	}
	if ap := i.basePath + "/" + authServersAPIPath; !ok && (p == ap || strings.HasPrefix(p, ap+"/")) {
		rt, ok = route{i.org, authServersAPI}, true // authservers_api.go
	}
	if !ok && strings.HasPrefix(p, i.basePath+"/"+ssfPollPath) {
		rt, ok = route{i.org, ssfPollEndpoint}, true // ssf_poll.go
	}
	if !ok {
		for _, ns := range i.spaces {
			if p == ns || strings.HasPrefix(p, ns+"/") {
				i.notFound(w, r)
				return true
			}
		}
		return false
	}
	if i.cors(w, r, rt.ep) {
		return true
	}
	if !i.started.Load() {
		oauth.WriteError(w, errUnavailable) // with Retry-After, as every 503
		return true
	}
	rt.ep.serve(i, w, r, rt.server)
	return true
}
