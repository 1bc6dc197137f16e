package claims

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/apiaccess/caddy-apiaccess/internal/configerr"
)

func ptr(b bool) *bool { return &b }

// evalFor runs EvaluateFor for kind and fails on any run-time failure.
func evalFor(t *testing.T, s *Set, kind string, in Input) map[string]any {
	t.Helper()
	out := map[string]any{}
	if failed := s.EvaluateFor(kind, in, out); failed != nil {
		t.Fatalf("EvaluateFor(%s): %v", kind, failed)
	}
	return out
}

// TestDisabledClaim: a disabled claim (Okta's status INACTIVE) is in no
// kind of token and not at userinfo, and HasToken does not count it; it
// is still checked at load, so a broken one is refused.
func TestDisabledClaim(t *testing.T) {
	in := input
	in.User = &User{ID: "u1", Login: "alice@example.com", Groups: []string{"fin"}}
	s := compile(t,
		&Claim{Name: "team", Value: `"bi"`, Disabled: true},
		&Claim{Name: "login", Value: `user.login`, Token: IDToken, Disabled: true},
		&Claim{Name: "groups_all", Groups: &GroupsFilter{Type: "starts_with", Value: ""}, Token: IDToken, Disabled: true},
		&Claim{Name: "tier", Value: `"gold"`},
	)
	if got := evalFor(t, s, AccessToken, in); !reflect.DeepEqual(got, map[string]any{"tier": "gold"}) {
		t.Errorf("access token claims %v, want only tier", got)
	}
	for _, kind := range []string{IDToken, Userinfo} {
		if got := evalFor(t, s, kind, in); len(got) != 0 {
			t.Errorf("%s claims %v, want none", kind, got)
		}
		if s.HasToken(kind) {
			t.Errorf("HasToken(%s) counts disabled claims", kind)
		}
	}
	off := compile(t, &Claim{Name: "team", Value: `"bi"`, Disabled: true})
	if off.HasToken(AccessToken) {
		t.Error("HasToken(access_token) counts a disabled claim")
	}
	for _, bad := range []*Claim{
		{Name: "x", Value: `client.nosuch`, Disabled: true},
		{Name: "sub", Value: `"a"`, Disabled: true},
		{Name: "x", Value: `"a"`, Scopes: []string{"nosuch"}, Disabled: true},
	} {
		if _, err := Compile([]*Claim{bad}, isKnown); err == nil {
			t.Errorf("disabled %+v compiled; a disabled claim is still checked", bad)
		}
	}
}

// TestAlwaysIncludeInToken: an ID-token claim with always false is left
// out of the ID token (issued beside an access token) and given at
// userinfo; with true, or unset (the default), it is in both. Access
// tokens never see ID-token claims, and userinfo never access-token ones.
func TestAlwaysIncludeInToken(t *testing.T) {
	in := input
	in.User = &User{ID: "u1", Login: "alice@example.com", Groups: []string{"fin"}}
	s := compile(t,
		&Claim{Name: "at", Value: `"a"`},
		&Claim{Name: "lazy", Value: `user.login`, Token: IDToken, AlwaysIncludeInToken: ptr(false)},
		&Claim{Name: "eager", Value: `user.id`, Token: IDToken, AlwaysIncludeInToken: ptr(true)},
		&Claim{Name: "plain", Value: `"p"`, Token: IDToken},
		&Claim{Name: "teams", Groups: &GroupsFilter{Type: "equals", Value: "fin"}, Token: IDToken, AlwaysIncludeInToken: ptr(false)},
	)
	if got := evalFor(t, s, AccessToken, in); !reflect.DeepEqual(got, map[string]any{"at": "a"}) {
		t.Errorf("access token claims %v", got)
	}
	if got := evalFor(t, s, IDToken, in); !reflect.DeepEqual(got, map[string]any{"eager": "u1", "plain": "p"}) {
		t.Errorf("ID token claims %v, want eager and plain", got)
	}
	want := map[string]any{"lazy": "alice@example.com", "eager": "u1", "plain": "p", "teams": []string{"fin"}}
	if got := evalFor(t, s, Userinfo, in); !reflect.DeepEqual(got, want) {
		t.Errorf("userinfo claims %v, want %v", got, want)
	}
	// Only userinfo has something from a set of not-always claims.
	lazy := compile(t, &Claim{Name: "lazy", Value: `user.login`, Token: IDToken, AlwaysIncludeInToken: ptr(false)})
	if lazy.HasToken(IDToken) || !lazy.HasToken(Userinfo) || lazy.HasToken(AccessToken) {
		t.Errorf("HasToken id %v userinfo %v access %v, want false true false", lazy.HasToken(IDToken), lazy.HasToken(Userinfo), lazy.HasToken(AccessToken))
	}
	// Scope conditions hold at userinfo as in tokens: the granted scopes decide.
	scoped := compile(t, &Claim{Name: "adm", Value: `"yes"`, Token: IDToken, Scopes: []string{"admin"}})
	if got := evalFor(t, scoped, Userinfo, in); len(got) != 0 {
		t.Errorf("userinfo without scope admin: %v", got)
	}
	in.Scopes = []string{"admin"}
	if got := evalFor(t, scoped, Userinfo, in); got["adm"] != "yes" {
		t.Errorf("userinfo with scope admin: %v", got)
	}
}

// TestAlwaysIncludeInTokenAccessToken: Okta's value is always true for
// access-token claims; false there is refused at load, at the field.
func TestAlwaysIncludeInTokenAccessToken(t *testing.T) {
	compile(t, &Claim{Name: "ok", Value: `"a"`, AlwaysIncludeInToken: ptr(true)})
	for _, tok := range []string{"", AccessToken} {
		_, err := Compile([]*Claim{{Name: "x", Value: `"a"`, Token: tok, AlwaysIncludeInToken: ptr(false)}}, isKnown)
		var ce *configerr.Error
		if err == nil || !errors.As(err, &ce) || ce.Field != "always_include_in_token" || !strings.Contains(err.Error(), `claim "x": always_include_in_token false applies to id_token claims only`) {
			t.Errorf("token %q: err = %v, want a refusal at always_include_in_token", tok, err)
		}
	}
}
