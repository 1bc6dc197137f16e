// Package ssf is the shared core of the revocation feed: the issuer is an
// OpenID Shared Signals Framework 1.0 transmitter (SSF), a remote
// require_token gateway a receiver that polls it (RFC 8936), so the
// gateway needs no inbound port. The package is pure: no Caddy, no HTTP
// handlers, no store; both halves import it.
//
// # Standards used
//
//   - Security Event Tokens (RFC 8417) profiled by SSF section 4.1: JWS
//     with typ "secevent+jwt", claims iss, iat, jti, aud, txn, sub_id and
//     events; no sub and no exp (SSF 4.1.2, 4.1.7), which also keeps a SET
//     from ever passing as an access token.
//   - One event type for every revocation: CAEP 1.0 session-revoked
//     (https://schemas.openid.net/secevent/caep/event-type/session-revoked)
//     with event_timestamp, initiating_entity and reason_admin (CAEP 1.0
//     section 2). SSF verification and stream-updated events ride the same
//     streams (SSF 8.1.4, 8.1.5).
//   - The primary subject in the top-level sub_id claim (SSF 3.1), as
//     the Subject Identifiers (RFC 9493 section 3, SSF 3.2-3.5) below.
//   - Poll delivery (RFC 8936): PollRequest and PollResponse are its JSON
//     bodies, Queue is the transmitter side. Push (RFC 8935) shares the
//     SETs and the error codes (SetErr) but is not built here.
//   - Transmitter configuration metadata (SSF 7.1) and stream
//     configuration and status (SSF 8.1.1, 8.1.2).
//
// Subjects:
//
//	one token:   {"format":"jwt_id","iss":ISS,"jti":JTI}  (SSF 3.5.1)
//	a user:      {"format":"iss_sub","iss":ISS,"sub":SUB}  (RFC 9493 3.2)
//	a user uid:  {"format":"complex","user":{"format":"opaque","id":UID}}
//	sub and uid: {"format":"complex","user":{"format":"aliases","identifiers":[iss_sub, opaque]}}
//	a client:    {"format":"complex","application":{"format":"opaque","id":CLIENT_ID}}
//	a user at a client: {"format":"complex","user":USER,"application":{"format":"opaque","id":CLIENT_ID}}
//	             (USER any of the three user forms above; SSF 3.3: all members match)
//	a stream:    {"format":"opaque","id":STREAM_ID}  (SSF 8.1.4.1)
//
// # Gaps filled
//
// Token-level revocation. SSF 1.0 defines the jwt_id format (iss + jti),
// so one revoked token is named by the standard. What no standard gives is
// how long a receiver must remember it: the revoked token's own exp. It
// travels in the event object under the collision-resistant name
// "urn:apiaccess:ssf:token_exp" (NumericDate), which SSF 4.2.3 allows and
// other receivers ignore. A receiver keeps the jti until that exp; without
// it, until the event time plus the longest access token lifetime (24 h).
// A refresh family revoked together with its access tokens is published as
// one jwt_id event per access token: gateways never see refresh tokens.
// (The OAuth Event Types draft's token-revoked event and its "oauth_token"
// subject type, from 2018, were never finished nor registered; RISC 1.0
// deprecated its sessions-revoked event for CAEP's.)
//
// Client subjects. RFC 9493 has no client_id format; SSF's complex
// subject has an "application" member, and the client id is an opaque
// identifier inside it. Client ids are unique per Okta org, so the
// subject does not repeat the issuer.
//
// A user at one client. Signing a user out of one application revokes
// that user's tokens at that client only: a complex subject with both
// the user and the application member, which SSF 3.3 reads as "every
// member matches". Receivers keep a cut-off per (sub, client id) and per
// (uid, client id) pair (Revocations.RevokeUserAt).
//
// Users by uid. Okta access tokens carry the user's id in uid and the
// login in sub; the uid is an opaque identifier in the complex subject's
// "user" member, and both together are RFC 9493 aliases.
//
// "All tokens of a user or a client issued before T". session-revoked on
// a user or client subject revokes every token of it whose iat is at or
// before event_timestamp (CAEP says event_timestamp is when the revocation
// occurred): the cut-off. Tokens issued later are good. iat and
// event_timestamp are whole seconds, so a token issued in the same second
// after the revocation is refused as well; the issuer should not issue a
// token for that subject in the cut-off's second (wait for the next one).
// A receiver forgets a cut-off once every token it can cover has expired:
// cut-off plus the longest access token lifetime.
//
// # Resuming
//
// Poll delivery is acknowledgement based (RFC 8936 section 2.4): the
// transmitter keeps every event a stream has not acknowledged, returns
// unacknowledged SETs again on the next poll, and drops a stream's
// acknowledged ones. A receiver that loses its connection simply polls
// again, acknowledging what it processed, and receives what it missed.
// The transmitter's log holds each event while it matters (its
// RelevantUntil), not just until every stream acknowledged it, so a new
// stream starts at the oldest retained event: a receiver that lost its
// state (a gateway restart) creates a new stream, or has its stream
// rewound (Queue.Rewind), and so relearns every revocation still in
// force. The stream's cursor is its low-water mark: every event at or
// below it is acknowledged. The log is bounded (MemQueue.MaxRetained)
// and so is the receiver's Revocations (MaxTokens, MaxSubjects).
package ssf
