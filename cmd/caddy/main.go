// Command caddy is upstream Caddy with the caddy-apiaccess modules built in.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// Caddy's standard modules.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	// caddy-apiaccess: every module of the gateway and the issuer, the
	// same package `xcaddy build --with github.com/apiaccess/caddy-apiaccess`
	// imports.
	_ "github.com/apiaccess/caddy-apiaccess"
)

func main() {
	caddycmd.Main()
}
