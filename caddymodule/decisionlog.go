package caddymodule

import (
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/apiaccess/caddy-apiaccess/caddymodule/validator"
	"github.com/apiaccess/caddy-apiaccess/internal/gatewaylog"
)

// Values of `log_decisions`: which decisions a route records in the
// System Log of the `token_issuer` app in the same Caddy.
const (
	LogRejections = "rejections"
	LogAll        = "all"
	LogNone       = "none"
)

// decisionLog records a route's decisions, or is nil when it records
// none.
type decisionLog struct {
	rec   gatewaylog.Recorder
	all   bool
	route string
}

// newDecisionLog finds the System Log of this Caddy's issuer. Unset
// `log_decisions` means rejections when there is such an issuer and
// nothing otherwise (a remote gateway logs to Caddy's log only); an
// explicit `rejections` or `all` without one is a mistake in the config.
func newDecisionLog(ctx caddy.Context, mode, route string) (*decisionLog, error) {
	switch mode {
	case "", LogRejections, LogAll, LogNone:
	default:
		return nil, fmt.Errorf("log_decisions: %q is not one of %s, %s, %s", mode, LogRejections, LogAll, LogNone)
	}
	if mode == LogNone {
		return nil, nil
	}
	rec, _ := localIssuer(ctx).(gatewaylog.Recorder)
	if rec == nil {
		if mode != "" {
			return nil, fmt.Errorf("log_decisions %s: there is no token_issuer app in this Caddy to keep them; a remote gateway's decisions are in Caddy's log (logger http.handlers.require_token)", mode)
		}
		return nil, nil
	}
	return &decisionLog{rec: rec, all: mode == LogAll, route: route}, nil
}

// accepted records an accepted request when the route records all.
func (l *decisionLog) accepted(r *http.Request, repl *caddy.Replacer, res *validator.Result) {
	if l == nil || !l.all {
		return
	}
	d := l.decision(r, repl)
	d.Allowed = true
	d.Issuer, d.Subject, d.Scopes = res.Issuer.URL, res.Subject, res.Scopes
	d.ClientID = clientID(res.Claims)
	d.UserID, _ = res.Claims["uid"].(string)
	d.JTI, _ = res.Claims["jti"].(string)
	l.rec.RecordGatewayDecision(d)
}

// rejected records a refusal.
func (l *decisionLog) rejected(r *http.Request, repl *caddy.Replacer, f *validator.Failure) {
	if l == nil {
		return
	}
	d := l.decision(r, repl)
	d.Status, d.Reason = f.Status, f.Reason
	if f.Verified { // else the issuer is only what the token claims
		d.Issuer, d.Subject, d.ClientID, d.UserID, d.JTI = f.Issuer, f.Subject, f.ClientID, f.UserID, f.JTI
	}
	l.rec.RecordGatewayDecision(d)
}

// decision is what every decision of the route holds.
func (l *decisionLog) decision(r *http.Request, repl *caddy.Replacer) gatewaylog.Decision {
	d := gatewaylog.Decision{
		Time: time.Now(), Route: l.route,
		Method: r.Method, Host: r.Host, Path: r.URL.Path,
		UserAgent: r.UserAgent(),
	}
	d.ClientIP = clientIP(r)
	if repl != nil {
		d.RequestID, _ = repl.GetString("http.request.uuid")
	}
	return d
}

// clientIP is Caddy's client IP (which honours `trusted_proxies`), else
// the connection's peer.
func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	return remoteIP(r)
}

// validRouteName: a route name is a label for the log: valid UTF-8,
// printable (no control characters, C0 or C1), at most 128 bytes.
func validRouteName(s string) bool {
	return len(s) <= 128 && utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) }) < 0
}
