package syslog

import (
	"strings"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

func ptr[T any](v T) *T { return &v }

// sample is an event with every kind of attribute set.
func sample() *store.LogEvent {
	return &store.LogEvent{
		UUID: "f790999f-fe87-467a-9880-6982a583986c", Published: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		EventType: "app.oauth2.as.token.grant.access_token", Version: "0", Severity: "INFO",
		DisplayMessage: "OAuth2 access token is granted",
		Actor:          &store.LogActor{ID: "0oa1client", Type: "PublicClientApp", AlternateID: "billing-service", DisplayName: "Billing Service", DetailEntry: map[string]any{"scope": "api:read"}},
		Client:         &store.LogClient{IPAddress: "184.73.186.14", Zone: "null", ID: ptr("0oa1client"), UserAgent: &store.LogUserAgent{RawUserAgent: "okta-sdk-golang/5.0.0 go/1.26"}, GeographicalContext: map[string]any{"city": "San Francisco"}},
		Outcome:        &store.LogOutcome{Result: "SUCCESS", Reason: ptr("Token issued")},
		Target: []store.LogTarget{
			{ID: "aus1default", Type: "AuthorizationServer", AlternateID: "default", DisplayName: "default"},
			{ID: "00u1jane", Type: "User", AlternateID: "jane@example.com", DisplayName: "Jane Doe"},
		},
		Transaction:           &store.LogTransaction{Type: "WEB", ID: "XOxBw-2JIRnCFd0gG0GjHAAABjY", Detail: map[string]any{"requestApiTokenId": "00T94e3cn9kSEO3c51s5"}},
		DebugContext:          &store.LogDebugContext{DebugData: map[string]any{"grantType": "client_credentials", "requestUri": "/oauth2/default/v1/token", "grantedScopes": []any{"api:read", "api:write"}, "tokenLifetime": 3600.0, "nested": map[string]any{"Rule": "r1"}}},
		AuthenticationContext: &store.LogAuthenticationCtx{ExternalSessionID: "102abc", AuthenticationStep: 2, CredentialType: ptr("OAUTH2")},
		SecurityContext:       &store.LogSecurityContext{IsProxy: ptr(false), AsNumber: ptr(64512)},
		Request:               &store.LogRequest{IPChain: []store.LogIPAddress{{IP: "184.73.186.14", Version: "V4"}}},
	}
}

// TestFilterSemantics: each operator on each kind of attribute, and the
// logic operators' precedence, against one event.
func TestFilterSemantics(t *testing.T) {
	e := sample()
	for _, tc := range []struct {
		filter string
		want   bool
	}{
		// eq on top-level and nested fields; case-insensitive values and names
		{`eventType eq "app.oauth2.as.token.grant.access_token"`, true},
		{`eventType eq "APP.OAUTH2.AS.TOKEN.GRANT.ACCESS_TOKEN"`, true},
		{`EVENTTYPE EQ "app.oauth2.as.token.grant.access_token"`, true},
		{`event_type eq "app.oauth2.as.token.grant.access_token"`, true},
		{`eventType eq "user.session.start"`, false},
		{`uuid eq "f790999f-fe87-467a-9880-6982a583986c"`, true},
		{`severity eq "INFO"`, true},
		{`displayMessage co "access token"`, true},
		{`outcome.result eq "SUCCESS"`, true},
		{`outcome.result eq "FAILURE"`, false},
		{`outcome.reason sw "Token"`, true},
		{`actor.id eq "0oa1client"`, true},
		{`actor.alternateId eq "billing-service"`, true},
		{`actor.type eq "PublicClientApp"`, true},
		{`actor.displayName ew "Service"`, true},
		{`actor.detailEntry.scope eq "api:read"`, true},
		{`client.ipAddress eq "184.73.186.14"`, true},
		{`client.ipAddress sw "184.73."`, true},
		{`client.id eq "0oa1client"`, true},
		{`client.userAgent.rawUserAgent sw "okta-sdk-golang"`, true},
		{`client.geographicalContext.city eq "San Francisco"`, true},
		{`request.ipChain.ip eq "184.73.186.14"`, true},
		// target: any target
		{`target.id eq "aus1default"`, true},
		{`target.id eq "00u1jane"`, true},
		{`target.id eq "00u1jane" and target.id eq "aus1default"`, true},
		{`target.id eq "nobody"`, false},
		{`target.id ne "nobody"`, true},
		{`target.id ne "00u1jane"`, false},
		{`target.alternateId eq "jane@example.com"`, true},
		{`target.type eq "AuthorizationServer"`, true},
		// transaction, debugData (maps, arrays, numbers, nested keys)
		{`transaction.id eq "XOxBw-2JIRnCFd0gG0GjHAAABjY"`, true},
		{`transaction.detail.requestApiTokenId eq "00T94e3cn9kSEO3c51s5"`, true},
		{`debugContext.debugData.grantType eq "client_credentials"`, true},
		{`debugContext.debugData.GRANTTYPE eq "client_credentials"`, true},
		{`debugContext.debugData.grantedScopes eq "api:write"`, true},
		{`debugContext.debugData.tokenLifetime eq 3600`, true},
		{`debugContext.debugData.tokenLifetime gt 3599`, true},
		{`debugContext.debugData.tokenLifetime ge 3600`, true},
		{`debugContext.debugData.tokenLifetime lt 3600`, false},
		{`debugContext.debugData.tokenLifetime le 3600`, true},
		{`debugContext.debugData.nested.rule eq "r1"`, true},
		{`debugContext.debugData.missing pr`, false},
		{`debugContext.debugData.grantType pr`, true},
		{`debugContext.debugData pr`, true},
		{`debugContext.debugData.requestUri eq "/oauth2/default/v1/token"`, true},
		{`debugContext.debugData.requestUri sw "/oauth2/"`, true},
		// strings compare in order, ignoring case
		{`eventType gt "app"`, true},
		{`eventType lt "APP"`, false},
		// authentication and security contexts; booleans and numbers
		{`authenticationContext.externalSessionId eq "102abc"`, true},
		{`authenticationContext.authenticationStep eq 2`, true},
		{`authenticationContext.credentialType eq "OAUTH2"`, true},
		{`securityContext.isProxy eq false`, true},
		{`securityContext.isProxy eq true`, false},
		{`securityContext.asNumber eq 64512`, true},
		{`securityContext.isp pr`, false},
		{`securityContext.isp eq null`, true},
		{`securityContext.isp ne null`, false},
		{`legacyEventType pr`, false},
		{`eventType pr`, true},
		// a number never equals a string, nor the other way round
		{`version eq 0`, false},
		{`debugContext.debugData.tokenLifetime eq "3600"`, false},
		// logic: and binds tighter than or; parentheses; not
		{`eventType eq "x" or outcome.result eq "SUCCESS"`, true},
		{`eventType eq "x" and outcome.result eq "SUCCESS"`, false},
		{`eventType eq "x" and outcome.result eq "SUCCESS" or severity eq "INFO"`, true},
		{`eventType eq "x" and (outcome.result eq "SUCCESS" or severity eq "INFO")`, false},
		{`severity eq "INFO" or eventType eq "x" and outcome.result eq "FAILURE"`, true},
		{`(severity eq "INFO" or eventType eq "x") and outcome.result eq "FAILURE"`, false},
		{`not (outcome.result eq "FAILURE")`, true},
		{`not(outcome.result eq "SUCCESS")`, false},
		{`not (not (severity eq "INFO"))`, true},
		{`((((severity eq "INFO"))))`, true},
		{`severity eq "INFO" AND outcome.result EQ "SUCCESS"`, true},
		// string escapes (JSON)
		{`displayMessage eq "OAuth2 access token is granted"`, true},
		{`displayMessage eq "OAuth2\u0020access token is granted"`, true},
		{`actor.displayName eq "Billing \"Service\""`, false},
	} {
		f, err := ParseFilter(tc.filter)
		if err != nil {
			t.Errorf("%s: %v", tc.filter, err)
			continue
		}
		if got := f.Match(e); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.filter, got, tc.want)
		}
	}
}

// TestFilterNullEvent: an event with no optional parts matches no
// comparison, is absent for pr, and does not panic.
func TestFilterNullEvent(t *testing.T) {
	e := &store.LogEvent{UUID: "u1", EventType: "user.session.start"}
	for _, tc := range []struct {
		filter string
		want   bool
	}{
		{`actor.id eq "x"`, false},
		{`actor.id pr`, false},
		{`actor.id eq null`, true},
		{`target.id ne "x"`, true},
		{`client.userAgent.rawUserAgent co "x"`, false},
		{`debugContext.debugData.grantType pr`, false},
		{`authenticationContext.authenticationStep eq 0`, false},
		{`securityContext.isProxy eq false`, false},
		{`outcome.reason pr`, false},
	} {
		f, err := ParseFilter(tc.filter)
		if err != nil {
			t.Fatalf("%s: %v", tc.filter, err)
		}
		if got := f.Match(e); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.filter, got, tc.want)
		}
	}
}

// TestFilterErrors: bad syntax and unknown fields are E0000053, with
// Okta's wording and positions; unsupported field-operator pairs are
// E0000031.
func TestFilterErrors(t *testing.T) {
	for _, tc := range []struct {
		filter, code, want string
	}{
		{`display_message eqq "Create okta user"`, CodeInvalidFilter, `Invalid filter 'display_message eqq "Create okta user"': Unrecognized attribute operator 'eqq' at position 16. Expected: eq,ne,co,sw,ew,pr,gt,ge,lt,le`},
		{`some_invalid_field eq "x"`, CodeInvalidFilter, "field is not valid: some_invalid_field"},
		{`actor.nope eq "x"`, CodeInvalidFilter, "field is not valid: actor.nope"},
		{`debugContext.debugData.url co "/oauth/"`, CodeSearchCriteria, "The supplied combination of operator and field is not currently supported. Operator: co, Field: debugContext.debugData.url"},
		{`debugContext.debugData.requestUri co "/token"`, CodeSearchCriteria, "Operator: co, Field: debugContext.debugData.requestUri"},
		{`published gt "2025-01-01T00:00:00Z"`, CodeSearchCriteria, "Field: published"},
		{`eventType eq`, CodeInvalidFilter, "Expected a value after 'eq' at position 12"},
		{`eventType`, CodeInvalidFilter, "Unrecognized attribute operator '' at position 9"},
		{`eventType eq "x`, CodeInvalidFilter, "Unterminated string literal at position 13"},
		{`eventType eq "\q"`, CodeInvalidFilter, "Invalid string literal"},
		{`eventType eq 'x'`, CodeInvalidFilter, "Expected a value after 'eq'"},
		{`eventType eq x`, CodeInvalidFilter, "Invalid value 'x'"},
		{`(eventType eq "x"`, CodeInvalidFilter, "Unbalanced '(' at position 0"},
		{`eventType eq "x")`, CodeInvalidFilter, "Unexpected ')' at position 16"},
		{`eventType eq "x" and`, CodeInvalidFilter, "Expected an attribute"},
		{`eventType eq "x" or or eventType eq "y"`, CodeInvalidFilter, "Expected an attribute"},
		{`eventType eq "x" eventType eq "y"`, CodeInvalidFilter, "Unexpected 'eventType' at position 17"},
		{`not eventType eq "x"`, CodeInvalidFilter, "Expected '(' after 'not'"},
		{`target[id eq "x"]`, CodeInvalidFilter, "Value filters ('[ ]') are not supported"},
		{`eventType co 3`, CodeInvalidFilter, "Operator 'co' takes a string"},
		{`eventType gt true`, CodeInvalidFilter, "Operator 'gt' does not take true"},
		{`eventType sw null`, CodeInvalidFilter, "Operator 'sw' does not take null"},
		{`1eventType eq "x"`, CodeInvalidFilter, "Expected an attribute"},
		{`eventType eq "x" & severity eq "INFO"`, CodeInvalidFilter, "Unexpected '&'"},
		{``, CodeInvalidFilter, "Expected an attribute"},
		{strings.Repeat("(", 40) + `eventType pr` + strings.Repeat(")", 40), CodeInvalidFilter, "Nested more than 32 deep"},
		{strings.Repeat(`eventType pr and `, 64) + `eventType pr`, CodeInvalidFilter, "More than 64 comparisons"},
		{strings.Repeat("x", MaxFilterLength+1), CodeInvalidFilter, "longer than 4096"},
	} {
		_, err := ParseFilter(tc.filter)
		if err == nil {
			t.Errorf("%.60s: parsed, want %s", tc.filter, tc.code)
			continue
		}
		if err.Code != tc.code || !strings.Contains(err.Summary, tc.want) {
			t.Errorf("%.60s: got %s %q, want %s containing %q", tc.filter, err.Code, err.Summary, tc.code, tc.want)
		}
	}
}
