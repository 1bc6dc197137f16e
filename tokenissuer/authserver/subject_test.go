package authserver

import (
	"testing"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/claims"
)

// TestSubjectExpression: a server's subject expression (Okta lets a
// custom authorization server map `sub`) sets the sub of user access
// tokens; one that fails at run time keeps the login and warns.
func TestSubjectExpression(t *testing.T) {
	for _, tc := range []struct {
		expr, want string
		warned     int
	}{
		{`String.substringBefore(user.login, "@")`, "alice", 0},
		{`user.nosuch`, "alice@example.com", 1},
	} {
		e := newFlowEnvWith(t, "https://id.example.com", func(o *Options) {
			o.Servers["default"].Subject = &claims.SubjectExpr{Language: claims.Okta, Value: tc.expr}
		}, nil)
		code, body := e.redeem("web", e.code("web", webCB, "", "openid", "read"), webCB, "")
		if code != 200 {
			t.Fatalf("%s: token: %d %v", tc.expr, code, body)
		}
		if sub := payload(t, body["access_token"].(string))["sub"]; sub != tc.want {
			t.Errorf("%s: sub = %v, want %s", tc.expr, sub, tc.want)
		}
		if n := e.logs.FilterMessage("subject expression failed: sub is the login").Len(); n != tc.warned {
			t.Errorf("%s: %d warnings, want %d", tc.expr, n, tc.warned)
		}
	}
}
