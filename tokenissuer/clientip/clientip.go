// Package clientip carries the address of the client a request came
// from, as the Caddy glue computed it (Caddy's `client_ip`, which honours
// the server's `trusted_proxies`), to the Caddy-free cores that throttle
// by address. Behind a reverse proxy the socket's peer is the proxy: a
// throttle keyed by it would let one client lock out everyone.
package clientip

import (
	"context"
	"net"
	"net/http"
)

type key struct{}

// With returns ctx carrying ip as the client's address.
func With(ctx context.Context, ip string) context.Context {
	return context.WithValue(ctx, key{}, ip)
}

// From returns the client's address: the one set by With, else the
// host of the connection's peer address (not a forwarded header, which
// a client could forge).
func From(r *http.Request) string {
	if ip, ok := r.Context().Value(key{}).(string); ok && ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Key is the address throttles count by: an IPv4 address as it is, an
// IPv6 address by its /64, which one subscriber usually holds whole
// (RFC 6177), so a single host cannot get a fresh count per address.
func Key(r *http.Request) string { return KeyOf(From(r)) }

// KeyOf is Key for an address already read.
func KeyOf(ip string) string {
	a := net.ParseIP(ip)
	switch {
	case a == nil:
		return ip
	case a.To4() != nil:
		return a.To4().String()
	}
	return a.Mask(net.CIDRMask(64, 128)).String() + "/64"
}
