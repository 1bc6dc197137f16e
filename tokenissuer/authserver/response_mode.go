package authserver

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/ui"
)

// Response modes of the authorization endpoint: query and fragment
// (OAuth 2.0 Multiple Response Type Encoding Practices section 2.1),
// form_post (OAuth 2.0 Form Post Response Mode) and Okta's
// okta_post_message (Okta's /authorize reference: the response posted
// with HTML5 Web Messaging to the window that opened or framed the
// request; okta-auth-js uses it for getWithoutPrompt, the token
// manager's renewal without a refresh token, and getWithPopup).
const (
	modeQuery       = "query"
	modeFragment    = "fragment"
	modeFormPost    = "form_post"
	modePostMessage = "okta_post_message"
)

// responseModes are the modes this server answers in, in discovery's
// response_modes_supported order (Okta's).
var responseModes = []string{modeQuery, modeFragment, modeFormPost, modePostMessage}

// chooseResponseMode returns the mode a request is answered in and, when
// the requested one is not acceptable, the invalid_request description
// to answer with (in the returned mode, the response type's default).
// Okta's /authorize reference: "If id_token or token is specified as
// the response type, then query isn't allowed as a response mode.
// Defaults to fragment in implicit and hybrid flows", query for code.
// okta_post_message needs an http(s) redirect URI: its origin is the
// only one the response is posted to.
func chooseResponseMode(responseType, mode, redirectURI string) (string, string) {
	def := modeQuery
	for _, t := range strings.Fields(responseType) {
		if t == "token" || t == "id_token" {
			def = modeFragment
		}
	}
	switch {
	case mode == "":
		return def, ""
	case !slices.Contains(responseModes, mode):
		return def, "The response mode is not supported."
	case mode == modeQuery && def == modeFragment:
		return def, "The response mode 'query' is not allowed for this response type."
	case mode == modePostMessage:
		if _, ok := webOrigin(redirectURI); !ok {
			return def, "The response mode 'okta_post_message' requires an http or https redirect URI."
		}
	}
	return mode, ""
}

// webOrigin is an http(s) URL's origin as browsers serialise it (RFC
// 6454 section 6.2: lower-case host, no default port).
func webOrigin(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", false
	}
	host := strings.ToLower(u.Host)
	host = strings.TrimSuffix(host, map[string]string{"https": ":443", "http": ":80"}[u.Scheme])
	return u.Scheme + "://" + host, true
}

// respondFragment redirects with the parameters in the redirect URI's
// fragment (Multiple Response Type Encoding Practices section 2.1). A
// registered redirect URI has no fragment (RFC 6749 section 3.1.2).
func respondFragment(w http.ResponseWriter, r *http.Request, redirectURI string, p map[string]string) {
	u, _ := url.Parse(redirectURI)
	u.Fragment, u.RawFragment = "", ""
	v := url.Values{}
	for k, val := range p {
		v.Set(k, val)
	}
	http.Redirect(w, r, u.String()+"#"+v.Encode(), http.StatusFound)
}

// postMessageKeys are the parameters okta_post_message posts: {code,
// state} or {error, error_description, state}, as Okta does.
var postMessageKeys = []string{"code", "state", "error", "error_description"}

// respondPostMessage answers okta_post_message: a page that posts the
// response to its parent (the SDK's hidden iframe) or opener (its
// popup) for the redirect URI's origin only. That page, and no other
// of the issuer's, may be framed, and only by that origin (CSP
// frame-ancestors, no X-Frame-Options); its one script runs by nonce.
func (i *Issuer) respondPostMessage(w http.ResponseWriter, req *authzRequest, p map[string]string) {
	origin, ok := webOrigin(req.RedirectURI) // checked by chooseResponseMode
	if !ok {
		i.errorPage(w, http.StatusBadRequest, "The redirect URI is not registered for this client.")
		return
	}
	data := map[string]string{}
	for _, k := range postMessageKeys {
		if v, ok := p[k]; ok {
			data[k] = v
		}
	}
	nonce := randomToken()
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+nonce+"'; base-uri 'none'; form-action 'none'; frame-ancestors "+origin)
	_ = i.pages.RenderPostMessage(w, ui.PostMessage{Nonce: nonce, Origin: origin, Data: data})
}
