package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
)

// introspection is what token.introspect returns (RFC 7662).
type introspection struct {
	Active    bool   `json:"active"`
	Sub       string `json:"sub"`
	ClientID  string `json:"client_id"`
	Uid       string `json:"uid"`
	TokenType string `json:"token_type"`
}

func (b *sdkTab) introspect(kind string) introspection {
	b.T.Helper()
	var in introspection
	b.must(&in, "introspect", kind)
	return in
}

// testSDKRevokeIntrospect: the public client introspects and revokes
// its tokens (the SDK sends Authorization: Basic base64(client_id)).
func testSDKRevokeIntrospect(t *testing.T, b *sdkTab) {
	b.signIn(map[string]any{"scopes": b.offlineScopes()})
	if in := b.introspect("accessToken"); !in.Active || in.Sub != sdkUser || in.ClientID != sdkClientID || in.Uid != sdkUserID {
		b.Fail("introspect the access token: %+v", in)
	}
	if in := b.introspect("refreshToken"); !in.Active || in.ClientID != sdkClientID {
		b.Fail("introspect the refresh token: %+v", in)
	}

	b.must(nil, "revokeAccessToken")
	if in := b.introspect("accessToken"); in.Active {
		b.Fail("the revoked access token introspects %+v", in)
	}
	// Okta: revoking an access token leaves its refresh token alone.
	if in := b.introspect("refreshToken"); !in.Active {
		b.Fail("the refresh token is inactive after revoking the access token")
	}
	// The refresh token still renews; revoking it then also revokes the
	// access token issued from it (Okta, "Revoke tokens").
	var renewed tokenSummary
	b.must(&renewed, "renew")
	if in := b.introspect("accessToken"); !in.Active {
		b.Fail("the access token renewed after revoking the first one introspects %+v", in)
	}
	b.must(nil, "revokeRefreshToken")
	if in := b.introspect("refreshToken"); in.Active {
		b.Fail("the revoked refresh token introspects %+v", in)
	}
	if in := b.introspect("accessToken"); in.Active {
		b.Fail("the access token of a revoked refresh token introspects %+v", in)
	}
	for _, p := range []string{"revoke", "introspect"} {
		for _, e := range b.net.find(http.MethodPost, b.endpoint(p)) {
			if e.Status != 200 {
				b.Fail("%s answered %d to the SDK", p, e.Status)
			}
		}
	}
}

// introspectFromGo asks the custom or org server about tok as the
// public client (client_id in the form).
func (e *sdkEnv) introspectFromGo(t *testing.T, endpoint, tok string) introspection {
	t.Helper()
	res, err := e.http.PostForm(endpoint, url.Values{"client_id": {sdkClientID}, "token": {tok}, "token_type_hint": {"access_token"}})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var in introspection
	if err := json.NewDecoder(res.Body).Decode(&in); err != nil || res.StatusCode != 200 {
		t.Fatalf("introspect: %d %v", res.StatusCode, err)
	}
	return in
}
