package syslog

import (
	"encoding/json"
	"strings"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// getter yields the values an attribute path has in an event: none
// when it is absent or null, several for an attribute of every target
// (Okta: `target.id eq "x"` matches an event with any target x).
// Values are string, float64, bool or, below a map, map[string]any.
type getter func(e *store.LogEvent, yield func(v any) bool)

// fieldKey is how attribute names are compared: case-insensitively
// (RFC 7644 section 3.4.2.2: "Attribute names and attribute operators
// used in filters are case insensitive") and without underscores, so
// the snake_case names of Okta's older examples (`event_type`) name the
// same fields.
func fieldKey(path string) string {
	return strings.ToLower(strings.ReplaceAll(path, "_", ""))
}

func str(f func(e *store.LogEvent) string) getter {
	return func(e *store.LogEvent, yield func(any) bool) {
		if s := f(e); s != "" {
			yield(s)
		}
	}
}

func strPtr(f func(e *store.LogEvent) *string) getter {
	return func(e *store.LogEvent, yield func(any) bool) {
		if s := f(e); s != nil && *s != "" {
			yield(*s)
		}
	}
}

func each[T any](list func(e *store.LogEvent) []T, f func(*T) string) getter {
	return func(e *store.LogEvent, yield func(any) bool) {
		l := list(e)
		for n := range l {
			if s := f(&l[n]); s != "" && !yield(s) {
				return
			}
		}
	}
}

func targets(e *store.LogEvent) []store.LogTarget { return e.Target }

func ipChain(e *store.LogEvent) []store.LogIPAddress {
	if e.Request == nil {
		return nil
	}
	return e.Request.IPChain
}

func actor(e *store.LogEvent) *store.LogActor {
	if e.Actor == nil {
		return &store.LogActor{}
	}
	return e.Actor
}

func client(e *store.LogEvent) *store.LogClient {
	if e.Client == nil {
		return &store.LogClient{}
	}
	return e.Client
}

func userAgent(e *store.LogEvent) *store.LogUserAgent {
	if c := client(e); c.UserAgent != nil {
		return c.UserAgent
	}
	return &store.LogUserAgent{}
}

func outcome(e *store.LogEvent) *store.LogOutcome {
	if e.Outcome == nil {
		return &store.LogOutcome{}
	}
	return e.Outcome
}

func transaction(e *store.LogEvent) *store.LogTransaction {
	if e.Transaction == nil {
		return &store.LogTransaction{}
	}
	return e.Transaction
}

func authn(e *store.LogEvent) *store.LogAuthenticationCtx {
	if e.AuthenticationContext == nil {
		return &store.LogAuthenticationCtx{}
	}
	return e.AuthenticationContext
}

func security(e *store.LogEvent) *store.LogSecurityContext {
	if e.SecurityContext == nil {
		return &store.LogSecurityContext{}
	}
	return e.SecurityContext
}

// fields are the LogEvent attributes with a fixed place (Okta's
// LogEvent object), by fieldKey. `published` is not among them: Okta
// refuses it in filters (since and until select by time).
var fields = map[string]getter{
	"uuid":                          str(func(e *store.LogEvent) string { return e.UUID }),
	"eventtype":                     str(func(e *store.LogEvent) string { return e.EventType }),
	"version":                       str(func(e *store.LogEvent) string { return e.Version }),
	"severity":                      str(func(e *store.LogEvent) string { return e.Severity }),
	"displaymessage":                str(func(e *store.LogEvent) string { return e.DisplayMessage }),
	"legacyeventtype":               str(func(e *store.LogEvent) string { return e.LegacyEventType }),
	"actor.id":                      str(func(e *store.LogEvent) string { return actor(e).ID }),
	"actor.type":                    str(func(e *store.LogEvent) string { return actor(e).Type }),
	"actor.alternateid":             str(func(e *store.LogEvent) string { return actor(e).AlternateID }),
	"actor.displayname":             str(func(e *store.LogEvent) string { return actor(e).DisplayName }),
	"target.id":                     each(targets, func(t *store.LogTarget) string { return t.ID }),
	"target.type":                   each(targets, func(t *store.LogTarget) string { return t.Type }),
	"target.alternateid":            each(targets, func(t *store.LogTarget) string { return t.AlternateID }),
	"target.displayname":            each(targets, func(t *store.LogTarget) string { return t.DisplayName }),
	"client.zone":                   str(func(e *store.LogEvent) string { return client(e).Zone }),
	"client.device":                 str(func(e *store.LogEvent) string { return client(e).Device }),
	"client.id":                     strPtr(func(e *store.LogEvent) *string { return client(e).ID }),
	"client.ipaddress":              str(func(e *store.LogEvent) string { return client(e).IPAddress }),
	"client.useragent.rawuseragent": str(func(e *store.LogEvent) string { return userAgent(e).RawUserAgent }),
	"client.useragent.os":           str(func(e *store.LogEvent) string { return userAgent(e).OS }),
	"client.useragent.browser":      str(func(e *store.LogEvent) string { return userAgent(e).Browser }),
	"outcome.result":                str(func(e *store.LogEvent) string { return outcome(e).Result }),
	"outcome.reason":                strPtr(func(e *store.LogEvent) *string { return outcome(e).Reason }),
	"transaction.type":              str(func(e *store.LogEvent) string { return transaction(e).Type }),
	"transaction.id":                str(func(e *store.LogEvent) string { return transaction(e).ID }),
	"authenticationcontext.authenticationprovider": strPtr(func(e *store.LogEvent) *string { return authn(e).AuthenticationProvider }),
	"authenticationcontext.credentialprovider":     strPtr(func(e *store.LogEvent) *string { return authn(e).CredentialProvider }),
	"authenticationcontext.credentialtype":         strPtr(func(e *store.LogEvent) *string { return authn(e).CredentialType }),
	"authenticationcontext.interface":              strPtr(func(e *store.LogEvent) *string { return authn(e).Interface }),
	"authenticationcontext.externalsessionid":      str(func(e *store.LogEvent) string { return authn(e).ExternalSessionID }),
	"authenticationcontext.authenticationstep": func(e *store.LogEvent, yield func(any) bool) {
		if e.AuthenticationContext != nil {
			yield(float64(e.AuthenticationContext.AuthenticationStep))
		}
	},
	"securitycontext.asnumber": func(e *store.LogEvent, yield func(any) bool) {
		if n := security(e).AsNumber; n != nil {
			yield(float64(*n))
		}
	},
	"securitycontext.asorg":  strPtr(func(e *store.LogEvent) *string { return security(e).AsOrg }),
	"securitycontext.isp":    strPtr(func(e *store.LogEvent) *string { return security(e).ISP }),
	"securitycontext.domain": strPtr(func(e *store.LogEvent) *string { return security(e).Domain }),
	"securitycontext.isproxy": func(e *store.LogEvent, yield func(any) bool) {
		if b := security(e).IsProxy; b != nil {
			yield(*b)
		}
	},
	"request.ipchain.ip":      each(ipChain, func(a *store.LogIPAddress) string { return a.IP }),
	"request.ipchain.version": each(ipChain, func(a *store.LogIPAddress) string { return a.Version }),
	"request.ipchain.source": each(ipChain, func(a *store.LogIPAddress) string {
		if a.Source == nil {
			return ""
		}
		return *a.Source
	}),
}

// maps are the free-form attributes (string to value maps) by the
// fieldKey of their path; a filter names a key below one with further
// segments, e.g. debugContext.debugData.grantType.
var maps = map[string]func(e *store.LogEvent, yield func(m any) bool){
	"actor.detailentry": func(e *store.LogEvent, yield func(any) bool) {
		if e.Actor != nil && e.Actor.DetailEntry != nil {
			yield(e.Actor.DetailEntry)
		}
	},
	"target.detailentry": func(e *store.LogEvent, yield func(any) bool) {
		for n := range e.Target {
			if m := e.Target[n].DetailEntry; m != nil && !yield(m) {
				return
			}
		}
	},
	"client.geographicalcontext": func(e *store.LogEvent, yield func(any) bool) {
		if e.Client != nil && e.Client.GeographicalContext != nil {
			yield(e.Client.GeographicalContext)
		}
	},
	"transaction.detail": func(e *store.LogEvent, yield func(any) bool) {
		if e.Transaction != nil && e.Transaction.Detail != nil {
			yield(e.Transaction.Detail)
		}
	},
	"debugcontext.debugdata": func(e *store.LogEvent, yield func(any) bool) {
		if e.DebugContext != nil && e.DebugContext.DebugData != nil {
			yield(e.DebugContext.DebugData)
		}
	},
	"authenticationcontext.issuer": func(e *store.LogEvent, yield func(any) bool) {
		if e.AuthenticationContext != nil && e.AuthenticationContext.Issuer != nil {
			yield(e.AuthenticationContext.Issuer)
		}
	},
	"request.ipchain.geographicalcontext": func(e *store.LogEvent, yield func(any) bool) {
		for _, a := range ipChain(e) {
			if a.GeographicalContext != nil && !yield(a.GeographicalContext) {
				return
			}
		}
	},
}

// attribute resolves a filter's attribute path, or reports it unknown.
func attribute(path string) (getter, bool) {
	key := fieldKey(path)
	if g, ok := fields[key]; ok {
		return g, true
	}
	segs := strings.Split(path, ".")
	for n := len(segs); n >= 1; n-- {
		root, ok := maps[fieldKey(strings.Join(segs[:n], "."))]
		if !ok {
			continue
		}
		below := segs[n:]
		return func(e *store.LogEvent, yield func(any) bool) {
			root(e, func(m any) bool { return walk(m, below, yield) })
		}, true
	}
	return nil, false
}

// walk yields the leaf values at path below v, flattening arrays; it
// reports false when yield asked to stop.
func walk(v any, path []string, yield func(any) bool) bool {
	switch t := v.(type) {
	case nil:
		return true
	case []any:
		for _, x := range t {
			if !walk(x, path, yield) {
				return false
			}
		}
		return true
	case []string:
		for _, x := range t {
			if !walk(x, path, yield) {
				return false
			}
		}
		return true
	}
	if len(path) == 0 {
		if leaf, ok := scalar(v); ok {
			return yield(leaf)
		}
		if m, ok := v.(map[string]any); ok && len(m) > 0 {
			return yield(m) // present, for pr; equal to nothing
		}
		return true
	}
	switch m := v.(type) {
	case map[string]any:
		x, ok := lookup(m, path[0])
		if !ok {
			return true
		}
		return walk(x, path[1:], yield)
	case map[string]string:
		x, ok := lookup(m, path[0])
		if !ok {
			return true
		}
		return walk(x, path[1:], yield)
	}
	return true
}

// lookup finds key in m: exactly, else case-insensitively (attribute
// names are case insensitive, RFC 7644 section 3.4.2.2); of several
// keys equal but for case, the exact one, else the least.
func lookup[V any](m map[string]V, key string) (V, bool) {
	if v, ok := m[key]; ok {
		return v, true
	}
	var found V
	best, ok := "", false
	for k, v := range m {
		if strings.EqualFold(k, key) && (!ok || k < best) {
			found, best, ok = v, k, true
		}
	}
	return found, ok
}

// scalar converts a leaf value to string, float64 or bool; empty
// strings are no value.
func scalar(v any) (any, bool) {
	switch t := v.(type) {
	case string:
		return t, t != ""
	case bool:
		return t, true
	case float64:
		return t, true
	case float32:
		return float64(t), true
	case int:
		return float64(t), true
	case int32:
		return float64(t), true
	case int64:
		return float64(t), true
	case uint32:
		return float64(t), true
	case uint64:
		return float64(t), true
	case json.Number:
		f, err := t.Float64()
		return f, err == nil
	}
	return nil, false
}
