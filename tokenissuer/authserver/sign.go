package authserver

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"time"

	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/hashgate"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/keys"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
)

// signGate runs at most GOMAXPROCS signatures at once, the others
// waiting their turn in arrival order. Without it every waiting request
// signs at once and Go's scheduler time-slices them unevenly: on 2
// cores, 4 requests in flight had a p99 of 40x the median (issue 10).
// A signature is CPU only (an RSA-2048 one ~1 ms, ECDSA P-256 and
// Ed25519 tens of µs), so the gate's memory bound never binds; it is
// one per process because the cores are. The queue is deep and the
// wait long: a refusal (503 with Retry-After) only ever answers an
// overload that would otherwise time out.
var signGate = hashgate.New(hashgate.Config{Queue: 4096, Wait: 5 * time.Second})

// accessClaims is the access-token claim set (DESIGN.md "Tokens"), in
// Okta's shape. Custom claims are appended by signAccess.
type accessClaims struct {
	Ver      int       `json:"ver"`
	JTI      string    `json:"jti"`
	Iss      string    `json:"iss"`
	Aud      string    `json:"aud"`
	Iat      int64     `json:"iat"`
	Exp      int64     `json:"exp"`
	Cid      string    `json:"cid"`
	UID      string    `json:"uid,omitempty"`
	Scp      []string  `json:"scp"`
	AuthTime int64     `json:"auth_time,omitempty"`
	Amr      []string  `json:"amr,omitempty"`
	Sub      string    `json:"sub"`
	Cnf      *cnfClaim `json:"cnf,omitempty"`
	// Act names the acting party of a token exchange, prior actors
	// nested inside (RFC 8693 section 4.1).
	Act map[string]any `json:"act,omitempty"`
}

// AccessTokenType is the JWT `typ` of access tokens (RFC 9068 section
// 2.1), so a resource server can tell them from ID tokens.
const AccessTokenType = keys.TokenType

// newJTI returns an Okta-style token id: "AT." and 128 random bits.
func newJTI() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "AT." + base64.RawURLEncoding.EncodeToString(b[:])
}

// completeAccess sets the claims every access token of s has.
func (i *Issuer) completeAccess(s *Server, c *accessClaims, lifetime time.Duration) {
	now := i.now()
	c.Ver, c.JTI, c.Iss, c.Aud = 1, newJTI(), s.Issuer, s.Audience
	c.Iat, c.Exp = now.Unix(), now.Add(lifetime).Unix()
	if c.Scp == nil {
		c.Scp = []string{}
	}
}

// signAccess signs a completed claim set and its custom claims (names
// the struct does not have).
func (i *Issuer) signAccess(ctx context.Context, s *Server, c accessClaims, custom map[string]any) (string, *oauth.Error) {
	payload, err := json.Marshal(c)
	if err == nil && len(custom) > 0 {
		var extra []byte
		if extra, err = json.Marshal(custom); err == nil {
			payload = append(append(payload[:len(payload)-1], ','), extra[1:]...)
		}
	}
	if err != nil {
		return "", oauth.ErrServer.WithReason("encoding claims: " + err.Error())
	}
	set := s.keys.Current()
	return i.sign(ctx, s, set, set.Header, payload)
}

// sign makes a compact JWS (RFC 7515 section 7.1) of payload under an
// encoded protected header, with jwx's signer on the active key. A
// request whose client has gone (ctx done) leaves the queue at once.
func (i *Issuer) sign(ctx context.Context, s *Server, set *keys.Set, header string, payload []byte) (string, *oauth.Error) {
	buf := make([]byte, 0, len(header)+2+base64.RawURLEncoding.EncodedLen(len(payload))+base64.RawURLEncoding.EncodedLen(512))
	buf = append(buf, header...)
	buf = append(buf, '.')
	buf = base64.RawURLEncoding.AppendEncode(buf, payload)
	var sig []byte
	var err error
	if gerr := signGate.Run(ctx, 0, func() { sig, err = set.Signer.Sign(buf, set.SignKey) }); gerr != nil {
		return "", oauth.ErrTemporarilyUnavailable.WithRetryAfter(signGate.RetryAfter()).WithReason("signing queue: " + gerr.Error())
	}
	if err != nil {
		i.log.Error("signing failed", zap.String("authorization_server", s.ID), zap.Error(err))
		return "", oauth.ErrServer.WithReason("signing failed")
	}
	buf = append(buf, '.')
	return string(base64.RawURLEncoding.AppendEncode(buf, sig)), nil
}
