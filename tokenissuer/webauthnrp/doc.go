// Package webauthnrp is the issuer's WebAuthn Relying Party: security
// keys and passkeys as a sign-in factor (W3C Web Authentication Level 3,
// https://www.w3.org/TR/webauthn-3/), on github.com/go-webauthn/webauthn.
//
// The RP id is the host of the issuer's base URL (no port, §5.1.3 / RP
// ID); the accepted origin is the base URL's scheme://host[:port].
// WebAuthn needs a secure context: an https base URL, or http on
// localhost.
//
// User handles (§5.4.3 user.id) are derived from the user id, never the
// login (which may change and is personal): the 32 bytes of
// SHA-256("apiaccess webauthn user\x00" + uid), see [UserHandle].
//
// A ceremony is Begin* (options for the browser, an opaque session for
// the server) then Finish* (the browser's answer checked against the
// session). The caller keeps the session server side, in its pending
// transaction, and takes it out of that record (atomically, so two
// concurrent posts cannot both get it) before calling Finish*, whatever
// the outcome: this package cannot see a second use, the caller's
// delete prevents it. (A replayed assertion against a kept session is
// also refused once the credential's new sign count is stored, as
// ErrCloned, but only for authenticators that count.) A session carries its own expiry ([Timeout] after
// Begin*); Finish* refuses it after that with [ErrSessionExpired].
//
// Credentials are stored by the caller as the JSON that FinishRegistration
// returns (go-webauthn's Credential: id, COSE public key, sign count,
// AAGUID, transports, user-verified/backup-eligible/backup-state flags)
// and passed back in [User.Credentials]; FinishLogin returns the updated
// JSON to write back. A sign count that does not increase, unless both
// the stored and the new count are zero (authenticators without a
// counter), is refused with [ErrCloned] (§6.1.1, signature counter).
//
// The browser half is webauthn.js ([ScriptHandler]), which needs only
// `script-src 'self'` and submits the result as a plain form post.
package webauthnrp
