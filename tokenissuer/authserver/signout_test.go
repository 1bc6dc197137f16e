package authserver

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestSignOutDefaults replays okta-auth-js signOut() with its defaults
// for a public SPA (oidc/mixin/index.js): revoke the refresh token,
// then the access token, each with `Authorization: Basic
// base64(client_id)` (no colon, no secret) from the app's origin, then
// RP-initiated logout with id_token_hint and post_logout_redirect_uri.
// Both revocations succeed with CORS for the trusted origin, the tokens
// are then inactive, the session ends and the browser goes back to the
// app. The same header naming a confidential client is invalid_client.
func TestSignOutDefaults(t *testing.T) {
	e := sessionsEnv(t)
	const spaBye = "https://pub.test/bye"
	pub, _ := e.iss.auth.Client("pub")
	pub.PostLogoutRedirectURIs = append(pub.PostLogoutRedirectURIs, spaBye)
	status, tokens := e.redeem("pub", e.code("pub", pubCB, verifier), pubCB, verifier)
	if status != http.StatusOK || tokens["refresh_token"] == nil || tokens["id_token"] == nil {
		t.Fatalf("tokens: %d %v", status, tokens)
	}
	revoke := func(client, tok, hint string) *httptest.ResponseRecorder {
		f := url.Values{"token": {tok}, "token_type_hint": {hint}}
		r := httptest.NewRequest(http.MethodPost, "/oauth2/default/v1/revoke", strings.NewReader(f.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Accept", "application/json")
		r.Header.Set("X-Okta-User-Agent-Extended", "okta-auth-js/8.0.1")
		r.Header.Set("Origin", appOrigin)
		r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(client)))
		w := httptest.NewRecorder()
		e.iss.ServeHTTP(w, r)
		return w
	}
	for _, c := range []struct{ tok, hint string }{{"refresh_token", "refresh_token"}, {"access_token", "access_token"}} {
		tok := tokens[c.tok].(string)
		if w := revoke("web", tok, c.hint); w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "invalid_client") {
			t.Errorf("confidential client by bare id: %d %s", w.Code, w.Body)
		}
		if !e.active(tok) {
			t.Fatalf("%s inactive before the SPA revoked it", c.tok)
		}
		w := revoke("pub", tok, c.hint)
		if w.Code != http.StatusOK || w.Header().Get("Access-Control-Allow-Origin") != appOrigin || w.Header().Get("Access-Control-Allow-Credentials") != "" {
			t.Fatalf("revoke %s: %d %v %s", c.tok, w.Code, w.Header(), w.Body)
		}
		if e.active(tok) {
			t.Errorf("%s still active after revocation", c.tok)
		}
	}
	sess := e.session("u1")
	w := e.browse(http.MethodGet, logoutURL(tokens["id_token"].(string), spaBye, "st8"), nil, sess)
	cleared := cookieOf(w, sess.Name)
	if w.Code != http.StatusFound || w.Header().Get("Location") != spaBye+"?state=st8" || e.sessionAlive(sess) || cleared == nil || cleared.MaxAge >= 0 {
		t.Fatalf("logout: %d %q alive=%v", w.Code, w.Header().Get("Location"), e.sessionAlive(sess))
	}
	if w := e.api(http.MethodGet, "/api/v1/sessions/me", appOrigin, sess); w.Code != http.StatusNotFound {
		t.Errorf("session after logout: %d", w.Code)
	}
}
