// Package oel reads Okta Expression Language, the SpEL subset Okta uses
// for token claims (Okta developer docs, "Okta Expression Language
// overview"), and translates it to CEL source that the claims package
// type-checks and evaluates with the functions of Library. It has no
// evaluator of its own.
package oel

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// node is a parsed expression.
type node interface{ pos() int }

type (
	// lit is a literal: a string, int64, float64, bool or nil (null).
	lit struct {
		at  int
		val any
	}
	// ident is a bare name, such as user or String.
	ident struct {
		at   int
		name string
	}
	// member is x.name.
	member struct {
		at   int
		x    node
		name string
	}
	// call is name(args) (x nil) or x.name(args).
	call struct {
		at   int
		x    node
		name string
		args []node
	}
	// list is SpEL's inline list {a, b}.
	list struct {
		at    int
		elems []node
	}
	// dict is SpEL's inline map {'k': v}; keys are names or strings.
	dict struct {
		at   int
		keys []string
		vals []node
	}
	unary struct {
		at int
		op string
		x  node
	}
	binary struct {
		at   int
		op   string
		l, r node
	}
	// cond is c ? a : b; c nil is the Elvis operator a ?: b.
	cond struct {
		at      int
		c, a, b node
	}
)

func (n *lit) pos() int    { return n.at }
func (n *ident) pos() int  { return n.at }
func (n *member) pos() int { return n.at }
func (n *call) pos() int   { return n.at }
func (n *list) pos() int   { return n.at }
func (n *dict) pos() int   { return n.at }
func (n *unary) pos() int  { return n.at }
func (n *binary) pos() int { return n.at }
func (n *cond) pos() int   { return n.at }

// Error is a syntax or translation error at a character offset (0-based)
// of the expression.
type Error struct {
	Offset int
	Msg    string
}

func (e *Error) Error() string { return fmt.Sprintf("at character %d: %s", e.Offset+1, e.Msg) }

func errAt(at int, format string, args ...any) error {
	return &Error{Offset: at, Msg: fmt.Sprintf(format, args...)}
}

type tokKind int

const (
	tEOF tokKind = iota
	tName
	tString
	tInt
	tFloat
	tOp
)

type token struct {
	kind tokKind
	text string
	val  any
	at   int
}

// wordOps are SpEL's textual operators (case-insensitive) and what they
// stand for.
var wordOps = map[string]string{
	"and": "&&", "or": "||", "not": "!",
	"eq": "==", "ne": "!=", "lt": "<", "gt": ">", "le": "<=", "ge": ">=",
	"div": "/", "mod": "%",
}

func lex(src string) ([]token, error) {
	var toks []token
	rs := []rune(src)
	// offsets are in runes, which is what a person counts.
	for i := 0; i < len(rs); {
		c := rs[i]
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '\'' || c == '"':
			// SpEL strings: a quote inside is doubled ('it''s'); no
			// backslash escapes.
			var b strings.Builder
			j := i + 1
			for ; ; j++ {
				if j >= len(rs) {
					return nil, errAt(i, "unterminated string")
				}
				if rs[j] == c {
					if j+1 < len(rs) && rs[j+1] == c {
						b.WriteRune(c)
						j++
						continue
					}
					break
				}
				b.WriteRune(rs[j])
			}
			toks = append(toks, token{tString, string(rs[i : j+1]), b.String(), i})
			i = j + 1
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(rs) && rs[i+1] >= '0' && rs[i+1] <= '9':
			j, float := i, false
			for j < len(rs) && (rs[j] >= '0' && rs[j] <= '9' || rs[j] == '.' && !float) {
				if rs[j] == '.' {
					// 1.x is a member access, not a number.
					if j+1 >= len(rs) || rs[j+1] < '0' || rs[j+1] > '9' {
						break
					}
					float = true
				}
				j++
			}
			if j < len(rs) && (rs[j] == 'e' || rs[j] == 'E') {
				k := j + 1
				if k < len(rs) && (rs[k] == '+' || rs[k] == '-') {
					k++
				}
				if k < len(rs) && rs[k] >= '0' && rs[k] <= '9' {
					for k < len(rs) && rs[k] >= '0' && rs[k] <= '9' {
						k++
					}
					j, float = k, true
				}
			}
			text := string(rs[i:j])
			if j < len(rs) && (rs[j] == 'L' || rs[j] == 'l') && !float {
				j++ // Java long suffix
			} else if j < len(rs) && (rs[j] == 'd' || rs[j] == 'D' || rs[j] == 'f' || rs[j] == 'F') {
				j, float = j+1, true
			}
			if float {
				f, err := strconv.ParseFloat(text, 64)
				if err != nil {
					return nil, errAt(i, "bad number %q", text)
				}
				toks = append(toks, token{tFloat, text, f, i})
			} else {
				n, err := strconv.ParseInt(text, 10, 64)
				if err != nil {
					return nil, errAt(i, "number %s out of range", text)
				}
				toks = append(toks, token{tInt, text, n, i})
			}
			i = j
		case unicode.IsLetter(c) || c == '_' || c == '$':
			j := i
			for j < len(rs) && (unicode.IsLetter(rs[j]) || unicode.IsDigit(rs[j]) || rs[j] == '_' || rs[j] == '$') {
				j++
			}
			word := string(rs[i:j])
			if op, ok := wordOps[strings.ToLower(word)]; ok {
				toks = append(toks, token{tOp, op, nil, i})
			} else {
				toks = append(toks, token{tName, word, nil, i})
			}
			i = j
		default:
			op := ""
			for _, o := range []string{"==", "!=", "<=", ">=", "&&", "||", "?:", "?.", "+", "-", "*", "/", "%", "<", ">", "!", "?", ":", "(", ")", "{", "}", "[", "]", ",", "."} {
				if strings.HasPrefix(string(rs[i:min(len(rs), i+len(o))]), o) {
					op = o
					break
				}
			}
			switch op {
			case "":
				return nil, errAt(i, "unexpected character %q", c)
			case "?.":
				return nil, errAt(i, "the safe-navigation operator ?. is not supported")
			case "[", "]":
				return nil, errAt(i, "indexing with [] is not supported")
			}
			toks = append(toks, token{tOp, op, nil, i})
			i += len([]rune(op))
		}
	}
	return append(toks, token{kind: tEOF, at: len(rs)}), nil
}

type parser struct {
	toks []token
	i    int
}

// parse reads one expression.
func parse(src string) (node, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	n, err := p.expr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, errAt(t.at, "unexpected %q", t.text)
	}
	return n, nil
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) isOp(op string) bool {
	t := p.peek()
	return t.kind == tOp && t.text == op
}

func (p *parser) expect(op string) error {
	if !p.isOp(op) {
		t := p.peek()
		if t.kind == tEOF {
			return errAt(t.at, "expected %q at the end", op)
		}
		return errAt(t.at, "expected %q, found %q", op, t.text)
	}
	p.next()
	return nil
}

// expr is the ternary and Elvis level, right-associative.
func (p *parser) expr() (node, error) {
	c, err := p.binary(0)
	if err != nil {
		return nil, err
	}
	switch {
	case p.isOp("?"):
		at := p.next().at
		a, err := p.expr()
		if err != nil {
			return nil, err
		}
		if err := p.expect(":"); err != nil {
			return nil, err
		}
		b, err := p.expr()
		if err != nil {
			return nil, err
		}
		return &cond{at, c, a, b}, nil
	case p.isOp("?:"):
		at := p.next().at
		b, err := p.expr()
		if err != nil {
			return nil, err
		}
		return &cond{at, nil, c, b}, nil
	}
	return c, nil
}

// levels of binary operators, loosest first (SpEL's precedence).
var levels = [][]string{
	{"||"},
	{"&&"},
	{"==", "!=", "<", ">", "<=", ">="},
	{"+", "-"},
	{"*", "/", "%"},
}

func (p *parser) binary(level int) (node, error) {
	if level == len(levels) {
		return p.unary()
	}
	l, err := p.binary(level + 1)
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		if t.kind != tOp || !contains(levels[level], t.text) {
			return l, nil
		}
		p.next()
		r, err := p.binary(level + 1)
		if err != nil {
			return nil, err
		}
		if level == 2 {
			if b, ok := l.(*binary); ok && contains(levels[2], b.op) {
				return nil, errAt(t.at, "comparisons do not chain; use && between them")
			}
		}
		l = &binary{t.at, t.text, l, r}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (p *parser) unary() (node, error) {
	if p.isOp("!") || p.isOp("-") || p.isOp("+") {
		t := p.next()
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		if t.text == "+" {
			return x, nil
		}
		return &unary{t.at, t.text, x}, nil
	}
	return p.postfix()
}

func (p *parser) postfix() (node, error) {
	x, err := p.primary()
	if err != nil {
		return nil, err
	}
	for p.isOp(".") {
		p.next()
		t := p.next()
		if t.kind != tName {
			return nil, errAt(t.at, "expected a name after '.'")
		}
		if p.isOp("(") {
			args, err := p.args()
			if err != nil {
				return nil, err
			}
			x = &call{x.pos(), x, t.text, args}
			continue
		}
		x = &member{x.pos(), x, t.text}
	}
	return x, nil
}

func (p *parser) args() ([]node, error) {
	if err := p.expect("("); err != nil {
		return nil, err
	}
	var args []node
	if p.isOp(")") {
		p.next()
		return args, nil
	}
	for {
		a, err := p.expr()
		if err != nil {
			return nil, err
		}
		args = append(args, a)
		if p.isOp(",") {
			p.next()
			continue
		}
		return args, p.expect(")")
	}
}

func (p *parser) primary() (node, error) {
	t := p.next()
	switch t.kind {
	case tString, tInt, tFloat:
		return &lit{t.at, t.val}, nil
	case tName:
		switch t.text {
		case "true", "TRUE", "True":
			return &lit{t.at, true}, nil
		case "false", "FALSE", "False":
			return &lit{t.at, false}, nil
		case "null", "NULL", "Null":
			return &lit{t.at, nil}, nil
		}
		if p.isOp("(") {
			args, err := p.args()
			if err != nil {
				return nil, err
			}
			return &call{t.at, nil, t.text, args}, nil
		}
		return &ident{t.at, t.text}, nil
	case tOp:
		switch t.text {
		case "(":
			x, err := p.expr()
			if err != nil {
				return nil, err
			}
			return x, p.expect(")")
		case "{":
			return p.braces(t.at)
		}
	case tEOF:
		return nil, errAt(t.at, "unexpected end of the expression")
	}
	return nil, errAt(t.at, "unexpected %q", t.text)
}

// braces reads {a, b} (a list) or {k: v, ...} (a map) after the '{'.
func (p *parser) braces(at int) (node, error) {
	if p.isOp("}") {
		p.next()
		return &list{at: at}, nil
	}
	if p.isOp(":") { // {:} is SpEL's empty map
		p.next()
		return &dict{at: at}, p.expect("}")
	}
	first, err := p.expr()
	if err != nil {
		return nil, err
	}
	if p.isOp(":") {
		d := &dict{at: at}
		for k := first; ; {
			key, ok := mapKey(k)
			if !ok {
				return nil, errAt(k.pos(), "a map key must be a name or a string")
			}
			if err := p.expect(":"); err != nil {
				return nil, err
			}
			v, err := p.expr()
			if err != nil {
				return nil, err
			}
			d.keys, d.vals = append(d.keys, key), append(d.vals, v)
			if !p.isOp(",") {
				return d, p.expect("}")
			}
			p.next()
			if k, err = p.expr(); err != nil {
				return nil, err
			}
		}
	}
	l := &list{at: at, elems: []node{first}}
	for p.isOp(",") {
		p.next()
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		l.elems = append(l.elems, e)
	}
	return l, p.expect("}")
}

func mapKey(n node) (string, bool) {
	switch k := n.(type) {
	case *lit:
		s, ok := k.val.(string)
		return s, ok
	case *ident:
		return k.name, true
	case *member:
		if base, ok := mapKey(k.x); ok {
			return base + "." + k.name, true
		}
	}
	return "", false
}
