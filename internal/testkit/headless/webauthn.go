package headless

import (
	"context"
	"fmt"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// VirtualAuthenticator enables the DevTools WebAuthn domain on tab and
// adds a virtual authenticator that acts like a platform passkey
// provider: CTAP2.1, transport internal, resident keys, user
// verification that succeeds, presence confirmed without a prompt. It
// returns the authenticator's id. The authenticator lives in the tab
// (it survives navigations) until the tab closes.
func VirtualAuthenticator(tab context.Context) (webauthn.AuthenticatorID, error) {
	return AddVirtualAuthenticator(tab, &webauthn.VirtualAuthenticatorOptions{
		Protocol:                    webauthn.AuthenticatorProtocolCtap2,
		Ctap2version:                webauthn.Ctap2versionCtap21,
		Transport:                   webauthn.AuthenticatorTransportInternal,
		HasResidentKey:              true,
		HasUserVerification:         true,
		IsUserVerified:              true,
		AutomaticPresenceSimulation: true,
	})
}

// AddVirtualAuthenticator enables the WebAuthn domain on tab (without
// the browser's UI) and adds an authenticator with opts.
func AddVirtualAuthenticator(tab context.Context, opts *webauthn.VirtualAuthenticatorOptions) (webauthn.AuthenticatorID, error) {
	off := false
	if _, err := chromedp.Call(tab, webauthn.Enable, webauthn.EnableParams{EnableUI: &off}); err != nil {
		return "", fmt.Errorf("enabling WebAuthn: %w", err)
	}
	res, err := chromedp.Call(tab, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: opts})
	if err != nil {
		return "", fmt.Errorf("adding a virtual authenticator: %w", err)
	}
	return res.AuthenticatorID, nil
}

// AuthenticatorCredentials lists the credentials held by the virtual
// authenticator id (their sign counts, user handles, RP ids).
func AuthenticatorCredentials(tab context.Context, id webauthn.AuthenticatorID) ([]*webauthn.Credential, error) {
	res, err := chromedp.Call(tab, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: id})
	if err != nil {
		return nil, fmt.Errorf("reading the authenticator's credentials: %w", err)
	}
	return res.Credentials, nil
}

// SetUserVerified makes the authenticator's user verification succeed
// or fail from now on.
func SetUserVerified(tab context.Context, id webauthn.AuthenticatorID, verified bool) error {
	_, err := chromedp.Call(tab, webauthn.SetUserVerified, webauthn.SetUserVerifiedParams{AuthenticatorID: id, IsUserVerified: verified})
	return err
}

// SecurityKey adds a virtual authenticator that acts like a plain USB
// security key: CTAP2, no resident keys, no user verification, presence
// confirmed without a prompt.
func SecurityKey(tab context.Context) (webauthn.AuthenticatorID, error) {
	return AddVirtualAuthenticator(tab, &webauthn.VirtualAuthenticatorOptions{
		Protocol:                    webauthn.AuthenticatorProtocolCtap2,
		Transport:                   webauthn.AuthenticatorTransportUsb,
		AutomaticPresenceSimulation: true,
	})
}

// RemoveVirtualAuthenticator removes authenticator id from tab.
func RemoveVirtualAuthenticator(tab context.Context, id webauthn.AuthenticatorID) error {
	_, err := chromedp.Call(tab, webauthn.RemoveVirtualAuthenticator, webauthn.RemoveVirtualAuthenticatorParams{AuthenticatorID: id})
	return err
}
