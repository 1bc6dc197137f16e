// Command caddy is upstream Caddy with the caddy-apiaccess modules built in.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// Caddy's standard modules.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	// caddy-apiaccess: the gateway and the issuer.
	_ "github.com/apiaccess/caddy-apiaccess/caddymodule"
	_ "github.com/apiaccess/caddy-apiaccess/tokenissuer"
)

func main() {
	caddycmd.Main()
}
