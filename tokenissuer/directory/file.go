package directory

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"unicode"
)

// FileData is the schema of a directory file (JSON):
//
//	{
//	  "users": [
//	    {
//	      "id": "00u1alice",
//	      "login": "alice@example.com",
//	      "password_hash": "$argon2id$v=19$m=65536,t=3,p=4$...",
//	      "status": "active",
//	      "profile": {"email": "alice@example.com", "given_name": "Alice", "name": "Alice Smith"},
//	      "groups": ["finance", "staff"]
//	    }
//	  ]
//	}
type FileData struct {
	Users []*User `json:"users"`
}

// File is an in-memory directory loaded from a FileData document.
type File struct {
	byLogin map[string]*User
	byID    map[string]*User
	dummies *dummies
}

// LoadFile reads and validates a directory file.
func LoadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading directory: %w", err)
	}
	return ParseFile(b)
}

// ParseFile validates a directory document.
func ParseFile(b []byte) (*File, error) {
	var data FileData
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&data); err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	return NewFile(data.Users)
}

// NewFile validates users (unique ids and logins, known statuses,
// parseable password hashes) and indexes them.
func NewFile(users []*User) (*File, error) {
	f := &File{byLogin: map[string]*User{}, byID: map[string]*User{}}
	var hashes []string
	for i, u := range users {
		switch {
		case u == nil:
			return nil, fmt.Errorf("directory: user %d is null", i)
		case u.ID == "" || strings.ContainsFunc(u.ID, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
			// No NUL nor other control character: ids are parts of store
			// keys joined by NUL (the token index, authserver/tokens_api.go).
			return nil, fmt.Errorf("directory: user %d: id is required and has no spaces or control characters", i)
		case NormalizeLogin(u.Login) == "":
			return nil, fmt.Errorf("directory: user %q: login is required", u.ID)
		case strings.ContainsFunc(u.Login, unicode.IsControl):
			return nil, fmt.Errorf("directory: user %q: login has a control character", u.ID)
		case f.byID[u.ID] != nil:
			return nil, fmt.Errorf("directory: user id %q appears twice", u.ID)
		case f.byLogin[NormalizeLogin(u.Login)] != nil:
			return nil, fmt.Errorf("directory: login %q appears twice", u.Login)
		}
		switch u.Status {
		case "", StatusActive, StatusSuspended, StatusLocked:
		default:
			return nil, fmt.Errorf("directory: user %q: status must be active, suspended or locked", u.Login)
		}
		if u.PasswordHash != "" {
			if err := CheckHash(u.PasswordHash); err != nil {
				return nil, fmt.Errorf("directory: user %q: %w", u.Login, err)
			}
			hashes = append(hashes, u.PasswordHash)
		}
		f.byID[u.ID] = u
		f.byLogin[NormalizeLogin(u.Login)] = u
	}
	f.dummies = newDummies(hashes)
	return f, nil
}

// DummyHash implements DummyHasher: one of the file's hash shapes,
// picked by a keyed hash of login.
func (f *File) DummyHash(login string) string { return f.dummies.For(login) }

// UserByLogin implements Directory.
func (f *File) UserByLogin(_ context.Context, login string) (*User, error) {
	if u, ok := f.byLogin[NormalizeLogin(login)]; ok {
		return u, nil
	}
	return nil, ErrNotFound
}

// UserByID implements Directory.
func (f *File) UserByID(_ context.Context, id string) (*User, error) {
	if u, ok := f.byID[id]; ok {
		return u, nil
	}
	return nil, ErrNotFound
}

// Groups names every group some user of the directory is in, sorted.
func (f *File) Groups() []string {
	seen := map[string]bool{}
	for _, u := range f.byID {
		for _, g := range u.Groups {
			seen[g] = true
		}
	}
	out := make([]string, 0, len(seen))
	for g := range seen {
		out = append(out, g)
	}
	slices.Sort(out)
	return out
}

// Len is the number of users.
func (f *File) Len() int { return len(f.byID) }

var (
	_ Directory   = (*File)(nil)
	_ DummyHasher = (*File)(nil)
)
