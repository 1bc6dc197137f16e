package caddyargs

import (
	"errors"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/apiaccess/caddy-apiaccess/internal/configerr"
)

// Places remembers the token at which each configured item and field
// was given, so that an error found after the parser moved on (by the
// checks Provision runs, on the whole parsed config) is reported at the
// file and line of the offending value.
type Places struct {
	m map[string]caddyfile.Token
}

// key identifies an item path and, when field is set, its field.
func key(items []configerr.Item, field string) string {
	var b strings.Builder
	for _, it := range items {
		b.WriteString(it.Kind)
		b.WriteByte(0)
		b.WriteString(it.Name)
		b.WriteByte(0)
	}
	b.WriteByte(1)
	b.WriteString(field)
	return b.String()
}

// Mark records the token at the cursor as where field of the item at
// path (the item itself, when field is empty) was given. The first
// mark of a key wins.
func (p *Places) Mark(d *caddyfile.Dispenser, path []configerr.Item, field string) {
	if p.m == nil {
		p.m = map[string]caddyfile.Token{}
	}
	k := key(path, field)
	if _, ok := p.m[k]; !ok {
		p.m[k] = d.Token()
	}
}

// Wrap adds to err the file and line of the value it is about: for a
// *configerr.Error, the place of its field, else of its innermost item
// marked, else of the root (path nil), where every other error goes.
func (p *Places) Wrap(err error) error {
	var e *configerr.Error
	var items []configerr.Item
	field := ""
	if errors.As(err, &e) {
		items, field = e.Items, e.Field
	}
	for n := len(items); n >= 0; n-- {
		if field != "" && n == len(items) {
			if tok, ok := p.m[key(items[:n], field)]; ok {
				return wrapAt(tok, err)
			}
		}
		if tok, ok := p.m[key(items[:n], "")]; ok {
			return wrapAt(tok, err)
		}
	}
	return err
}

// wrapAt formats err as Dispenser.Errf would at tok.
func wrapAt(tok caddyfile.Token, err error) error {
	d := caddyfile.NewDispenser([]caddyfile.Token{tok})
	d.Next()
	return d.WrapErr(err)
}
