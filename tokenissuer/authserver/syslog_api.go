package authserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/configerr"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/syslog"
)

// MinAPITokenLength is the shortest API token accepted in the
// configuration (Okta's own are 42 characters).
const MinAPITokenLength = 20

// logsQueryTimeout bounds one System Log query (Okta: "Individual
// queries have a timeout of 30 seconds").
const logsQueryTimeout = 30 * time.Second

// adminAPI are the management API endpoints, by path below the org
// server's base URL; they take an Okta API token (`Authorization: SSWS
// <token>`), never the SSO cookie, and answer no cross-origin reads.
var adminAPI = map[string]*endpoint{
	"api/v1/logs": {serve: (*Issuer).serveLogs},
}

// apiTokenHashes hashes the configured API tokens for apiTokenValid,
// refusing short ones.
func apiTokenHashes(tokens []string) ([][sha256.Size]byte, error) {
	out := make([][sha256.Size]byte, 0, len(tokens))
	for n, t := range tokens {
		if len(t) < MinAPITokenLength {
			return nil, configerr.Fieldf("api_token", "api_token must be at least %d characters (api_token %d)", MinAPITokenLength, n+1)
		}
		out = append(out, sha256.Sum256([]byte(t)))
	}
	return out, nil
}

// apiTokenValid reports whether r carries one of the configured API
// tokens as `Authorization: SSWS <token>` (Okta API tokens). Both sides
// are hashed, so the compare takes the same time whatever the lengths,
// and every configured token is compared: no early exit tells which
// one, or how many, came before.
func (i *Issuer) apiTokenValid(r *http.Request) bool {
	h := r.Header.Values("Authorization")
	if len(h) != 1 {
		return false
	}
	scheme, tok, ok := strings.Cut(h[0], " ")
	tok = strings.TrimLeft(tok, " ")
	if !ok || !strings.EqualFold(scheme, "SSWS") || tok == "" {
		return false
	}
	sum := sha256.Sum256([]byte(tok))
	match := 0
	for n := range i.apiTokens {
		match |= subtle.ConstantTimeCompare(sum[:], i.apiTokens[n][:])
	}
	return match == 1
}

// invalidToken is Okta's answer to a management API call without a
// valid API token: 401 E0000011.
func invalidToken(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", "SSWS")
	writeOktaError(w, http.StatusUnauthorized, "E0000011", "Invalid token provided")
}

// serveLogs is Okta's System Log API, `GET /api/v1/logs` (Okta's System
// Log API reference): the events of the EventLog that the parameters
// select, as a JSON array of LogEvent objects, with a Link header to
// this query (rel="self") and, when there is one, to the next page
// (rel="next"). Polling requests (no until, ascending) always have a
// next link.
func (i *Issuer) serveLogs(w http.ResponseWriter, r *http.Request, _ *Server) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if !i.apiTokenValid(r) {
		invalidToken(w)
		return
	}
	if r.Method != http.MethodGet {
		apiMethodNotAllowed(w, "GET")
		return
	}
	if i.eventLog == nil {
		noEventLog(w)
		return
	}
	values, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeLogsError(w, &syslog.Error{Code: syslog.CodeValidation, Summary: "Api validation failed: the query string is malformed."})
		return
	}
	req, perr := syslog.Parse(values, i.now())
	if perr != nil {
		writeLogsError(w, perr)
		return
	}
	var events []store.LogEvent
	var more bool
	if req.Limit > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), logsQueryTimeout)
		events, more, err = i.eventLog.QueryEvents(ctx, req.Query)
		timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded) && r.Context().Err() == nil
		cancel()
		switch {
		case err == nil:
		case timedOut:
			w.Header().Set("Cache-Control", "no-store")
			writeOktaError(w, http.StatusInternalServerError, "E0000009", "Your last request took too long to complete. This is likely due to a load issue on our side. We've logged this and will work to address it. Please either simplify your query or wait a few minutes and try again.")
			return
		case errors.Is(err, store.ErrNoEventLog):
			noEventLog(w)
			return
		case r.Context().Err() != nil:
			return // the client left: nothing to answer, nothing failed
		case errors.Is(err, store.ErrInvalidLogQuery):
			writeLogsError(w, &syslog.Error{Code: syslog.CodeSearchCriteria, Summary: "Invalid search criteria."})
			return
		default:
			i.apiStoreFailure(w, err)
			return
		}
	}
	events, more = req.Page(events, more)
	self := i.base + "/" + logsPath
	w.Header().Add("Link", "<"+req.SelfLink(self)+`>; rel="self"`)
	if next := req.NextLink(self, events, more); next != "" {
		w.Header().Add("Link", "<"+next+`>; rel="next"`)
	}
	oauth.WriteJSON(w, http.StatusOK, events)
}

const logsPath = "api/v1/logs"

// writeLogsError answers a refused System Log query: 400 in Okta's
// error shape, errorCauses as {errorSummary} objects.
func writeLogsError(w http.ResponseWriter, e *syslog.Error) {
	causes := make([]any, 0, len(e.Causes))
	for _, c := range e.Causes {
		causes = append(causes, map[string]string{"errorSummary": c})
	}
	oauth.WriteJSON(w, http.StatusBadRequest, oktaError{Code: e.Code, Summary: e.Summary, Link: e.Code, ID: "oae" + randomToken()[:22], Causes: causes})
}

// noEventLog answers a System Log request when the storage keeps none.
func noEventLog(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	writeOktaError(w, http.StatusNotImplemented, "E0000052", "Endpoint not implemented: the storage keeps no System Log.")
}
