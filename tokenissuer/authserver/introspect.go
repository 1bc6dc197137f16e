package authserver

import (
	"errors"
	"strings"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// inactive is the whole answer for any token that is not active: RFC
// 7662 section 2.2 forbids saying why.
var inactive = map[string]bool{"active": false}

// introspectEndpoint is the introspection endpoint (RFC 7662). A
// confidential client may introspect any token of the server, as
// resource servers must; a public client proves only its client_id, so
// it sees only tokens issued to it (RFC 7662 section 4: the server must
// decide who may learn what about a token). An access token is
// inactive once revoked itself or through its refresh-token family.
var introspectEndpoint = &backChannel{name: "introspect", event: EventIntrospect, failEvent: EventIntrospect, run: (*Issuer).runIntrospect,
	// Failed requests (a bad client, the store) are not introspections.
	observe: func(o Observer, d decision, out outcome, _ time.Duration) {
		if out.err == nil {
			o.Introspection(d.server.ID, out.active)
		}
	},
}

// notActive answers a token that is not active; it decides nothing.
var notActive = outcome{body: inactive, unlogged: true}

func (i *Issuer) runIntrospect(x *exchange) outcome {
	tok, e := tokenParam(x.form)
	if e != nil {
		return failed(e)
	}
	ctx, s, c := x.r.Context(), x.s, x.client
	// token_type_hint is only a hint (RFC 7662 section 2.1): every token
	// is looked up as an access token, the only kind this server issues.
	// mayKnow says whether the caller may learn about a token issued to
	// client cid.
	mayKnow := func(cid string) bool {
		return c.AuthMethod != clientauth.None || cid == c.ID
	}
	// Any access token of s, whatever its aud, which the answer gives
	// as it is (verifyIssuedToken).
	t, err := i.verifyIssuedToken(s, tok)
	if err != nil {
		rt, err := i.lookupRefresh(ctx, s, tok)
		usable := false
		if err == nil && mayKnow(rt.ClientID) {
			usable, err = i.refreshUsable(ctx, rt)
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return failed(oauth.FromStore(err))
		}
		if !usable {
			return notActive
		}
		return outcome{unlogged: true, active: true, body: map[string]any{
			"active": true, "token_type": "refresh_token", "scope": strings.Join(rt.Scopes, " "),
			"client_id": rt.ClientID, "uid": rt.UserID, "iat": rt.Issued.Unix(), "exp": rt.IdleExpires.Unix(), "iss": s.Issuer,
		}}
	}
	priv := t.PrivateClaims()
	if cid, _ := priv["cid"].(string); !mayKnow(cid) {
		return notActive
	}
	rev, err := i.accessRevoked(ctx, t)
	if err != nil {
		return failed(oauth.FromStore(err))
	}
	if rev {
		return notActive
	}
	resp := map[string]any{
		"active":     true,
		"token_type": "Bearer",
		"client_id":  priv["cid"],
		"sub":        t.Subject(),
		"username":   t.Subject(),
		"iss":        t.Issuer(),
		"aud":        strings.Join(t.Audience(), " "),
		"exp":        t.Expiration().Unix(),
		"iat":        t.IssuedAt().Unix(),
		"jti":        t.JwtID(),
	}
	if scp, ok := priv["scp"].([]any); ok {
		parts := make([]string, 0, len(scp))
		for _, v := range scp {
			if s, ok := v.(string); ok {
				parts = append(parts, s)
			}
		}
		resp["scope"] = strings.Join(parts, " ")
	}
	if uid, ok := priv["uid"]; ok {
		resp["uid"] = uid
	}
	// An exchanged token's actor chain (RFC 8693 section 4.1: act is
	// defined for introspection responses too).
	if act, ok := priv["act"]; ok {
		resp["act"] = act
	}
	// A DPoP-bound token says so, and to which key (RFC 9449 section 6.2).
	if jkt := boundKey(priv); jkt != "" {
		resp["cnf"], resp["token_type"] = map[string]any{"jkt": jkt}, "DPoP"
	}
	x.d.jti = t.JwtID()
	return outcome{body: resp, active: true}
}
