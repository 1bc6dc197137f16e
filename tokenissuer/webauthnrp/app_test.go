package webauthnrp

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"net/http"
	"sync"
	"testing"
	"time"
)

// testApp is a tiny relying party site for the browser test: a
// registration page, a sign-in page (user known) and a passkey page
// (user unknown), with webauthn.js under CSP script-src 'self'. Every
// ceremony is recorded (session, browser answer, result) for the
// replay tests.
type testApp struct {
	t  *testing.T
	rp *RP

	mu       sync.Mutex
	users    map[string]*appUser // by uid
	pending  map[string]pending  // by txn
	recorded recording
}

type appUser struct {
	uid, login string
	creds      [][]byte
}

type pending struct {
	kind, uid string
	session   []byte
	options   []byte
	at        time.Time
	before    [][]byte
}

// recording is what testdata/browser.json holds.
type recording struct {
	BaseURL    string      `json:"base_url"`
	Ceremonies []ceremony  `json:"ceremonies"`
	Users      []recordedU `json:"users"`
}

type recordedU struct {
	UID   string `json:"uid"`
	Login string `json:"login"`
}

type ceremony struct {
	Kind     string            `json:"kind"`
	UID      string            `json:"uid,omitempty"` // who it began for; for discoverable, who signed in
	At       time.Time         `json:"at"`            // when it began
	Session  json.RawMessage   `json:"session"`
	Response json.RawMessage   `json:"response"`
	Before   []json.RawMessage `json:"creds_before"` // the user's stored credentials when it finished
	CredID   []byte            `json:"cred_id,omitempty"`
	Cred     json.RawMessage   `json:"cred,omitempty"` // stored credential after it
	UV       bool              `json:"uv,omitempty"`
	Err      string            `json:"err,omitempty"`
}

// csp is what the lead's pages need: script-src 'self' for webauthn.js,
// connect-src 'self' only for data-webauthn-options-url.
const csp = "default-src 'none'; script-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>{{.Title}}</title></head><body>
<h1>{{.Title}}</h1>
<form method="post" action="{{.Action}}" data-webauthn="{{.Kind}}" {{if .OptionsURL}}data-webauthn-options-url="{{.OptionsURL}}"{{else}}data-webauthn-options="{{.Options}}"{{end}}>
<input type="hidden" name="txn" value="{{.Txn}}">
<input type="hidden" name="webauthn_response">
<p id="msg" data-webauthn-message role="alert" hidden></p>
<button id="go" type="submit">Continue</button>
</form>
<script src="/webauthn.js" integrity="{{.Integrity}}" defer></script>
</body></html>`))

var resultTmpl = template.Must(template.New("result").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>result</title></head><body>
{{if .Err}}<p id="error">{{.Err}}</p>{{else}}<p id="ok" data-uid="{{.UID}}" data-uv="{{.UV}}">done for {{.UID}}</p>{{end}}
</body></html>`))

func newTestApp(t *testing.T, rp *RP) *testApp {
	return &testApp{t: t, rp: rp, users: map[string]*appUser{}, pending: map[string]pending{}}
}

func (a *testApp) addUser(uid, login string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.users[uid] = &appUser{uid: uid, login: login}
	a.recorded.Users = append(a.recorded.Users, recordedU{UID: uid, Login: login})
}

func (a *testApp) user(uid string) *appUser {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.users[uid]
}

func (u *appUser) rpUser() User { return NewUser(u.uid, u.login, u.login, u.creds) }

func (a *testApp) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /webauthn.js", ScriptHandler())
	mux.HandleFunc("GET /register", func(w http.ResponseWriter, r *http.Request) { a.begin(w, r, kindRegistration) })
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) { a.begin(w, r, kindLogin) })
	mux.HandleFunc("GET /passkey", func(w http.ResponseWriter, r *http.Request) { a.begin(w, r, kindDiscoverable) })
	mux.HandleFunc("POST /finish", a.finish)
	mux.HandleFunc("GET /options", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		p, ok := a.pending[r.URL.Query().Get("txn")]
		a.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(p.options)
	})
	return mux
}

func (a *testApp) begin(w http.ResponseWriter, r *http.Request, kind string) {
	w.Header().Set("Content-Security-Policy", csp)
	w.Header().Set("Cache-Control", "no-store")
	var (
		opts, session []byte
		err           error
		uid           string
		before        [][]byte
	)
	a.mu.Lock()
	if kind == kindDiscoverable {
		opts, session, err = a.rp.BeginDiscoverableLogin()
	} else if u := a.users[r.URL.Query().Get("user")]; u == nil {
		err = ErrUnknownUser
	} else {
		uid, before = u.uid, u.creds
		if kind == kindRegistration {
			opts, session, err = a.rp.BeginRegistration(u.rpUser())
		} else {
			opts, session, err = a.rp.BeginLogin(u.rpUser())
		}
	}
	txn := randomTxn()
	if err == nil {
		a.pending[txn] = pending{kind: kind, uid: uid, session: session, options: opts, at: time.Now(), before: before}
	}
	a.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	method := map[string]string{kindRegistration: "create", kindLogin: "get", kindDiscoverable: "get"}[kind]
	optionsURL := ""
	if r.URL.Query().Has("fetch") {
		optionsURL = "/options?txn=" + txn
	}
	_ = pageTmpl.Execute(w, map[string]any{
		"Title": kind, "Action": "/finish", "Kind": method, "Options": string(opts), "OptionsURL": optionsURL, "Txn": txn, "Integrity": ScriptIntegrity,
	})
}

func (a *testApp) finish(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", csp)
	resp := []byte(r.PostFormValue("webauthn_response"))
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.pending[r.PostFormValue("txn")]
	delete(a.pending, r.PostFormValue("txn")) // one use, whatever the outcome
	if !ok {
		http.Error(w, "no such transaction", http.StatusBadRequest)
		return
	}
	c := ceremony{Kind: p.kind, UID: p.uid, At: p.at, Session: p.session, Response: resp}
	var (
		credID, cred []byte
		uv           bool
		err          error
		u            = a.users[p.uid]
	)
	switch p.kind {
	case kindRegistration:
		c.Before = raw(u.creds)
		if credID, cred, err = a.rp.FinishRegistration(u.rpUser(), p.session, resp); err == nil {
			u.creds = append(u.creds, cred)
		}
	case kindLogin:
		c.Before = raw(u.creds)
		if credID, cred, uv, err = a.rp.FinishLogin(u.rpUser(), p.session, resp); err == nil {
			replace(u, credID, cred)
		}
	case kindDiscoverable:
		var got User
		got, credID, cred, uv, err = a.rp.FinishDiscoverableLogin(p.session, resp, func(handle []byte) (User, error) {
			for _, x := range a.users {
				if bytes.Equal(UserHandle(x.uid), handle) {
					u = x
					c.UID = x.uid
					c.Before = raw(x.creds)
					return x.rpUser(), nil
				}
			}
			return User{}, ErrUnknownUser
		})
		if err == nil && !bytes.Equal(got.ID, UserHandle(u.uid)) {
			a.t.Errorf("FinishDiscoverableLogin returned user handle %x, want %s's", got.ID, u.uid)
		}
		if err == nil {
			replace(u, credID, cred)
		}
	}
	c.CredID, c.Cred, c.UV = credID, cred, uv
	if err != nil {
		c.Err = err.Error()
	}
	a.recorded.Ceremonies = append(a.recorded.Ceremonies, c)
	uidShown := ""
	if u != nil {
		uidShown = u.uid
	}
	_ = resultTmpl.Execute(w, map[string]any{"Err": c.Err, "UID": uidShown, "UV": uv})
}

func replace(u *appUser, id, cred []byte) {
	for i, b := range u.creds {
		if in, err := CredentialInfo(b); err == nil && bytes.Equal(in.ID, id) {
			u.creds[i] = cred
		}
	}
}

func raw(bs [][]byte) []json.RawMessage {
	out := make([]json.RawMessage, len(bs))
	for i, b := range bs {
		out[i] = bytes.Clone(b)
	}
	return out
}

func randomTxn() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
