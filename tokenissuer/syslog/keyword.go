package syslog

import (
	"fmt"
	"strings"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// Okta's bounds on `q` (System Log API reference, request parameters:
// "Max length is 40 characters per keyword, with a maximum of 10
// keyword filters per query").
const (
	MaxKeywordLength = 40
	MaxKeywords      = 10
)

// Keywords is a parsed `q`: space-separated keywords that must all
// match (Okta's keyword filter). A keyword matches an event when it
// equals, ignoring case, one of the event's attribute values or a word
// of one: values are split at white space and at the punctuation of
// URLs and lists, and, as Okta documents, at hyphens too, the hyphenated
// whole staying a candidate ("XOxBw-2JIRnCFd0gG0GjHAAABjY" is matched by
// "XOxBw", "2JIRnCFd0gG0GjHAAABjY" or the whole). Null and empty
// attributes match nothing.
type Keywords struct{ words []string }

// ParseKeywords parses `q`; an empty q is nil (no constraint).
func ParseKeywords(q string) (*Keywords, *Error) {
	words := strings.Fields(q)
	if len(words) == 0 {
		return nil, nil
	}
	if len(words) > MaxKeywords {
		return nil, validation("q", fmt.Sprintf("Freeform search cannot contain more than %d items. Please use fewer items in your search or use an advanced filter to query by specific fields.", MaxKeywords))
	}
	k := &Keywords{}
	for _, w := range words {
		if len([]rune(w)) > MaxKeywordLength {
			return nil, validation("q", "Freeform search cannot contain items longer than 40 characters. Please shorten the items in your search or use an advanced filter to query by specific fields.")
		}
		k.words = append(k.words, strings.ToLower(w))
	}
	return k, nil
}

// Match reports whether every keyword matches one of e's values.
func (k *Keywords) Match(e *store.LogEvent) bool {
	for _, w := range k.words {
		found := false
		eachString(e, func(s string) bool {
			found = valueMatches(s, w)
			return !found
		})
		if !found {
			return false
		}
	}
	return true
}

// wordBreak separates the words of a value: white space, and the
// punctuation of URLs, lists and quoting. Dots, '@' and
// hyphens stay, so host names, logins and ids remain whole.
func wordBreak(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\r', '/', '?', '&', '=', ',', ';', '(', ')', '[', ']', '{', '}', '"', '\'', '<', '>', '|':
		return true
	}
	return false
}

// valueMatches reports whether keyword w (lowercased) is value s or one
// of its words or hyphen parts.
func valueMatches(s, w string) bool {
	if !strings.Contains(strings.ToLower(s), w) {
		return false // fast path: a match is always a substring
	}
	if strings.EqualFold(s, w) {
		return true
	}
	for _, word := range strings.FieldsFunc(s, wordBreak) {
		word = strings.TrimRight(word, ".:")
		if strings.EqualFold(word, w) {
			return true
		}
		if strings.Contains(word, "-") {
			for part := range strings.SplitSeq(word, "-") {
				if strings.EqualFold(part, w) {
					return true
				}
			}
		}
	}
	return false
}

// eachString yields every string attribute value of e (not published),
// until yield returns false.
func eachString(e *store.LogEvent, yield func(string) bool) {
	ok := true
	y := func(s string) {
		if ok && s != "" {
			ok = yield(s)
		}
	}
	yp := func(s *string) {
		if s != nil {
			y(*s)
		}
	}
	ym := func(v any) {
		if ok {
			ok = walkStrings(v, yield)
		}
	}
	y(e.UUID)
	y(e.EventType)
	y(e.Version)
	y(e.Severity)
	y(e.DisplayMessage)
	y(e.LegacyEventType)
	if a := e.Actor; a != nil {
		y(a.ID)
		y(a.Type)
		y(a.AlternateID)
		y(a.DisplayName)
		ym(a.DetailEntry)
	}
	if c := e.Client; c != nil {
		if u := c.UserAgent; u != nil {
			y(u.RawUserAgent)
			y(u.OS)
			y(u.Browser)
		}
		y(c.Zone)
		y(c.Device)
		yp(c.ID)
		y(c.IPAddress)
		ym(c.GeographicalContext)
	}
	if o := e.Outcome; o != nil {
		y(o.Result)
		yp(o.Reason)
	}
	for n := range e.Target {
		t := &e.Target[n]
		y(t.ID)
		y(t.Type)
		y(t.AlternateID)
		y(t.DisplayName)
		ym(t.DetailEntry)
	}
	if t := e.Transaction; t != nil {
		y(t.Type)
		y(t.ID)
		ym(t.Detail)
	}
	if d := e.DebugContext; d != nil {
		ym(d.DebugData)
	}
	if a := e.AuthenticationContext; a != nil {
		yp(a.AuthenticationProvider)
		yp(a.CredentialProvider)
		yp(a.CredentialType)
		yp(a.Interface)
		y(a.ExternalSessionID)
		ym(a.Issuer)
	}
	if s := e.SecurityContext; s != nil {
		yp(s.AsOrg)
		yp(s.ISP)
		yp(s.Domain)
	}
	if r := e.Request; r != nil {
		for _, ip := range r.IPChain {
			y(ip.IP)
			y(ip.Version)
			yp(ip.Source)
			ym(ip.GeographicalContext)
		}
	}
}

// walkStrings yields the strings inside a free-form value; it reports
// false when yield asked to stop.
func walkStrings(v any, yield func(string) bool) bool {
	switch t := v.(type) {
	case string:
		return t == "" || yield(t)
	case []string:
		for _, s := range t {
			if s != "" && !yield(s) {
				return false
			}
		}
	case []any:
		for _, x := range t {
			if !walkStrings(x, yield) {
				return false
			}
		}
	case map[string]any:
		for _, x := range t {
			if !walkStrings(x, yield) {
				return false
			}
		}
	case map[string]string:
		for _, s := range t {
			if s != "" && !yield(s) {
				return false
			}
		}
	}
	return true
}
