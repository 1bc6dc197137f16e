package syslog

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// Limits on a filter, so that a query costs what a query should.
const (
	MaxFilterLength = 4096 // bytes
	maxDepth        = 32   // nested parentheses and not
	maxTerms        = 64   // comparisons
)

// Filter is a parsed `filter` expression: a SCIM filter (RFC 7644
// section 3.4.2.2) over LogEvent attributes, as Okta's System Log API
// takes it ("All operators except [ ] are supported"): the comparisons
// eq, ne, co, sw, ew, gt, ge, lt, le, the presence test pr, and, or,
// not(...) and parentheses; `and` binds tighter than `or`. String
// comparisons ignore case (RFC 7644: caseExact defaults to false).
type Filter struct{ root node }

// Match reports whether e satisfies the filter.
func (f *Filter) Match(e *store.LogEvent) bool { return f.root.eval(e) }

type node interface{ eval(e *store.LogEvent) bool }

type andNode struct{ l, r node }
type orNode struct{ l, r node }
type notNode struct{ n node }

func (n andNode) eval(e *store.LogEvent) bool { return n.l.eval(e) && n.r.eval(e) }
func (n orNode) eval(e *store.LogEvent) bool  { return n.l.eval(e) || n.r.eval(e) }
func (n notNode) eval(e *store.LogEvent) bool { return !n.n.eval(e) }

// compare is `attr op value` or `attr pr`. An attribute with several
// values (a field of every target) matches when one does; `ne` is the
// negation of `eq`, so `target.id ne "x"` keeps events with no target x.
type compare struct {
	get   getter
	op    string
	value any // string (lowercased), float64, bool or nil
}

func (c compare) eval(e *store.LogEvent) bool {
	switch c.op {
	case "pr":
		return c.any(e, func(any) bool { return true })
	case "eq":
		return c.equal(e)
	case "ne":
		return !c.equal(e)
	}
	return c.any(e, c.test)
}

func (c compare) equal(e *store.LogEvent) bool {
	if c.value == nil { // eq null: no value
		return !c.any(e, func(any) bool { return true })
	}
	return c.any(e, func(v any) bool {
		switch want := c.value.(type) {
		case string:
			s, ok := v.(string)
			return ok && strings.ToLower(s) == want
		default:
			return v == want
		}
	})
}

// test applies co, sw, ew, gt, ge, lt and le to one value.
func (c compare) test(v any) bool {
	switch want := c.value.(type) {
	case string:
		s, ok := v.(string)
		if !ok {
			return false
		}
		s = strings.ToLower(s)
		switch c.op {
		case "co":
			return strings.Contains(s, want)
		case "sw":
			return strings.HasPrefix(s, want)
		case "ew":
			return strings.HasSuffix(s, want)
		}
		return order(c.op, strings.Compare(s, want))
	case float64:
		f, ok := v.(float64)
		if !ok {
			return false
		}
		switch {
		case f < want:
			return order(c.op, -1)
		case f > want:
			return order(c.op, 1)
		}
		return order(c.op, 0)
	}
	return false
}

func order(op string, cmp int) bool {
	switch op {
	case "gt":
		return cmp > 0
	case "ge":
		return cmp >= 0
	case "lt":
		return cmp < 0
	case "le":
		return cmp <= 0
	}
	return false
}

func (c compare) any(e *store.LogEvent, f func(any) bool) bool {
	found := false
	c.get(e, func(v any) bool {
		found = f(v)
		return !found
	})
	return found
}

// operators are the attribute operators, in Okta's order.
var operators = map[string]bool{"eq": true, "ne": true, "co": true, "sw": true, "ew": true, "pr": true, "gt": true, "ge": true, "lt": true, "le": true}

const expectedOps = "eq,ne,co,sw,ew,pr,gt,ge,lt,le"

// unsearchable are the fields Okta refuses with an operator (System Log
// API reference: no `published`, no `co` on the request URL fields),
// by fieldKey and operator ("" for every operator).
var unsearchable = map[string]string{
	"published":                         "",
	"debugcontext.debugdata.url":        "co",
	"debugcontext.debugdata.requesturi": "co",
}

// ParseFilter parses a `filter` expression. A filter that does not
// parse, or names an unknown field, is Okta's E0000053 ("Invalid filter
// '<filter>': <reason> at position <n>"); one combining a field and an
// operator the log cannot search is E0000031.
func ParseFilter(s string) (*Filter, *Error) {
	if len(s) > MaxFilterLength {
		return nil, &Error{Code: CodeInvalidFilter, Summary: fmt.Sprintf("Invalid filter: longer than %d characters", MaxFilterLength)}
	}
	p := &parser{src: s}
	p.next()
	root := p.or(0)
	if p.err == nil && p.tok.kind != tEOF {
		p.fail(p.tok.pos, "Unexpected '%s'", echo(p.tok.text))
	}
	if p.err != nil {
		return nil, p.err
	}
	return &Filter{root: root}, nil
}

type tokenKind int

const (
	tEOF tokenKind = iota
	tWord
	tString
	tLParen
	tRParen
	tBracket
	tBad
)

type token struct {
	kind tokenKind
	text string // word as written; string literal decoded
	pos  int
}

type parser struct {
	src   string
	off   int
	tok   token
	terms int
	err   *Error
}

// fail records the first error, in Okta's wording.
func (p *parser) fail(pos int, format string, args ...any) { p.failHint(pos, "", format, args...) }

// failHint is fail with a hint after the position ("Unrecognized
// attribute operator 'eqq' at position 16. Expected: eq,co,...").
func (p *parser) failHint(pos int, hint, format string, args ...any) {
	if p.err == nil {
		p.err = &Error{Code: CodeInvalidFilter, Summary: fmt.Sprintf("Invalid filter '%s': %s at position %d%s", echo(p.src), fmt.Sprintf(format, args...), pos, hint)}
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '+' || c == '$'
}

// next reads the next token.
func (p *parser) next() {
	for p.off < len(p.src) && isSpace(p.src[p.off]) {
		p.off++
	}
	start := p.off
	if p.off >= len(p.src) {
		p.tok = token{kind: tEOF, pos: start}
		return
	}
	switch c := p.src[p.off]; {
	case c == '(':
		p.off++
		p.tok = token{kind: tLParen, text: "(", pos: start}
	case c == ')':
		p.off++
		p.tok = token{kind: tRParen, text: ")", pos: start}
	case c == '[' || c == ']':
		p.off++
		p.tok = token{kind: tBracket, text: string(c), pos: start}
	case c == '"':
		p.tok = p.stringLiteral(start)
	case isWordByte(c):
		for p.off < len(p.src) && isWordByte(p.src[p.off]) {
			p.off++
		}
		p.tok = token{kind: tWord, text: p.src[start:p.off], pos: start}
	default:
		p.off++
		p.tok = token{kind: tBad, text: string(c), pos: start}
	}
}

// stringLiteral reads a JSON string (RFC 7644: values are JSON).
func (p *parser) stringLiteral(start int) token {
	i := start + 1
	for i < len(p.src) {
		switch p.src[i] {
		case '\\':
			i += 2
			continue
		case '"':
			var s string
			if err := json.Unmarshal([]byte(p.src[start:i+1]), &s); err != nil {
				p.fail(start, "Invalid string literal")
				p.off = len(p.src)
				return token{kind: tBad, pos: start}
			}
			p.off = i + 1
			return token{kind: tString, text: s, pos: start}
		}
		i++
	}
	p.fail(start, "Unterminated string literal")
	p.off = len(p.src)
	return token{kind: tBad, pos: start}
}

func (p *parser) keyword(w string) bool {
	return p.tok.kind == tWord && strings.EqualFold(p.tok.text, w)
}

// or = and *("or" and)
func (p *parser) or(depth int) node {
	l := p.and(depth)
	for p.err == nil && p.keyword("or") {
		p.next()
		l = orNode{l, p.and(depth)}
	}
	return l
}

// and = unary *("and" unary)
func (p *parser) and(depth int) node {
	l := p.unary(depth)
	for p.err == nil && p.keyword("and") {
		p.next()
		l = andNode{l, p.unary(depth)}
	}
	return l
}

// unary = "not" "(" or ")" / "(" or ")" / attrExp
func (p *parser) unary(depth int) node {
	if p.err != nil {
		return nil
	}
	if depth >= maxDepth {
		p.fail(p.tok.pos, "Nested more than %d deep", maxDepth)
		return nil
	}
	not := false
	if p.keyword("not") {
		not = true
		p.next()
		if p.tok.kind != tLParen {
			p.fail(p.tok.pos, "Expected '(' after 'not'")
			return nil
		}
	}
	if p.tok.kind == tLParen {
		open := p.tok.pos
		p.next()
		n := p.or(depth + 1)
		if p.err != nil {
			return nil
		}
		if p.tok.kind != tRParen {
			p.fail(open, "Unbalanced '('")
			return nil
		}
		p.next()
		if not {
			return notNode{n}
		}
		return n
	}
	return p.attrExp()
}

// attrExp = attrPath SP "pr" / attrPath SP compareOp SP compValue
func (p *parser) attrExp() node {
	if p.tok.kind != tWord || !validPath(p.tok.text) || p.keyword("and") || p.keyword("or") || p.keyword("not") {
		p.fail(p.tok.pos, "Expected an attribute, found '%s'", echo(p.tok.text))
		return nil
	}
	path, pathPos := p.tok.text, p.tok.pos
	p.next()
	if p.tok.kind == tBracket {
		p.fail(p.tok.pos, "Value filters ('[ ]') are not supported")
		return nil
	}
	if p.tok.kind != tWord || !operators[strings.ToLower(p.tok.text)] {
		p.failHint(p.tok.pos, ". Expected: "+expectedOps, "Unrecognized attribute operator '%s'", echo(p.tok.text))
		return nil
	}
	op := strings.ToLower(p.tok.text)
	opPos := p.tok.pos
	p.next()
	if p.terms++; p.terms > maxTerms {
		p.fail(pathPos, "More than %d comparisons", maxTerms)
		return nil
	}
	if bad, ok := unsearchable[fieldKey(path)]; ok && (bad == "" || bad == op) {
		p.err = &Error{Code: CodeSearchCriteria, Summary: fmt.Sprintf("The supplied combination of operator and field is not currently supported. Operator: %s, Field: %s", op, echo(path))}
		return nil
	}
	get, ok := attribute(path)
	if !ok {
		p.err = &Error{Code: CodeInvalidFilter, Summary: "field is not valid: " + echo(path)}
		return nil
	}
	c := compare{get: get, op: op}
	if op == "pr" {
		return c
	}
	valPos := p.tok.pos
	switch p.tok.kind {
	case tString:
		c.value = strings.ToLower(p.tok.text)
	case tWord:
		switch w := strings.ToLower(p.tok.text); w {
		case "true", "false":
			c.value = w == "true"
		case "null":
			c.value = nil
		default:
			var f float64
			if err := json.Unmarshal([]byte(p.tok.text), &f); err != nil {
				p.fail(valPos, "Invalid value '%s'", echo(p.tok.text))
				return nil
			}
			c.value = f
		}
	default:
		p.fail(valPos, "Expected a value after '%s'", op)
		return nil
	}
	p.next()
	// RFC 7644: co, sw and ew take strings; gt, ge, lt and le take
	// strings or numbers (not booleans or null); null only with eq, ne.
	switch v := c.value.(type) {
	case string:
	case float64:
		if op == "co" || op == "sw" || op == "ew" {
			p.fail(opPos, "Operator '%s' takes a string", op)
		}
	case bool:
		if op != "eq" && op != "ne" {
			p.fail(opPos, "Operator '%s' does not take %v", op, v)
		}
	case nil:
		if op != "eq" && op != "ne" {
			p.fail(opPos, "Operator '%s' does not take null", op)
		}
	}
	return c
}

// validPath is RFC 7644's attrPath with Okta's dotted sub-attributes:
// names of ALPHA *(ALPHA / DIGIT / "-" / "_" / "$") joined by dots.
func validPath(s string) bool {
	for seg := range strings.SplitSeq(s, ".") {
		if seg == "" || !(seg[0] >= 'a' && seg[0] <= 'z' || seg[0] >= 'A' && seg[0] <= 'Z') {
			return false
		}
		if strings.ContainsRune(seg, '+') {
			return false
		}
	}
	return true
}
