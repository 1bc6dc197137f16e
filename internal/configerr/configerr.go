// Package configerr marks a configuration error with where the
// offending value sits (which client, server, policy, rule, and which
// field), so that the Caddyfile adapter, which runs the same checks as
// Provision, can name the file and line of that value. It does not
// import Caddy: the pure cores (policy, claims, clientauth) use it.
package configerr

import (
	"errors"
	"fmt"
	"strings"
)

// Item names one configured thing by its kind (the Caddyfile word,
// such as `client`, `authorization_server`, `policy`) and its name.
type Item struct{ Kind, Name string }

// Error is a configuration error inside Items (outermost first), at
// Field of the innermost item when Field is set.
type Error struct {
	Items []Item
	Field string
	Err   error
}

// Error renders each item as `kind "name": ` (underscores as spaces)
// before the cause.
func (e *Error) Error() string {
	var b strings.Builder
	for _, it := range e.Items {
		fmt.Fprintf(&b, "%s %q: ", strings.ReplaceAll(it.Kind, "_", " "), it.Name)
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// In places err inside the item kind name: its message gains the
// prefix `kind "name": `.
func In(kind, name string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) && e == err {
		items := append([]Item{{kind, name}}, e.Items...)
		return &Error{Items: items, Field: e.Field, Err: e.Err}
	}
	return &Error{Items: []Item{{kind, name}}, Err: err}
}

// Field marks err as a problem of the field (the Caddyfile
// subdirective, such as `access_token_lifetime`); the message is err's.
func Field(field string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Field: field, Err: err}
}

// Fieldf is Field with a formatted message.
func Fieldf(field, format string, args ...any) error {
	return Field(field, fmt.Errorf(format, args...))
}
