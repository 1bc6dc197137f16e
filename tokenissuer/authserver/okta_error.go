package authserver

import (
	"net/http"
	"strings"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
)

// oktaError is Okta's API error body (Okta's "Error codes" reference:
// errorCode, errorSummary, errorLink, errorId, errorCauses), which Okta
// answers on its management APIs, on unknown resources and on rate
// limits.
type oktaError struct {
	Code    string `json:"errorCode"`
	Summary string `json:"errorSummary"`
	Link    string `json:"errorLink"`
	ID      string `json:"errorId"`
	Causes  []any  `json:"errorCauses"`
}

// writeOktaError answers status with Okta's error body; errorId is a
// fresh random id shaped like Okta's ("oae" and 22 characters).
func writeOktaError(w http.ResponseWriter, status int, code, summary string) {
	oauth.WriteJSON(w, status, oktaError{Code: code, Summary: summary, Link: code, ID: "oae" + randomToken()[:22], Causes: []any{}})
}

// maxEchoedPath bounds how much of an unknown path a 404 repeats.
const maxEchoedPath = 256

// notFound answers an unknown path in the issuer's namespaces as Okta
// does: 404 E0000007 "Not found: Resource not found: <what> (<type>)",
// naming an unknown authorization server by its id.
func (i *Issuer) notFound(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	writeOktaError(w, http.StatusNotFound, "E0000007", "Not found: Resource not found: "+i.unknownResource(r.URL.Path))
}

// unknownResource names what a path asked for that does not exist.
func (i *Issuer) unknownResource(p string) string {
	for _, prefix := range []string{i.basePath + "/oauth2/", "/.well-known/" + docOAuth + i.basePath + "/oauth2/"} {
		if rest, ok := strings.CutPrefix(p, prefix); ok {
			id, _, _ := strings.Cut(rest, "/")
			if _, known := i.servers[id]; !known && id != "v1" && id != "" {
				return echo(id) + " (AuthorizationServer)"
			}
		}
	}
	return echo(p) + " (Path)"
}

// echo is client input fit to repeat: valid UTF-8, bounded.
func echo(s string) string {
	if len(s) > maxEchoedPath {
		s = s[:maxEchoedPath] + "..."
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
