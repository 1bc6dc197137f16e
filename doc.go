// Package apiaccess is the whole of caddy-apiaccess for Caddy builds: it
// imports every package that registers a Caddy module, Caddyfile
// directive or caddy subcommand, so one
//
//	xcaddy build --with github.com/apiaccess/caddy-apiaccess
//
// gives a Caddy with the issuer (app token_issuer, handler
// http.handlers.token_issuer, admin API admin.api.token_issuer, storage
// token_issuer.storage.embedded and .postgres, directory sources
// token_issuer.directory.file and .static, command
// apiaccess-hash-password) and the gateway (handler
// http.handlers.require_token). cmd/caddy imports this package too, so
// both builds hold the same modules.
package apiaccess

import (
	// The gateway: http.handlers.require_token and its directive.
	_ "github.com/apiaccess/caddy-apiaccess/caddymodule"

	// The issuer: the token_issuer app, handler, admin API, global
	// option, directive and the apiaccess-hash-password command.
	_ "github.com/apiaccess/caddy-apiaccess/tokenissuer"

	// The issuer's guest modules. tokenissuer imports them as well; they
	// are named here so that no build loses one if that import moves.
	_ "github.com/apiaccess/caddy-apiaccess/tokenissuer/directory/filesource"
	_ "github.com/apiaccess/caddy-apiaccess/tokenissuer/directory/staticsource"
	_ "github.com/apiaccess/caddy-apiaccess/tokenissuer/store/embedded"
	_ "github.com/apiaccess/caddy-apiaccess/tokenissuer/store/postgres"
)
