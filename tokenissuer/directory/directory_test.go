package directory

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestHashesVerify(t *testing.T) {
	a, err := HashArgon2id("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	b, err := HashBcrypt("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{a, b} {
		if err := CheckHash(h); err != nil {
			t.Fatalf("%s: %v", h, err)
		}
		if !VerifyPassword(h, "correct horse") {
			t.Errorf("%.10s: right password refused", h)
		}
		if VerifyPassword(h, "correct horsE") || VerifyPassword(h, "") {
			t.Errorf("%.10s: wrong password accepted", h)
		}
	}
	if !strings.HasPrefix(a, "$argon2id$v=19$m=65536,t=3,p=4$") {
		t.Errorf("argon2id PHC string: %s", a)
	}
	if a2, _ := HashArgon2id("correct horse"); a2 == a {
		t.Error("two hashes of one password are equal: no salt")
	}
}

func TestBadHashes(t *testing.T) {
	for _, h := range []string{
		"plaintext",
		"$1$md5crypt",
		"$argon2i$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=16$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=99999999,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", // 95 GiB per sign-in
		"$argon2id$v=19$m=65536,t=1000,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=65536,t=3,p=4$!!$aGFzaGhhc2hoYXNoaGFzaA",
		"$2a$04$short",
	} {
		if CheckHash(h) == nil {
			t.Errorf("%q accepted", h)
		}
		if VerifyPassword(h, "x") {
			t.Errorf("%q verified a password", h)
		}
	}
}

func TestParseFileAndLookups(t *testing.T) {
	h, _ := HashBcrypt("pw")
	f, err := ParseFile([]byte(`{"users":[
		{"id":"u1","login":"Alice@Example.com","password_hash":"` + h + `","profile":{"email":"alice@example.com"},"groups":["finance"]},
		{"id":"u2","login":"bob@example.com","status":"suspended","password_hash":"` + h + `"},
		{"id":"u3","login":"carol@example.com"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	u, err := f.UserByLogin(ctx, " alice@EXAMPLE.com ")
	if err != nil || u.ID != "u1" || !u.InGroup("finance") || u.InGroup("fin") || !u.Active() {
		t.Fatalf("login lookup: %+v %v", u, err)
	}
	if u, err := f.UserByID(ctx, "u2"); err != nil || u.Active() {
		t.Fatalf("suspended user: %+v %v", u, err)
	}
	if _, err := f.UserByID(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
	// CheckPassword: one error for every kind of bad credentials.
	if u, err := CheckPassword(ctx, f, nil, "alice@example.com", "pw"); err != nil || u.ID != "u1" {
		t.Fatalf("good password: %v", err)
	}
	for _, c := range [][2]string{{"alice@example.com", "PW"}, {"nobody@example.com", "pw"}, {"carol@example.com", ""}, {"carol@example.com", "pw"}} {
		if _, err := CheckPassword(ctx, f, nil, c[0], c[1]); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("%v: %v, want ErrBadCredentials", c, err)
		}
	}
	// A suspended user with the right password is identified, so the
	// caller can refuse after a correct password only.
	if u, err := CheckPassword(ctx, f, nil, "bob@example.com", "pw"); err != nil || u.Active() {
		t.Fatalf("suspended user: %v", err)
	}
}

func TestParseFileErrors(t *testing.T) {
	for doc, want := range map[string]string{
		`{"users":[{"login":"a"}]}`:                                   "id is required",
		`{"users":[{"id":"a b","login":"a"}]}`:                        "id is required",
		`{"users":[{"id":"a"}]}`:                                      "login is required",
		`{"users":[{"id":"u1\u0000x","login":"a"}]}`:                  "control characters",
		`{"users":[{"id":"u1\u007f","login":"a"}]}`:                   "control characters",
		`{"users":[{"id":"a","login":"a\u0000b"}]}`:                   "login has a control character",
		`{"users":[{"id":"a","login":"a\u001bb"}]}`:                   "login has a control character",
		`{"users":[{"id":"a","login":"x"},{"id":"a","login":"y"}]}`:   "appears twice",
		`{"users":[{"id":"a","login":"X"},{"id":"b","login":"x"}]}`:   "appears twice",
		`{"users":[{"id":"a","login":"x","status":"gone"}]}`:          "status",
		`{"users":[{"id":"a","login":"x","password_hash":"secret"}]}`: "neither bcrypt nor argon2id",
		`{"users":[{"id":"a","login":"x","passwd":"secret"}]}`:        "unknown field",
		`{"users":[null]}`:                                            "null",
		`not json`:                                                    "directory",
	} {
		if _, err := ParseFile([]byte(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", doc, err, want)
		}
	}
}
