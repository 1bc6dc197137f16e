// Package dpop verifies DPoP proofs (RFC 9449): the token endpoint
// (tokenissuer) and the gateway (require_token) share it through
// internal/, so both halves apply the same rules. It is pure: no Caddy,
// no HTTP server, only the proof, the request's method and URL and, at
// a resource, the access token.
//
// Left to the caller: one DPoP header exactly (RFC 9449 section 4.3,
// check 1), binding a token to the proof key (compare Proof.JKT with
// the token's cnf.jkt, section 6), the answer's form (400 or 401, the
// DPoP-Nonce header, WWW-Authenticate with algs) and a shared
// ReplayCache in cluster mode.
package dpop
