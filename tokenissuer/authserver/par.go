package authserver

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// Pushed authorization requests (RFC 9126). A client posts the
// parameters of an authorization request to /v1/par, authenticated as
// at the token endpoint; the server checks them as /v1/authorize would
// and keeps them under a one-time handle, the request_uri, which the
// client then sends to /v1/authorize with its client_id. The browser
// never carries the parameters, and they come from an authenticated
// client.
const (
	// parLifetime is how long a request_uri may be used: short, as RFC
	// 9126 section 2.2 advises (its example says 90 s); a handle is
	// used once, moments after it was pushed.
	parLifetime = 60 * time.Second
	// requestURIPrefix starts every request_uri, Okta's form: its
	// /v1/authorize links carry `request_uri=urn:okta:<handle>` (RFC
	// 9126 section 2.2 leaves the URI's form to the server).
	requestURIPrefix = "urn:okta:"
	// maxRequestURI bounds what /v1/authorize looks up.
	maxRequestURI = 256
)

// The refusals of pushed requests, in Okta's words (its OAuth 2.0 error
// codes: pushed_authorization_request_uri_present, invalid_request_uri,
// authorize_request_uri_mismatched_authorization_server,
// authorize_request_uri_mismatched_client,
// authorize_request_object_and_request_uri_provided, illegal_redirect_uri).
var (
	errRequestURIPresent = &oauth.Error{Code: "invalid_request", Status: http.StatusBadRequest,
		Description: "The 'request_uri' parameter must not be present in the request."}
	errRequestURIInvalid = &oauth.Error{Code: "invalid_request_uri", Status: http.StatusBadRequest,
		Description: "The authorize request_uri is invalid."}
	errRequestURIServer = &oauth.Error{Code: "invalid_request_uri", Status: http.StatusBadRequest,
		Description: "The request_uri was issued for another authorization server."}
	errRequestURIClient = &oauth.Error{Code: "invalid_client", Status: http.StatusUnauthorized,
		Description: "The 'client_id' parameter does not match the expected value for the provided request_uri."}
	errRequestAndURI = &oauth.Error{Code: "invalid_request", Status: http.StatusBadRequest,
		Description: "The authorize request must not contain both a request object and a request uri."}
	errPARRedirect = &oauth.Error{Code: "invalid_request", Status: http.StatusBadRequest,
		Description: "The 'redirect_uri' parameter must be a Login redirect URI in the client app settings."}
	// Request objects (RFC 9101) are not supported, at /v1/authorize
	// (request_parameter_supported false) nor pushed (OpenID Connect
	// Core section 6.1's error).
	errRequestObject = &oauth.Error{Code: "request_not_supported", Status: http.StatusBadRequest,
		Description: "The 'request' parameter is not supported."}
	// errPARRequired: the client requires pushed requests (RFC 9126
	// section 6) and this one was not. Okta documents no error of its
	// own for it; invalid_request is RFC 6749's for a request the server
	// will not take.
	errPARRequired = &oauth.Error{Code: "invalid_request", Status: http.StatusBadRequest,
		Description: "The client requires pushed authorization requests: the request must use a request_uri from the par endpoint."}
)

// clientAuthParams are the client's credentials in a pushed form: they
// authenticate the push and are never kept with the request.
var clientAuthParams = []string{"client_secret", "client_assertion", "client_assertion_type"}

// pushedRequest is a pushed authorization request's record, keyed by
// the hash of its request_uri (a bearer handle, stored like a code).
type pushedRequest struct {
	Server   string `json:"as"`
	ClientID string `json:"cid"`
	// Params are the pushed parameters without the client's
	// credentials: /v1/authorize validates them again when the handle is
	// used (RFC 9126 section 4), against the configuration of that time.
	Params  map[string]string `json:"params"`
	Expires time.Time         `json:"exp"`
}

// parEndpoint is the pushed authorization request endpoint (RFC 9126
// section 2). Okta's System Log has no event of its own for it: a
// refused push is logged as the refused authorization request it is
// (app.oauth2.as.authorize, FAILURE); an accepted one is logged when
// /v1/authorize ends it, as every authorization request is.
var parEndpoint = &backChannel{name: "par", event: EventAuthorize, failEvent: EventAuthorize,
	grantType: GrantAuthorizationCode, run: (*Issuer).runPAR}

// runPAR checks an authenticated client's pushed request as
// /v1/authorize would (RFC 9126 section 2.1) and stores it; the answer
// is 201 with the request_uri and its lifetime (section 2.2), errors
// are RFC 6749 section 5.2's (section 2.3).
func (i *Issuer) runPAR(x *exchange) outcome {
	form, c, s := x.form, x.client, x.s
	if _, ok := form["request_uri"]; ok {
		return failed(errRequestURIPresent)
	}
	if _, ok := form["request"]; ok {
		return failed(errRequestObject)
	}
	// The redirect URI must be registered here too: an error at
	// /v1/authorize must never redirect to one that is not.
	if redirect := form["redirect_uri"]; redirect == "" || !slices.Contains(c.RedirectURIs, redirect) {
		return failed(errPARRedirect)
	}
	params := url.Values{}
	for k, v := range form {
		if !slices.Contains(clientAuthParams, k) {
			params.Set(k, v)
		}
	}
	params.Set("client_id", c.ID)
	req, code, desc := i.readAuthorize(s, c, params, true)
	x.d.scopes = req.Scopes
	if code != "" {
		return failed(&oauth.Error{Code: code, Description: desc, Status: http.StatusBadRequest})
	}
	kept := make(map[string]string, len(params))
	for k := range params {
		kept[k] = params.Get(k)
	}
	rec := pushedRequest{Server: s.ID, ClientID: c.ID, Params: kept, Expires: i.now().Add(parLifetime)}
	b, _ := json.Marshal(rec)
	handle := randomToken()
	created, err := i.store.CreateRecord(x.r.Context(), store.NSPAR, refreshHash(handle), b, rec.Expires)
	if err != nil {
		return failed(oauth.FromStore(err))
	}
	if !created { // a 256-bit random handle that exists: never, in practice
		return failed(oauth.ErrServer)
	}
	body := map[string]any{"request_uri": requestURIPrefix + handle, "expires_in": int(parLifetime.Seconds())}
	return outcome{unlogged: true, write: func(w http.ResponseWriter) { oauth.WriteJSON(w, http.StatusCreated, body) }}
}

// pushedParams resolves /v1/authorize's request_uri (RFC 9126 section
// 4): the pushed request of this server and of the client_id sent
// beside it, once. The handle is consumed atomically in the store, so
// of two uses, on any nodes, one wins. The parameters of the pushed
// request replace the request's own; any others sent beside request_uri
// and client_id are ignored, as RFC 9126 section 4 has it. Failures
// are error pages: nothing verified a redirect URI yet.
func (i *Issuer) pushedParams(w http.ResponseWriter, r *http.Request, s *Server, params url.Values) (url.Values, bool) {
	clientID := params.Get("client_id")
	refuse := func(e *oauth.Error) (url.Values, bool) {
		i.logFailure(EventAuthorize, decision{server: s, clientID: clientID, req: r}, e)
		i.errorPage(w, e.Status, e.Description)
		return nil, false
	}
	if params.Has("request") {
		return refuse(errRequestAndURI)
	}
	handle, ok := strings.CutPrefix(params.Get("request_uri"), requestURIPrefix)
	if !ok || handle == "" || len(handle) > maxRequestURI {
		return refuse(errRequestURIInvalid)
	}
	key, ctx := refreshHash(handle), r.Context()
	raw, err := i.store.GetRecord(ctx, store.NSPAR, key)
	if errors.Is(err, store.ErrNotFound) {
		return refuse(errRequestURIInvalid)
	}
	if err != nil {
		i.storeFailurePage(w, err)
		return nil, false
	}
	var p pushedRequest
	if json.Unmarshal(raw, &p) != nil {
		return refuse(errRequestURIInvalid)
	}
	if p.Server != s.ID {
		return refuse(errRequestURIServer)
	}
	// Checked before the handle is used up, so that a wrong client_id
	// cannot spend another client's handle.
	if clientID != p.ClientID {
		return refuse(errRequestURIClient)
	}
	if !i.now().Before(p.Expires) {
		return refuse(errRequestURIInvalid)
	}
	_, err = i.store.UpdateRecord(ctx, store.NSPAR, key, func([]byte) ([]byte, error) { return nil, nil })
	if errors.Is(err, store.ErrNotFound) { // used by a concurrent request first
		return refuse(errRequestURIInvalid)
	}
	if err != nil {
		i.storeFailurePage(w, err)
		return nil, false
	}
	out := make(url.Values, len(p.Params))
	for k, v := range p.Params {
		out.Set(k, v)
	}
	return out, true
}
