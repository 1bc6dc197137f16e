package ssf

import (
	"errors"
	"time"
)

// Subject Identifier formats (RFC 9493 section 3.2, SSF 3.3 and 3.5.1).
const (
	FormatJWTID   = "jwt_id"
	FormatIssSub  = "iss_sub"
	FormatOpaque  = "opaque"
	FormatAliases = "aliases"
	FormatComplex = "complex"
)

// SubjectID is a Subject Identifier (RFC 9493) or an SSF complex subject
// (SSF 3.3), with the members this package reads or writes; a receiver
// ignores the others (SSF 4.2.3).
type SubjectID struct {
	Format string `json:"format"`
	// iss_sub and jwt_id.
	Iss string `json:"iss,omitempty"`
	Sub string `json:"sub,omitempty"`
	JTI string `json:"jti,omitempty"`
	// opaque.
	ID string `json:"id,omitempty"`
	// aliases.
	Identifiers []SubjectID `json:"identifiers,omitempty"`
	// complex members.
	User        *SubjectID `json:"user,omitempty"`
	Application *SubjectID `json:"application,omitempty"`
}

// SubjectKind is what an event is about.
type SubjectKind int

const (
	// SubjectToken is one token, by iss and jti.
	SubjectToken SubjectKind = iota + 1
	// SubjectUser is a user, by iss and sub, by uid, or both.
	SubjectUser
	// SubjectClient is a client, by client id.
	SubjectClient
	// SubjectStream is a stream (verification and stream-updated events).
	SubjectStream
)

// Subject names the principal of an event in the project's terms.
type Subject struct {
	Kind SubjectKind
	// Issuer is the token's iss (SubjectToken) or the user's (SubjectUser
	// with Sub).
	Issuer string
	// JTI is the token's jti; Expiry its exp, zero when unknown.
	JTI    string
	Expiry time.Time
	// Sub and UID name a user: the access token's sub and uid claims.
	Sub string
	UID string
	// ClientID names a client (the access token's cid). On a
	// SubjectUser it narrows the user to their tokens at this client
	// (SSF 3.3: every member of a complex subject must match).
	ClientID string
	// StreamID names a stream.
	StreamID string
}

// ErrSubject is returned for a subject this package cannot express or
// does not understand.
var ErrSubject = errors.New("ssf: unsupported subject")

// subjectID is s as sub_id (see the table in doc.go).
func (s Subject) subjectID() (SubjectID, error) {
	switch s.Kind {
	case SubjectToken:
		if s.Issuer == "" || s.JTI == "" {
			return SubjectID{}, ErrSubject
		}
		return SubjectID{Format: FormatJWTID, Iss: s.Issuer, JTI: s.JTI}, nil
	case SubjectUser:
		var issSub, uid *SubjectID
		if s.Sub != "" {
			if s.Issuer == "" {
				return SubjectID{}, ErrSubject
			}
			issSub = &SubjectID{Format: FormatIssSub, Iss: s.Issuer, Sub: s.Sub}
		}
		if s.UID != "" {
			uid = &SubjectID{Format: FormatOpaque, ID: s.UID}
		}
		var user *SubjectID
		switch {
		case issSub != nil && uid != nil:
			user = &SubjectID{Format: FormatAliases, Identifiers: []SubjectID{*issSub, *uid}}
		case issSub != nil:
			if s.ClientID == "" {
				return *issSub, nil
			}
			user = issSub
		case uid != nil:
			user = uid
		default:
			return SubjectID{}, ErrSubject
		}
		id := SubjectID{Format: FormatComplex, User: user}
		if s.ClientID != "" {
			id.Application = &SubjectID{Format: FormatOpaque, ID: s.ClientID}
		}
		return id, nil
	case SubjectClient:
		if s.ClientID != "" {
			return SubjectID{Format: FormatComplex, Application: &SubjectID{Format: FormatOpaque, ID: s.ClientID}}, nil
		}
	case SubjectStream:
		if s.StreamID != "" {
			return SubjectID{Format: FormatOpaque, ID: s.StreamID}, nil
		}
	}
	return SubjectID{}, ErrSubject
}

// subjectFrom reads sub_id. stream tells an opaque top-level subject is a
// stream (verification and stream-updated events) rather than unknown.
func subjectFrom(id SubjectID, stream bool) (Subject, error) {
	switch id.Format {
	case FormatJWTID:
		if id.Iss != "" && id.JTI != "" {
			return Subject{Kind: SubjectToken, Issuer: id.Iss, JTI: id.JTI}, nil
		}
	case FormatIssSub:
		if id.Iss != "" && id.Sub != "" {
			return Subject{Kind: SubjectUser, Issuer: id.Iss, Sub: id.Sub}, nil
		}
	case FormatOpaque:
		if stream && id.ID != "" {
			return Subject{Kind: SubjectStream, StreamID: id.ID}, nil
		}
	case FormatComplex:
		// A user, an application, or both: the user's tokens at that
		// application (SSF 3.3: all members must match).
		var cid string
		if a := id.Application; a != nil {
			if a.Format != FormatOpaque || a.ID == "" {
				return Subject{}, ErrSubject
			}
			cid = a.ID
		}
		switch {
		case id.User != nil:
			s, err := userFrom(*id.User)
			if err != nil {
				return Subject{}, err
			}
			s.ClientID = cid
			return s, nil
		case cid != "":
			return Subject{Kind: SubjectClient, ClientID: cid}, nil
		}
	}
	return Subject{}, ErrSubject
}

// userFrom reads the user member of a complex subject.
func userFrom(u SubjectID) (Subject, error) {
	s := Subject{Kind: SubjectUser}
	ids := []SubjectID{u}
	if u.Format == FormatAliases {
		ids = u.Identifiers
	}
	for _, id := range ids {
		switch {
		case id.Format == FormatIssSub && id.Iss != "" && id.Sub != "" && s.Sub == "":
			s.Issuer, s.Sub = id.Iss, id.Sub
		case id.Format == FormatOpaque && id.ID != "" && s.UID == "":
			s.UID = id.ID
		default:
			// Nested aliases (RFC 9493 forbids them), a second value of
			// one kind, or a format we do not read.
			return Subject{}, ErrSubject
		}
	}
	if s.Sub == "" && s.UID == "" {
		return Subject{}, ErrSubject
	}
	return s, nil
}
