package inlinehook

import (
	"crypto/rand"
	"encoding/base64"
	"time"
)

// Request is the body Okta POSTs (Token inline hook reference, "Sample
// JSON payload of a request"): field names are Okta's.
type Request struct {
	// Source is the endpoint that is minting the tokens.
	Source            string `json:"source"`
	EventID           string `json:"eventId"`
	EventTime         string `json:"eventTime"`
	EventTypeVersion  string `json:"eventTypeVersion"`
	CloudEventVersion string `json:"cloudEventVersion"`
	ContentType       string `json:"contentType"`
	EventType         string `json:"eventType"`
	Data              Data   `json:"data"`
}

// NewRequest is a Request with Okta's constants, a fresh eventId and
// eventTime now.
func NewRequest(source string, now time.Time, data Data) *Request {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return &Request{
		Source: source, EventID: base64.RawURLEncoding.EncodeToString(b[:]),
		EventTime:        now.UTC().Format("2006-01-02T15:04:05.000Z"),
		EventTypeVersion: "1.0", CloudEventVersion: "0.1", ContentType: "application/json",
		EventType: EventType, Data: data,
	}
}

// Data is the request's data: the context the service cannot change,
// and the tokens it may patch. Identity is nil when no ID token is
// minted.
type Data struct {
	Context  Context      `json:"context"`
	Identity *Token       `json:"identity,omitempty"`
	Access   *AccessToken `json:"access"`
}

// Token is a token's claims and lifetime.
type Token struct {
	Claims map[string]any `json:"claims"`
	Token  TokenInfo      `json:"token"`
}

// AccessToken adds the granted scopes.
type AccessToken struct {
	Claims map[string]any   `json:"claims"`
	Token  TokenInfo        `json:"token"`
	Scopes map[string]Scope `json:"scopes"`
}

// TokenInfo holds the lifetime.
type TokenInfo struct {
	Lifetime Lifetime `json:"lifetime"`
}

// Lifetime is "Time in seconds until the token expires".
type Lifetime struct {
	Expiration int64 `json:"expiration"`
}

// Scope is one granted scope: its id (here its name) and action GRANT.
type Scope struct {
	ID     string `json:"id"`
	Action string `json:"action"`
}

// Context is data.context.
type Context struct {
	Request  HTTPRequest `json:"request"`
	Protocol Protocol    `json:"protocol"`
	Session  *Session    `json:"session,omitempty"`
	User     *User       `json:"user,omitempty"`
	Policy   *Policy     `json:"policy,omitempty"`
}

// HTTPRequest is the request being answered: never its body or headers.
type HTTPRequest struct {
	ID        string `json:"id"`
	Method    string `json:"method"`
	URL       URL    `json:"url"`
	IPAddress string `json:"ipAddress"`
}

// URL wraps the request URL as Okta does.
type URL struct {
	Value string `json:"value"`
}

// Protocol is the OAuth 2.0 request.
type Protocol struct {
	Type    string            `json:"type"`
	Request map[string]string `json:"request"`
	Issuer  Issuer            `json:"issuer"`
	Client  Client            `json:"client"`
}

// Issuer is the authorization server.
type Issuer struct {
	URI string `json:"uri"`
}

// Client is the OAuth client; Type is PUBLIC or CONFIDENTIAL.
type Client struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"`
}

// Session is how the user signed in.
type Session struct {
	UserID    string   `json:"userId"`
	Login     string   `json:"login"`
	CreatedAt string   `json:"createdAt,omitempty"`
	Status    string   `json:"status"`
	Amr       []string `json:"amr"`
	MFAActive bool     `json:"mfaActive"`
}

// User is the user the tokens are for.
type User struct {
	ID      string         `json:"id"`
	Profile map[string]any `json:"profile"`
}

// Policy names the access policy and rule that matched.
type Policy struct {
	ID   string `json:"id"`
	Rule Rule   `json:"rule"`
}

// Rule names the rule.
type Rule struct {
	ID string `json:"id"`
}
