package authserver

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientip"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/ui"
)

// GrantDeviceCode is RFC 8628 section 3.4's grant type.
const GrantDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"

// Device flow timing (RFC 8628 section 3.2).
const (
	deviceLifetime = 10 * time.Minute
	pollInterval   = 5 * time.Second
)

// Device grant states.
const (
	devicePending  = "pending"
	deviceApproved = "approved"
	deviceDenied   = "denied"
)

// deviceGrant is a device authorization, keyed by the hash of its
// device code; the user code points to it.
type deviceGrant struct {
	Server   string    `json:"as"`
	ClientID string    `json:"cid"`
	Scopes   []string  `json:"scp"`
	UserCode string    `json:"user_code"`
	Status   string    `json:"status"`
	UserID   string    `json:"uid,omitempty"`
	AuthTime time.Time `json:"auth_time,omitzero"`
	Amr      []string  `json:"amr,omitempty"`
	LastPoll time.Time `json:"last_poll,omitzero"`
	Interval int       `json:"interval"`
	// Approved is when the user approved: an approval before a cut-off
	// of the user or client (subject_revoke.go) redeems nothing.
	Approved time.Time `json:"approved,omitzero"`
}

// userCodeAlphabet has no vowels (no words) and no look-alikes (RFC
// 8628 section 6.1).
const userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

func newUserCode() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	out := make([]byte, 0, 9)
	for i, x := range b {
		if i == 4 {
			out = append(out, '-')
		}
		out = append(out, userCodeAlphabet[int(x)%len(userCodeAlphabet)])
	}
	return string(out)
}

// normalizeUserCode accepts what people type: any case, dashes, spaces.
func normalizeUserCode(s string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		if strings.ContainsRune(userCodeAlphabet, r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// deviceAuthorizeEndpoint is the device authorization endpoint (RFC
// 8628 section 3.1).
var deviceAuthorizeEndpoint = &backChannel{name: "device/authorize", event: EventDeviceAuthorize, failEvent: EventDeviceAuthorize,
	grantType: GrantDeviceCode, run: (*Issuer).runDeviceAuthorize}

func (i *Issuer) runDeviceAuthorize(x *exchange) outcome {
	s, c := x.s, x.client
	if !s.supports(GrantDeviceCode) || !c.AllowsGrant(GrantDeviceCode) {
		return failed(oauth.ErrUnauthorizedClient.WithDescription("The client is not authorized to use the provided grant type. Configured grant types: [" + strings.Join(c.GrantTypes, ", ") + "]."))
	}
	scopes, e := s.requestedScopes(x.form["scope"], &x.d)
	if e != nil {
		return failed(e)
	}
	deviceCode, userCode := randomToken(), newUserCode()
	g := deviceGrant{Server: s.ID, ClientID: c.ID, Scopes: scopes, UserCode: userCode, Status: devicePending, Interval: int(pollInterval.Seconds())}
	b, _ := json.Marshal(g)
	until := i.now().Add(deviceLifetime)
	ctx := x.r.Context()
	if err := i.store.PutRecord(ctx, store.NSDevice, refreshHash(deviceCode), b, until); err != nil {
		return failed(oauth.FromStore(err))
	}
	if err := i.store.PutRecord(ctx, store.NSUserCode, normalizeUserCode(userCode), []byte(refreshHash(deviceCode)), until); err != nil {
		return failed(oauth.FromStore(err))
	}
	verify := i.base + "/oauth2/v1/device"
	return outcome{body: map[string]any{
		"device_code": deviceCode, "user_code": userCode, "verification_uri": verify,
		"verification_uri_complete": verify + "?user_code=" + userCode,
		"expires_in":                int(deviceLifetime.Seconds()), "interval": g.Interval,
	}}
}

// deviceEntryCookie binds the code entry form to the browser that
// loaded it, so a typed code can be told from one in a link.
const deviceEntryCookie = "apiaccess_dev"

// serveDevicePage is where the user enters the user code and approves
// the device (org path /oauth2/v1/device). Behind sign-in: without a
// session the sign-in page comes first, then the approval.
//
// A code arrives typed (the entry form, posted with the token of its
// cookie) or in a link: verification_uri_complete, which anyone can
// send to a signed-in victim. The approval page always shows the code
// and the client; for a code from a link the user must also confirm
// that it matches their device (RFC 8628 sections 3.3.1 and 5.4).
func (i *Issuer) serveDevicePage(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		raw := r.URL.Query().Get("user_code")
		if raw == "" {
			i.deviceEntryPage(w, r, "", "", http.StatusOK)
			return
		}
		i.deviceLookup(w, r, raw, true)
	case http.MethodPost:
		form, e := oauth.ParseForm(w, r)
		if e != nil {
			i.errorPage(w, e.Status, "The request could not be read.")
			return
		}
		if form["txn"] != "" {
			i.deviceDecision(w, r, form)
			return
		}
		ck, ok := i.readCookie(r, deviceEntryCookie)
		typed := ok && form["entry"] != "" && subtle.ConstantTimeCompare([]byte(ck), []byte(form["entry"])) == 1
		i.deviceLookup(w, r, form["user_code"], !typed)
	default:
		w.Header().Set("Allow", "GET, POST")
		i.errorPage(w, http.StatusMethodNotAllowed, "The request method is not allowed.")
	}
}

// deviceEntryPage shows the code entry form, bound to this browser.
func (i *Issuer) deviceEntryPage(w http.ResponseWriter, r *http.Request, code, msg string, status int) {
	token := randomToken()
	http.SetCookie(w, i.cookie(r, deviceEntryCookie, token, deviceLifetime))
	htmlHeaders(w)
	w.WriteHeader(status)
	_ = i.pages.RenderDevice(w, ui.Device{Title: "Activate", Action: i.base + "/oauth2/v1/device", UserCode: code, Entry: token, Error: msg})
}

// deviceLookup finds the pending device grant of a user code and goes
// on to sign-in or approval; check says the user must confirm the code.
func (i *Issuer) deviceLookup(w http.ResponseWriter, r *http.Request, raw string, check bool) {
	ctx := r.Context()
	// Counted before the lookup, atomically, so parallel guesses cannot
	// all pass a limit read before any was counted; a valid code gives
	// its count back.
	addr := "device:" + clientip.Key(r)
	if n, err := i.store.Incr(ctx, store.NSAttempts, addr, 1, i.now().Add(throttleWindow)); err == nil && n > maxAddrFailures {
		i.deviceEntryPage(w, r, "", "Too many attempts. Try again later.", http.StatusTooManyRequests)
		return
	}
	hash, err := i.store.GetRecord(ctx, store.NSUserCode, normalizeUserCode(raw))
	var g deviceGrant
	if err == nil {
		var rawG []byte
		rawG, err = i.store.GetRecord(ctx, store.NSDevice, string(hash))
		if err == nil {
			err = json.Unmarshal(rawG, &g)
		}
	}
	if err != nil || g.Status != devicePending {
		i.deviceEntryPage(w, r, raw, "That code is not valid or has expired.", http.StatusBadRequest)
		return
	}
	_, _ = i.store.Incr(ctx, store.NSAttempts, addr, -1, i.now().Add(throttleWindow))
	s, ok := i.Server(g.Server)
	c, ok2 := i.auth.Client(g.ClientID)
	if !ok || !ok2 {
		i.errorPage(w, http.StatusBadRequest, "The request could not be completed.")
		return
	}
	req := &authzRequest{Server: s.ID, ClientID: c.ID, Scopes: g.Scopes, MaxAge: -1, CSRF: randomToken(), Device: string(hash), DeviceCheck: check}
	if sess, ok := i.currentSession(r); ok {
		i.withSession(w, r, s, c, req, sess)
		return
	}
	txn, ok := i.saveTxn(w, r, req)
	if !ok {
		return
	}
	i.loginPage(w, s, txn, req, "", http.StatusOK)
}

// deviceConfirm asks the signed-in user to approve the device: every
// device approval is confirmed, whatever the scopes' consent setting,
// since the user must check it is their device.
func (i *Issuer) deviceConfirm(w http.ResponseWriter, r *http.Request, s *Server, c *clientauth.Client, req *authzRequest) {
	i.deviceApprovalPage(w, r, s, c, req, "", http.StatusOK)
}

// deviceApprovalPage shows the user code, the client and the scopes,
// with the confirmation the code matches when it came in a link.
func (i *Issuer) deviceApprovalPage(w http.ResponseWriter, r *http.Request, s *Server, c *clientauth.Client, req *authzRequest, msg string, status int) {
	raw, err := i.store.GetRecord(r.Context(), store.NSDevice, req.Device)
	var g deviceGrant
	if err == nil {
		err = json.Unmarshal(raw, &g)
	}
	if err != nil || g.Status != devicePending {
		i.errorPage(w, http.StatusBadRequest, "That code is not valid or has expired.")
		return
	}
	txn, ok := i.saveTxn(w, r, req)
	if !ok {
		return
	}
	lines := make([]ui.Scope, 0, len(req.Scopes))
	for _, name := range req.Scopes {
		desc := ""
		if sc := s.scopes[name]; sc != nil {
			desc = sc.Description
		}
		lines = append(lines, ui.Scope{Name: name, Description: desc})
	}
	htmlHeaders(w)
	w.WriteHeader(status)
	_ = i.pages.RenderDevice(w, ui.Device{Title: "Activate a device", Action: i.base + "/oauth2/v1/device", Txn: txn, CSRF: req.CSRF,
		ClientName: c.Name, UserCode: g.UserCode, Scopes: lines, Check: req.DeviceCheck, Error: msg})
}

// deviceDecision takes the approval form: this browser's pending
// request, its signed-in user, and for a code from a link the
// confirmation that it matches the device.
func (i *Issuer) deviceDecision(w http.ResponseWriter, r *http.Request, form map[string]string) {
	const expired = "This page has expired or was not opened here. Start again with the code on your device."
	txn, req, err := i.loadTxn(r, form)
	switch {
	case errors.Is(err, errBadTxn) || (err == nil && (req.Device == "" || req.UserID == "" || req.Enrolled || req.Pending != "")):
		i.errorPage(w, http.StatusBadRequest, expired)
		return
	case err != nil:
		i.storeFailurePage(w, err)
		return
	}
	if sess, ok := i.currentSession(r); !ok || sess.UserID != req.UserID {
		i.errorPage(w, http.StatusBadRequest, "Your session has ended. Start again with the code on your device.")
		return
	}
	allow := form["decision"] == "allow"
	if allow && req.DeviceCheck {
		if form["code_matches"] != "yes" {
			s, ok := i.Server(req.Server)
			c, ok2 := i.auth.Client(req.ClientID)
			if !ok || !ok2 {
				i.errorPage(w, http.StatusBadRequest, "The request could not be completed.")
				return
			}
			// The page is shown again under a new pending request.
			i.dropTxn(r.Context(), txn)
			i.deviceApprovalPage(w, r, s, c, req, "Confirm that this code matches the one your device shows.", http.StatusBadRequest)
			return
		}
		req.DeviceCheck = false
	}
	// One decision per approval page: a second post finds it gone.
	if !i.takeTxn(w, r, txn, expired) {
		return
	}
	i.decideDevice(w, r, req, allow)
}

// decideDevice records the user's answer for a device. An approval
// whose code must still be confirmed (a link's, posted elsewhere than
// the device page) is refused.
func (i *Issuer) decideDevice(w http.ResponseWriter, r *http.Request, req *authzRequest, allow bool) {
	if allow && req.DeviceCheck {
		i.errorPage(w, http.StatusBadRequest, "Confirm on the activation page that the code matches the one your device shows.")
		return
	}
	_, err := i.store.UpdateRecord(r.Context(), store.NSDevice, req.Device, func(v []byte) ([]byte, error) {
		var g deviceGrant
		if err := json.Unmarshal(v, &g); err != nil {
			return nil, err
		}
		if g.Status != devicePending {
			return nil, errDeviceDecided
		}
		g.Status = deviceDenied
		if allow {
			g.Status, g.UserID, g.AuthTime, g.Amr, g.Approved = deviceApproved, req.UserID, req.AuthTime, req.Amr, i.now()
		}
		return json.Marshal(g)
	})
	if err != nil {
		i.errorPage(w, http.StatusBadRequest, "That code is not valid or has expired.")
		return
	}
	// The decision was recorded either way: 200, and a page saying
	// which and sending the user back to the device (RFC 8628 section
	// 3.3: once the interaction is complete, the server may tell the
	// user to return to their device).
	page := ui.DeviceDone{Title: "Device connected", Approved: allow}
	if !allow {
		page.Title = "Device not connected"
	}
	if c, ok := i.auth.Client(req.ClientID); ok {
		page.ClientName = c.Name
	}
	htmlHeaders(w)
	_ = i.pages.RenderDeviceDone(w, page)
}

var errDeviceDecided = errors.New("device already decided")
