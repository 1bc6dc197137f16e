package inlinehook

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/apiaccess/caddy-apiaccess/internal/jsonstrict"
)

func claims(t *testing.T, js string) *Claims {
	t.Helper()
	m := map[string]any{}
	if err := json.Unmarshal([]byte(js), &m); err != nil {
		t.Fatal(err)
	}
	return &Claims{Claims: m, Lifetime: 3600, Reserved: ReservedAccess, Required: map[string]bool{"aud": true, "sub": true}}
}

func ops(t *testing.T, js string) []Command {
	t.Helper()
	var c []Operation
	if err := json.Unmarshal([]byte(js), &c); err != nil {
		t.Fatal(err)
	}
	return []Command{{Type: CommandAccessPatch, Value: c}}
}

// TestApplyJSONPatch: Okta's examples (Token inline hook reference,
// "Sample JSON payloads of responses") and RFC 6901 paths.
func TestApplyJSONPatch(t *testing.T) {
	for _, tc := range []struct{ name, in, ops, want string }{
		{"add a claim", `{"employeeId":"00u1"}`, `[{"op":"add","path":"/claims/extPatientId","value":"1234"}]`, `{"employeeId":"00u1","extPatientId":"1234"}`},
		{"add replaces an existing claim", `{"a":1}`, `[{"op":"add","path":"/claims/a","value":2}]`, `{"a":2}`},
		{"add a member", `{"employee_profile":{"employee_id":"1234","name":"Anna"}}`, `[{"op":"add","path":"/claims/employee_profile/department_id","value":"4947"}]`, `{"employee_profile":{"department_id":"4947","employee_id":"1234","name":"Anna"}}`},
		{"add at an index", `{"preferred_airports":["sjc","sfo","oak"]}`, `[{"op":"add","path":"/claims/preferred_airports/3","value":"lax"}]`, `{"preferred_airports":["sjc","sfo","oak","lax"]}`},
		{"insert in the middle", `{"l":["a","c"]}`, `[{"op":"add","path":"/claims/l/1","value":"b"}]`, `{"l":["a","b","c"]}`},
		{"append with -", `{"preferred_airports":["sjc"]}`, `[{"op":"add","path":"/claims/preferred_airports/-","value":"lax"}]`, `{"preferred_airports":["sjc","lax"]}`},
		{"replace a member", `{"p":{"email":"a@x"}}`, `[{"op":"replace","path":"/claims/p/email","value":"b@x"}]`, `{"p":{"email":"b@x"}}`},
		{"replace an element", `{"l":[1,2,3]}`, `[{"op":"replace","path":"/claims/l/1","value":9}]`, `{"l":[1,9,3]}`},
		{"remove an element", `{"l":["sjc","lax","sfo"]}`, `[{"op":"remove","path":"/claims/l/1"}]`, `{"l":["sjc","sfo"]}`},
		{"remove a member with null", `{"p":{"email":"a","name":"b"}}`, `[{"op":"remove","path":"/claims/p/email","value":null}]`, `{"p":{"name":"b"}}`},
		{"escaped names", `{"a/b":{"c~d":1}}`, `[{"op":"replace","path":"/claims/a~1b/c~0d","value":2}]`, `{"a/b":{"c~d":2}}`},
		{"deep path", `{"x":{"y":[{"z":1}]}}`, `[{"op":"replace","path":"/claims/x/y/0/z","value":2}]`, `{"x":{"y":[{"z":2}]}}`},
		{"large numbers stay exact", `{}`, `[{"op":"add","path":"/claims/n","value":12345678901234567890}]`, `{"n":12345678901234567890}`},
		{"aud and sub replaced in the access token", `{"aud":"api://a","sub":"s"}`, `[{"op":"replace","path":"/claims/aud","value":"api://b"},{"op":"replace","path":"/claims/sub","value":"t"}]`, `{"aud":"api://b","sub":"t"}`},
	} {
		in := claims(t, tc.in)
		a, _, err := Apply(ops(t, tc.ops), in, nil)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if b, _ := json.Marshal(a.Claims); string(b) != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, b, tc.want)
		}
		if b, _ := json.Marshal(in.Claims); string(b) != mustCompact(t, tc.in) {
			t.Errorf("%s: the input was changed: %s", tc.name, b)
		}
	}
}

func mustCompact(t *testing.T, js string) string {
	var v any
	_ = json.Unmarshal([]byte(js), &v)
	b, _ := json.Marshal(v)
	return string(b)
}

func TestApplyRefuses(t *testing.T) {
	for _, tc := range []struct{ name, in, ops, want string }{
		{"reserved", `{"scp":["a"]}`, `[{"op":"replace","path":"/claims/scp","value":["b"]}]`, "reserved"},
		{"leading zero index", `{"l":[1,2]}`, `[{"op":"replace","path":"/claims/l/01","value":3}]`, "not an array index"},
		{"negative index", `{"l":[1,2]}`, `[{"op":"remove","path":"/claims/l/-1"}]`, "not an array index"},
		{"- for replace", `{"l":[1]}`, `[{"op":"replace","path":"/claims/l/-","value":3}]`, "not an array index"},
		{"into a string", `{"s":"x"}`, `[{"op":"add","path":"/claims/s/k","value":1}]`, "neither an object nor an array"},
		{"add without a value", `{}`, `[{"op":"add","path":"/claims/a"}]`, "a value is required"},
		{"empty name", `{}`, `[{"op":"add","path":"/claims/","value":1}]`, "the path must be"},
		{"sub removed", `{"sub":"s"}`, `[{"op":"remove","path":"/claims/sub"}]`, "can only be replaced"},
		{"aud empty", `{"aud":"a"}`, `[{"op":"replace","path":"/claims/aud","value":""}]`, "non-empty string"},
		{"lifetime a string", `{}`, `[{"op":"replace","path":"/token/lifetime/expiration","value":"soon"}]`, "number of seconds"},
		{"lifetime a fraction", `{}`, `[{"op":"replace","path":"/token/lifetime/expiration","value":600.5}]`, "whole number"},
		{"lifetime a numeric string", `{}`, `[{"op":"replace","path":"/token/lifetime/expiration","value":"600"}]`, "number of seconds"},
		{"escape ~2", `{"a~2":1}`, `[{"op":"replace","path":"/claims/a~2","value":2}]`, "RFC 6901"},
		{"escape ~ at the end", `{"a~":1}`, `[{"op":"replace","path":"/claims/a~","value":2}]`, "RFC 6901"},
		{"nested escape ~x", `{"a":{"b~x":1}}`, `[{"op":"replace","path":"/claims/a/b~x","value":2}]`, "RFC 6901"},
		{"scope (the gateway refuses scp with scope)", `{"scp":["a"]}`, `[{"op":"add","path":"/claims/scope","value":"a b"}]`, "reserved"},
		{"client_id", `{}`, `[{"op":"add","path":"/claims/client_id","value":"other"}]`, "reserved"},
		{"nbf", `{}`, `[{"op":"add","path":"/claims/nbf","value":99999999999}]`, "reserved"},
		{"nested too deep", `{}`, `[{"op":"add","path":"/claims/deep","value":` + strings.Repeat("[", MaxDepth+1) + `1` + strings.Repeat("]", MaxDepth+1) + `}]`, "nested more than"},
		{"nested too deep by a patch inside", `{"d":` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + `}`, `[{"op":"add","path":"/claims/d` + strings.Repeat("/0", MaxDepth-1) + `/-","value":[]}]`, "nested more than"},
	} {
		if _, _, err := Apply(ops(t, tc.ops), claims(t, tc.in), nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestApplyIdentityReserved(t *testing.T) {
	id := &Claims{Claims: map[string]any{"sub": "u1", "aud": "web", "name": "A"}, Lifetime: 3600, Reserved: ReservedIdentity}
	for _, name := range []string{"sub", "aud", "nonce", "amr", "at_hash"} {
		cmd := []Command{{Type: CommandIdentityPatch, Value: []Operation{{Op: "add", Path: "/claims/" + name, Value: json.RawMessage(`"x"`)}}}}
		if _, _, err := Apply(cmd, claims(t, `{}`), id); err == nil {
			t.Errorf("ID token claim %s patched", name)
		}
	}
	cmd := []Command{{Type: CommandIdentityPatch, Value: []Operation{{Op: "remove", Path: "/claims/name"}, {Op: "replace", Path: LifetimePath, Value: json.RawMessage(`300`)}}}}
	_, got, err := Apply(cmd, claims(t, `{}`), id)
	if err != nil || got.Claims["name"] != nil || got.Lifetime != 300 || id.Claims["name"] != "A" {
		t.Errorf("%v %v", got, err)
	}
}

func TestParseResponse(t *testing.T) {
	for _, bad := range []string{``, `null`, ` null `, `true`, `"x"`, `null x`, `{"commands":{}}`, `{"commands":[{"type":1}]}`, "{\"a\":\"\xff\"}", `{} {}`, `{"error":"x"}`} {
		if _, err := ParseResponse([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	r, err := ParseResponse([]byte(`{"commands":[{"type":"com.okta.access.patch","value":[{"op":"remove","path":"/claims/a"}]}],"debugContext":{"k":1}}`))
	if err != nil || len(r.Commands) != 1 || r.Commands[0].Value[0].Value != nil || string(r.DebugContext) != `{"k":1}` {
		t.Errorf("%+v %v", r, err)
	}
	if s := (&ErrorObject{ErrorSummary: strings.Repeat("é", 2000)}).Summary(); len(s) > maxSummary || !strings.HasPrefix(s, "é") {
		t.Errorf("summary not bounded: %d bytes", len(s))
	}
	if s := (&ErrorObject{ErrorSummary: "  "}).Summary(); s != DefaultErrorSummary {
		t.Errorf("empty summary: %q", s)
	}
}

func TestCheckURL(t *testing.T) {
	for _, u := range []string{"https://h.example.com/x", "https://app.localhost/", "http://localhost:1/", "http://127.0.0.2/", "http://[::1]/"} {
		if err := CheckURL(u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	// *.localhost names are resolved through DNS by Go, and sent to
	// HTTP_PROXY: plain http only for localhost and literal loopback.
	for _, u := range []string{"http://app.localhost/", "http://localhost.example.com/", "http://h.example.com/", "http://10.0.0.1/", "ftp://h/", "https://", "https://u:p@h/", "https://h/#f", "//h/x"} {
		err := CheckURL(u)
		if err == nil {
			t.Errorf("%s accepted", u)
		} else if strings.Contains(err.Error(), "u:p") {
			t.Errorf("error repeats user info: %v", err)
		}
	}
}

// TestApplyDepthMatchesGateway: the deepest value a patch may add is
// one the gateway's strict parser still reads, and one deeper is not.
func TestApplyDepthMatchesGateway(t *testing.T) {
	nest := func(n int) string { return strings.Repeat("[", n) + `1` + strings.Repeat("]", n) }
	for _, n := range []int{MaxDepth, MaxDepth + 1} {
		_, _, err := Apply(ops(t, `[{"op":"add","path":"/claims/deep","value":`+nest(n)+`}]`), claims(t, `{}`), nil)
		_, gwErr := jsonstrict.DecodeObject([]byte(`{"deep":` + nest(n) + `}`))
		if (err == nil) != (gwErr == nil) {
			t.Errorf("depth %d: the patch gives %v, the gateway's parser %v", n, err, gwErr)
		}
	}
}
