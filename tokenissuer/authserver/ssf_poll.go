package authserver

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/apiaccess/caddy-apiaccess/internal/ssf"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// maxPollBody bounds a poll request: acknowledgements of a full batch
// (MaxBatch jtis of about 60 bytes) with room to spare.
const maxPollBody = 256 << 10

// writePollError answers a poll with RFC 8936 section 2.4.4's error
// body ({"err", "description"}).
func writePollError(w http.ResponseWriter, status int, code, desc string) {
	writeAPIJSON(w, status, ssf.SetErr{Err: code, Description: desc})
}

// serveSSFPoll is a stream's poll endpoint (RFC 8936 section 2):
// POST {base}/api/v1/ssf/poll/{stream_id} with a bearer org access token
// of the stream's client granted ssf.read. It acknowledges what the
// body acknowledges and answers the stream's unacknowledged SETs,
// holding the request (long polling) until one is there unless
// returnImmediately.
func (i *Issuer) serveSSFPoll(w http.ResponseWriter, r *http.Request, _ *Server) {
	if r.Method != http.MethodPost {
		apiMethodNotAllowed(w, "POST")
		return
	}
	if i.feed == nil {
		i.notFound(w, r)
		return
	}
	id := strings.TrimPrefix(r.URL.Path, i.basePath+"/"+ssfPollPath)
	c, err := i.ssfAuthenticate(r)
	switch {
	case errors.Is(err, errSSFAuth):
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+i.base+`", error="invalid_token"`)
		writePollError(w, http.StatusUnauthorized, ssf.ErrCodeAuthenticationFailed, "The access token is invalid.")
		return
	case err != nil:
		i.pollUnavailable(w)
		return
	case !c.has(scopeSSFRead):
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+i.base+`", error="insufficient_scope", scope="`+scopeSSFRead+`"`)
		writePollError(w, http.StatusForbidden, ssf.ErrCodeAccessDenied, "The access token lacks the ssf.read scope.")
		return
	}
	ctx := r.Context()
	st, err := i.getStream(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		// A store failure is no reason for the receiver to drop its
		// stream (and replay the feed on a new one): 503, poll again.
		i.pollUnavailable(w)
		return
	}
	if err != nil || st.ClientID != c.clientID || !st.active(i.now()) || strings.Contains(id, "/") {
		// Unknown, another client's, or dropped for inactivity: the
		// receiver creates a new stream (it starts at the oldest event
		// still in force).
		writePollError(w, http.StatusNotFound, ssf.ErrCodeInvalidRequest, "Unknown stream.")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPollBody))
	if err != nil {
		writePollError(w, http.StatusBadRequest, ssf.ErrCodeInvalidRequest, "The request body is too large or unreadable.")
		return
	}
	var req ssf.PollRequest
	if len(body) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			writePollError(w, http.StatusBadRequest, ssf.ErrCodeInvalidRequest, "The request body is not a poll request.")
			return
		}
	}
	if req.MaxEvents != nil && *req.MaxEvents < 0 {
		writePollError(w, http.StatusBadRequest, ssf.ErrCodeInvalidRequest, "maxEvents must not be negative.")
		return
	}
	if err := i.touchStream(ctx, st); err != nil {
		i.pollUnavailable(w)
		return
	}
	resp, err := i.feed.Poll(ctx, id, req)
	switch {
	case errors.Is(err, ssf.ErrInvalidRequest):
		writePollError(w, http.StatusBadRequest, ssf.ErrCodeInvalidRequest, "The poll request is malformed.")
	case errors.Is(err, ssf.ErrUnknownStream):
		writePollError(w, http.StatusNotFound, ssf.ErrCodeInvalidRequest, "Unknown stream.")
	case ctx.Err() != nil:
		// The receiver left during a long poll: nobody to answer.
	case err != nil:
		i.pollUnavailable(w)
	default:
		writeAPIJSON(w, http.StatusOK, resp)
	}
}

// pollUnavailable answers a poll the store could not serve: 503 with
// Retry-After; the receiver polls again and nothing is lost (what it
// did not acknowledge comes again).
func (i *Issuer) pollUnavailable(w http.ResponseWriter) {
	i.log.Error("SSF poll: the issuer's state store failed")
	w.Header().Set("Retry-After", "1")
	writePollError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "The transmitter cannot read its state now; poll again.")
}
