package webauthnrp

import (
	"bytes"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	for _, c := range []struct {
		base, id, origin string
	}{
		{"https://login.example.com", "login.example.com", "https://login.example.com"},
		{"https://Login.Example.com:8443/oauth2/default", "login.example.com", "https://login.example.com:8443"},
		{"http://localhost:8080", "localhost", "http://localhost:8080"},
		{"http://id.localhost:9000/", "id.localhost", "http://id.localhost:9000"},
	} {
		rp, err := New(c.base, "Example")
		if err != nil || rp.ID() != c.id || rp.Origin() != c.origin {
			t.Errorf("New(%q) = %v; want id %q origin %q", c.base, err, c.id, c.origin)
		}
	}
	for _, base := range []string{"http://login.example.com", "https://127.0.0.1:8443", "http://127.0.0.1:8080", "https://[::1]/", "login.example.com", ""} {
		if _, err := New(base, "x"); !errors.Is(err, ErrUnsupportedOrigin) {
			t.Errorf("New(%q) = %v, want ErrUnsupportedOrigin", base, err)
		}
	}
}

func TestUserHandle(t *testing.T) {
	a := UserHandle("00u1alice")
	if len(a) != 32 || !bytes.Equal(a, UserHandle("00u1alice")) || bytes.Equal(a, UserHandle("00u1bob")) {
		t.Errorf("UserHandle: %x", a)
	}
	if bytes.Contains(a, []byte("alice")) {
		t.Error("user handle holds the user id")
	}
}

func testRP(t *testing.T) *RP {
	t.Helper()
	rp, err := New("https://login.example.com/oauth2/default", "Example")
	if err != nil {
		t.Fatal(err)
	}
	return rp
}

// fakeCred is a stored credential with an id (enough to begin a ceremony).
func fakeCred(id byte) []byte {
	b, _ := json.Marshal(map[string]any{
		"id": bytes.Repeat([]byte{id}, 16), "publicKey": []byte{1, 2, 3}, "transport": []string{"usb"},
		"flags": map[string]bool{"userPresent": true}, "authenticator": map[string]any{"signCount": 3},
	})
	return b
}

func TestBeginRegistrationOptions(t *testing.T) {
	rp := testRP(t)
	u := NewUser("00u1", "alice@example.com", "Alice", [][]byte{fakeCred(1), fakeCred(2)})
	opts, session, err := rp.BeginRegistration(u)
	if err != nil {
		t.Fatal(err)
	}
	var o struct {
		PublicKey struct {
			RP        struct{ ID, Name string }
			User      struct{ ID, Name, DisplayName string }
			Challenge string
			Params    []struct{ Alg int } `json:"pubKeyCredParams"`
			Timeout   int
			Exclude   []struct{ ID string } `json:"excludeCredentials"`
			Selection struct {
				ResidentKey      string
				UserVerification string
				Attachment       string `json:"authenticatorAttachment"`
			} `json:"authenticatorSelection"`
			Attestation string
			Extensions  map[string]any
		}
	}
	if err := json.Unmarshal(opts, &o); err != nil {
		t.Fatal(err)
	}
	pk := o.PublicKey
	b64 := base64.RawURLEncoding.EncodeToString
	if pk.RP.ID != "login.example.com" || pk.RP.Name != "Example" || pk.User.ID != b64(UserHandle("00u1")) || pk.User.Name != "alice@example.com" || pk.User.DisplayName != "Alice" {
		t.Errorf("rp %+v user %+v", pk.RP, pk.User)
	}
	if len(pk.Params) != 3 || pk.Params[0].Alg != -7 || pk.Params[1].Alg != -8 || pk.Params[2].Alg != -257 {
		t.Errorf("pubKeyCredParams %+v, want ES256, EdDSA, RS256", pk.Params)
	}
	if pk.Selection.ResidentKey != "preferred" || pk.Selection.UserVerification != "preferred" || pk.Selection.Attachment != "" || pk.Attestation != "none" {
		t.Errorf("authenticatorSelection %+v attestation %q", pk.Selection, pk.Attestation)
	}
	if len(pk.Exclude) != 2 || pk.Exclude[0].ID != b64(bytes.Repeat([]byte{1}, 16)) {
		t.Errorf("excludeCredentials %+v", pk.Exclude)
	}
	if pk.Timeout != int(Timeout.Milliseconds()) || pk.Extensions["credProps"] != true || len(pk.Challenge) < 22 {
		t.Errorf("timeout %d extensions %v challenge %q", pk.Timeout, pk.Extensions, pk.Challenge)
	}
	if !strings.Contains(string(session), pk.Challenge) || len(session) > 1024 {
		t.Errorf("session (%d bytes) %s", len(session), session)
	}
	if _, s2, _ := rp.BeginRegistration(u); bytes.Equal(s2, session) {
		t.Error("two registrations got one session")
	}
}

func TestBeginLoginOptions(t *testing.T) {
	rp := testRP(t)
	u := NewUser("00u1", "alice@example.com", "Alice", [][]byte{fakeCred(1)})
	opts, session, err := rp.BeginLogin(u)
	if err != nil {
		t.Fatal(err)
	}
	var o struct {
		PublicKey struct {
			RPID             string `json:"rpId"`
			UserVerification string
			Timeout          int
			Allow            []struct {
				Type, ID   string
				Transports []string
			} `json:"allowCredentials"`
		}
	}
	if err := json.Unmarshal(opts, &o); err != nil {
		t.Fatal(err)
	}
	pk := o.PublicKey
	if pk.RPID != "login.example.com" || pk.UserVerification != "preferred" || pk.Timeout != int(Timeout.Milliseconds()) ||
		len(pk.Allow) != 1 || pk.Allow[0].Type != "public-key" || pk.Allow[0].ID != base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{1}, 16)) || len(pk.Allow[0].Transports) != 1 {
		t.Errorf("request options %s", opts)
	}
	if len(session) > 1024 {
		t.Errorf("session of %d bytes", len(session))
	}
	if _, _, err := rp.BeginLogin(NewUser("00u2", "bob", "Bob", nil)); !errors.Is(err, ErrNoCredentials) {
		t.Errorf("BeginLogin without credentials: %v", err)
	}
	if _, _, err := rp.BeginLogin(NewUser("00u2", "bob", "Bob", [][]byte{[]byte("{")})); err == nil {
		t.Error("BeginLogin took a corrupt credential")
	}
	many := make([][]byte, MaxCredentials+1)
	for i := range many {
		many[i] = fakeCred(byte(i))
	}
	if _, _, err := rp.BeginLogin(NewUser("00u2", "bob", "Bob", many)); !errors.Is(err, ErrTooManyCredentials) {
		t.Errorf("BeginLogin with %d credentials: %v", len(many), err)
	}
	if _, _, err := rp.BeginRegistration(NewUser("00u2", "bob", "Bob", many[:MaxCredentials])); !errors.Is(err, ErrTooManyCredentials) {
		t.Errorf("BeginRegistration with %d credentials: %v", MaxCredentials, err)
	}
	opts, _, err = rp.BeginDiscoverableLogin()
	if err != nil || strings.Contains(string(opts), "allowCredentials") {
		t.Errorf("BeginDiscoverableLogin = %s, %v", opts, err)
	}
}

func TestScript(t *testing.T) {
	h := ScriptHandler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/webauthn.js", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "text/javascript; charset=utf-8" || rec.Header().Get("X-Content-Type-Options") != "nosniff" || !bytes.Equal(rec.Body.Bytes(), Script) {
		t.Errorf("GET: %d %v", rec.Code, rec.Header())
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/webauthn.js", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", rec.Code)
	}
	sum := sha512.Sum384(Script)
	if ScriptIntegrity != "sha384-"+base64.StdEncoding.EncodeToString(sum[:]) {
		t.Error("ScriptIntegrity")
	}
	// CSP script-src 'self' without 'unsafe-eval': nothing that evaluates strings.
	for _, bad := range []string{"eval(", "new Function", "innerHTML", "setTimeout(\"", "document.write"} {
		if bytes.Contains(Script, []byte(bad)) {
			t.Errorf("webauthn.js uses %s", bad)
		}
	}
}
