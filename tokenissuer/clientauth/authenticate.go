package clientauth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/singleflight"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientip"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/hashgate"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// AssertionType is the client_assertion_type of RFC 7523 section 2.2.
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// MaxAssertionLifetime bounds exp - now of a client assertion, which
// also bounds how long its jti must be remembered.
const MaxAssertionLifetime = time.Hour

// maxJTILen bounds an assertion's jti, which is stored until it expires.
const maxJTILen = 256

// Skew tolerated on assertion time claims.
const Skew = 30 * time.Second

// assertionAlgs are the signature algorithms accepted on client
// assertions: asymmetric only, never "none" or HMAC.
var assertionAlgs = []jwa.SignatureAlgorithm{
	jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512,
	jwa.ES256, jwa.ES384, jwa.ES512, jwa.EdDSA,
}

// ErrMultipleCredentials is Okta's answer to credentials in two places.
var ErrMultipleCredentials = oauth.ErrInvalidRequest.WithDescription(
	"Cannot supply multiple client credentials. Use one of the following: credentials in the Authorization header, credentials in the post body, or a client_assertion in the post body.")

// Authenticator checks client credentials. It is safe for concurrent use.
type Authenticator struct {
	clients map[string]*Client
	store   store.Store
	remote  *remoteKeys
	now     func() time.Time

	// Verified bcrypt secrets, keyed by client: HMAC-SHA256 under a
	// per-process key, so a known-good secret costs one HMAC instead of
	// a bcrypt, and the digest is useless outside this process.
	mac      []byte
	verified sync.Map // client id -> []byte
	// Plain secrets as SHA-256 digests: constant-time compare of equal
	// lengths, whatever the presented length.
	plain map[string][]byte

	// gate bounds the bcrypt checks running at once (shared with the
	// password checks when injected); compare is the check itself.
	gate    *hashgate.Gate
	compare func(hash, secret []byte) error
	// checks merges concurrent bcrypt checks of one client and secret.
	checks singleflight.Group
	// bcrypts counts bcrypt failures per client id (configured ids
	// only), addrs failed credential checks per client address.
	bcrypts, addrs *failures
}

// Option configures an Authenticator.
type Option func(*Authenticator)

// WithHashGate runs bcrypt secret checks through g, normally the gate
// the process shares for all password and secret hashes. Without it (or
// with nil) the Authenticator uses a private gate sized to the cores.
func WithHashGate(g *hashgate.Gate) Option {
	return func(a *Authenticator) {
		if g != nil {
			a.gate = g
		}
	}
}

// New returns an Authenticator for clients (already Prepared). Key sets
// of jwks_uri clients are fetched on first use, never here.
func New(clients []*Client, st store.Store, now func() time.Time, opts ...Option) *Authenticator {
	if now == nil {
		now = time.Now
	}
	a := &Authenticator{clients: map[string]*Client{}, store: st, now: now, plain: map[string][]byte{},
		remote:  newRemoteKeys(now),
		compare: bcrypt.CompareHashAndPassword,
		bcrypts: newFailures(DefaultClientFailures, DefaultThrottleWindow, 0, now),
		addrs:   newFailures(DefaultAddressFailures, DefaultThrottleWindow, DefaultTrackedAddresses, now),
	}
	for _, o := range opts {
		if o != nil {
			o(a)
		}
	}
	if a.gate == nil {
		a.gate = hashgate.New(hashgate.Config{})
	}
	a.mac = make([]byte, 32)
	_, _ = rand.Read(a.mac)
	for _, c := range clients {
		a.clients[c.ID] = c
		if c.Secret != "" {
			d := sha256.Sum256([]byte(c.Secret))
			a.plain[c.ID] = d[:]
		}
	}
	return a
}

// Client returns a configured client by id.
func (a *Authenticator) Client(id string) (*Client, bool) {
	c, ok := a.clients[id]
	return c, ok
}

// Audiences are the acceptable `aud` values of a client assertion: the
// URL of the endpoint being called, the token endpoint and the issuer
// (RFC 7523 section 3, OpenID Connect Core section 9).
type Audiences []string

// Authenticate identifies and authenticates the client of a request.
// Exactly one credential form must be present. On failure it still
// returns the client id the request claimed (possibly empty), for logs.
func (a *Authenticator) Authenticate(ctx context.Context, r *http.Request, form map[string]string, aud Audiences) (*Client, string, *oauth.Error) {
	addr := clientip.Key(r)
	c, e := a.authenticate(ctx, r, form, aud, addr)
	if e != nil {
		if e.Status == http.StatusUnauthorized {
			a.addrs.fail(addr)
		}
		return nil, claimedID(r, form), e
	}
	return c, c.ID, nil
}

// claimedID is the client id a request names, unauthenticated.
func claimedID(r *http.Request, form map[string]string) string {
	if id, _, ok := r.BasicAuth(); ok {
		if v, err := url.QueryUnescape(id); err == nil {
			return v
		}
	}
	if id := form["client_id"]; id != "" {
		return id
	}
	if raw := form["client_assertion"]; raw != "" && len(raw) < 16<<10 {
		if t, err := jwt.ParseInsecure([]byte(raw)); err == nil {
			return t.Subject()
		}
	}
	return ""
}

func (a *Authenticator) authenticate(ctx context.Context, r *http.Request, form map[string]string, aud Audiences, addr string) (*Client, *oauth.Error) {
	_, hasHeader := r.Header["Authorization"]
	_, hasSecret := form["client_secret"]
	_, hasAssertion := form["client_assertion"]
	_, hasAssertionType := form["client_assertion_type"]
	n := 0
	for _, b := range []bool{hasHeader, hasSecret, hasAssertion || hasAssertionType} {
		if b {
			n++
		}
	}
	if n > 1 {
		return nil, ErrMultipleCredentials
	}
	if n == 1 {
		if blocked, d := a.addrs.blocked(addr); blocked {
			return nil, ErrThrottled.WithRetryAfter(d).WithReason("address throttled after failed client authentications")
		}
	}
	switch {
	case hasHeader:
		return a.basic(ctx, r, form, addr)
	case hasSecret:
		return a.secret(ctx, form["client_id"], form["client_secret"], SecretPost, addr)
	case hasAssertion || hasAssertionType:
		return a.assertion(ctx, form, aud)
	}
	// A public client names itself and has nothing to prove (RFC 6749
	// section 2.1); PKCE protects its codes.
	if c, ok := a.clients[form["client_id"]]; ok && c.AuthMethod == None {
		return c, nil
	}
	return nil, oauth.ErrInvalidClient.WithReason("no client credentials")
}

func (a *Authenticator) basic(ctx context.Context, r *http.Request, form map[string]string, addr string) (*Client, *oauth.Error) {
	if len(r.Header.Values("Authorization")) != 1 {
		return nil, oauth.ErrInvalidRequest.WithDescription("The Authorization header was included more than once.")
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		if c := a.publicBasic(r, form); c != nil {
			return c, nil
		}
		return nil, oauth.ErrInvalidClient.WithReason("malformed Authorization header")
	}
	// RFC 6749 section 2.3.1: both parts are form-encoded before Basic.
	var err1, err2 error
	id, err1 = url.QueryUnescape(id)
	secret, err2 = url.QueryUnescape(secret)
	if err1 != nil || err2 != nil {
		return nil, oauth.ErrInvalidClient.WithReason("malformed Authorization header")
	}
	if fid, ok := form["client_id"]; ok && fid != id {
		return nil, oauth.ErrInvalidClient.WithReason("client_id in body differs from Authorization header")
	}
	if c, ok := a.clients[id]; ok && c.AuthMethod == None && secret == "" {
		return c, nil // Basic base64(client_id + ":"): identification, as below
	}
	return a.secret(ctx, id, secret, SecretBasic, addr)
}

// publicBasic is okta-auth-js's form for public clients at revoke and
// introspect: `Authorization: Basic base64(client_id)`, no colon and no
// secret (Okta accepts it). It identifies a client with auth method
// none and authenticates nothing; for any other client it is nil.
func (a *Authenticator) publicBasic(r *http.Request, form map[string]string) *Client {
	h := r.Header.Get("Authorization")
	if len(h) < 6 || !strings.EqualFold(h[:6], "basic ") {
		return nil
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(h[6:]))
	if err != nil || strings.Contains(string(raw), ":") {
		return nil
	}
	id, err := url.QueryUnescape(string(raw))
	if err != nil {
		return nil
	}
	if fid, ok := form["client_id"]; ok && fid != id {
		return nil
	}
	if c, ok := a.clients[id]; ok && c.AuthMethod == None {
		return c
	}
	return nil
}

func (a *Authenticator) secret(ctx context.Context, id, secret, method, addr string) (*Client, *oauth.Error) {
	c, ok := a.clients[id]
	if !ok {
		return nil, oauth.ErrInvalidClient.WithReason("unknown client")
	}
	if c.AuthMethod != method {
		return nil, oauth.ErrInvalidClient.WithReason("client must authenticate with " + c.AuthMethod)
	}
	if want, ok := a.plain[id]; ok {
		got := sha256.Sum256([]byte(secret))
		if subtle.ConstantTimeCompare(got[:], want) != 1 {
			return nil, oauth.ErrInvalidClient.WithReason("wrong client secret")
		}
		return c, nil
	}
	m := hmac.New(sha256.New, a.mac)
	m.Write([]byte(id))
	m.Write([]byte{0})
	m.Write([]byte(secret))
	d := m.Sum(nil)
	if v, ok := a.verified.Load(id); ok && subtle.ConstantTimeCompare(v.([]byte), d) == 1 {
		return c, nil
	}
	res, _, _ := a.checks.Do(id+"\x00"+string(d), func() (any, error) {
		return a.bcryptCheck(ctx, c, secret, d, addr), nil
	})
	if e := res.(*oauth.Error); e != nil {
		return nil, e
	}
	return c, nil
}

// bcryptCheck checks secret against c's hash, within the client's
// failure budget and a hash gate slot; d is the digest to remember.
//
// When the client's budget is spent, an address without a single failed
// client authentication in the window still gets its check, one at a
// time: otherwise ten guesses from anywhere would lock a client out on
// every node and after every reload (its verified secret is remembered
// per process). Each such check costs the attacker a fresh address.
func (a *Authenticator) bcryptCheck(ctx context.Context, c *Client, secret string, d []byte, addr string) *oauth.Error {
	end := func(failed bool) { a.bcrypts.end(c.ID, failed) }
	if ok, wait := a.bcrypts.begin(c.ID); !ok {
		if !a.addrs.beginClean(addr) {
			return ErrThrottled.WithRetryAfter(wait).WithReason("client throttled after failed secret checks")
		}
		// The address's failure, if any, is counted by Authenticate.
		end = func(bool) { a.addrs.end(addr, false) }
	}
	var err error
	if gerr := a.gate.Run(ctx, 0, func() { err = a.compare([]byte(c.SecretHash), []byte(secret)) }); gerr != nil {
		end(false)
		return oauth.ErrTemporarilyUnavailable.WithRetryAfter(a.gate.RetryAfter()).WithReason("secret check: " + gerr.Error())
	}
	end(err != nil)
	if err != nil {
		return oauth.ErrInvalidClient.WithReason("wrong client secret")
	}
	a.verified.Store(c.ID, d)
	return nil
}

func (a *Authenticator) assertion(ctx context.Context, form map[string]string, aud Audiences) (*Client, *oauth.Error) {
	if form["client_assertion_type"] != AssertionType {
		return nil, oauth.ErrInvalidClient.WithDescription("The client_assertion_type is invalid.").WithReason("bad client_assertion_type")
	}
	raw := form["client_assertion"]
	bad := func(reason string) (*Client, *oauth.Error) {
		return nil, oauth.ErrInvalidClient.WithDescription("The client_assertion token is invalid.").WithReason(reason)
	}
	if raw == "" || strings.Count(raw, ".") != 2 {
		return bad("client_assertion is not a compact JWS")
	}
	msg, err := jws.Parse([]byte(raw))
	if err != nil || len(msg.Signatures()) != 1 {
		return bad("client_assertion is not a compact JWS")
	}
	hdr := msg.Signatures()[0].ProtectedHeaders()
	if !slices.Contains(assertionAlgs, hdr.Algorithm()) {
		return bad("client_assertion alg not allowed")
	}
	unverified, err := jwt.Parse(msg.Payload(), jwt.WithVerify(false), jwt.WithValidate(false))
	if err != nil {
		return bad("client_assertion payload is not a JWT claim set")
	}
	id := unverified.Subject()
	if fid, ok := form["client_id"]; ok && fid != id {
		return bad("client_id differs from assertion sub")
	}
	c, ok := a.clients[id]
	if !ok {
		return nil, oauth.ErrInvalidClient.WithReason("unknown client")
	}
	if c.AuthMethod != PrivateKeyJWT {
		return nil, oauth.ErrInvalidClient.WithReason("client must authenticate with " + c.AuthMethod)
	}
	set, err := a.clientKeys(ctx, c, hdr.KeyID())
	if err != nil {
		return bad("client keys unavailable: " + err.Error())
	}
	keys := verificationKeys(set, hdr.KeyID(), hdr.Algorithm())
	if len(keys) == 0 {
		return bad("no signature key of the client fits the assertion's kid and alg")
	}
	tok, err := jwt.Parse([]byte(raw),
		jwt.WithKeyProvider(jws.KeyProviderFunc(func(_ context.Context, sink jws.KeySink, _ *jws.Signature, _ *jws.Message) error {
			for _, k := range keys {
				sink.Key(hdr.Algorithm(), k)
			}
			return nil
		})),
		jwt.WithValidate(true),
		jwt.WithClock(jwt.ClockFunc(a.now)),
		jwt.WithAcceptableSkew(Skew),
		jwt.WithIssuer(id), jwt.WithSubject(id),
		jwt.WithRequiredClaim("exp"),
	)
	if err != nil {
		return bad("client_assertion rejected: " + err.Error())
	}
	if !slices.ContainsFunc(tok.Audience(), func(s string) bool { return slices.Contains(aud, s) }) {
		return bad("client_assertion aud is not this authorization server")
	}
	if len(tok.JwtID()) > maxJTILen {
		return bad("client_assertion jti too long")
	}
	if tok.Expiration().After(a.now().Add(MaxAssertionLifetime)) {
		return bad("client_assertion exp too far in the future")
	}
	// RFC 7523 section 3 item 7: a jti may be used once. The claim is
	// optional there, and Okta's Go SDK sends none (okta-sdk-golang#458):
	// then the signed claims are what is used once, by their hash. Not
	// the compact text: its signature can be spelled several ways
	// (base64url's spare bits, ECDSA's s and n-s) that all verify.
	once := tok.JwtID()
	if once == "" {
		sum := sha256.Sum256(msg.Payload())
		once = "sha256:" + base64.RawURLEncoding.EncodeToString(sum[:])
	}
	fresh, err := a.store.Mark(ctx, store.NSAssertion, id+":"+once, tok.Expiration().Add(Skew))
	if err != nil {
		return nil, oauth.FromStore(err)
	}
	if !fresh {
		return bad("client_assertion jti replayed")
	}
	return c, nil
}

// clientKeys returns the client's key set: the inline one, or the one
// at its jwks_uri, fetched lazily and refetched (rate-limited) when kid
// is not in it.
func (a *Authenticator) clientKeys(ctx context.Context, c *Client, kid string) (jwk.Set, error) {
	if c.keys != nil {
		return c.keys, nil
	}
	return a.remote.get(ctx, c.JWKSURI, kid)
}
