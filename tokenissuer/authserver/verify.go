package authserver

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// maxTokenBytes bounds what is parsed at all.
const maxTokenBytes = 8 << 10

var errNotOurs = errors.New("not an access token of this authorization server")

// verifyAccessToken checks that tok is an access token this server
// signed and that it has not expired. Revocation is checked separately.
func (i *Issuer) verifyAccessToken(s *Server, tok string) (jwt.Token, error) {
	if len(tok) > maxTokenBytes || strings.Count(tok, ".") != 2 {
		return nil, errNotOurs
	}
	msg, err := jws.Parse([]byte(tok))
	if err != nil || len(msg.Signatures()) != 1 || msg.Signatures()[0].ProtectedHeaders().Type() != AccessTokenType {
		return nil, errNotOurs
	}
	return jwt.Parse([]byte(tok),
		jwt.WithKeySet(s.keys.Current().Public),
		jwt.WithValidate(true),
		jwt.WithClock(jwt.ClockFunc(i.now)),
		jwt.WithIssuer(s.Issuer),
		jwt.WithAudience(s.Audience),
		jwt.WithRequiredClaim("jti"),
		jwt.WithRequiredClaim("exp"),
	)
}

// revoked reports whether a token id was revoked.
func (i *Issuer) revoked(ctx context.Context, jti string) (bool, error) {
	return i.store.Marked(ctx, store.NSRevoked, jti)
}

// revoke records jti as revoked until the token would have expired.
func (i *Issuer) revoke(ctx context.Context, jti string, exp time.Time) error {
	_, err := i.store.Mark(ctx, store.NSRevoked, jti, exp.Add(time.Minute))
	return err
}
