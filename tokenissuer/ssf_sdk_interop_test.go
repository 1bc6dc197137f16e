package tokenissuer_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/okta/okta-sdk-golang/v5/okta"
)

// okta-sdk-golang/v5 v5.0.2's SSFTransmitterAPI, unchanged, against the
// issuer's SSF Transmitter API, authenticating as Okta's SDK does for
// Okta API scopes: PrivateKey mode (client_credentials at the org's
// /oauth2/v1/token with a private_key_jwt assertion, scopes ssf.read
// and ssf.manage).

const ssfReceiver = "ssf-receiver"

// TestSSFTransmitterOktaSDK: metadata, create (poll delivery), read one
// and all, replace, delete (v5.0.2 has no verification or status
// call); a client without ssf.manage gets Okta's 403.
func TestSSFTransmitterOktaSDK(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := jwk.FromRaw(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	_ = pub.Set(jwk.KeyIDKey, "receiver-key")
	_ = pub.Set(jwk.AlgorithmKey, "RS256")
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	jwks, _ := json.Marshal(set)
	startRealClientEnv(t, []map[string]any{
		{"client_id": ssfReceiver, "token_endpoint_auth_method": "private_key_jwt", "jwks": json.RawMessage(jwks),
			"grant_types": []string{"client_credentials"}, "okta_api_scopes": []string{"ssf.read", "ssf.manage"}},
		{"client_id": "ssf-reader", "token_endpoint_auth_method": "private_key_jwt", "jwks": json.RawMessage(jwks),
			"grant_types": []string{"client_credentials"}, "okta_api_scopes": []string{"ssf.read"}},
	})
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	client := func(id string, scopes ...string) *okta.APIClient {
		cfg, err := okta.NewConfiguration(okta.WithOrgUrl(base), okta.WithAuthorizationMode("PrivateKey"), okta.WithClientId(id),
			okta.WithScopes(scopes), okta.WithPrivateKey(pemKey), okta.WithPrivateKeyId("receiver-key"),
			okta.WithTestingDisableHttpsCheck(true), okta.WithCache(false))
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(base)
		cfg.Host = u.Host
		return okta.NewAPIClient(cfg)
	}
	ctx := context.Background()
	api := client(ssfReceiver, "ssf.read", "ssf.manage").SSFTransmitterAPI

	md, _, err := api.GetWellknownSsfMetadata(ctx).Execute()
	if err != nil || md.GetIssuer() != base || md.GetJwksUri() != base+"/oauth2/v1/keys" || md.GetConfigurationEndpoint() != base+"/api/v1/ssf/stream" ||
		!slices.Equal(md.DeliveryMethodsSupported, []string{"urn:ietf:rfc:8936"}) {
		b, _ := json.Marshal(md)
		t.Fatalf("GetWellknownSsfMetadata: %v %s %s", err, errBody(err), b)
	}

	sessionRevoked := "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
	created, resp, err := api.CreateSsfStream(ctx).Instance(okta.StreamConfigurationCreateRequest{
		Delivery:        *okta.NewStreamConfigurationDelivery("", "urn:ietf:rfc:8936"),
		EventsRequested: []string{sessionRevoked},
	}).Execute()
	if err != nil || resp.StatusCode != http.StatusCreated || created.GetStreamId() == "" || created.GetIss() != base ||
		created.Delivery.GetEndpointUrl() != base+"/api/v1/ssf/poll/"+created.GetStreamId() || !slices.Equal(created.EventsDelivered, []string{sessionRevoked}) {
		b, _ := json.Marshal(created)
		t.Fatalf("CreateSsfStream: %v %s %s", err, errBody(err), b)
	}
	if aud := created.Aud; aud == nil || aud.String == nil || *aud.String != ssfReceiver {
		b, _ := json.Marshal(created.Aud)
		t.Fatalf("aud %s, want the client id", b)
	}
	id := created.GetStreamId()

	one, _, err := api.GetSsfStreams(ctx).StreamId(id).Execute()
	if err != nil || one.StreamConfiguration == nil || one.StreamConfiguration.GetStreamId() != id {
		t.Fatalf("GetSsfStreams(id): %v %s", err, errBody(err))
	}
	all, _, err := api.GetSsfStreams(ctx).Execute()
	if err != nil || all.ArrayOfStreamConfiguration == nil || len(*all.ArrayOfStreamConfiguration) != 1 || (*all.ArrayOfStreamConfiguration)[0].GetStreamId() != id {
		t.Fatalf("GetSsfStreams(): %v %s", err, errBody(err))
	}
	replaced := *created
	replaced.EventsRequested = []string{"https://schemas.openid.net/secevent/ssf/event-type/verification"}
	got, _, err := api.ReplaceSsfStream(ctx).Instance(replaced).Execute()
	if err != nil || !slices.Equal(got.EventsDelivered, replaced.EventsRequested) {
		t.Fatalf("ReplaceSsfStream: %v %s", err, errBody(err))
	}
	// ssf.read alone reads but does not create.
	reader := client("ssf-reader", "ssf.read").SSFTransmitterAPI
	_, resp, err = reader.CreateSsfStream(ctx).Instance(okta.StreamConfigurationCreateRequest{
		Delivery: *okta.NewStreamConfigurationDelivery("", "urn:ietf:rfc:8936"), EventsRequested: []string{sessionRevoked}}).Execute()
	wantAPIError(t, "create with ssf.read", http.StatusForbidden, "E0000006", resp, err)
	_, resp, err = reader.GetSsfStreams(ctx).StreamId(id).Execute()
	wantAPIError(t, "another client's stream", http.StatusNotFound, "E0000007", resp, err)

	if resp, err := api.DeleteSsfStream(ctx).StreamId(id).Execute(); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DeleteSsfStream: %v %s", err, errBody(err))
	}
	_, resp, err = api.GetSsfStreams(ctx).StreamId(id).Execute()
	wantAPIError(t, "deleted stream", http.StatusNotFound, "E0000007", resp, err)
}
