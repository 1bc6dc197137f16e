// Package dpop verifies DPoP proofs (RFC 9449): the token endpoint
// (tokenissuer) and the gateway (require_token) share it through
// internal/, so both halves apply the same rules. It is pure: no Caddy,
// no HTTP server, only the proof, the request's method and URL and, at
// a resource, the access token.
//
// Binding a token to the proof key (cnf.jkt, RFC 9449 section 6) is the
// caller's check: compare Proof.JKT with the token's cnf.jkt.
package dpop
