package ssf

import (
	"net/url"
	"slices"
	"strings"
)

// Delivery method URNs (SSF 6.1.1, 6.1.2).
const (
	DeliveryPush = "urn:ietf:rfc:8935"
	DeliveryPoll = "urn:ietf:rfc:8936"
)

// SpecVersion is the SSF version the transmitter implements (SSF 7.1).
const SpecVersion = "1_0"

// WellKnownPath is where the transmitter configuration metadata lives,
// inserted between host and issuer path (SSF 7.2).
const WellKnownPath = "/.well-known/ssf-configuration"

// ConfigurationURL is the metadata URL of issuer (SSF 7.2): for
// https://h/p it is https://h/.well-known/ssf-configuration/p.
func ConfigurationURL(issuer string) (string, error) {
	u, err := url.Parse(issuer)
	if err != nil {
		return "", err
	}
	u.Path = WellKnownPath + strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}

// TransmitterConfig is the transmitter configuration metadata (SSF 7.1).
// Lists with no element are omitted (SSF 7.2.3).
type TransmitterConfig struct {
	SpecVersion              string                `json:"spec_version,omitempty"`
	Issuer                   string                `json:"issuer"`
	JWKSURI                  string                `json:"jwks_uri,omitempty"`
	DeliveryMethodsSupported []string              `json:"delivery_methods_supported,omitempty"`
	ConfigurationEndpoint    string                `json:"configuration_endpoint,omitempty"`
	StatusEndpoint           string                `json:"status_endpoint,omitempty"`
	AddSubjectEndpoint       string                `json:"add_subject_endpoint,omitempty"`
	RemoveSubjectEndpoint    string                `json:"remove_subject_endpoint,omitempty"`
	VerificationEndpoint     string                `json:"verification_endpoint,omitempty"`
	CriticalSubjectMembers   []string              `json:"critical_subject_members,omitempty"`
	AuthorizationSchemes     []AuthorizationScheme `json:"authorization_schemes,omitempty"`
	// DefaultSubjects is "ALL" or "NONE".
	DefaultSubjects string `json:"default_subjects,omitempty"`
}

// AuthorizationScheme names how receivers authorize (SSF 7.1.1).
type AuthorizationScheme struct {
	SpecURN string `json:"spec_urn"`
}

// OAuth2Scheme is OAuth 2.0 (receivers use client credentials).
var OAuth2Scheme = AuthorizationScheme{SpecURN: "urn:ietf:rfc:6749"}

// Default subjects values (SSF 7.1).
const (
	DefaultSubjectsAll  = "ALL"
	DefaultSubjectsNone = "NONE"
)

// StreamConfig is a stream's configuration (SSF 8.1.1). A create
// request carries only the receiver-supplied members.
type StreamConfig struct {
	StreamID                string    `json:"stream_id,omitempty"`
	Iss                     string    `json:"iss,omitempty"`
	Aud                     Audience  `json:"aud,omitempty"`
	EventsSupported         []string  `json:"events_supported,omitempty"`
	EventsRequested         []string  `json:"events_requested,omitempty"`
	EventsDelivered         []string  `json:"events_delivered,omitempty"`
	Delivery                *Delivery `json:"delivery,omitempty"`
	MinVerificationInterval int       `json:"min_verification_interval,omitempty"`
	Description             string    `json:"description,omitempty"`
	InactivityTimeout       int       `json:"inactivity_timeout,omitempty"`
}

// Delivery is a stream's delivery method (SSF 6.1). For poll the
// transmitter supplies EndpointURL; for push the receiver does.
type Delivery struct {
	Method              string `json:"method"`
	EndpointURL         string `json:"endpoint_url,omitempty"`
	AuthorizationHeader string `json:"authorization_header,omitempty"`
}

// Stream statuses (SSF 8.1.2).
const (
	StatusEnabled  = "enabled"
	StatusPaused   = "paused"
	StatusDisabled = "disabled"
)

// StreamStatus is the status endpoint's answer and update body
// (SSF 8.1.2.1, 8.1.2.2).
type StreamStatus struct {
	StreamID string `json:"stream_id"`
	Status   string `json:"status"`
	Reason   string `json:"reason,omitempty"`
}

// VerificationRequest asks for a verification event (SSF 8.1.4.2).
type VerificationRequest struct {
	StreamID string `json:"stream_id"`
	State    string `json:"state,omitempty"`
}

// Delivered is events_delivered: the requested events the transmitter
// supports, or all supported ones when none were requested (SSF 8.1.1).
func Delivered(supported, requested []string) []string {
	if len(requested) == 0 {
		return append([]string(nil), supported...)
	}
	var out []string
	for _, r := range requested {
		if slices.Contains(supported, r) && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}
