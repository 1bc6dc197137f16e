package webauthnrp

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRecorded checks the ceremonies TestBrowser recorded (refresh
// with: go test -run TestBrowser ./tokenissuer/webauthnrp/ -args
// -update): no browser needed.
func TestRecorded(t *testing.T) {
	b, err := os.ReadFile("testdata/browser.json")
	if err != nil {
		t.Fatal(err)
	}
	var rec recording
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	checkRecorded(t, rec)
}

// checkRecorded replays recorded ceremonies against an RP for the same
// base URL, at a clock within each session's lifetime.
func checkRecorded(t *testing.T, rec recording) {
	t.Helper()
	rp, err := New(rec.BaseURL, "WebAuthn test")
	if err != nil {
		t.Fatal(err)
	}
	find := func(kind, uid string, n int) ceremony {
		t.Helper()
		for _, c := range rec.Ceremonies {
			if c.Kind == kind && (c.UID == uid || uid == "") && c.Err == "" {
				if n == 0 {
					return c
				}
				n--
			}
		}
		t.Fatalf("no recorded %s for %s", kind, uid)
		return ceremony{}
	}
	user := func(uid string, creds ...[]byte) User {
		for _, u := range rec.Users {
			if u.UID == uid {
				return NewUser(u.UID, u.Login, u.Login, creds)
			}
		}
		t.Fatalf("no recorded user %s", uid)
		return User{}
	}
	at := func(c ceremony, d time.Duration) { rp.now = func() time.Time { return c.At.Add(d) } }
	count := func(cred []byte) uint32 {
		t.Helper()
		in, err := CredentialInfo(cred)
		if err != nil {
			t.Fatal(err)
		}
		return in.SignCount
	}
	regA, login1, login2 := find(kindRegistration, "00u-alice", 0), find(kindLogin, "00u-alice", 0), find(kindLogin, "00u-alice", 1)
	regD, loginD := find(kindRegistration, "00u-dave", 0), find(kindLogin, "00u-dave", 0)
	passkey := find(kindDiscoverable, "", 0) // alice's or bob's: the browser picks
	other := map[string]string{"00u-alice": "00u-bob", "00u-bob": "00u-alice"}[passkey.UID]
	alice := func(creds ...json.RawMessage) User { return user("00u-alice", bs(creds)...) }

	t.Run("registration", func(t *testing.T) {
		at(regA, time.Minute)
		id, cred, err := rp.FinishRegistration(alice(regA.Before...), regA.Session, regA.Response)
		if err != nil || !bytes.Equal(id, regA.CredID) {
			t.Fatalf("FinishRegistration = %x, %v; want %x", id, err, regA.CredID)
		}
		if in, _ := CredentialInfo(cred); !bytes.Equal(in.ID, id) || in.AAGUID == "" || in.SignCount != count(regA.Cred) {
			t.Errorf("credential %+v", in)
		}
		_, _, err = rp.FinishRegistration(alice(regA.Cred), regA.Session, regA.Response)
		if !errors.Is(err, ErrAlreadyRegistered) {
			t.Errorf("registering alice's credential twice: %v, want ErrAlreadyRegistered", err)
		}
		_, _, err = rp.FinishRegistration(user("00u-bob"), regA.Session, regA.Response)
		if !errors.Is(err, ErrRefused) {
			t.Errorf("alice's registration finished for bob: %v, want refused", err)
		}
		_, _, err = rp.FinishRegistration(alice(), regA.Session, withOrigin(t, regA.Response, "http://evil.localhost"))
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "origin") {
			t.Errorf("registration from another origin: %v, want refused (origin)", err)
		}
	})

	t.Run("sign-in and counter", func(t *testing.T) {
		if !(count(regA.Cred) < count(login1.Cred) && count(login1.Cred) < count(login2.Cred)) {
			t.Fatalf("recorded counts %d, %d, %d: want increasing", count(regA.Cred), count(login1.Cred), count(login2.Cred))
		}
		for _, c := range []ceremony{login1, login2} {
			at(c, Timeout-time.Second)
			id, cred, uv, err := rp.FinishLogin(alice(c.Before...), c.Session, c.Response)
			if err != nil || !bytes.Equal(id, c.CredID) || !uv || count(cred) != count(c.Cred) {
				t.Errorf("FinishLogin = %x, count %d, uv %v, %v; want %x, count %d, uv", id, count(cred), uv, err, c.CredID, count(c.Cred))
			}
		}
	})

	t.Run("replay", func(t *testing.T) {
		// The same assertion again, once its credential was updated: the
		// count no longer increases (what a caller that keeps the
		// session would let through otherwise).
		at(login1, time.Minute)
		_, _, _, err := rp.FinishLogin(alice(login2.Cred), login1.Session, login1.Response)
		if !errors.Is(err, ErrCloned) {
			t.Errorf("replayed assertion with the updated credential: %v, want ErrCloned", err)
		}
		_, _, _, err = rp.FinishLogin(alice(login2.Cred), login2.Session, login2.Response)
		if !errors.Is(err, ErrCloned) {
			t.Errorf("equal sign count: %v, want ErrCloned", err)
		}
		// Against a new challenge.
		rp.now = time.Now
		_, session, err := rp.BeginLogin(alice(login2.Cred))
		if err != nil {
			t.Fatal(err)
		}
		_, _, _, err = rp.FinishLogin(alice(login1.Before...), session, login2.Response)
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "challenge") {
			t.Errorf("assertion for another challenge: %v, want refused (challenge)", err)
		}
		if strings.Contains(err.Error(), sessionChallenge(t, session)) {
			t.Errorf("error %q quotes the challenge", err)
		}
	})

	t.Run("another user", func(t *testing.T) {
		// Dave's assertion (his own key, his own challenge) posted into
		// alice's sign-in.
		at(login1, time.Minute)
		_, _, _, err := rp.FinishLogin(alice(login1.Before...), login1.Session, loginD.Response)
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "not owned by the user") {
			t.Errorf("dave's assertion for alice's challenge: %v, want refused (credential not hers)", err)
		}
		// Alice's session finished as dave, with dave's credential.
		_, _, _, err = rp.FinishLogin(user("00u-dave", regD.Cred), login1.Session, login1.Response)
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "ID mismatch") {
			t.Errorf("alice's sign-in finished for dave: %v, want refused (user handle)", err)
		}
		// Dave's session, alice's assertion.
		at(loginD, time.Minute)
		_, _, _, err = rp.FinishLogin(user("00u-dave", loginD.Before[0]), loginD.Session, login1.Response)
		if !errors.Is(err, ErrRefused) {
			t.Errorf("alice's assertion for dave's challenge: %v, want refused", err)
		}
	})

	t.Run("origin", func(t *testing.T) {
		at(login1, time.Minute)
		_, _, _, err := rp.FinishLogin(alice(login1.Before...), login1.Session, withOrigin(t, login1.Response, "http://evil.localhost"))
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "origin") {
			t.Errorf("tampered origin: %v, want refused (origin)", err)
		}
		// The same RP id on another port is another origin.
		other, err := New(strings.Replace(rec.BaseURL, "localhost:", "localhost:1", 1), "other")
		if err != nil {
			t.Fatal(err)
		}
		other.now = rp.now
		_, _, _, err = other.FinishLogin(alice(login1.Before...), login1.Session, login1.Response)
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "origin") {
			t.Errorf("assertion made for %s checked by %s: %v, want refused (origin)", rp.Origin(), other.Origin(), err)
		}
		// A tampered signature.
		_, _, _, err = rp.FinishLogin(alice(login1.Before...), login1.Session, tamper(t, login1.Response, "signature"))
		if !errors.Is(err, ErrRefused) {
			t.Errorf("tampered signature: %v, want refused", err)
		}
	})

	t.Run("session", func(t *testing.T) {
		at(login1, Timeout+time.Second)
		if _, _, _, err := rp.FinishLogin(alice(login1.Before...), login1.Session, login1.Response); !errors.Is(err, ErrSessionExpired) {
			t.Errorf("session after %v: %v, want ErrSessionExpired", Timeout, err)
		}
		at(login1, time.Minute)
		if _, _, _, err := rp.FinishLogin(alice(login1.Before...), regA.Session, login1.Response); !errors.Is(err, ErrSessionInvalid) {
			t.Errorf("registration session in FinishLogin: %v, want ErrSessionInvalid", err)
		}
		if _, _, err := rp.FinishRegistration(alice(), login1.Session, regA.Response); !errors.Is(err, ErrSessionInvalid) {
			t.Errorf("login session in FinishRegistration: %v, want ErrSessionInvalid", err)
		}
		if _, _, _, _, err := rp.FinishDiscoverableLogin(login1.Session, login1.Response, nil); !errors.Is(err, ErrSessionInvalid) {
			t.Errorf("login session in FinishDiscoverableLogin: %v, want ErrSessionInvalid", err)
		}
		if _, _, _, err := rp.FinishLogin(alice(login1.Before...), []byte("{}"), login1.Response); !errors.Is(err, ErrSessionInvalid) {
			t.Errorf("empty session: %v, want ErrSessionInvalid", err)
		}
	})

	t.Run("passkey", func(t *testing.T) {
		at(passkey, time.Minute)
		var asked []byte
		u, id, cred, uv, err := rp.FinishDiscoverableLogin(passkey.Session, passkey.Response, func(h []byte) (User, error) {
			asked = h
			return user(passkey.UID, bs(passkey.Before)...), nil
		})
		if err != nil || !bytes.Equal(asked, UserHandle(passkey.UID)) || !bytes.Equal(u.ID, UserHandle(passkey.UID)) || !bytes.Equal(id, passkey.CredID) || !uv || count(cred) != count(passkey.Cred) {
			t.Errorf("FinishDiscoverableLogin = handle asked %x, user %x, %x, uv %v, %v", asked, u.ID, id, uv, err)
		}
		_, _, _, _, err = rp.FinishDiscoverableLogin(passkey.Session, passkey.Response, func([]byte) (User, error) {
			return user(other, find(kindRegistration, other, 0).Cred), nil
		})
		if !errors.Is(err, ErrRefused) {
			t.Errorf("%s's passkey looked up as %s: %v, want refused", passkey.UID, other, err)
		}
		_, _, _, _, err = rp.FinishDiscoverableLogin(passkey.Session, passkey.Response, func([]byte) (User, error) { return User{}, ErrUnknownUser })
		if !errors.Is(err, ErrUnknownUser) {
			t.Errorf("unknown handle: %v, want the lookup's error", err)
		}
	})

	t.Run("amr", func(t *testing.T) {
		for _, c := range []struct {
			cred []byte
			uv   bool
			want []string
		}{
			{login1.Cred, login1.UV, []string{"hwk", "user", "mfa"}},
			{loginD.Cred, loginD.UV, []string{"hwk", "user"}},
			{backupEligible(t, login1.Cred), true, []string{"swk", "user", "mfa"}},
		} {
			if got, err := AMR(c.cred, c.uv); err != nil || !slices.Equal(got, c.want) {
				t.Errorf("AMR(uv %v) = %v, %v; want %v", c.uv, got, err, c.want)
			}
		}
	})
}

func bs(rs []json.RawMessage) [][]byte {
	out := make([][]byte, len(rs))
	for i, r := range rs {
		out[i] = r
	}
	return out
}

// withOrigin rewrites the origin in a response's clientDataJSON.
func withOrigin(t *testing.T, resp []byte, origin string) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(resp, &m); err != nil {
		t.Fatal(err)
	}
	r := m["response"].(map[string]any)
	cd, err := base64.RawURLEncoding.DecodeString(r["clientDataJSON"].(string))
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(cd, &c); err != nil {
		t.Fatal(err)
	}
	c["origin"] = origin
	cd, _ = json.Marshal(c)
	r["clientDataJSON"] = base64.RawURLEncoding.EncodeToString(cd)
	out, _ := json.Marshal(m)
	return out
}

// tamper flips a bit of a response field (base64url).
func tamper(t *testing.T, resp []byte, field string) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(resp, &m); err != nil {
		t.Fatal(err)
	}
	r := m["response"].(map[string]any)
	b, err := base64.RawURLEncoding.DecodeString(r[field].(string))
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 1
	r[field] = base64.RawURLEncoding.EncodeToString(b)
	out, _ := json.Marshal(m)
	return out
}

func backupEligible(t *testing.T, cred []byte) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(cred, &m); err != nil {
		t.Fatal(err)
	}
	m["flags"].(map[string]any)["backupEligible"] = true
	out, _ := json.Marshal(m)
	return out
}

func sessionChallenge(t *testing.T, session []byte) string {
	t.Helper()
	var s struct {
		Data struct {
			Challenge string `json:"challenge"`
		} `json:"data"`
	}
	if err := json.Unmarshal(session, &s); err != nil || s.Data.Challenge == "" {
		t.Fatalf("session without challenge: %v", err)
	}
	return s.Data.Challenge
}
