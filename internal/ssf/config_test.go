package ssf

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestConfigurationURL(t *testing.T) {
	for issuer, want := range map[string]string{
		"https://tr.example.com":                      "https://tr.example.com/.well-known/ssf-configuration",
		"https://tr.example.com/":                     "https://tr.example.com/.well-known/ssf-configuration",
		"https://tr.example.com/oauth2/aus1":          "https://tr.example.com/.well-known/ssf-configuration/oauth2/aus1",
		"https://tr.example.com:8443/oauth2/default/": "https://tr.example.com:8443/.well-known/ssf-configuration/oauth2/default",
	} {
		if got, err := ConfigurationURL(issuer); err != nil || got != want {
			t.Errorf("%s: %s %v, want %s", issuer, got, err, want)
		}
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWireNames(t *testing.T) {
	// RFC 8936 section 2.1 and 2.2 member names.
	req := PollRequest{MaxEvents: intp(10), ReturnImmediately: true, Ack: []string{"a"},
		SetErrs: map[string]SetErr{"b": {Err: ErrCodeInvalidKey, Description: "d"}}}
	if got, want := jsonOf(t, req), `{"maxEvents":10,"returnImmediately":true,"ack":["a"],"setErrs":{"b":{"err":"invalid_key","description":"d"}}}`; got != want {
		t.Errorf("poll request %s\nwant %s", got, want)
	}
	var back PollRequest
	if err := json.Unmarshal([]byte(`{"ack":[]}`), &back); err != nil || back.MaxEvents != nil || back.ReturnImmediately {
		t.Errorf("defaults: %+v %v", back, err)
	}
	if got, want := jsonOf(t, PollResponse{Sets: map[string]string{"j": "x.y.z"}, MoreAvailable: true}), `{"sets":{"j":"x.y.z"},"moreAvailable":true}`; got != want {
		t.Errorf("poll response %s", got)
	}
	// SSF 7.1 metadata, empty lists omitted (SSF 7.2.3).
	md := TransmitterConfig{SpecVersion: SpecVersion, Issuer: "https://tr.example.com", JWKSURI: "https://tr.example.com/keys",
		DeliveryMethodsSupported: []string{DeliveryPoll, DeliveryPush}, ConfigurationEndpoint: "https://tr.example.com/ssf/stream",
		StatusEndpoint: "https://tr.example.com/ssf/status", VerificationEndpoint: "https://tr.example.com/ssf/verify",
		AuthorizationSchemes: []AuthorizationScheme{OAuth2Scheme}, DefaultSubjects: DefaultSubjectsAll}
	want := `{"spec_version":"1_0","issuer":"https://tr.example.com","jwks_uri":"https://tr.example.com/keys",` +
		`"delivery_methods_supported":["urn:ietf:rfc:8936","urn:ietf:rfc:8935"],"configuration_endpoint":"https://tr.example.com/ssf/stream",` +
		`"status_endpoint":"https://tr.example.com/ssf/status","verification_endpoint":"https://tr.example.com/ssf/verify",` +
		`"authorization_schemes":[{"spec_urn":"urn:ietf:rfc:6749"}],"default_subjects":"ALL"}`
	if got := jsonOf(t, md); got != want {
		t.Errorf("metadata %s\nwant %s", got, want)
	}
	// SSF 8.1.1 stream configuration; aud one string or an array.
	sc := StreamConfig{StreamID: "s1", Iss: "https://tr.example.com", Aud: []string{testAud},
		EventsSupported: []string{EventSessionRevoked}, EventsRequested: []string{EventSessionRevoked},
		EventsDelivered: []string{EventSessionRevoked}, Delivery: &Delivery{Method: DeliveryPoll, EndpointURL: "https://tr.example.com/ssf/poll/s1"}}
	want = `{"stream_id":"s1","iss":"https://tr.example.com","aud":"` + testAud + `",` +
		`"events_supported":["` + EventSessionRevoked + `"],"events_requested":["` + EventSessionRevoked + `"],` +
		`"events_delivered":["` + EventSessionRevoked + `"],"delivery":{"method":"urn:ietf:rfc:8936","endpoint_url":"https://tr.example.com/ssf/poll/s1"}}`
	if got := jsonOf(t, sc); got != want {
		t.Errorf("stream %s\nwant %s", got, want)
	}
	var sc2 StreamConfig
	if err := json.Unmarshal([]byte(`{"aud":["a","b"]}`), &sc2); err != nil || !slices.Equal(sc2.Aud, []string{"a", "b"}) {
		t.Errorf("aud array: %v %v", sc2.Aud, err)
	}
	if got := jsonOf(t, StreamStatus{StreamID: "s1", Status: StatusPaused}); got != `{"stream_id":"s1","status":"paused"}` {
		t.Errorf("status %s", got)
	}
	if got := jsonOf(t, VerificationRequest{StreamID: "s1", State: "x"}); got != `{"stream_id":"s1","state":"x"}` {
		t.Errorf("verification request %s", got)
	}
}

func TestDelivered(t *testing.T) {
	sup := []string{EventSessionRevoked, EventVerification}
	if got := Delivered(sup, nil); !slices.Equal(got, sup) {
		t.Errorf("none requested: %v", got)
	}
	if got := Delivered(sup, []string{"urn:x", EventSessionRevoked, EventSessionRevoked}); !slices.Equal(got, []string{EventSessionRevoked}) {
		t.Errorf("requested: %v", got)
	}
}
