package tokenissuer_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/okta/okta-sdk-golang/v5/okta"
	"golang.org/x/oauth2"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit/browser"
)

// okta-sdk-golang/v5 v5.0.2, unchanged, against the admin API with an
// API token (SSWS): AuthorizationServerAPI and its Scopes, Claims,
// Policies and Rules APIs read the configuration; UserAPI and
// ApplicationTokensAPI list, read and revoke refresh tokens.

// adminSDK is the Go SDK with the API token and no response cache (a
// list read again after a revocation must not come from it).
func adminSDK(t *testing.T, token string) *okta.APIClient {
	t.Helper()
	cfg, err := okta.NewConfiguration(okta.WithOrgUrl(base), okta.WithToken(token), okta.WithTestingDisableHttpsCheck(true), okta.WithCache(false))
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(base)
	cfg.Host = u.Host
	return okta.NewAPIClient(cfg)
}

// TestAuthorizationServersOktaSDK: the configured server, its scopes,
// policy and rule as the SDK's models read them, with the configured
// values; a write is refused with Okta's 405.
func TestAuthorizationServersOktaSDK(t *testing.T) {
	startGrantsEnv(t)
	ctx := context.Background()
	c := adminSDK(t, logAPIToken)
	issuer := base + "/oauth2/default"

	servers, _, err := c.AuthorizationServerAPI.ListAuthorizationServers(ctx).Execute()
	if err != nil || len(servers) != 1 {
		t.Fatalf("ListAuthorizationServers: %d, %v %s", len(servers), err, errBody(err))
	}
	as := servers[0]
	kid := as.Credentials.Signing.GetKid()
	if as.GetId() != "default" || as.GetIssuer() != issuer || !slices.Equal(as.Audiences, []string{"api://default"}) ||
		as.GetStatus() != "ACTIVE" || as.GetIssuerMode() != "ORG_URL" || kid == "" || as.Credentials.Signing.GetRotationMode() != "AUTO" ||
		time.Since(as.GetLastUpdated()) > 10*time.Minute || as.Links.Policies == nil {
		b, _ := json.Marshal(as)
		t.Fatalf("server %s", b)
	}
	if !jwksHasKid(t, issuer+"/v1/keys", kid) {
		t.Errorf("signing kid %s is not in the server's JWKS", kid)
	}
	one, _, err := c.AuthorizationServerAPI.GetAuthorizationServer(ctx, "default").Execute()
	if err != nil || one.GetId() != "default" || one.Credentials.Signing.GetKid() != kid {
		t.Fatalf("GetAuthorizationServer: %v %s", err, errBody(err))
	}

	scopes, _, err := c.AuthorizationServerScopesAPI.ListOAuth2Scopes(ctx, "default").Execute()
	if err != nil {
		t.Fatalf("ListOAuth2Scopes: %v %s", err, errBody(err))
	}
	got := map[string]okta.OAuth2Scope{}
	for _, s := range scopes {
		got[s.GetName()] = s
	}
	if s := got["orders:read"]; !s.GetDefault() || s.GetConsent() != "IMPLICIT" || s.GetSystem() {
		t.Errorf("orders:read %+v", s)
	}
	if s := got[consentOnly]; s.GetConsent() != "REQUIRED" || s.GetDescription() != "Make payments for you" {
		t.Errorf("%s %+v", consentOnly, s)
	}
	if s := got["offline_access"]; !s.GetSystem() || s.GetMetadataPublish() != "ALL_CLIENTS" {
		t.Errorf("offline_access %+v", s)
	}
	if s, _, err := c.AuthorizationServerScopesAPI.GetOAuth2Scope(ctx, "default", consentOnly).Execute(); err != nil || s.GetId() != consentOnly {
		t.Errorf("GetOAuth2Scope: %v %s", err, errBody(err))
	}
	if claims, _, err := c.AuthorizationServerClaimsAPI.ListOAuth2Claims(ctx, "default").Execute(); err != nil || len(claims) != 0 {
		t.Errorf("ListOAuth2Claims: %d, %v %s", len(claims), err, errBody(err))
	}

	policies, _, err := c.AuthorizationServerPoliciesAPI.ListAuthorizationServerPolicies(ctx, "default").Execute()
	if err != nil || len(policies) != 1 {
		t.Fatalf("ListAuthorizationServerPolicies: %d, %v %s", len(policies), err, errBody(err))
	}
	p := policies[0]
	if p.AdditionalProperties["id"] != "People" || p.AdditionalProperties["type"] != "OAUTH_AUTHORIZATION_POLICY" || p.AdditionalProperties["priority"] != 1.0 ||
		!slices.Equal(p.Conditions.Clients.Include, []string{"ALL_CLIENTS"}) {
		b, _ := json.Marshal(p)
		t.Errorf("policy %s", b)
	}
	if p, _, err := c.AuthorizationServerPoliciesAPI.GetAuthorizationServerPolicy(ctx, "default", "People").Execute(); err != nil || p.AdditionalProperties["name"] != "People" {
		t.Errorf("GetAuthorizationServerPolicy: %v %s", err, errBody(err))
	}
	rules, _, err := c.AuthorizationServerRulesAPI.ListAuthorizationServerPolicyRules(ctx, "default", "People").Execute()
	if err != nil || len(rules) != 1 {
		t.Fatalf("ListAuthorizationServerPolicyRules: %d, %v %s", len(rules), err, errBody(err))
	}
	checkRule := func(r okta.AuthorizationServerPolicyRule) {
		t.Helper()
		tok := r.Actions.Token
		if r.GetId() != "Sign-in" || r.GetName() != "Sign-in" || r.GetType() != "RESOURCE_ACCESS" || r.GetStatus() != "ACTIVE" || r.GetPriority() != 1 ||
			tok.GetAccessTokenLifetimeMinutes() != 10 || tok.GetRefreshTokenLifetimeMinutes() != 24*60 || tok.GetRefreshTokenWindowMinutes() != 60 ||
			!slices.Equal(r.Conditions.GrantTypes.Include, []string{"authorization_code", deviceGrant}) ||
			!slices.Equal(r.Conditions.Scopes.Include, []string{"*"}) || !slices.Equal(r.Conditions.People.Groups.Include, []string{"EVERYONE"}) {
			b, _ := json.Marshal(r)
			t.Errorf("rule %s", b)
		}
	}
	checkRule(rules[0])
	rule, _, err := c.AuthorizationServerRulesAPI.GetAuthorizationServerPolicyRule(ctx, "default", "People", "Sign-in").Execute()
	if err != nil {
		t.Fatalf("GetAuthorizationServerPolicyRule: %v %s", err, errBody(err))
	}
	checkRule(*rule)

	// Caddy's admin API lists the same.
	res, err := http.Get(adminURL + "/token_issuer/servers")
	if err != nil {
		t.Fatal(err)
	}
	var fromAdmin []okta.AuthorizationServer
	err = json.NewDecoder(res.Body).Decode(&fromAdmin)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 || len(fromAdmin) != 1 || fromAdmin[0].GetId() != "default" || fromAdmin[0].Credentials.Signing.GetKid() != kid {
		t.Fatalf("GET /token_issuer/servers: %d %v %+v", res.StatusCode, err, fromAdmin)
	}
	if res, _ := doRaw(t, mustReq(http.MethodPost, adminURL+"/token_issuer/servers")); res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /token_issuer/servers: %d", res.StatusCode)
	}

	_, resp, err := c.AuthorizationServerAPI.GetAuthorizationServer(ctx, "nosuch").Execute()
	wantAPIError(t, "GetAuthorizationServer of no server", http.StatusNotFound, "E0000007", resp, err)
	_, resp, err = adminSDK(t, "wrong-"+logAPIToken).AuthorizationServerAPI.ListAuthorizationServers(ctx).Execute()
	wantAPIError(t, "wrong API token", http.StatusUnauthorized, "E0000011", resp, err)
	resp, err = c.AuthorizationServerAPI.DeleteAuthorizationServer(ctx, "default").Execute()
	wantAPIError(t, "DeleteAuthorizationServer", http.StatusMethodNotAllowed, "E0000022", resp, err)
	if !strings.Contains(errBody(err), "source of truth") {
		t.Errorf("the refusal does not say why: %s", errBody(err))
	}
}

// jwksHasKid reports whether the JWKS at u holds a key kid.
func jwksHasKid(t *testing.T, u, kid string) bool {
	t.Helper()
	res, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(res.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(set.Keys, func(k struct {
		Kid string `json:"kid"`
	}) bool {
		return k.Kid == kid
	})
}

// TestRefreshTokensOktaSDK: alice signs in twice with offline_access;
// UserAPI lists both refresh tokens (expand=scope, one page of one with
// a next page the SDK follows), ApplicationTokensAPI lists and reads
// them; RevokeTokenForUserAndClient revokes one: it no longer refreshes
// and is no longer listed, the other still refreshes.
func TestRefreshTokensOktaSDK(t *testing.T) {
	startGrantsEnv(t)
	issuer := base + "/oauth2/default"
	b := browser.New(t, base)
	first, _ := webCodeFlow(t, b, issuer, "openid", "offline_access", "orders:read")
	second, _ := webCodeFlow(t, b, issuer, "openid", "offline_access", "orders:read")
	if first.RefreshToken == "" || second.RefreshToken == "" {
		t.Fatal("no refresh tokens")
	}
	ctx := context.Background()
	c := adminSDK(t, logAPIToken)

	list, _, err := c.UserAPI.ListRefreshTokensForUserAndClient(ctx, aliceID, interopWeb).Expand("scope").Execute()
	if err != nil || len(list) != 2 {
		t.Fatalf("ListRefreshTokensForUserAndClient: %d, %v %s", len(list), err, errBody(err))
	}
	for _, rt := range list {
		if !strings.HasPrefix(rt.GetId(), "oar") || rt.GetStatus() != "ACTIVE" || rt.GetClientId() != interopWeb || rt.GetUserId() != aliceID ||
			rt.GetIssuer() != issuer || !slices.Equal(rt.Scopes, []string{"openid", "offline_access", "orders:read"}) ||
			rt.GetExpiresAt().Sub(rt.GetLastUpdated()) != time.Hour || time.Since(rt.GetCreated()) > 5*time.Minute ||
			rt.Embedded == nil || len(rt.Embedded.Scopes) != 3 || rt.Embedded.Scopes[2].GetName() != "orders:read" ||
			rt.Links == nil || rt.Links.Revoke == nil || rt.Links.Revoke.Href == "" {
			j, _ := json.Marshal(rt)
			t.Errorf("refresh token %s", j)
		}
		if j, _ := json.Marshal(rt); strings.Contains(string(j), first.RefreshToken) || strings.Contains(string(j), second.RefreshToken) {
			t.Fatal("the API shows a refresh token's value")
		}
	}

	// A page of one, and the SDK follows the next link.
	page, resp, err := c.UserAPI.ListRefreshTokensForUserAndClient(ctx, aliceID, interopWeb).Limit(1).Execute()
	if err != nil || len(page) != 1 || !resp.HasNextPage() {
		t.Fatalf("page of one: %d, next %v, %v", len(page), resp != nil && resp.HasNextPage(), err)
	}
	var rest []okta.OAuth2RefreshToken
	resp, err = resp.Next(&rest)
	if err != nil || len(rest) != 1 || rest[0].GetId() == page[0].GetId() || resp.HasNextPage() {
		t.Fatalf("next page: %d, %v %s", len(rest), err, errBody(err))
	}

	apps, _, err := c.ApplicationTokensAPI.ListOAuth2TokensForApplication(ctx, interopWeb).Execute()
	if err != nil || len(apps) != 2 {
		t.Fatalf("ListOAuth2TokensForApplication: %d, %v %s", len(apps), err, errBody(err))
	}
	got, _, err := c.ApplicationTokensAPI.GetOAuth2TokenForApplication(ctx, interopWeb, list[0].GetId()).Execute()
	if err != nil || got.GetId() != list[0].GetId() || got.GetUserId() != aliceID {
		t.Fatalf("GetOAuth2TokenForApplication: %v %s", err, errBody(err))
	}
	_, resp, err = c.UserAPI.GetRefreshTokenForUserAndClient(ctx, aliceID, interopWeb, "oarNoSuchToken0000000").Execute()
	wantAPIError(t, "GetRefreshTokenForUserAndClient of no token", http.StatusNotFound, "E0000007", resp, err)
	_, resp, err = adminSDK(t, "wrong-"+logAPIToken).ApplicationTokensAPI.ListOAuth2TokensForApplication(ctx, interopWeb).Execute()
	wantAPIError(t, "wrong API token", http.StatusUnauthorized, "E0000011", resp, err)

	// Which listed token is the first sign-in's: the one whose refresh
	// fails after the revocation.
	conf := oauth2.Config{ClientID: interopWeb, ClientSecret: interopSec,
		Endpoint: oauth2.Endpoint{TokenURL: issuer + "/v1/token", AuthStyle: oauth2.AuthStyleInHeader}}
	refreshes := func(tok *oauth2.Token) bool {
		_, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		return err == nil
	}
	resp, err = c.UserAPI.RevokeTokenForUserAndClient(ctx, aliceID, interopWeb, list[0].GetId()).Execute()
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("RevokeTokenForUserAndClient: %v %s", err, errBody(err))
	}
	a, b2 := refreshes(first), refreshes(second)
	if a == b2 {
		t.Fatalf("after revoking one of two: first refreshes %v, second %v", a, b2)
	}
	left, _, err := c.UserAPI.ListRefreshTokensForUserAndClient(ctx, aliceID, interopWeb).Execute()
	if err != nil || len(left) != 1 || left[0].GetId() != list[1].GetId() {
		t.Fatalf("after the revocation: %d, %v", len(left), err)
	}
	_, resp, err = c.ApplicationTokensAPI.GetOAuth2TokenForApplication(ctx, interopWeb, list[0].GetId()).Execute()
	wantAPIError(t, "the revoked token", http.StatusNotFound, "E0000007", resp, err)
	waitForEvent(t, "app.oauth2.as.token.revoke")
}

// TestAssociatedServersOktaSDK: AuthorizationServerAssocAPI lists the
// servers of trusted_servers (trusted=true) and the other custom
// servers (trusted=false) as the SDK's AuthorizationServer models;
// creating or deleting an association is refused with Okta's 405.
func TestAssociatedServersOktaSDK(t *testing.T) {
	startGrantsEnv(t)
	reloadIssuer(t, func(ti map[string]any) {
		ti["authorization_servers"].(map[string]any)["partner"] = map[string]any{
			"name": "Partner", "audience": "api://partner", "trusted_servers": []string{"default"}}
	})
	ctx := context.Background()
	c := adminSDK(t, logAPIToken)
	trusted, _, err := c.AuthorizationServerAssocAPI.ListAssociatedServersByTrustedType(ctx, "partner").Trusted(true).Execute()
	if err != nil || len(trusted) != 1 || trusted[0].GetId() != "default" || trusted[0].GetIssuer() != base+"/oauth2/default" ||
		!slices.Equal(trusted[0].Audiences, []string{"api://default"}) {
		t.Fatalf("trusted servers of partner: %+v %v %s", trusted, err, errBody(err))
	}
	untrusted, _, err := c.AuthorizationServerAssocAPI.ListAssociatedServersByTrustedType(ctx, "default").Trusted(false).Execute()
	if err != nil || len(untrusted) != 1 || untrusted[0].GetId() != "partner" || untrusted[0].GetName() != "Partner" {
		t.Fatalf("untrusted servers of default: %+v %v %s", untrusted, err, errBody(err))
	}
	none, _, err := c.AuthorizationServerAssocAPI.ListAssociatedServersByTrustedType(ctx, "default").Trusted(true).Execute()
	if err != nil || len(none) != 0 {
		t.Errorf("trusted servers of default: %+v %v %s", none, err, errBody(err))
	}
	_, resp, err := c.AuthorizationServerAssocAPI.CreateAssociatedServers(ctx, "default").
		AssociatedServerMediated(okta.AssociatedServerMediated{Trusted: []string{"partner"}}).Execute()
	wantAPIError(t, "CreateAssociatedServers", http.StatusMethodNotAllowed, "E0000022", resp, err)
	resp, err = c.AuthorizationServerAssocAPI.DeleteAssociatedServer(ctx, "partner", "default").Execute()
	wantAPIError(t, "DeleteAssociatedServer", http.StatusMethodNotAllowed, "E0000022", resp, err)
}
