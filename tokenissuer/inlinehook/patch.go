package inlinehook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// LifetimePath is the path of a token's lifetime in a patch.
const LifetimePath = "/token/lifetime/expiration"

// Reserved claims (Token inline hook reference, "Reserved claims for
// Token Hooks"): a patch naming one fails. The access token's aud and
// sub are not in this list: "Although the aud and sub claims are listed
// as reserved claims, you can modify those claims in access tokens."
var (
	ReservedIdentity = set("acr", "active", "aid", "amr", "app_id", "app_type", "at_hash", "aud", "auth_time",
		"c_hash", "cid", "client_id", "client_ip", "client_req_id", "client_type", "client_user_agent", "cnf",
		"device_compliance", "device_id", "device_known", "device_managed", "device_name", "device_trust", "did",
		"dst", "exp", "group", "groups", "hotk", "iat", "idp", "idp_iss", "iss", "jti", "mac_key", "may_act",
		"nonce", "oid", "okta_emailVerified", "okta_lastUpdated", "orig", "permissions", "purpose",
		"pwd_exp_days", "pwd_exp_time", "rid", "role", "scope", "scopes", "sid", "sub", "term", "token_type",
		"user_ip", "ver")
	// ReservedAccess is Okta's list for access tokens plus amr, a
	// system claim of this issuer's access tokens, RFC 8693's act and
	// may_act (a hook must not name a token exchange's actor), and,
	// stricter than Okta, RFC 9068's scope and client_id and RFC 7519's
	// nbf: this repository's gateway refuses a token with both scp and
	// scope, and a hook must not make a token valid later than issued
	// nor name a second client.
	ReservedAccess = set("acr", "act", "amr", "may_act", "as_uri", "auth_time", "authorization_details", "cid", "client_id", "cnf", "exp",
		"groups", "iat", "iss", "jti", "nbf", "rpt", "rsi", "scope", "scp", "sid", "token_type", "uid", "username", "ver")
)

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// Claims is one token as a patch sees it: every claim, as the request
// showed it, and its lifetime in seconds.
type Claims struct {
	Claims   map[string]any
	Lifetime int64
	// Reserved are the names a patch may not touch.
	Reserved map[string]bool
	// Required are names that may be replaced by a non-empty string
	// but not removed (the access token's aud and sub).
	Required map[string]bool
}

// Apply runs every command on copies of access and identity (nil: no
// ID token is minted) and, only when all succeed, returns the patched
// copies. Any failure fails the whole answer and the tokens stay as
// they were ("When a hook command ... can't be performed, the inline
// hook operation is skipped"): an unknown command or op, a reserved
// claim, a claim or member or index that does not exist for replace or
// remove, a remove with a value other than null, a lifetime out of
// range, a command for a token not minted, a value nested deeper than
// MaxDepth.
func Apply(cmds []Command, access, identity *Claims) (a, id *Claims, err error) {
	a, err = access.copy()
	if err != nil {
		return nil, nil, err
	}
	if identity != nil {
		if id, err = identity.copy(); err != nil {
			return nil, nil, err
		}
	}
	for n, c := range cmds {
		var t *Claims
		switch c.Type {
		case CommandAccessPatch:
			t = a
		case CommandIdentityPatch:
			if id == nil {
				return nil, nil, fmt.Errorf("commands[%d]: %s, but no ID token is minted", n, c.Type)
			}
			t = id
		default:
			return nil, nil, fmt.Errorf("commands[%d]: unsupported command type %q", n, c.Type)
		}
		for k, op := range c.Value {
			if err := t.apply(op); err != nil {
				return nil, nil, fmt.Errorf("commands[%d].value[%d]: %s %q: %w", n, k, op.Op, op.Path, err)
			}
		}
	}
	for _, t := range []*Claims{a, id} {
		if t == nil {
			continue
		}
		for name, v := range t.Claims {
			if depth(v, 0) > MaxDepth {
				return nil, nil, fmt.Errorf("claim %q is nested more than %d deep", name, MaxDepth)
			}
		}
	}
	return a, id, nil
}

// MaxDepth bounds how deep a claim's value nests (objects and arrays):
// the gateway's strict JSON parser (internal/jsonstrict) refuses a
// token whose claims nest deeper, so such a token would be useless.
const MaxDepth = 32

// depth is how many containers v nests, up to MaxDepth+1 (d is the
// depth of v's container; it stops counting past the bound).
func depth(v any, d int) int {
	if d > MaxDepth {
		return d
	}
	most := d
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			most = max(most, depth(e, d+1))
		}
		return max(most, d+1)
	case []any:
		for _, e := range x {
			most = max(most, depth(e, d+1))
		}
		return max(most, d+1)
	}
	return d
}

// copy is a deep copy through JSON, so that nested values are the
// map[string]any and []any a patch walks, as the service saw them.
func (c *Claims) copy() (*Claims, error) {
	b, err := json.Marshal(c.Claims)
	if err != nil {
		return nil, fmt.Errorf("encoding claims: %w", err)
	}
	m := map[string]any{}
	if err := decodeValue(b, &m); err != nil {
		return nil, err
	}
	return &Claims{Claims: m, Lifetime: c.Lifetime, Reserved: c.Reserved, Required: c.Required}, nil
}

func decodeValue(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

func (c *Claims) apply(op Operation) error {
	if op.Path == LifetimePath {
		return c.setLifetime(op)
	}
	rest, ok := strings.CutPrefix(op.Path, "/claims/")
	if !ok || rest == "" {
		return fmt.Errorf("the path must be /claims/<name>[/...] or %s", LifetimePath)
	}
	tokens := strings.Split(rest, "/")
	for i, t := range tokens {
		u, err := unescape(t)
		if err != nil {
			return err
		}
		tokens[i] = u
	}
	name := tokens[0]
	if name == "" {
		return fmt.Errorf("empty claim name")
	}
	if c.Reserved[name] {
		return fmt.Errorf("claim %q is reserved", name)
	}
	var value any
	switch op.Op {
	case "add", "replace":
		if len(op.Value) == 0 {
			return fmt.Errorf("a value is required")
		}
		if err := decodeValue(op.Value, &value); err != nil {
			return fmt.Errorf("the value is not JSON")
		}
	case "remove":
		// "If you provide it in the response, it should be set to
		// null. Providing any other value fails the entire PATCH."
		if len(op.Value) != 0 && string(bytes.TrimSpace(op.Value)) != "null" {
			return fmt.Errorf("remove takes no value (or null)")
		}
	default:
		return fmt.Errorf("unsupported op (add, replace or remove)")
	}
	if c.Required[name] {
		if len(tokens) > 1 || op.Op == "remove" {
			return fmt.Errorf("claim %q can only be replaced by a string", name)
		}
		if s, ok := value.(string); !ok || s == "" {
			return fmt.Errorf("claim %q must be a non-empty string", name)
		}
	}
	if len(tokens) == 1 {
		_, exists := c.Claims[name]
		switch op.Op {
		case "add": // an existing claim is replaced (Okta's note on add)
			c.Claims[name] = value
		case "replace":
			if !exists {
				return fmt.Errorf("claim %q is not in the token", name)
			}
			c.Claims[name] = value
		case "remove":
			if !exists {
				return fmt.Errorf("claim %q is not in the token", name)
			}
			delete(c.Claims, name)
		}
		return nil
	}
	inner, ok := c.Claims[name]
	if !ok {
		return fmt.Errorf("claim %q is not in the token", name)
	}
	out, err := patchIn(inner, tokens[1:], op.Op, value)
	if err != nil {
		return err
	}
	c.Claims[name] = out
	return nil
}

// patchIn applies op at path inside v and returns the new v.
func patchIn(v any, path []string, op string, value any) (any, error) {
	key, last := path[0], len(path) == 1
	switch x := v.(type) {
	case map[string]any:
		cur, exists := x[key]
		if !last {
			if !exists {
				return nil, fmt.Errorf("member %q does not exist", key)
			}
			out, err := patchIn(cur, path[1:], op, value)
			if err != nil {
				return nil, err
			}
			x[key] = out
			return x, nil
		}
		switch op {
		case "add":
			x[key] = value
		case "replace":
			if !exists {
				return nil, fmt.Errorf("member %q does not exist", key)
			}
			x[key] = value
		case "remove":
			if !exists {
				return nil, fmt.Errorf("member %q does not exist", key)
			}
			delete(x, key)
		}
		return x, nil
	case []any:
		if last && op == "add" && key == "-" {
			return append(x, value), nil
		}
		i, err := index(key)
		if err != nil {
			return nil, err
		}
		if !last {
			if i >= len(x) {
				return nil, fmt.Errorf("index %d is out of range", i)
			}
			out, err := patchIn(x[i], path[1:], op, value)
			if err != nil {
				return nil, err
			}
			x[i] = out
			return x, nil
		}
		switch op {
		case "add":
			if i > len(x) {
				return nil, fmt.Errorf("index %d is out of range", i)
			}
			x = append(x, nil)
			copy(x[i+1:], x[i:])
			x[i] = value
		case "replace":
			if i >= len(x) {
				return nil, fmt.Errorf("index %d is out of range", i)
			}
			x[i] = value
		case "remove":
			if i >= len(x) {
				return nil, fmt.Errorf("index %d is out of range", i)
			}
			x = append(x[:i], x[i+1:]...)
		}
		return x, nil
	}
	return nil, fmt.Errorf("%q is inside a value that is neither an object nor an array", key)
}

// unescape decodes one reference token (RFC 6901 section 4): ~1 is /,
// ~0 is ~, and a ~ followed by anything else is an error (section 3's
// grammar allows only those two escapes).
func unescape(t string) (string, error) {
	if !strings.Contains(t, "~") {
		return t, nil
	}
	var b strings.Builder
	for i := 0; i < len(t); i++ {
		if t[i] != '~' {
			b.WriteByte(t[i])
			continue
		}
		if i+1 == len(t) || (t[i+1] != '0' && t[i+1] != '1') {
			return "", fmt.Errorf("%q has an escape other than ~0 and ~1 (RFC 6901)", t)
		}
		if t[i+1] == '0' {
			b.WriteByte('~')
		} else {
			b.WriteByte('/')
		}
		i++
	}
	return b.String(), nil
}

// index reads an array index: decimal digits, no leading zero (RFC 6901).
func index(s string) (int, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not an array index", s)
	}
	i, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not an array index", s)
	}
	return i, nil
}

func (c *Claims) setLifetime(op Operation) error {
	if op.Op != "replace" {
		return fmt.Errorf("the lifetime can only be replaced")
	}
	// Okta's type is Number: a JSON string such as "600", which
	// json.Number would take, is refused.
	var v any
	err := decodeValue(op.Value, &v)
	n, ok := v.(json.Number)
	if err != nil || !ok {
		return fmt.Errorf("the lifetime must be a number of seconds")
	}
	secs, err := n.Int64()
	if err != nil {
		return fmt.Errorf("the lifetime must be a whole number of seconds")
	}
	if secs < int64(MinLifetime/time.Second) || secs > int64(MaxLifetime/time.Second) {
		return fmt.Errorf("the lifetime %ds is outside %d..%d seconds", secs, int64(MinLifetime/time.Second), int64(MaxLifetime/time.Second))
	}
	c.Lifetime = secs
	return nil
}
