package policy

import (
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/duration"
)

// TestPeopleConditions: include and exclude by user (id or login) and by
// group; exclusions win; a rule naming people never matches without a
// user; a rule without people matches everyone, with or without a user.
func TestPeopleConditions(t *testing.T) {
	cc, pw := "client_credentials", "password"
	set, err := NewSet([]*Policy{{Name: "p", Clients: []string{"*"}, Rules: []*Rule{
		{Name: "finance", Priority: 1, GrantTypes: []string{pw, cc}, Scopes: []string{"*"},
			People: &People{Groups: []string{"finance"}, ExcludeUsers: []string{"mallory@example.com"}}},
		{Name: "bob", Priority: 2, GrantTypes: []string{pw}, Scopes: []string{"*"}, People: &People{Users: []string{"u-bob"}}},
		{Name: "all but contractors", Priority: 3, GrantTypes: []string{pw, cc}, Scopes: []string{"*"}, People: &People{ExcludeGroups: []string{"contractors"}}},
	}}}, map[string]bool{"s": true}, []string{cc, pw})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		user *User
		gt   string
		want string // rule name, "" for no match
	}{
		{"finance member", &User{ID: "u1", Login: "alice@example.com", Groups: []string{"staff", "finance"}}, pw, "finance"},
		{"excluded by login, any case", &User{ID: "u9", Login: "Mallory@Example.com", Groups: []string{"finance"}}, pw, "all but contractors"},
		{"included by id", &User{ID: "u-bob", Login: "bob@example.com"}, pw, "bob"},
		{"group name is exact", &User{ID: "u2", Login: "eve@example.com", Groups: []string{"finance-ro"}}, pw, "all but contractors"},
		{"excluded group", &User{ID: "u3", Login: "c@example.com", Groups: []string{"contractors"}}, pw, ""},
		{"no user skips people rules", nil, cc, "all but contractors"},
	}
	for _, c := range cases {
		m, ok, _ := set.Evaluate(Request{ClientID: "c", GrantType: c.gt, Scopes: []string{"s"}, User: c.user})
		got := ""
		if ok {
			got = m.Rule.Name
		}
		if got != c.want {
			t.Errorf("%s: matched %q, want %q", c.name, got, c.want)
		}
	}
}

func TestRefreshTokenBounds(t *testing.T) {
	mk := func(life, idle time.Duration) []*Policy {
		return []*Policy{{Name: "p", Clients: []string{"*"}, Rules: []*Rule{{Name: "r", GrantTypes: []string{"password"}, Scopes: []string{"*"},
			RefreshTokenLifetime: duration.Duration(life), RefreshTokenIdle: duration.Duration(idle)}}}}
	}
	for _, c := range []struct {
		life, idle time.Duration
		ok         bool
	}{
		{0, 0, true},
		{24 * time.Hour, 0, true}, // idle defaults to min(7d, lifetime)
		{24 * time.Hour, 48 * time.Hour, false},
		{0, time.Minute, false},
		{0, MinRefreshIdle, true}, // the bounds are inclusive
		{0, MinRefreshIdle - time.Second, false},
		{24 * time.Hour, 24 * time.Hour, true},
		{24 * time.Hour, 24*time.Hour + time.Second, false},
		{0, -time.Hour, false},
		{-time.Hour, 0, false},
	} {
		_, err := NewSet(mk(c.life, c.idle), map[string]bool{}, []string{"password"})
		if (err == nil) != c.ok {
			t.Errorf("lifetime %s idle %s: err %v", c.life, c.idle, err)
		}
	}
	r := &Rule{RefreshTokenLifetime: duration.Duration(24 * time.Hour)}
	if r.RefreshIdle() != 24*time.Hour || (&Rule{}).RefreshIdle() != DefaultRefreshIdle || (&Rule{}).RefreshLifetime() != DefaultRefreshLifetime {
		t.Error("refresh defaults")
	}
}
