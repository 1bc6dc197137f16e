package authserver

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
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
	// errRequestURIClient is Okta's
	// authorize_request_uri_mismatched_client. It is shown on a page, so
	// not 401 (RFC 9110 section 15.5.2 wants a WWW-Authenticate
	// challenge, and no credential would help) and not invalid_client,
	// a token endpoint code: invalid_request_uri, RFC 9101 section 7's
	// code for a request_uri that cannot be used.
	errRequestURIClient = &oauth.Error{Code: "invalid_request_uri", Status: http.StatusBadRequest,
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

// pushedParamNames are the parameters /v1/authorize reads
// (readAuthorize, checkAuthorize, chooseResponseMode): a push keeps
// these and nothing else, so neither the client's credentials nor
// anything a client adds is stored.
var pushedParamNames = []string{"response_type", "response_mode", "redirect_uri", "state", "nonce", "login_hint",
	"code_challenge", "code_challenge_method", "scope", "prompt", "acr_values", "max_age"}

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
	// Used is set when the handle is used (RFC 9126 section 4: once):
	// the hash of the pending request whose sign-in page it showed, so
	// that the browser holding that request may load the page again, or
	// a random mark when it showed none.
	Used string `json:"used,omitempty"`
}

// pushedUse is a request_uri being used at /v1/authorize.
type pushedUse struct {
	key    string // the record's key, the hash of the handle
	params url.Values
	// txn and again: the handle is used already, by this browser, whose
	// pending request txn (again) still awaits its sign-in: a reload.
	txn   string
	again *authzRequest
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
	for _, k := range pushedParamNames {
		if v, ok := form[k]; ok {
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
	// Within /v1/authorize's limits (state, nonce and login_hint are
	// bounded there, the others are from fixed sets), except what may
	// repeat: repeated scopes and prompt or acr_values values are kept
	// once, max_age as its number. They mean the same.
	if params.Get("scope") != "" {
		kept["scope"] = strings.Join(req.Scopes, " ")
	}
	if req.Prompt != nil {
		kept["prompt"] = strings.Join(uniq(req.Prompt), " ")
	}
	if req.ACRValues != nil {
		kept["acr_values"] = strings.Join(uniq(req.ACRValues), " ")
	}
	if params.Get("max_age") != "" {
		kept["max_age"] = strconv.Itoa(req.MaxAge)
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

// uniq is vs without repeats, in its order.
func uniq(vs []string) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// errPushedUsed: the handle was used first by another request.
var errPushedUsed = errors.New("request_uri already used")

// pushedRequest resolves /v1/authorize's request_uri (RFC 9126 section
// 4): the pushed request of this server and of the client_id sent
// beside it. The parameters of the pushed request replace the
// request's own; any others sent beside request_uri and client_id are
// ignored, as RFC 9126 section 4 has it. Failures are error pages:
// nothing verified a redirect URI yet.
//
// The handle is not used up here but by usePushed once the request
// has gone through (continueAuthorize). A handle already used is
// refused, except to the browser holding the pending request it
// started, while that one awaits its sign-in: section 4 lets a reload
// of the page find the same request, and that browser gets its page
// again.
func (i *Issuer) pushedRequest(w http.ResponseWriter, r *http.Request, s *Server, params url.Values) (*pushedUse, bool) {
	clientID := params.Get("client_id")
	refuse := func(e *oauth.Error) (*pushedUse, bool) {
		i.refusePushed(w, r, s, clientID, e)
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
	if clientID != p.ClientID {
		return refuse(errRequestURIClient)
	}
	if !i.now().Before(p.Expires) {
		return refuse(errRequestURIInvalid)
	}
	if p.Used != "" {
		return i.pushedAgain(w, r, s, &p)
	}
	out := make(url.Values, len(p.Params))
	for k, v := range p.Params {
		out.Set(k, v)
	}
	return &pushedUse{key: key, params: out}, true
}

// pushedAgain is a used handle's request: a reload by the browser whose
// pending request it started, while that request awaits its sign-in,
// else refused as used.
func (i *Issuer) pushedAgain(w http.ResponseWriter, r *http.Request, s *Server, p *pushedRequest) (*pushedUse, bool) {
	txn, ok := i.readCookie(r, txnCookie)
	if !ok || subtle.ConstantTimeCompare([]byte(refreshHash(txn)), []byte(p.Used)) != 1 {
		i.refusePushed(w, r, s, p.ClientID, errRequestURIInvalid)
		return nil, false
	}
	raw, err := i.store.GetRecord(r.Context(), store.NSTransaction, txn)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		i.storeFailurePage(w, err)
		return nil, false
	}
	var req authzRequest
	if err != nil || json.Unmarshal(raw, &req) != nil || req.Server != s.ID || req.ClientID != p.ClientID ||
		req.UserID != "" || req.Pending != "" || req.Device != "" || req.Settings {
		// Signed in (or further along) since: the URL is spent.
		i.refusePushed(w, r, s, p.ClientID, errRequestURIInvalid)
		return nil, false
	}
	return &pushedUse{txn: txn, again: &req}, true
}

// refusePushed answers a refused request_uri with an error page.
func (i *Issuer) refusePushed(w http.ResponseWriter, r *http.Request, s *Server, clientID string, e *oauth.Error) {
	i.logFailure(EventAuthorize, decision{server: s, clientID: clientID, req: r}, e)
	i.errorPage(w, e.Status, e.Description)
}

// usePushed uses the handle up, atomically in the store: of two uses,
// on any nodes, one wins; the other is refused. used is what the record
// keeps (pushedRequest.Used). For a use that shows no sign-in page, the
// writer returned gives the handle back if the answer is a server
// failure (a "try again" page: nothing was issued), so that trying
// again works. On failure it has answered.
func (i *Issuer) usePushed(w http.ResponseWriter, r *http.Request, s *Server, clientID string, use *pushedUse, used string) (http.ResponseWriter, bool) {
	if use == nil {
		return w, true
	}
	_, err := i.store.UpdateRecord(r.Context(), store.NSPAR, use.key, func(old []byte) ([]byte, error) {
		var p pushedRequest
		if json.Unmarshal(old, &p) != nil || p.Used != "" {
			return nil, errPushedUsed
		}
		p.Used = used
		return json.Marshal(p)
	})
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, errPushedUsed): // used by a concurrent request first
		i.refusePushed(w, r, s, clientID, errRequestURIInvalid)
		return nil, false
	case err != nil:
		i.storeFailurePage(w, err)
		return nil, false
	}
	return &pushedWriter{ResponseWriter: w, giveBack: func() { i.unusePushed(r.Context(), use, used) }}, true
}

// unusePushed gives a handle back that this request used (a best
// effort: the store may be failing).
func (i *Issuer) unusePushed(ctx context.Context, use *pushedUse, used string) {
	_, _ = i.store.UpdateRecord(ctx, store.NSPAR, use.key, func(old []byte) ([]byte, error) {
		var p pushedRequest
		if json.Unmarshal(old, &p) != nil || p.Used != used {
			return nil, errPushedUsed
		}
		p.Used = ""
		return json.Marshal(p)
	})
}

// pushedWriter gives the handle back when a server failure is answered.
type pushedWriter struct {
	http.ResponseWriter
	giveBack func()
	wrote    bool
}

func (pw *pushedWriter) WriteHeader(status int) {
	if !pw.wrote {
		pw.wrote = true
		if status >= http.StatusInternalServerError {
			pw.giveBack()
		}
	}
	pw.ResponseWriter.WriteHeader(status)
}

func (pw *pushedWriter) Write(b []byte) (int, error) {
	pw.wrote = true
	return pw.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (pw *pushedWriter) Unwrap() http.ResponseWriter { return pw.ResponseWriter }

// pushedSignIn shows the sign-in page of a pushed request: the pending
// request is stored first, then the handle is used, bound to it; so a
// store failure leaves the handle usable for the "try again" the page
// asks for, and the browser that got the page may reload it.
func (i *Issuer) pushedSignIn(w http.ResponseWriter, r *http.Request, s *Server, req *authzRequest, use *pushedUse) {
	txn := randomToken()
	b, _ := json.Marshal(req)
	if err := i.store.PutRecord(r.Context(), store.NSTransaction, txn, b, i.now().Add(txnLifetime)); err != nil {
		i.storeFailurePage(w, err)
		return
	}
	if _, ok := i.usePushed(w, r, s, req.ClientID, use, refreshHash(txn)); !ok {
		i.dropTxn(r.Context(), txn)
		return
	}
	http.SetCookie(w, i.cookie(r, txnCookie, txn, txnLifetime))
	i.loginPage(w, s, txn, req, "", http.StatusOK)
}
