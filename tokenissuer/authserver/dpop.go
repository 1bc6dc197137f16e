package authserver

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/dpop"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/keys"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// DPoP at the token endpoint (RFC 9449 section 5): a request with a
// valid `DPoP` proof gets access tokens bound to the proof's key
// (`cnf.jkt`, token_type DPoP), and a public client's refresh tokens are
// bound to it too. Proofs need a server nonce, as Okta's do: the first
// request without one is answered use_dpop_nonce with a DPoP-Nonce
// header (section 8). Nonces are derived from the key-encryption secret,
// so every node of a cluster accepts every other's, and a proof's jti is
// used once cluster-wide (a store mark).

// dpopNoncePeriod is how long a nonce is current (it is accepted for one
// period more).
const dpopNoncePeriod = 5 * time.Minute

// storeReplay is dpop.ReplayCache on the store: one use of a proof's jti
// for every node.
type storeReplay struct{ st store.Store }

func (s storeReplay) Seen(ctx context.Context, key string, until time.Time) (bool, error) {
	fresh, err := s.st.Mark(ctx, store.NSDPoPProof, key, until)
	return !fresh, err
}

// startDPoP builds the proof verifier once the store and secret are known.
func (i *Issuer) startDPoP(st store.Store, sealer *keys.Sealer) error {
	v, err := dpop.New(dpop.Options{
		Now:    i.now,
		Replay: storeReplay{st},
		Nonces: dpop.NewNonces(sealer.Derive("dpop nonce"), dpopNoncePeriod, i.now),
	})
	if err != nil {
		return err
	}
	i.dpop = v
	// Userinfo takes proofs without a server nonce: Okta's browser SDK
	// (okta-auth-js getUser) sends one proof there and never retries on
	// use_dpop_nonce, which only its token requests do. Replay is still
	// checked (the proof's jti, cluster-wide) and iat bounds the proof.
	i.dpopUserinfo, err = dpop.New(dpop.Options{Now: i.now, Replay: storeReplay{st}})
	return err
}

// tokenProof checks the DPoP proof of a token request, if any: its key's
// thumbprint ("" without a proof), or the error to answer, with the
// headers it needs. A client that must use DPoP has to send one.
func (i *Issuer) tokenProof(x *exchange) (string, *oauth.Error) {
	proofs := x.r.Header.Values("DPoP")
	switch {
	case len(proofs) > 1:
		return "", dpopError("Only one DPoP header is allowed.", "multiple DPoP headers")
	case len(proofs) == 0 && x.client.DPoPBoundAccessTokens:
		return "", dpopError("The DPoP proof JWT header is missing.", "the client requires DPoP")
	case len(proofs) == 0:
		return "", nil
	}
	p, err := i.dpop.Verify(x.r.Context(), proofs[0], http.MethodPost, x.s.endpoints+"/token", "")
	var de *dpop.Error
	switch {
	case errors.As(err, &de):
		return "", &oauth.Error{Code: de.Code, Description: de.Description(), Status: http.StatusBadRequest, Reason: "dpop " + de.Reason}
	case err != nil:
		return "", oauth.FromStore(err)
	}
	return p.JKT, nil
}

func dpopError(description, reason string) *oauth.Error {
	return &oauth.Error{Code: dpop.CodeInvalidProof, Description: description, Status: http.StatusBadRequest, Reason: reason}
}

// refreshKeyBound: the key a refresh token is bound to (public clients,
// RFC 9449 section 5.0), or none.
func refreshKeyBound(c *clientauth.Client, jkt string) string {
	if c.AuthMethod == clientauth.None {
		return jkt
	}
	return ""
}

// cnfClaim is the confirmation claim of a bound token (RFC 7800,
// RFC 9449 section 6.1).
type cnfClaim struct {
	JKT string `json:"jkt"`
}

// boundKey is the thumbprint a token is bound to (cnf.jkt, RFC 9449
// section 6.1), "" for a bearer token.
func boundKey(claims map[string]any) string {
	cnf, _ := claims["cnf"].(map[string]any)
	jkt, _ := cnf["jkt"].(string)
	return jkt
}

// Refusals of proveBound besides the proof's own (*dpop.Error).
var (
	errOneProof      = errors.New("One DPoP proof of the token's key is required.")
	errProofOtherKey = errors.New("The DPoP proof is not of the token's key.")
)

// proveBound checks the DPoP proof of a request made with a token bound
// to jkt, for the resource endpoints (userinfo, the SSF API): one proof,
// for the request's method and htu, with the token's ath, of that key
// (RFC 9449 section 7). A refusal is errOneProof, errProofOtherKey or a
// *dpop.Error; any other error is the store's.
func (i *Issuer) proveBound(r *http.Request, htu, tok, jkt string) error {
	proofs := r.Header.Values("DPoP")
	if len(proofs) != 1 {
		return errOneProof
	}
	p, err := i.dpopUserinfo.Verify(r.Context(), proofs[0], r.Method, htu, tok)
	if err != nil {
		return err
	}
	if p.JKT != jkt {
		return errProofOtherKey
	}
	return nil
}
