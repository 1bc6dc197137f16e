package authserver

import (
	"net/http"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
)

// backChannel is an endpoint a client calls directly with a form: token
// (RFC 6749 section 3.2), introspection (RFC 7662 section 2.1),
// revocation (RFC 7009 section 2.1) and device authorization (RFC 8628
// section 3.1). They all open the same way (a strict form, then client
// authentication) and end the same way (one event, one answer), so
// serveBackChannel does both and run does the rest.
type backChannel struct {
	// name is the endpoint's path below the server's v1/, which a
	// client assertion may name as its audience (RFC 7523 section 3).
	name string
	// event and failEvent name the System Log events of its decisions.
	event, failEvent string
	// grantType, when set, is recorded in every decision.
	grantType string
	// before checks the form before the client is authenticated and
	// records in d what the request asks for.
	before func(form map[string]string, d *decision) *oauth.Error
	// run serves an authenticated client's request.
	run func(i *Issuer, x *exchange) outcome
	// observe tells the Observer of the answer; nil: nothing to tell.
	observe func(o Observer, d decision, out outcome, elapsed time.Duration)
}

// exchange is one back-channel request after its opening.
type exchange struct {
	r      *http.Request
	s      *Server
	client *clientauth.Client
	form   map[string]string
	// d is what the request's event records; run fills it in.
	d decision
}

// outcome is a back-channel endpoint's answer and what its event says.
type outcome struct {
	// err fails the request: a FAILURE event, answered in RFC 6749
	// section 5.2 form unless write is set.
	err *oauth.Error
	// body is a success's JSON answer; nil answers 200 without a body.
	body any
	// write, when set, answers instead (Okta's 429 shape).
	write func(http.ResponseWriter)
	// unlogged: nothing was decided (an unknown or inactive token, which
	// RFC 7662 section 2.2 and RFC 7009 section 2.2 answer as usual).
	unlogged bool
	// active: the introspected token is active (RFC 7662 section 2.2).
	active bool
	// header is added to the answer (DPoP-Nonce).
	header http.Header
}

func failed(e *oauth.Error) outcome { return outcome{err: e} }

// code is the outcome as the Observer names it: OutcomeSuccess or the
// error code.
func (o outcome) code() string {
	if o.err != nil {
		return o.err.Code
	}
	return OutcomeSuccess
}

// serveBackChannel parses the form, authenticates the client, runs the
// endpoint, records the decision and writes the answer, once.
func (i *Issuer) serveBackChannel(w http.ResponseWriter, r *http.Request, s *Server, b *backChannel) {
	start := time.Now() // a latency: the wall clock, not i.now
	x := &exchange{r: r, s: s, d: decision{server: s, grantType: b.grantType, req: r}}
	out := i.openBackChannel(w, x, b)
	if out.err == nil {
		out = b.run(i, x)
	}
	i.recordBackChannel(b, x.d, out, time.Since(start))
	out.writeTo(w)
}

// openBackChannel reads the form and authenticates the client.
func (i *Issuer) openBackChannel(w http.ResponseWriter, x *exchange, b *backChannel) outcome {
	form, e := oauth.ParseForm(w, x.r)
	if e != nil {
		return failed(e)
	}
	x.form = form
	if b.before != nil {
		if e := b.before(form, &x.d); e != nil {
			return failed(e)
		}
	}
	c, claimed, e := i.auth.Authenticate(x.r.Context(), x.r, form, x.s.audiences(b.name))
	if e != nil {
		x.d.clientID = claimed
		return failed(e)
	}
	x.client, x.d.clientID = c, c.ID
	return outcome{}
}

// recordBackChannel is the one place a back-channel decision is logged
// and observed.
func (i *Issuer) recordBackChannel(b *backChannel, d decision, out outcome, elapsed time.Duration) {
	if b.observe != nil {
		b.observe(i.obs, d, out, elapsed)
	}
	if tr, ok := out.body.(*tokenResponse); ok {
		d.idToken, d.refreshToken = tr.IDToken != "", tr.RefreshToken != ""
	}
	switch {
	case out.unlogged:
	case out.err != nil:
		i.logFailure(b.failEvent, d, out.err)
	default:
		i.logSuccess(b.event, d)
	}
}

func (o outcome) writeTo(w http.ResponseWriter) {
	for k, v := range o.header {
		w.Header()[k] = v
	}
	switch {
	case o.write != nil:
		o.write(w)
	case o.err != nil:
		oauth.WriteError(w, o.err)
	case o.body == nil:
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
	default:
		oauth.WriteJSON(w, http.StatusOK, o.body)
	}
}

// tokenParam is the required `token` parameter of introspection (RFC
// 7662 section 2.1) and revocation (RFC 7009 section 2.1).
func tokenParam(form map[string]string) (string, *oauth.Error) {
	tok := form["token"]
	if tok == "" {
		return "", oauth.ErrInvalidRequest.WithDescription("The 'token' parameter is required.")
	}
	return tok, nil
}
