// Package deprule holds no code: its test enforces the project's
// dependency rule (DESIGN.md), that the gateway (caddymodule/) and the
// issuer (tokenissuer/) never import each other, not even in tests,
// and that the pure cores of each half do not import Caddy.
package deprule
