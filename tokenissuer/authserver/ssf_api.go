package authserver

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/apiaccess/caddy-apiaccess/internal/dpop"
	"github.com/apiaccess/caddy-apiaccess/internal/ssf"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// The issuer is an OpenID Shared Signals Framework 1.0 transmitter in
// the shape of Okta's SSF Transmitter API: metadata at the org's
// /.well-known/ssf-configuration, one stream API at /api/v1/ssf/stream,
// called with org access tokens (client_credentials, Okta API scopes
// ssf.read and ssf.manage, token_org_api.go); a stream belongs to the
// client that created it and its SETs carry that client id as aud.
// Okta delivers by push only; this transmitter delivers by poll
// (RFC 8936), so a gateway needs no inbound port.
const (
	ssfStreamPath  = "api/v1/ssf/stream"
	ssfStatusPath  = "api/v1/ssf/stream/status"
	ssfVerifyPath  = "api/v1/ssf/stream/verification"
	ssfPollPath    = "api/v1/ssf/poll/" // + stream id
	scopeSSFRead   = "ssf.read"
	scopeSSFManage = "ssf.manage"
)

// Stream limits. Okta allows one stream per client and ten per org;
// here every gateway process has its own stream, so a client may have
// a few, and an idle one is dropped: a receiver back after that creates
// a new stream, which starts at the oldest event still in force, so
// nothing is missed.
const (
	maxStreamsPerClient = 20
	streamInactivity    = 15 * time.Minute
	streamRecordLife    = 366 * 24 * time.Hour
	// lastPollEvery bounds the writes that keep a stream alive.
	lastPollEvery = time.Minute
	// minVerificationInterval spaces verification requests (SSF 8.1.4.2).
	minVerificationInterval = 10 * time.Second
	maxSSFBody              = 64 << 10
)

// ssfAPI are the stream API's endpoints, by path below the org base URL;
// they take org access tokens, answer no cross-origin reads.
var ssfAPI = map[string]*endpoint{
	ssfStreamPath: {serve: (*Issuer).serveSSFStream},
	ssfStatusPath: {serve: (*Issuer).serveSSFStatus},
	ssfVerifyPath: {serve: (*Issuer).serveSSFVerification},
}

var (
	ssfConfigEndpoint = &endpoint{cors: "GET", serve: (*Issuer).serveSSFConfiguration}
	ssfPollEndpoint   = &endpoint{serve: (*Issuer).serveSSFPoll}
)

// ssfEvents are the event types the transmitter delivers.
var ssfEvents = []string{ssf.EventSessionRevoked, ssf.EventVerification, ssf.EventStreamUpdated}

// streamRecord is one stream's configuration (store.NSSSFStreamConfig);
// the queue keeps its delivery state.
type streamRecord struct {
	ID               string    `json:"id"`
	ClientID         string    `json:"cid"`
	EventsRequested  []string  `json:"events_requested"`
	Description      string    `json:"description,omitempty"`
	Created          time.Time `json:"created"`
	LastPoll         time.Time `json:"last_poll"`
	LastVerification time.Time `json:"last_verification,omitzero"`
}

func (st *streamRecord) active(now time.Time) bool {
	last := st.LastPoll
	if st.Created.After(last) {
		last = st.Created
	}
	return now.Sub(last) < streamInactivity
}

// ssfPollURL is where stream id is polled.
func (i *Issuer) ssfPollURL(id string) string { return i.base + "/" + ssfPollPath + id }

// config is the stream as the stream API shows it (SSF 8.1.1).
func (i *Issuer) streamConfig(st *streamRecord) ssf.StreamConfig {
	return ssf.StreamConfig{
		StreamID: st.ID, Iss: i.base, Aud: ssf.Audience{st.ClientID},
		EventsSupported: ssfEvents, EventsRequested: st.EventsRequested,
		EventsDelivered:         ssf.Delivered(ssfEvents, st.EventsRequested),
		Delivery:                &ssf.Delivery{Method: ssf.DeliveryPoll, EndpointURL: i.ssfPollURL(st.ID)},
		MinVerificationInterval: int(minVerificationInterval.Seconds()),
		Description:             st.Description,
		InactivityTimeout:       int(streamInactivity.Seconds()),
	}
}

// serveSSFConfiguration is the transmitter configuration metadata (SSF
// 7.1), public like the OpenID metadata.
func (i *Issuer) serveSSFConfiguration(w http.ResponseWriter, r *http.Request, _ *Server) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		apiMethodNotAllowed(w, "GET, HEAD")
		return
	}
	if i.feed == nil {
		i.notFound(w, r)
		return
	}
	writeAPIJSON(w, http.StatusOK, ssf.TransmitterConfig{
		SpecVersion: ssf.SpecVersion, Issuer: i.base, JWKSURI: i.org.endpoints + "/keys",
		DeliveryMethodsSupported: []string{ssf.DeliveryPoll},
		ConfigurationEndpoint:    i.base + "/" + ssfStreamPath,
		StatusEndpoint:           i.base + "/" + ssfStatusPath,
		VerificationEndpoint:     i.base + "/" + ssfVerifyPath,
		AuthorizationSchemes:     []ssf.AuthorizationScheme{ssf.OAuth2Scheme},
		DefaultSubjects:          ssf.DefaultSubjectsAll,
	})
}

// writeAPIJSON is oauth.WriteJSON (no-store) for the SSF API, never
// sniffed as another type.
func writeAPIJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	oauth.WriteJSON(w, status, v)
}

// ssfCaller is who called the SSF API: a client, by an org access token.
type ssfCaller struct {
	clientID string
	scopes   []string
}

func (c ssfCaller) has(scope string) bool { return slices.Contains(c.scopes, scope) }

// errSSFAuth: no valid org access token of a client still granted an
// SSF scope.
var errSSFAuth = errors.New("no valid access token")

// ssfAuthenticate reads `Authorization: Bearer <org access token>`, or
// `DPoP <token>` with a DPoP proof for a token bound to a key (RFC 9449
// section 7; Okta's Node SDK in PrivateKey mode binds its tokens to the
// client's key): a token of the org server, unexpired and unrevoked, of
// a client still granted SSF scopes.
func (i *Issuer) ssfAuthenticate(r *http.Request) (ssfCaller, error) {
	h := r.Header.Values("Authorization")
	if len(h) != 1 {
		return ssfCaller{}, errSSFAuth
	}
	tok, ok := bearer(h[0])
	dtok, isDPoP := dpopAuth(h[0])
	if isDPoP {
		tok, ok = dtok, true
	}
	if !ok {
		return ssfCaller{}, errSSFAuth
	}
	t, err := i.verifyAccessToken(i.org, tok)
	if err != nil {
		return ssfCaller{}, errSSFAuth
	}
	if jkt := boundKey(t.PrivateClaims()); jkt != "" || isDPoP {
		if jkt == "" || !isDPoP {
			return ssfCaller{}, errSSFAuth
		}
		err := i.proveBound(r, strings.TrimSuffix(i.base, i.basePath)+r.URL.Path, tok, jkt)
		var de *dpop.Error
		switch {
		case errors.As(err, &de), errors.Is(err, errOneProof), errors.Is(err, errProofOtherKey):
			return ssfCaller{}, errSSFAuth
		case err != nil:
			return ssfCaller{}, err
		}
	}
	if rev, err := i.accessRevoked(r.Context(), t); err != nil {
		return ssfCaller{}, err
	} else if rev {
		return ssfCaller{}, errSSFAuth
	}
	cid, _ := t.PrivateClaims()["cid"].(string)
	sub := t.Subject()
	if cid == "" || sub != cid { // a client's own token, not a user's
		return ssfCaller{}, errSSFAuth
	}
	c := i.clientByID(cid)
	if c == nil || len(c.OktaAPIScopes) == 0 {
		return ssfCaller{}, errSSFAuth
	}
	var scopes []string
	for _, sc := range scopeClaim(t) {
		if slices.Contains(c.OktaAPIScopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	return ssfCaller{clientID: cid, scopes: scopes}, nil
}

// scopeClaim reads scp, an array of strings.
func scopeClaim(t jwt.Token) []string {
	raw, _ := t.PrivateClaims()["scp"].([]any)
	out := make([]string, 0, len(raw))
	for _, v := range raw {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// ssfAuthorize authenticates the caller of the stream API and checks
// scope, answering Okta's errors: 401 E0000011 without a valid token,
// 403 E0000006 without the scope (RFC 6750 section 3.1's challenges).
func (i *Issuer) ssfAuthorize(w http.ResponseWriter, r *http.Request, scope string) (ssfCaller, bool) {
	c, err := i.ssfAuthenticate(r)
	switch {
	case errors.Is(err, errSSFAuth):
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+i.base+`", error="invalid_token", error_description="The access token is invalid."`)
		writeOktaError(w, http.StatusUnauthorized, "E0000011", "Invalid token provided")
		return c, false
	case err != nil:
		i.apiStoreFailure(w, err)
		return c, false
	case !c.has(scope):
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+i.base+`", error="insufficient_scope", scope="`+scope+`"`)
		writeOktaError(w, http.StatusForbidden, "E0000006", "You do not have permission to perform the requested action")
		return c, false
	}
	return c, true
}

// serveSSFStream is the stream configuration endpoint (SSF 8.1.1,
// Okta's SSF Transmitter API): POST creates, GET reads (one by
// stream_id, or the caller's), PATCH and PUT change, DELETE removes.
func (i *Issuer) serveSSFStream(w http.ResponseWriter, r *http.Request, _ *Server) {
	scope := scopeSSFManage
	switch r.Method {
	case http.MethodGet:
		scope = scopeSSFRead
	case http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete:
	default:
		apiMethodNotAllowed(w, "GET, POST, PATCH, PUT, DELETE")
		return
	}
	if i.feed == nil {
		i.notFound(w, r)
		return
	}
	c, ok := i.ssfAuthorize(w, r, scope)
	if !ok {
		return
	}
	switch r.Method {
	case http.MethodPost:
		i.createStream(w, r, c)
	case http.MethodGet:
		i.readStreams(w, r, c)
	case http.MethodPatch, http.MethodPut:
		i.updateStream(w, r, c)
	case http.MethodDelete:
		i.deleteStream(w, r, c)
	}
}

// streamRequest is a create or update body (SSF 8.1.1.1, 8.1.1.3,
// 8.1.1.4; Okta's StreamConfigurationCreateRequest). Members the
// transmitter supplies are ignored when sent.
type streamRequest struct {
	StreamID        string        `json:"stream_id"`
	Delivery        *ssf.Delivery `json:"delivery"`
	EventsRequested []string      `json:"events_requested"`
	Description     *string       `json:"description"`
	Format          string        `json:"format"`
}

func ssfValidation(w http.ResponseWriter, msg string) {
	writeOktaError(w, http.StatusBadRequest, "E0000001", "Api validation failed: "+msg)
}

// readStreamRequest parses a JSON body of at most maxSSFBody.
func readStreamRequest(w http.ResponseWriter, r *http.Request) (streamRequest, bool) {
	var req streamRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSSFBody))
	if err != nil {
		ssfValidation(w, "the request body is too large or unreadable.")
		return req, false
	}
	if err := json.Unmarshal(body, &req); err != nil {
		ssfValidation(w, "the request body is not a JSON stream configuration.")
		return req, false
	}
	if req.Delivery != nil && req.Delivery.Method != ssf.DeliveryPoll {
		ssfValidation(w, "'delivery.method': only "+ssf.DeliveryPoll+" (poll) is supported.")
		return req, false
	}
	if req.Format != "" && req.Format != ssf.FormatIssSub {
		ssfValidation(w, "'format': must be iss_sub.")
		return req, false
	}
	for _, e := range req.EventsRequested {
		if len(e) > 256 || !strings.HasPrefix(e, "https://") {
			ssfValidation(w, "'events_requested': each must be an event type URI.")
			return req, false
		}
	}
	if len(req.EventsRequested) > 32 || (req.Description != nil && len(*req.Description) > 512) {
		ssfValidation(w, "'events_requested' or 'description' is too long.")
		return req, false
	}
	return req, true
}

func (i *Issuer) createStream(w http.ResponseWriter, r *http.Request, c ssfCaller) {
	req, ok := readStreamRequest(w, r)
	if !ok {
		return
	}
	if req.Delivery == nil {
		ssfValidation(w, "'delivery': is required.")
		return
	}
	ctx, now := r.Context(), i.now()
	st := &streamRecord{ID: "esc" + randomToken()[:20], ClientID: c.clientID, EventsRequested: req.EventsRequested, Created: now, LastPoll: now}
	if req.Description != nil {
		st.Description = *req.Description
	}
	if st.EventsRequested == nil {
		st.EventsRequested = []string{}
	}
	// Idle streams are dropped first, outside the list's update (whose
	// function must not call the store).
	ids, err := i.clientStreams(ctx, c.clientID)
	var dead []string
	if err == nil {
		dead = i.dropIdle(ctx, ids)
	}
	full := false
	if err == nil {
		err = i.updateClientStreams(ctx, c.clientID, func(ids []string) ([]string, error) {
			ids = slices.DeleteFunc(ids, func(id string) bool { return slices.Contains(dead, id) })
			if full = len(ids) >= maxStreamsPerClient; full {
				return ids, nil
			}
			return append(ids, st.ID), nil
		})
	}
	if err == nil && !full {
		err = i.putStream(ctx, st)
	}
	if err == nil && !full {
		if err = i.feed.AddStream(ctx, st.ID, c.clientID); err != nil {
			_ = i.dropStream(ctx, st) // no record or list entry without queue state
		}
	}
	switch {
	case full:
		writeOktaError(w, http.StatusConflict, "E0000001", "Api validation failed: this client already has the most streams allowed; delete one first.")
		return
	case errors.Is(err, ssf.ErrTooManyStreams):
		writeOktaError(w, http.StatusConflict, "E0000001", "Api validation failed: the transmitter has the most streams allowed.")
		return
	case err != nil:
		i.apiStoreFailure(w, err)
		return
	}
	i.logStream(r, EventSSFStreamCreate, st)
	writeAPIJSON(w, http.StatusCreated, i.streamConfig(st))
}

// readStreams answers GET: the stream named by stream_id, or every
// stream of the caller (Okta: an array).
func (i *Issuer) readStreams(w http.ResponseWriter, r *http.Request, c ssfCaller) {
	if id := r.URL.Query().Get("stream_id"); id != "" {
		st, ok := i.callerStream(w, r, c, id)
		if ok {
			writeAPIJSON(w, http.StatusOK, i.streamConfig(st))
		}
		return
	}
	ids, err := i.clientStreams(r.Context(), c.clientID)
	if err != nil {
		i.apiStoreFailure(w, err)
		return
	}
	out := []ssf.StreamConfig{}
	for _, id := range ids {
		if st, err := i.getStream(r.Context(), id); err == nil && st.active(i.now()) {
			out = append(out, i.streamConfig(st))
		}
	}
	writeAPIJSON(w, http.StatusOK, out)
}

// updateStream answers PATCH (the members sent) and PUT (all of them:
// an absent events_requested or description is emptied).
func (i *Issuer) updateStream(w http.ResponseWriter, r *http.Request, c ssfCaller) {
	req, ok := readStreamRequest(w, r)
	if !ok {
		return
	}
	if req.StreamID == "" {
		ssfValidation(w, "'stream_id': is required.")
		return
	}
	if r.Method == http.MethodPut && req.Delivery == nil {
		ssfValidation(w, "'delivery': is required.")
		return
	}
	if _, ok := i.callerStream(w, r, c, req.StreamID); !ok {
		return
	}
	var st streamRecord
	_, err := i.store.UpdateRecord(r.Context(), store.NSSSFStreamConfig, req.StreamID, func(old []byte) ([]byte, error) {
		if err := json.Unmarshal(old, &st); err != nil {
			return nil, err
		}
		if req.EventsRequested != nil || r.Method == http.MethodPut {
			st.EventsRequested = append([]string{}, req.EventsRequested...)
		}
		if req.Description != nil {
			st.Description = *req.Description
		} else if r.Method == http.MethodPut {
			st.Description = ""
		}
		return json.Marshal(&st)
	})
	if err != nil {
		i.apiStoreFailure(w, err)
		return
	}
	i.logStream(r, EventSSFStreamUpdate, &st)
	writeAPIJSON(w, http.StatusOK, i.streamConfig(&st))
}

// deleteStream answers DELETE ?stream_id (without it, the caller's
// only stream, as Okta's one stream per client).
func (i *Issuer) deleteStream(w http.ResponseWriter, r *http.Request, c ssfCaller) {
	id := r.URL.Query().Get("stream_id")
	if id == "" {
		ids, err := i.clientStreams(r.Context(), c.clientID)
		if err != nil {
			i.apiStoreFailure(w, err)
			return
		}
		if len(ids) != 1 {
			ssfValidation(w, "'stream_id': is required when the client has more than one stream.")
			return
		}
		id = ids[0]
	}
	st, ok := i.callerStream(w, r, c, id)
	if !ok {
		return
	}
	if err := i.dropStream(r.Context(), st); err != nil {
		i.apiStoreFailure(w, err)
		return
	}
	i.logStream(r, EventSSFStreamDelete, st)
	w.WriteHeader(http.StatusNoContent)
}

// ssfCall admits a call of an SSF endpoint that takes one method: 405,
// 404 without a feed, then ssfAuthorize.
func (i *Issuer) ssfCall(w http.ResponseWriter, r *http.Request, method, scope string) (ssfCaller, bool) {
	if r.Method != method {
		apiMethodNotAllowed(w, method)
		return ssfCaller{}, false
	}
	if i.feed == nil {
		i.notFound(w, r)
		return ssfCaller{}, false
	}
	return i.ssfAuthorize(w, r, scope)
}

// serveSSFStatus is the status endpoint (SSF 8.1.2.1): a live stream is
// enabled; pausing is not offered (a receiver stops polling instead).
func (i *Issuer) serveSSFStatus(w http.ResponseWriter, r *http.Request, _ *Server) {
	c, ok := i.ssfCall(w, r, http.MethodGet, scopeSSFRead)
	if !ok {
		return
	}
	id := r.URL.Query().Get("stream_id")
	if id == "" {
		ssfValidation(w, "'stream_id': is required.")
		return
	}
	if _, ok := i.callerStream(w, r, c, id); ok {
		writeAPIJSON(w, http.StatusOK, ssf.StreamStatus{StreamID: id, Status: ssf.StatusEnabled})
	}
}

// serveSSFVerification queues a verification event for the stream (SSF
// 8.1.4.2): 204, or 429 within min_verification_interval of the last.
func (i *Issuer) serveSSFVerification(w http.ResponseWriter, r *http.Request, _ *Server) {
	c, ok := i.ssfCall(w, r, http.MethodPost, scopeSSFManage)
	if !ok {
		return
	}
	var req ssf.VerificationRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSSFBody))
	if err != nil || json.Unmarshal(body, &req) != nil || req.StreamID == "" || len(req.State) > 1024 {
		ssfValidation(w, "the body must be {\"stream_id\": ..., \"state\": ...}.")
		return
	}
	if _, ok := i.callerStream(w, r, c, req.StreamID); !ok {
		return
	}
	now := i.now()
	early := false
	_, err = i.store.UpdateRecord(r.Context(), store.NSSSFStreamConfig, req.StreamID, func(old []byte) ([]byte, error) {
		var st streamRecord
		if err := json.Unmarshal(old, &st); err != nil {
			return nil, err
		}
		if early = now.Sub(st.LastVerification) < minVerificationInterval; early {
			return old, nil
		}
		st.LastVerification = now
		return json.Marshal(&st)
	})
	if err == nil && !early {
		err = i.feed.PublishTo(r.Context(), req.StreamID, ssf.Event{Type: ssf.EventVerification, IssuedAt: now,
			Subject: ssf.Subject{Kind: ssf.SubjectStream, StreamID: req.StreamID}, State: req.State, Time: now})
	}
	switch {
	case early:
		writeRateLimited(w, 1, minVerificationInterval, now)
	case err != nil:
		i.apiStoreFailure(w, err)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// callerStream reads a live stream of the caller; any other answers
// 404 (another client's stream is not revealed).
func (i *Issuer) callerStream(w http.ResponseWriter, r *http.Request, c ssfCaller, id string) (*streamRecord, bool) {
	st, err := i.getStream(r.Context(), id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		i.apiStoreFailure(w, err)
		return nil, false
	}
	if err != nil || st.ClientID != c.clientID || !st.active(i.now()) {
		writeOktaError(w, http.StatusNotFound, "E0000007", "Not found: Resource not found: "+echo(id)+" (SSF Stream)")
		return nil, false
	}
	return st, true
}

func (i *Issuer) getStream(ctx context.Context, id string) (*streamRecord, error) {
	if id == "" || len(id) > 64 {
		return nil, store.ErrNotFound
	}
	b, err := i.store.GetRecord(ctx, store.NSSSFStreamConfig, id)
	if err != nil {
		return nil, err
	}
	var st streamRecord
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

func (i *Issuer) putStream(ctx context.Context, st *streamRecord) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return i.store.PutRecord(ctx, store.NSSSFStreamConfig, st.ID, b, st.Created.Add(streamRecordLife))
}

// dropStream removes a stream: its queue state, its record, and its
// place in the client's list.
func (i *Issuer) dropStream(ctx context.Context, st *streamRecord) error {
	if err := i.feed.RemoveStream(ctx, st.ID); err != nil && !errors.Is(err, ssf.ErrUnknownStream) {
		return err
	}
	if _, err := i.store.UpdateRecord(ctx, store.NSSSFStreamConfig, st.ID, func([]byte) ([]byte, error) { return nil, nil }); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return i.updateClientStreams(ctx, st.ClientID, func(ids []string) ([]string, error) {
		return slices.DeleteFunc(ids, func(s string) bool { return s == st.ID }), nil
	})
}

// clientStreams lists the stream ids of a client (store.NSSSFClientStreams).
func (i *Issuer) clientStreams(ctx context.Context, cid string) ([]string, error) {
	b, err := i.store.GetRecord(ctx, store.NSSSFClientStreams, cid)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	err = json.Unmarshal(b, &ids)
	return ids, err
}

// updateClientStreams changes a client's stream list atomically.
func (i *Issuer) updateClientStreams(ctx context.Context, cid string, fn func([]string) ([]string, error)) error {
	return i.upsertRecord(ctx, store.NSSSFClientStreams, cid, cutOffUntil, func(old []byte) ([]byte, error) {
		var ids []string
		if old != nil {
			if err := json.Unmarshal(old, &ids); err != nil {
				return nil, err
			}
		}
		ids, err := fn(ids)
		if err != nil {
			return nil, err
		}
		return json.Marshal(ids)
	})
}

// dropIdle removes the idle streams among ids (their queue state and
// record) and returns their ids; best effort: a stream whose state cannot
// be read is kept.
func (i *Issuer) dropIdle(ctx context.Context, ids []string) []string {
	now := i.now()
	var dead []string
	for _, id := range ids {
		st, err := i.getStream(ctx, id)
		switch {
		case err == nil && !st.active(now):
			_ = i.feed.RemoveStream(ctx, id)
			_, _ = i.store.UpdateRecord(ctx, store.NSSSFStreamConfig, id, func([]byte) ([]byte, error) { return nil, nil })
			dead = append(dead, id)
		case errors.Is(err, store.ErrNotFound):
			dead = append(dead, id)
		}
	}
	return dead
}

// touchStream records a poll, at most every lastPollEvery.
func (i *Issuer) touchStream(ctx context.Context, st *streamRecord) error {
	now := i.now()
	if now.Sub(st.LastPoll) < lastPollEvery {
		return nil
	}
	_, err := i.store.UpdateRecord(ctx, store.NSSSFStreamConfig, st.ID, func(old []byte) ([]byte, error) {
		var cur streamRecord
		if err := json.Unmarshal(old, &cur); err != nil {
			return nil, err
		}
		cur.LastPoll = now
		return json.Marshal(&cur)
	})
	return err
}
