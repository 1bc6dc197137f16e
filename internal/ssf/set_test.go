package ssf

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// decodePart is the JSON of one compact JWS part.
func decodePart(t *testing.T, set string, i int) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(set, ".")[i])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSETRoundTrip(t *testing.T) {
	key := privateKey(t, "ec", "k1")
	v := verifier(publicSet(t, key), t0)
	reason := map[string]string{"en": "admin revoked the user's tokens"}
	cases := []struct {
		name   string
		ev     Event
		subID  string // expected sub_id JSON
		member string // an expected member of the event object
	}{
		{"token", tokenEvent("AT.abc", t0.Add(time.Hour)),
			`{"format":"jwt_id","iss":"` + testIss + `","jti":"AT.abc"}`, ClaimTokenExp},
		{"token without exp", tokenEvent("AT.def", time.Time{}),
			`{"format":"jwt_id","iss":"` + testIss + `","jti":"AT.def"}`, "event_timestamp"},
		{"user by sub", Event{ID: "s2", IssuedAt: t0, Time: t0, InitiatingEntity: InitiatedByAdmin, ReasonAdmin: reason,
			Subject: Subject{Kind: SubjectUser, Issuer: testIss, Sub: "jane@example.com"}},
			`{"format":"iss_sub","iss":"` + testIss + `","sub":"jane@example.com"}`, "reason_admin"},
		{"user by uid", Event{ID: "s3", IssuedAt: t0, Time: t0,
			Subject: Subject{Kind: SubjectUser, UID: "00u1"}},
			`{"format":"complex","user":{"format":"opaque","id":"00u1"}}`, "event_timestamp"},
		{"user by sub and uid", Event{ID: "s4", IssuedAt: t0, Time: t0,
			Subject: Subject{Kind: SubjectUser, Issuer: testIss, Sub: "jane@example.com", UID: "00u1"}},
			`{"format":"complex","user":{"format":"aliases","identifiers":[{"format":"iss_sub","iss":"` + testIss + `","sub":"jane@example.com"},{"format":"opaque","id":"00u1"}]}}`, "event_timestamp"},
		{"client", Event{ID: "s5", Txn: "t5", IssuedAt: t0, Time: t0, InitiatingEntity: InitiatedByAdmin,
			Subject: Subject{Kind: SubjectClient, ClientID: "0oa1"}},
			`{"format":"complex","application":{"format":"opaque","id":"0oa1"}}`, "initiating_entity"},
		{"user by uid at a client", Event{ID: "s8", IssuedAt: t0, Time: t0,
			Subject: Subject{Kind: SubjectUser, UID: "00u1", ClientID: "0oa1"}},
			`{"format":"complex","user":{"format":"opaque","id":"00u1"},"application":{"format":"opaque","id":"0oa1"}}`, "event_timestamp"},
		{"user by sub at a client", Event{ID: "s9", IssuedAt: t0, Time: t0,
			Subject: Subject{Kind: SubjectUser, Issuer: testIss, Sub: "jane@example.com", ClientID: "0oa1"}},
			`{"format":"complex","user":{"format":"iss_sub","iss":"` + testIss + `","sub":"jane@example.com"},"application":{"format":"opaque","id":"0oa1"}}`, "event_timestamp"},
		{"user by sub and uid at a client", Event{ID: "s10", IssuedAt: t0, Time: t0,
			Subject: Subject{Kind: SubjectUser, Issuer: testIss, Sub: "jane@example.com", UID: "00u1", ClientID: "0oa1"}},
			`{"format":"complex","user":{"format":"aliases","identifiers":[{"format":"iss_sub","iss":"` + testIss + `","sub":"jane@example.com"},{"format":"opaque","id":"00u1"}]},"application":{"format":"opaque","id":"0oa1"}}`, "event_timestamp"},
		{"verification", Event{Type: EventVerification, ID: "s6", IssuedAt: t0, State: "abc",
			Subject: Subject{Kind: SubjectStream, StreamID: "st1"}},
			`{"format":"opaque","id":"st1"}`, "state"},
		{"stream updated", Event{Type: EventStreamUpdated, ID: "s7", IssuedAt: t0, Status: StatusPaused, Reason: "maintenance",
			Subject: Subject{Kind: SubjectStream, StreamID: "st1"}},
			`{"format":"opaque","id":"st1"}`, "status"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			set, err := Sign(c.ev, key, testIss, testAud)
			if err != nil {
				t.Fatal(err)
			}
			hdr := decodePart(t, set, 0)
			if hdr["typ"] != TypSET || hdr["alg"] != "ES256" || hdr["kid"] != "k1" {
				t.Errorf("header %v", hdr)
			}
			claims := decodePart(t, set, 1)
			for _, forbidden := range []string{"sub", "exp"} {
				if _, ok := claims[forbidden]; ok {
					t.Errorf("SET carries %s (SSF 4.1.2, 4.1.7)", forbidden)
				}
			}
			if claims["iss"] != testIss || claims["aud"] != testAud || claims["jti"] != c.ev.ID || claims["iat"] != float64(t0.Unix()) {
				t.Errorf("claims %v", claims)
			}
			subID, _ := json.Marshal(claims["sub_id"])
			var got, want any
			_ = json.Unmarshal(subID, &got)
			if err := json.Unmarshal([]byte(c.subID), &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("sub_id %s, want %s", subID, c.subID)
			}
			events, _ := claims["events"].(map[string]any)
			body, ok := events[c.ev.eventType()].(map[string]any)
			if len(events) != 1 || !ok {
				t.Fatalf("events %v", claims["events"])
			}
			if _, ok := body[c.member]; !ok {
				t.Errorf("event object %v lacks %s", body, c.member)
			}
			back, err := v.Verify(set)
			if err != nil {
				t.Fatal(err)
			}
			want2 := c.ev
			if want2.Type == "" {
				want2.Type = EventSessionRevoked
			}
			if !reflect.DeepEqual(back, want2) {
				t.Errorf("round trip\n got %+v\nwant %+v", back, want2)
			}
		})
	}
}

func TestSETKeyTypes(t *testing.T) {
	for _, c := range []struct{ kind, alg string }{{"rsa", "RS256"}, {"ec", "ES256"}, {"ed25519", "EdDSA"}} {
		key := privateKey(t, c.kind, "k-"+c.kind)
		set, err := Sign(tokenEvent("AT.1", t0.Add(time.Hour)), key, testIss, testAud)
		if err != nil {
			t.Fatal(err)
		}
		if alg := decodePart(t, set, 0)["alg"]; alg != c.alg {
			t.Errorf("%s key signs with %v, want %s", c.kind, alg, c.alg)
		}
		if _, err := verifier(publicSet(t, key), t0).Verify(set); err != nil {
			t.Errorf("%s: %v", c.kind, err)
		}
	}
}

// rawSET signs claims as they are, with typ and alg as given.
func rawSET(t *testing.T, key jwk.Key, alg jwa.SignatureAlgorithm, typ string, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	if typ != "" {
		_ = hdr.Set(jws.TypeKey, typ)
	}
	_ = hdr.Set(jws.KeyIDKey, key.KeyID())
	out, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func goodClaims() map[string]any {
	return map[string]any{
		"iss": testIss, "aud": testAud, "iat": t0.Unix(), "jti": "j1",
		"sub_id": map[string]any{"format": "jwt_id", "iss": testIss, "jti": "AT.1"},
		"events": map[string]any{EventSessionRevoked: map[string]any{"event_timestamp": t0.Unix()}},
	}
}

func TestSETRefused(t *testing.T) {
	key := privateKey(t, "ec", "k1")
	other := privateKey(t, "ec", "k1") // same kid, another key
	keys := publicSet(t, key)
	good, err := Sign(tokenEvent("AT.1", t0.Add(time.Hour)), key, testIss, testAud)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifier(keys, t0).Verify(good); err != nil {
		t.Fatalf("the good SET: %v", err)
	}
	parts := strings.Split(good, ".")
	tamper := func(payload map[string]any) string {
		b, _ := json.Marshal(payload)
		return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
	}
	tampered := decodePart(t, good, 1)
	tampered["sub_id"].(map[string]any)["jti"] = "AT.2"
	with := func(f func(map[string]any)) map[string]any { c := goodClaims(); f(c); return c }
	hmacKey, _ := jwk.FromRaw([]byte("0123456789abcdef0123456789abcdef"))
	_ = hmacKey.Set(jwk.KeyIDKey, "k1")
	rsaKey := privateKey(t, "rsa", "r1")

	cases := []struct {
		name string
		set  string
		v    *Verifier
		want error
	}{
		{"tampered payload", tamper(tampered), nil, ErrSignature},
		{"signature of another key", func() string {
			s, _ := Sign(tokenEvent("AT.1", t0.Add(time.Hour)), other, testIss, testAud)
			return s
		}(), nil, ErrSignature},
		{"truncated", parts[0] + "." + parts[1], nil, ErrMalformed},
		{"wrong aud", func() string {
			s, _ := Sign(tokenEvent("AT.1", t0), key, testIss, "https://other.example.com")
			return s
		}(), nil, ErrAudience},
		{"wrong iss", func() string {
			s, _ := Sign(tokenEvent("AT.1", t0), key, "https://evil.example.com", testAud)
			return s
		}(), nil, ErrIssuer},
		{"aud array with ours", rawSET(t, key, jwa.ES256, TypSET, with(func(c map[string]any) { c["aud"] = []string{"x", testAud} })), nil, nil},
		{"typ JWT", rawSET(t, key, jwa.ES256, "JWT", goodClaims()), nil, ErrNotSET},
		{"typ at+jwt", rawSET(t, key, jwa.ES256, "at+jwt", goodClaims()), nil, ErrNotSET},
		{"no typ", rawSET(t, key, jwa.ES256, "", goodClaims()), nil, ErrNotSET},
		{"typ application/secevent+jwt", rawSET(t, key, jwa.ES256, "application/SECEVENT+JWT", goodClaims()), nil, nil},
		{"alg not in allow-list", rawSET(t, rsaKey, jwa.RS256, TypSET, goodClaims()),
			&Verifier{Issuer: testIss, Audience: testAud, Keys: publicSet(t, rsaKey), Algorithms: []jwa.SignatureAlgorithm{jwa.ES256}}, ErrAlgorithm},
		{"HS256 even when listed", rawSET(t, hmacKey, jwa.HS256, TypSET, goodClaims()),
			&Verifier{Issuer: testIss, Audience: testAud, Keys: keys, Algorithms: []jwa.SignatureAlgorithm{jwa.HS256}}, ErrAlgorithm},
		{"alg unfit for the key", rawSET(t, privateKey(t, "rsa", "k1"), jwa.RS256, TypSET, goodClaims()), nil, ErrAlgorithm},
		{"unknown kid", rawSET(t, rsaKey, jwa.RS256, TypSET, goodClaims()),
			verifier(publicSet(t, privateKey(t, "rsa", "r2")), t0), ErrKey},
		{"carries exp", rawSET(t, key, jwa.ES256, TypSET, with(func(c map[string]any) { c["exp"] = t0.Unix() + 60 })), nil, ErrEvent},
		{"carries sub", rawSET(t, key, jwa.ES256, TypSET, with(func(c map[string]any) { c["sub"] = "jane" })), nil, ErrEvent},
		{"two events", rawSET(t, key, jwa.ES256, TypSET, with(func(c map[string]any) {
			c["events"].(map[string]any)[EventVerification] = map[string]any{}
		})), nil, ErrEvent},
		{"unknown event type", rawSET(t, key, jwa.ES256, TypSET, with(func(c map[string]any) {
			c["events"] = map[string]any{"https://schemas.openid.net/secevent/risc/event-type/account-disabled": map[string]any{}}
		})), nil, ErrEvent},
		{"no event_timestamp", rawSET(t, key, jwa.ES256, TypSET, with(func(c map[string]any) {
			c["events"] = map[string]any{EventSessionRevoked: map[string]any{}}
		})), nil, ErrEvent},
		{"email subject", rawSET(t, key, jwa.ES256, TypSET, with(func(c map[string]any) {
			c["sub_id"] = map[string]any{"format": "email", "email": "jane@example.com"}
		})), nil, ErrSubject},
		{"complex with user and a non-opaque application", rawSET(t, key, jwa.ES256, TypSET, with(func(c map[string]any) {
			c["sub_id"] = map[string]any{"format": "complex", "user": map[string]any{"format": "opaque", "id": "u"},
				"application": map[string]any{"format": "email", "email": "c@example.com"}}
		})), nil, ErrSubject},
		{"complex with a bad user and an application", rawSET(t, key, jwa.ES256, TypSET, with(func(c map[string]any) {
			c["sub_id"] = map[string]any{"format": "complex", "user": map[string]any{"format": "opaque"},
				"application": map[string]any{"format": "opaque", "id": "c"}}
		})), nil, ErrSubject},
		{"nested aliases", rawSET(t, key, jwa.ES256, TypSET, with(func(c map[string]any) {
			c["sub_id"] = map[string]any{"format": "complex", "user": map[string]any{"format": "aliases",
				"identifiers": []any{map[string]any{"format": "aliases", "identifiers": []any{}}}}}
		})), nil, ErrSubject},
		{"opaque subject on a revocation", rawSET(t, key, jwa.ES256, TypSET, with(func(c map[string]any) {
			c["sub_id"] = map[string]any{"format": "opaque", "id": "x"}
		})), nil, ErrSubject},
		{"no sub_id", rawSET(t, key, jwa.ES256, TypSET, with(func(c map[string]any) { delete(c, "sub_id") })), nil, ErrEvent},
		{"issued in the future", rawSET(t, key, jwa.ES256, TypSET, with(func(c map[string]any) { c["iat"] = t0.Unix() + 3600 })), nil, ErrIssuedInFuture},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := c.v
			if v == nil {
				v = verifier(keys, t0)
			}
			_, err := v.Verify(c.set)
			if c.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
		})
	}
}

func TestSETHeaderKeyRefused(t *testing.T) {
	// A SET carrying its own key (jwk header) is refused even when the
	// signature verifies with the transmitter's key.
	key := privateKey(t, "ec", "k1")
	pub, _ := jwk.PublicKeyOf(key)
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.TypeKey, TypSET)
	_ = hdr.Set(jws.KeyIDKey, "k1")
	_ = hdr.Set(jws.JWKKey, pub)
	payload, _ := json.Marshal(goodClaims())
	out, err := jws.Sign(payload, jws.WithKey(jwa.ES256, key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifier(publicSet(t, key), t0).Verify(string(out)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("err %v, want ErrMalformed", err)
	}
}

func TestSignRefuses(t *testing.T) {
	key := privateKey(t, "ec", "k1")
	hmacKey, _ := jwk.FromRaw([]byte("0123456789abcdef0123456789abcdef"))
	for name, c := range map[string]struct {
		ev  Event
		key jwk.Key
		aud string
	}{
		"HMAC key":           {tokenEvent("AT.1", t0), hmacKey, testAud},
		"no aud":             {tokenEvent("AT.1", t0), key, ""},
		"no jti":             {Event{IssuedAt: t0, Time: t0, Subject: Subject{Kind: SubjectClient, ClientID: "c"}}, key, testAud},
		"no event_timestamp": {Event{ID: "x", IssuedAt: t0, Subject: Subject{Kind: SubjectClient, ClientID: "c"}}, key, testAud},
		"no subject":         {Event{ID: "x", IssuedAt: t0, Time: t0}, key, testAud},
		"token without iss":  {Event{ID: "x", IssuedAt: t0, Time: t0, Subject: Subject{Kind: SubjectToken, JTI: "j"}}, key, testAud},
		"verification of a user": {Event{Type: EventVerification, ID: "x", IssuedAt: t0,
			Subject: Subject{Kind: SubjectUser, UID: "u"}}, key, testAud},
	} {
		if _, err := Sign(c.ev, c.key, testIss, c.aud); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
}

func TestSetErrFor(t *testing.T) {
	for err, code := range map[error]string{
		ErrIssuer: ErrCodeInvalidIssuer, ErrAudience: ErrCodeInvalidAudience, ErrKey: ErrCodeInvalidKey,
		ErrSignature: ErrCodeAuthenticationFailed, ErrSubject: ErrCodeInvalidRequest, ErrMalformed: ErrCodeInvalidRequest,
	} {
		if got := SetErrFor(err).Err; got != code {
			t.Errorf("%v: %s, want %s", err, got, code)
		}
	}
}

func TestVerifierKeyFunc(t *testing.T) {
	key := privateKey(t, "ec", "k1")
	pub, err := jwk.PublicKeyOf(key)
	if err != nil {
		t.Fatal(err)
	}
	set, err := Sign(tokenEvent("AT.1", t0.Add(time.Hour)), key, testIss, testAud)
	if err != nil {
		t.Fatal(err)
	}
	errDown := errors.New("keys unreachable")
	var asked []string
	v := verifier(nil, t0)
	v.KeyFunc = func(kid string) (jwk.Key, error) {
		asked = append(asked, kid)
		switch kid {
		case "k1":
			return pub, nil
		case "down":
			return nil, errDown
		}
		return nil, errors.New("unknown kid")
	}
	if _, err := v.Verify(set); err != nil || len(asked) != 1 || asked[0] != "k1" {
		t.Fatalf("verify with KeyFunc: %v, asked %v", err, asked)
	}
	down := privateKey(t, "ec", "down")
	set, _ = Sign(tokenEvent("AT.1", t0.Add(time.Hour)), down, testIss, testAud)
	if _, err := v.Verify(set); !errors.Is(err, ErrKey) || !errors.Is(err, errDown) {
		t.Errorf("KeyFunc error not wrapped in ErrKey: %v", err)
	}
	if e := SetErrFor(ErrKey); e.Err != ErrCodeInvalidKey {
		t.Errorf("setErr %v", e)
	}
	noKID := rawSET(t, privateKey(t, "ec", ""), jwa.ES256, TypSET, goodClaims())
	asked = nil
	if _, err := v.Verify(noKID); !errors.Is(err, ErrKey) || len(asked) != 0 {
		t.Errorf("SET without kid: %v, asked %v", err, asked)
	}
}
