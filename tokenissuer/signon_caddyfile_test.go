package tokenissuer_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
)

func init() {
	caddy.RegisterModule(groupsDirectory{})
}

// groupsDirectory is a directory that can list its groups
// (authserver.GroupLister), to show sign-on rules checked against them.
type groupsDirectory struct{}

func (groupsDirectory) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "token_issuer.directory.signon_groups_mock",
		New: func() caddy.Module { return new(groupsDirectory) },
	}
}

func (groupsDirectory) UserByLogin(context.Context, string) (*directory.User, error) {
	return nil, directory.ErrNotFound
}

func (groupsDirectory) UserByID(context.Context, string) (*directory.User, error) {
	return nil, directory.ErrNotFound
}

func (groupsDirectory) Groups() []string { return []string{"admins", "staff"} }

// signOnClient is lines 4-8 of every case below.
const signOnClient = "client app {\nauth_method none\ngrant_types authorization_code\nredirect_uris https://app.example.com/cb\n}\n"

// adaptTokenIssuer adapts body inside `token_issuer { ... }` after
// base_url, so that body starts at line 4.
func adaptTokenIssuer(body string) ([]byte, error) {
	cfg := "{\n\ttoken_issuer {\nbase_url https://id.example.com\n" + body + "\n\t}\n}\n"
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
	return out, err
}

// TestSignOnCaddyfileCheckErrors: the checks Provision makes of sign-on
// policies and authenticators run while adapting, with the error at the
// line of the offending value; the same configuration as JSON is refused
// by Provision with the same words.
func TestSignOnCaddyfileCheckErrors(t *testing.T) {
	const pol = signOnClient + "sign_on_policy p {\nclients app\nrule r {\n" // rule body from line 12
	for _, tc := range []struct {
		name, body string
		want       string
		line       int
	}{
		{"unknown client", signOnClient + "sign_on_policy p {\nclients app nosuch\nrule r\n}", `sign on policy "p": unknown client "nosuch"`, 10},
		{"policy without rules", signOnClient + "sign_on_policy p {\nclients *\n}", `sign on policy "p": a sign-on policy needs at least one rule`, 9},
		{"policy without clients", signOnClient + "sign_on_policy p {\nrule r\n}", `sign on policy "p": clients is required (use "*" for all)`, 9},
		{"policy without a block", signOnClient + "sign_on_policy p", `sign on policy "p": clients is required`, 9},
		{"star not alone", signOnClient + "sign_on_policy p {\nclients * app\nrule r\n}", `clients: "*" must stand alone`, 10},
		{"unknown factor", pol + "factor sms\n}\n}", `rule "r": factor "sms": must be none, any or phishing_resistant`, 12},
		{"unknown access", pol + "groups admins\naccess block\n}\n}", `rule "r": access "block": must be allow or deny`, 13},
		{"unknown enrollment", pol + "factor any\nenrollment later\n}\n}", `rule "r": enrollment "later": must be at_sign_in or deny`, 13},
		{"enrollment without a factor", pol + "enrollment deny\n}\n}", `rule "r": enrollment applies only to a rule with a factor`, 12},
		{"deny with a factor", pol + "access deny\nfactor any\n}\n}", `rule "r": a rule with access deny takes no factor`, 13},
		{"deny with reauthenticate_after", pol + "reauthenticate_after 1h\naccess deny\n}\n}", `rule "r": a rule with access deny takes no reauthenticate_after`, 12},
		{"deny with enrollment", pol + "access deny\nenrollment deny\n}\n}", `rule "r": a rule with access deny takes no enrollment`, 13},
		{"both re-authentication settings", pol + "reauthenticate_after 1h\nreauthenticate_every_sign_in\n}\n}", `give reauthenticate_after or reauthenticate_every_sign_in, not both`, 13},
		{"phishing resistant without webauthn", "authenticators totp\n" + strings.Replace(pol, "clients app", "clients *", 1) + "factor phishing_resistant\n}\n}",
			`rule "r": factor phishing_resistant needs the webauthn authenticator, which is not among the authenticators [totp]`, 13},
		{"unknown authenticator", "authenticators totp sms", `unknown authenticator "sms" (known: totp, webauthn)`, 4},
		{"authenticator twice", "authenticators webauthn webauthn", `authenticator "webauthn" given twice`, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := adaptTokenIssuer(tc.body)
			at := ", at Caddyfile:" + strconv.Itoa(tc.line)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasSuffix(err.Error(), at) {
				t.Errorf("adapt: got %v, want an error containing %q%s", err, tc.want, at)
			}

			tokenissuer.SkipProvisionChecks(true)
			out, err := adaptTokenIssuer(tc.body)
			tokenissuer.SkipProvisionChecks(false)
			if err != nil {
				t.Fatalf("adapting without the checks: %v", err)
			}
			var c caddy.Config
			if err := json.Unmarshal(out, &c); err != nil {
				t.Fatal(err)
			}
			if err := caddy.Validate(&c); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("JSON: got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestSignOnCaddyfileErrors: mistakes of syntax are refused by the
// parser at their line.
func TestSignOnCaddyfileErrors(t *testing.T) {
	const pol = "sign_on_policy p {\nclients *\nrule r {\n" // rule body from line 7
	for _, tc := range []struct {
		name, body, want string
		line             int
	}{
		{"duplicate policy", "sign_on_policy p {\nclients *\nrule r\n}\nsign_on_policy p {\nclients *\nrule r\n}", `sign_on_policy "p" defined twice`, 8},
		{"duplicate rule", "sign_on_policy p {\nclients *\nrule r\nrule r\n}", `rule "r" defined twice`, 7},
		{"policy without name", "sign_on_policy {\nclients *\n}", "wrong argument count", 4},
		{"rule without name", "sign_on_policy p {\nrule {\nfactor any\n}\n}", "wrong argument count", 5},
		{"unknown policy subdirective", "sign_on_policy p {\ngrant_types password\n}", `unknown subdirective "grant_types"`, 5},
		{"unknown rule subdirective", pol + "scopes *\n}\n}", `unknown subdirective "scopes"`, 7},
		{"negative reauthenticate_after", pol + "reauthenticate_after -1h\n}\n}", `reauthenticate_after "-1h": must not be negative`, 7},
		{"zero reauthenticate_after", pol + "reauthenticate_after 0s\n}\n}", `reauthenticate_after "0s": zero would mean the default`, 7},
		{"bad reauthenticate_after", pol + "reauthenticate_after soon\n}\n}", `reauthenticate_after "soon": not a duration`, 7},
		{"every sign-in with an argument", pol + "reauthenticate_every_sign_in yes\n}\n}", "wrong argument count", 7},
		{"factor twice", pol + "factor any\nfactor none\n}\n}", `duplicate subdirective "factor"`, 8},
		{"factor with two values", pol + "factor any phishing_resistant\n}\n}", "wrong argument count", 7},
		{"groups without names", pol + "groups\n}\n}", "wrong argument count", 7},
		{"bad priority", pol + "priority first\n}\n}", `priority "first": not an integer`, 7},
		{"people lines and block", pol + "groups admins\npeople {\nexclude_users bob\n}\n}\n}", "either in a people block or as users/groups/exclude_users/exclude_groups lines, not both", 8},
		{"people block and lines", pol + "people {\ngroups admins\n}\nexclude_users bob\n}\n}", "not both", 10},
		{"unknown people subdirective", pol + "people {\nuser_types admin\n}\n}\n}", `unknown subdirective "user_types"`, 8},
		{"authenticators without kinds", "authenticators", "wrong argument count", 4},
		{"authenticators twice", "authenticators totp\nauthenticators webauthn", `duplicate subdirective "authenticators"`, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := adaptTokenIssuer(tc.body)
			at := "Caddyfile:" + strconv.Itoa(tc.line)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), at) {
				t.Errorf("got %v, want an error containing %q at %s", err, tc.want, at)
			}
		})
	}
}

// TestSignOnCaddyfileAdaptProvisions checks that the sign-on golden
// file, once adapted, is a configuration Caddy accepts (as `caddy
// validate` does): its clients, authenticators and sign-on policies pass
// the issuer's checks.
func TestSignOnCaddyfileAdaptProvisions(t *testing.T) {
	_, want := readAdaptFile(t, "testdata/adapt/sign_on_policies.caddyfiletest")
	var c caddy.Config
	if err := json.Unmarshal([]byte(want), &c); err != nil {
		t.Fatal(err)
	}
	if err := caddy.Validate(&c); err != nil {
		t.Fatalf("sign_on_policies.caddyfiletest does not validate: %v", err)
	}
}

// TestSignOnGroupsFromDirectory: with a directory that lists its groups,
// a sign-on rule naming another group (included or excluded) is refused
// when the configuration is provisioned; groups it knows are accepted.
func TestSignOnGroupsFromDirectory(t *testing.T) {
	cfg := func(people string) *caddy.Config {
		raw := `{"apps": {"token_issuer": {"base_url": "https://id.example.com",
			"directory": {"source": "signon_groups_mock"},
			"clients": [{"client_id": "app", "token_endpoint_auth_method": "none", "grant_types": ["authorization_code"], "redirect_uris": ["https://app.example.com/cb"]}],
			"sign_on_policies": [{"name": "p", "clients": ["app"], "rules": [{"name": "r", "factor": "any", "people": ` + people + `}]}]}}}`
		var c caddy.Config
		if err := json.Unmarshal([]byte(raw), &c); err != nil {
			t.Fatal(err)
		}
		return &c
	}
	if err := caddy.Validate(cfg(`{"groups": ["admins"], "exclude_groups": ["staff"]}`)); err != nil {
		t.Errorf("known groups: %v", err)
	}
	for _, people := range []string{`{"groups": ["admins", "admin"]}`, `{"exclude_groups": ["admin"]}`} {
		err := caddy.Validate(cfg(people))
		if want := `sign on policy "p": rule "r": unknown group "admin"`; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", people, err, want)
		}
	}
}

// TestSignOnGroupsOfStaticDirectory: the static directory knows every
// group there is, so a sign-on rule naming another one is refused at
// load, from the Caddyfile, as `caddy validate` would.
func TestSignOnGroupsOfStaticDirectory(t *testing.T) {
	cfg := func(group string) string {
		return `{
	token_issuer {
		base_url https://id.example.com
		directory static {
			user alice@example.com {
				id 00u1
				password_hash $2a$12$gTYxbFtSul1WXKDfVekdjuv28Ex9JYkC9rmj9/ezDSJEGSO2eSq7.
				groups admins
			}
		}
		client app {
			auth_method none
			grant_types authorization_code
			redirect_uris https://app.example.com/cb
		}
		sign_on_policy p {
			clients app
			rule r {
				groups ` + group + `
				factor any
			}
		}
	}
}
`
	}
	validate := func(caddyfile string) error {
		js, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
		if err != nil {
			return err
		}
		var c caddy.Config
		if err := json.Unmarshal(js, &c); err != nil {
			t.Fatal(err)
		}
		return caddy.Validate(&c)
	}
	if err := validate(cfg("admins")); err != nil {
		t.Fatalf("a group of the directory: %v", err)
	}
	if err := validate(cfg("admin")); err == nil || !strings.Contains(err.Error(), `unknown group "admin"`) {
		t.Fatalf("a group no user is in: %v", err)
	}
}
