// Package caddyargs reads Caddyfile subdirective arguments for both
// halves' parsers, with one wording per kind of mistake, each carrying
// the file and line (Dispenser.Errf):
//
//	duplicate subdirective "NAME"                 a singular subdirective given twice
//	KIND "NAME" defined twice                     two items of one kind with one name
//	wrong argument count or unexpected line ending after 'NAME'   (Caddy's ArgErr)
//	NAME "VALUE": not a duration; use ...         see duration.ErrSyntax
//	NAME "VALUE": must not be negative
//	NAME "VALUE": zero would mean the default; give a positive duration
//	NAME "VALUE": not an integer
//	unknown subdirective "NAME"
package caddyargs

import (
	"strconv"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/apiaccess/caddy-apiaccess/internal/duration"
)

// Once records the subdirectives given in one block, to refuse repeats.
type Once map[string]bool

// Check refuses the subdirective at the cursor if it was given before
// in this block.
func (o Once) Check(d *caddyfile.Dispenser) error {
	if o[d.Val()] {
		return d.Errf("duplicate subdirective %q", d.Val())
	}
	o[d.Val()] = true
	return nil
}

// Names records the names of repeatable items of one kind (`client
// <id>`, `scope <name>`, `issuer <url>`), to refuse a name used twice.
type Names map[string]bool

// Add records name, refusing it at the cursor if it was recorded.
func (n Names) Add(d *caddyfile.Dispenser, kind, name string) error {
	if n[name] {
		return d.Errf("%s %q defined twice", kind, name)
	}
	n[name] = true
	return nil
}

// Unknown is the error for an unknown subdirective at the cursor.
func Unknown(d *caddyfile.Dispenser) error {
	return d.Errf("unknown subdirective %q", d.Val())
}

// Name reads the single name argument of a repeatable item such as
// `scope <name>` at its keyword, refusing a name already in names.
func Name(d *caddyfile.Dispenser, names Names, dst *string) error {
	kind := d.Val()
	if !d.Args(dst) || d.NextArg() {
		return d.ArgErr()
	}
	return names.Add(d, kind, *dst)
}

// One reads the one argument of a subdirective given once.
func One(d *caddyfile.Dispenser, once Once, dst *string) error {
	if err := once.Check(d); err != nil {
		return err
	}
	if !d.Args(dst) || d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// Expression reads a subdirective whose one argument is an expression,
// which must be one token: a CEL expression with spaces split into
// several tokens is refused with a hint at the backquotes.
func Expression(d *caddyfile.Dispenser, once Once, dst *string) error {
	if err := once.Check(d); err != nil {
		return err
	}
	name := d.Val()
	if !d.Args(dst) {
		return d.ArgErr()
	}
	if d.NextArg() {
		return BackquoteErr(d, name)
	}
	return nil
}

// BackquoteErr is the wrong-argument-count error of an expression that
// was split into several tokens.
func BackquoteErr(d *caddyfile.Dispenser, name string) error {
	return d.Errf("wrong argument count: %s takes the expression as one token; wrap it in backquotes", name)
}

// List reads the one or more arguments of a subdirective given once.
func List(d *caddyfile.Dispenser, once Once, dst *[]string) error {
	if err := once.Check(d); err != nil {
		return err
	}
	*dst = d.RemainingArgs()
	if len(*dst) == 0 {
		return d.ArgErr()
	}
	return nil
}

// Append adds the one or more arguments of a repeatable list
// subdirective to dst.
func Append(d *caddyfile.Dispenser, dst *[]string) error {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return d.ArgErr()
	}
	*dst = append(*dst, args...)
	return nil
}

// Two reads the exactly two arguments of a repeatable subdirective.
func Two(d *caddyfile.Dispenser, a, b *string) error {
	if !d.Args(a, b) || d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// Flag sets a boolean subdirective that takes no arguments.
func Flag(d *caddyfile.Dispenser, once Once, dst *bool) error {
	if err := once.Check(d); err != nil {
		return err
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	*dst = true
	return nil
}

// Int reads an integer argument of a subdirective given once.
func Int(d *caddyfile.Dispenser, once Once, dst *int) error {
	name := d.Val()
	var s string
	if err := One(d, once, &s); err != nil {
		return err
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return d.Errf("%s %q: not an integer", name, s)
	}
	*dst = n
	return nil
}

// Duration reads a positive duration (duration.Parse: Go's units and
// `d`). Zero is refused because the JSON reads it as the default, so a
// Caddyfile never means other than it says.
func Duration(d *caddyfile.Dispenser, once Once, dst *duration.Duration) error {
	return readDuration(d, once, dst, false)
}

// DurationOrZero is Duration for settings whose default is zero (such
// as a cache that is off unless set): zero is accepted.
func DurationOrZero(d *caddyfile.Dispenser, once Once, dst *duration.Duration) error {
	return readDuration(d, once, dst, true)
}

func readDuration(d *caddyfile.Dispenser, once Once, dst *duration.Duration, zeroOK bool) error {
	name := d.Val()
	var s string
	if err := One(d, once, &s); err != nil {
		return err
	}
	v, err := duration.Parse(s)
	switch {
	case err != nil:
		return d.Errf("%s %q: %v", name, s, err)
	case v < 0:
		return d.Errf("%s %q: must not be negative", name, s)
	case v == 0 && !zeroOK:
		return d.Errf("%s %q: zero would mean the default; give a positive duration", name, s)
	}
	*dst = duration.Duration(v)
	return nil
}

// DurationOrOff reads a positive duration, or `off`, stored as -1 (in
// the JSON, zero means the default and a negative value off).
func DurationOrOff(d *caddyfile.Dispenser, once Once, dst *duration.Duration) error {
	name := d.Val()
	var s string
	if err := One(d, once, &s); err != nil {
		return err
	}
	if s == "off" {
		*dst = -1
		return nil
	}
	v, err := duration.Parse(s)
	switch {
	case err != nil:
		return d.Errf("%s %q: %v", name, s, err)
	case v <= 0:
		return d.Errf("%s %q: give a positive duration, or off", name, s)
	}
	*dst = duration.Duration(v)
	return nil
}
