package staticsource

import (
	"context"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
)

const hash = "$2a$04$9dBqz3kcnaQYkeKEKhB0AuCRhoUjvA0.FHYGvtx3Qx9oqe9W5a7gy"

func parse(t *testing.T, src string) (*Module, error) {
	t.Helper()
	m := new(Module)
	err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser(src))
	return m, err
}

func TestCaddyfileUsers(t *testing.T) {
	m, err := parse(t, `static {
		user Alice@Example.com {
			id 00u1
			password_hash `+hash+`
			profile name "Alice Example"
			profile email alice@example.com
			groups staff
			groups finance
		}
		user bob@example.com {
			id 00u2
			status suspended
		}
	}`)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := m.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	u, err := m.UserByLogin(context.Background(), "alice@example.com")
	if err != nil || u.ID != "00u1" || u.Profile["name"] != "Alice Example" || strings.Join(u.Groups, ",") != "staff,finance" || !u.Active() {
		t.Fatalf("alice: %+v, %v", u, err)
	}
	if b, err := m.UserByID(context.Background(), "00u2"); err != nil || b.Active() {
		t.Fatalf("bob: %+v, %v", b, err)
	}
	if _, err := m.UserByLogin(context.Background(), "carol@example.com"); err != directory.ErrNotFound {
		t.Fatalf("unknown user: %v", err)
	}
}

func TestCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{`static extra`, "wrong argument count"},
		{`static {
		}`, "at least one user"},
		{`static {
			people x
		}`, `unknown subdirective "people"`},
		{`static {
			user
		}`, "exactly one login"},
		{`static {
			user a b
		}`, "exactly one login"},
		{"static {\n user \"a\x00b\"\n}", "login \"a\\x00b\" has a control character, at Testfile:2"},
		{"static {\n user a {\n  id \"u1\x00x\"\n }\n}", "id \"u1\\x00x\" has a control character"},
		{`static {
			user a {
				id 1
				id 2
			}
		}`, `duplicate subdirective "id"`},
		{`static {
			user a {
				profile name
			}
		}`, "attribute name and one value"},
		{`static {
			user a {
				profile name x
				profile name y
			}
		}`, `profile "name" defined twice`},
		{`static {
			user a {
				password secret
			}
		}`, `unknown subdirective "password"`},
		{`static {
			user a {
				groups
			}
		}`, "wrong argument count"},
	} {
		if _, err := parse(t, tc.src); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s\nerr = %v, want %q", tc.src, err, tc.want)
		}
	}
}

// TestProvisionValidates: the users get the directory file's checks.
func TestProvisionValidates(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	for _, tc := range []struct {
		users []*directory.User
		want  string
	}{
		{[]*directory.User{{Login: "a"}}, "id is required"},
		{[]*directory.User{{ID: "1", Login: "a"}, {ID: "2", Login: "A"}}, "appears twice"},
		{[]*directory.User{{ID: "1", Login: "a", Status: "gone"}}, "status must be"},
		{[]*directory.User{{ID: "u1\x00x", Login: "a"}}, "control characters"},
		{[]*directory.User{{ID: "1", Login: "a\x00b"}}, "login has a control character"},
		{[]*directory.User{{ID: "1", Login: "a", PasswordHash: "plaintext"}}, "user \"a\""},
	} {
		m := &Module{Users: tc.users}
		if err := m.Provision(ctx); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %q", tc.users[len(tc.users)-1], err, tc.want)
		}
	}
}
