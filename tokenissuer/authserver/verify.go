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
// signed for its audience and that it has not expired. Revocation is
// checked separately.
func (i *Issuer) verifyAccessToken(s *Server, tok string) (jwt.Token, error) {
	return i.verifyToken(s, tok, true, 0)
}

// verifyIssuedToken is verifyAccessToken whatever the token's aud: the
// server's own endpoints (revocation, introspection, userinfo) must know
// every access token it signed, one whose aud a token inline hook
// replaced included (Okta: "you can modify those claims in access
// tokens"), or such a token could not be revoked.
func (i *Issuer) verifyIssuedToken(s *Server, tok string) (jwt.Token, error) {
	return i.verifyToken(s, tok, false, 0)
}

// verifyToken is both, and verifyExchanged: audience checks aud, skew
// is the clock skew allowed on iat, nbf and exp.
func (i *Issuer) verifyToken(s *Server, tok string, audience bool, skew time.Duration) (jwt.Token, error) {
	if len(tok) > maxTokenBytes || strings.Count(tok, ".") != 2 {
		return nil, errNotOurs
	}
	msg, err := jws.Parse([]byte(tok))
	if err != nil || len(msg.Signatures()) != 1 || msg.Signatures()[0].ProtectedHeaders().Type() != AccessTokenType {
		return nil, errNotOurs
	}
	opts := []jwt.ParseOption{
		jwt.WithKeySet(s.keys.Current().Public),
		jwt.WithValidate(true),
		jwt.WithClock(jwt.ClockFunc(i.now)),
		jwt.WithIssuer(s.Issuer),
		jwt.WithRequiredClaim("jti"),
		jwt.WithRequiredClaim("exp"),
	}
	if audience {
		opts = append(opts, jwt.WithAudience(s.Audience))
	}
	if skew > 0 {
		opts = append(opts, jwt.WithAcceptableSkew(skew))
	}
	return jwt.Parse([]byte(tok), opts...)
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
