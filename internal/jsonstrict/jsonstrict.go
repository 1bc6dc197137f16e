// Package jsonstrict parses JSON objects strictly, for the JOSE headers
// and claims both halves read (token checks at the gateway, DPoP proofs
// at both): duplicate member names refused at every depth, exact
// numbers, bounded nesting.
package jsonstrict

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

var (
	errDuplicateKey = errors.New("duplicate JSON member name")
	errNotObject    = errors.New("not a JSON object")
	errTrailing     = errors.New("trailing data after JSON object")
	errTooDeep      = errors.New("JSON nested too deeply")
	errSyntax       = errors.New("invalid JSON")
)

// maxDepth bounds nesting so a hostile token cannot exhaust the stack:
// a value nested more than maxDepth+1 containers deep is refused.
const maxDepth = 32

// DecodeObject parses a JSON object strictly: members must be unique at
// every depth, compared after unescaping (RFC 7515 section 5.2 lets a
// parser reject duplicates, and accepting them lets two parsers disagree
// about a token), numbers stay exact (json.Number), nesting is bounded
// and nothing but whitespace may follow the object.
//
// It is a single-pass parser of the RFC 8259 grammar producing what
// encoding/json's Decoder (with UseNumber) would produce for a
// map[string]any: strings with escapes, control characters or invalid
// UTF-8 are decoded by encoding/json itself, so escapes, surrogates
// (a lone one becomes U+FFFD) and invalid UTF-8 (replaced by U+FFFD)
// follow its rules exactly. FuzzDecodeObject checks the equivalence.
func DecodeObject(b []byte) (map[string]any, error) {
	p := parser{b: b}
	if p.next() != '{' {
		return nil, errNotObject
	}
	p.i++
	m, err := p.object(0)
	if err != nil {
		return nil, err
	}
	if p.next() != 0 || p.i != len(p.b) {
		return nil, errTrailing
	}
	return m, nil
}

type parser struct {
	b []byte
	i int
}

// next skips whitespace (RFC 8259 section 2: space, tab, LF, CR) and
// returns the byte at the cursor, or 0 at the end of the input. A 0
// byte in the input is never valid where next is used, so the
// ambiguity is harmless.
func (p *parser) next() byte {
	for p.i < len(p.b) {
		switch c := p.b[p.i]; c {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return c
		}
	}
	return 0
}

// object parses the members and the closing brace of an object whose
// '{' was consumed; depth is the object's own nesting level.
func (p *parser) object(depth int) (map[string]any, error) {
	m := map[string]any{}
	if p.next() == '}' {
		p.i++
		return m, nil
	}
	for {
		if p.next() != '"' {
			return nil, errSyntax
		}
		p.i++
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		if _, dup := m[k]; dup {
			return nil, errDuplicateKey
		}
		if p.next() != ':' {
			return nil, errSyntax
		}
		p.i++
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		m[k] = v
		switch p.next() {
		case ',':
			p.i++
		case '}':
			p.i++
			return m, nil
		default:
			return nil, errSyntax
		}
	}
}

// value parses one value inside a container at nesting level depth.
func (p *parser) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, errTooDeep
	}
	switch c := p.next(); c {
	case '{':
		p.i++
		return p.object(depth + 1)
	case '[':
		p.i++
		arr := []any{}
		if p.next() == ']' {
			p.i++
			return arr, nil
		}
		for {
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
			switch p.next() {
			case ',':
				p.i++
			case ']':
				p.i++
				return arr, nil
			default:
				return nil, errSyntax
			}
		}
	case '"':
		p.i++
		return p.str()
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return p.num()
	case 't':
		return true, p.literal("true")
	case 'f':
		return false, p.literal("false")
	case 'n':
		return nil, p.literal("null")
	}
	return nil, errSyntax
}

func (p *parser) literal(lit string) error {
	if len(p.b)-p.i < len(lit) || string(p.b[p.i:p.i+len(lit)]) != lit {
		return errSyntax
	}
	p.i += len(lit)
	return nil
}

// str parses a string whose opening quote was consumed. Printable ASCII
// and valid UTF-8 without escapes is sliced directly; a string holding
// an escape, a control character (invalid, refused by the decoder) or
// invalid UTF-8 is handed whole to encoding/json.
func (p *parser) str() (string, error) {
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := string(p.b[start:p.i])
			p.i++
			return s, nil
		case c == '\\' || c < 0x20:
			return p.slowStr(start)
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRune(p.b[p.i:])
			if r == utf8.RuneError && n == 1 {
				return p.slowStr(start)
			}
			p.i += n
		default:
			p.i++
		}
	}
	return "", errSyntax
}

// slowStr finds the end of the string that started at start (after its
// quote) and decodes it with encoding/json. Inside a JSON string a '"'
// byte always ends the string unless it follows a backslash, and the
// byte after a backslash is never the end (the decoder checks that the
// escape itself is valid); bytes of multi-byte or invalid UTF-8 are all
// >= 0x80, so they are neither.
func (p *parser) slowStr(start int) (string, error) {
	for j := p.i; j < len(p.b); j++ {
		switch p.b[j] {
		case '\\':
			j++
		case '"':
			var s string
			if err := json.Unmarshal(p.b[start-1:j+1], &s); err != nil {
				return "", err
			}
			p.i = j + 1
			return s, nil
		}
	}
	return "", errSyntax
}

// digits skips a run of decimal digits and reports whether there was
// at least one.
func (p *parser) digits() bool {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	return p.i > start
}

// num parses a number (RFC 8259 section 6:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?) into a json.Number.
// The caller saw '-' or a digit at the cursor. Whatever follows the
// number is checked by the caller (',', '}', ']', whitespace or end),
// so "01" or "1x" fail there.
func (p *parser) num() (any, error) {
	start := p.i
	if p.b[p.i] == '-' {
		p.i++
	}
	if p.i < len(p.b) && p.b[p.i] == '0' {
		p.i++
	} else if !p.digits() {
		return nil, errSyntax
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if !p.digits() {
			return nil, errSyntax
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if !p.digits() {
			return nil, errSyntax
		}
	}
	return json.Number(p.b[start:p.i]), nil
}

// NumericDate reads a NumericDate (RFC 7519 section 2) decoded by
// DecodeObject: a JSON number of seconds, possibly fractional. Beyond
// MaxNumericDate, or negative, it is malformed.
func NumericDate(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	if i, err := n.Int64(); err == nil {
		if i < 0 || i > MaxNumericDate {
			return time.Time{}, false
		}
		return time.Unix(i, 0), true
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || f < 0 || f > MaxNumericDate {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// MaxNumericDate (9999-12-31T23:59:59Z) keeps time arithmetic far from
// overflow; a later date is malformed, not "far away".
const MaxNumericDate = 253402300799
