package authserver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
)

// TestDiscoveryListsUsableGrants: a grant type is advertised only where
// some client may use it under some rule of a policy covering that
// client, and the code flow's and device flow's endpoints only where
// those grants are usable, so a client library reading discovery is
// never offered a flow every request of which is refused; the OpenID
// document still names the authorization endpoint and response type
// "code", which OpenID Connect Discovery 1.0 section 3 requires.
func TestDiscoveryListsUsableGrants(t *testing.T) {
	all := []string{policy.Any}
	rule := func(grants ...string) *policy.Rule {
		return &policy.Rule{Name: "r", GrantTypes: grants, Scopes: all}
	}
	iss, err := New(Options{
		BaseURL: "https://id.example.com",
		Servers: map[string]*ServerConfig{
			// password: the covering rule has it, web's grant_types do
			// not; pw allows it, but no rule covering pw has it. tv has
			// the device grant, but no policy here covers tv.
			"default": {Policies: []*policy.Policy{
				{Name: "services", Clients: []string{"svc"}, Rules: []*policy.Rule{rule(GrantClientCredentials)}},
				{Name: "web", Clients: []string{"web"}, Rules: []*policy.Rule{rule(GrantAuthorizationCode, GrantPassword)}},
				{Name: "everyone", Clients: all, Rules: []*policy.Rule{rule(GrantClientCredentials)}},
			}},
			// client_credentials only: no usable code flow.
			"machines": {Policies: []*policy.Policy{{Name: "svc", Clients: []string{"svc"}, Rules: []*policy.Rule{rule(GrantClientCredentials)}}}},
			"devices":  {Policies: []*policy.Policy{{Name: "tv", Clients: []string{"tv"}, Rules: []*policy.Rule{rule(GrantDeviceCode)}}}},
			// A rule that names people never matches client_credentials.
			"people": {Policies: []*policy.Policy{{Name: "staff", Clients: all, Rules: []*policy.Rule{
				{Name: "r", GrantTypes: []string{GrantClientCredentials}, Scopes: all, People: &policy.People{Groups: []string{"staff"}}}}}}},
		},
		Clients: []*clientauth.Client{
			{ID: "svc", Secret: "svc-secret"},
			{ID: "web", Secret: "web-secret", GrantTypes: []string{GrantAuthorizationCode, GrantRefreshToken}, RedirectURIs: []string{"https://app.test/cb"}},
			{ID: "pw", Secret: "pw-secret", GrantTypes: []string{GrantPassword, GrantClientCredentials}},
			{ID: "tv", AuthMethod: clientauth.None, GrantTypes: []string{GrantDeviceCode, GrantRefreshToken}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	iss.started.Store(true) // discovery needs no keys
	cases := []struct {
		path          string
		grants        []string
		code, device  bool
		responseTypes []string
	}{
		{"/oauth2/default/.well-known/openid-configuration", []string{GrantClientCredentials, GrantAuthorizationCode, GrantRefreshToken}, true, false, []string{"code"}},
		{"/oauth2/devices/.well-known/oauth-authorization-server", []string{GrantDeviceCode, GrantRefreshToken}, false, true, []string{}},
		{"/oauth2/people/.well-known/oauth-authorization-server", []string{}, false, false, []string{}},
		{"/oauth2/machines/.well-known/oauth-authorization-server", []string{GrantClientCredentials}, false, false, []string{}},
		{"/oauth2/machines/.well-known/openid-configuration", []string{GrantClientCredentials}, true, false, []string{"code"}},
		// The OpenID document keeps what OpenID Connect Discovery requires.
		{"/oauth2/people/.well-known/openid-configuration", []string{}, true, false, []string{"code"}},
		// The org server: any client may use its code flow; web can.
		{"/.well-known/openid-configuration", []string{GrantAuthorizationCode, GrantRefreshToken}, true, false, []string{"code"}},
	}
	for _, c := range cases {
		rec := httptest.NewRecorder()
		iss.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, c.path, nil))
		var md struct {
			Grants        []string `json:"grant_types_supported"`
			ResponseTypes []string `json:"response_types_supported"`
			Authorize     string   `json:"authorization_endpoint"`
			Device        string   `json:"device_authorization_endpoint"`
			Token         string   `json:"token_endpoint"`
			RequestURI    *bool    `json:"request_uri_parameter_supported"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &md); err != nil || rec.Code != 200 {
			t.Fatalf("%s: %d %v", c.path, rec.Code, err)
		}
		if !slices.Equal(md.Grants, c.grants) || md.Grants == nil {
			t.Errorf("%s: grant_types_supported %v, want %v", c.path, md.Grants, c.grants)
		}
		if !slices.Equal(md.ResponseTypes, c.responseTypes) || md.ResponseTypes == nil {
			t.Errorf("%s: response_types_supported %v, want %v", c.path, md.ResponseTypes, c.responseTypes)
		}
		if (md.Authorize != "") != c.code || (md.Device != "") != c.device || md.Token == "" {
			t.Errorf("%s: authorization_endpoint %q, device_authorization_endpoint %q, token_endpoint %q", c.path, md.Authorize, md.Device, md.Token)
		}
		// OpenID Connect Discovery 1.0 section 3 reads an absent
		// request_uri_parameter_supported as true: wherever the
		// authorization endpoint is named, the flag says false.
		if md.Authorize != "" && (md.RequestURI == nil || *md.RequestURI) {
			t.Errorf("%s: request_uri_parameter_supported %v beside authorization_endpoint", c.path, md.RequestURI)
		}
	}
}
