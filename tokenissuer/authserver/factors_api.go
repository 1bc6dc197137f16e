package authserver

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/factors"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/oauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// Okta's User Factors API (listFactors, getFactor, unenrollFactor) and
// two of the User Lifecycle operations (resetFactors, unlockUser), with
// an API token (SSWS) as the User Grants API: an admin sees a user's
// second factors in Okta's UserFactor shape (never a secret or a
// credential), removes one or all, and ends a sign-in lockout. The
// factors are the store's (package factors); the lockout is the login's
// attempt counter (throttle.go).

// factorsRequest is a parsed factors or lifecycle path below
// usersAPIPath.
type factorsRequest struct {
	userID, factorID string
	// op is "factors" ({id}/factors[/{factorId}]), "reset_factors" or
	// "unlock" ({id}/lifecycle/{op}).
	op string
}

// parseFactorsPath reads {id}/factors, {id}/factors/{factorId},
// {id}/lifecycle/reset_factors and {id}/lifecycle/unlock.
func parseFactorsPath(rest string) (factorsRequest, bool) {
	seg := strings.Split(rest, "/")
	for _, s := range seg {
		if s == "" {
			return factorsRequest{}, false
		}
	}
	switch {
	case len(seg) == 2 && seg[1] == "factors":
		return factorsRequest{userID: seg[0], op: "factors"}, true
	case len(seg) == 3 && seg[1] == "factors":
		return factorsRequest{userID: seg[0], factorID: seg[2], op: "factors"}, true
	case len(seg) == 3 && seg[1] == "lifecycle" && (seg[2] == "reset_factors" || seg[2] == "unlock"):
		return factorsRequest{userID: seg[0], op: seg[2]}, true
	}
	return factorsRequest{}, false
}

// allow is what each path answers (Okta's: enrolling, activating and
// verifying factors are not served here).
func (q factorsRequest) allow() string {
	switch {
	case q.op != "factors":
		return http.MethodPost
	case q.factorID != "":
		return "GET, DELETE"
	}
	return http.MethodGet
}

// serveFactorsAPI answers one parsed path: the API token first, then the
// method, then the user (Okta's userId: the user's id, not the login).
func (i *Issuer) serveFactorsAPI(w http.ResponseWriter, r *http.Request, q factorsRequest) {
	if !i.apiTokenValid(r) {
		invalidToken(w)
		return
	}
	if !slices.Contains(strings.Split(q.allow(), ", "), r.Method) {
		apiMethodNotAllowed(w, q.allow())
		return
	}
	if i.factors == nil {
		notFoundResource(w, q.userID, "User")
		return
	}
	u, ok := i.apiUser(w, r, q.userID)
	if !ok {
		return
	}
	switch {
	case q.op == "unlock":
		i.unlockUser(w, r, u)
	case q.op == "reset_factors":
		i.resetFactors(w, r, u)
	case r.Method == http.MethodDelete:
		i.unenrollFactor(w, r, u, q.factorID)
	default:
		i.listFactors(w, r, u, q.factorID)
	}
}

// listFactors answers the user's factors, ACTIVE and PENDING_ACTIVATION
// alike (Okta: "Lists all enrolled Factors"), or the one factorID names.
func (i *Issuer) listFactors(w http.ResponseWriter, r *http.Request, u *directory.User, factorID string) {
	fs, err := i.factors.List(r.Context(), u.ID)
	if err != nil {
		i.apiStoreFailure(w, err)
		return
	}
	if factorID == "" {
		out := make([]oktaFactor, 0, len(fs))
		for n := range fs {
			out = append(out, i.oktaFactor(&fs[n], u))
		}
		oauth.WriteJSON(w, http.StatusOK, out)
		return
	}
	for n := range fs {
		if fs[n].ID == factorID {
			oauth.WriteJSON(w, http.StatusOK, i.oktaFactor(&fs[n], u))
			return
		}
	}
	notFoundResource(w, factorID, "UserFactor")
}

// unenrollFactor removes one factor of the user: 204, or 404 when the
// user has none of that id (another user's factor included).
func (i *Issuer) unenrollFactor(w http.ResponseWriter, r *http.Request, u *directory.User, factorID string) {
	f, err := i.factors.Remove(r.Context(), u.ID, factorID)
	switch {
	case errors.Is(err, factors.ErrNotFound):
		notFoundResource(w, factorID, "UserFactor")
		return
	case err != nil:
		i.apiStoreFailure(w, err)
		return
	}
	i.logUserAdmin(r, EventFactorDeactivate, u, map[string]any{"factorId": f.ID, "factorType": factorType(f.Kind)},
		zap.String("factor_id", f.ID), zap.String("factor_type", factorType(f.Kind)))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// resetFactors removes all of the user's factors and recovery codes
// (Okta's "Reset all Factors"): 200 and an empty object, whatever was
// enrolled.
func (i *Issuer) resetFactors(w http.ResponseWriter, r *http.Request, u *directory.User) {
	removed, err := i.factors.Reset(r.Context(), u.ID)
	if err != nil {
		i.apiStoreFailure(w, err)
		return
	}
	ids := make([]string, 0, len(removed))
	for _, f := range removed {
		ids = append(ids, f.ID)
	}
	i.logUserAdmin(r, EventFactorResetAll, u, map[string]any{"factorIds": strings.Join(ids, " ")},
		zap.Strings("factor_ids", ids))
	oauth.WriteJSON(w, http.StatusOK, struct{}{})
}

// unlockUser ends the user's sign-in lockout (Okta's "Unlock a User"):
// 200 and an empty object; a user who is not locked out is Okta's 403
// E0000032.
func (i *Issuer) unlockUser(w http.ResponseWriter, r *http.Request, u *directory.User) {
	unlocked, err := i.unlockLogin(r.Context(), directory.NormalizeLogin(u.Login))
	if err != nil {
		i.apiStoreFailure(w, err)
		return
	}
	if !unlocked {
		oauth.WriteJSON(w, http.StatusForbidden, oktaError{Code: "E0000032", Summary: "Unlock is not allowed for this user.", Link: "E0000032",
			ID: "oae" + randomToken()[:22], Causes: []any{map[string]string{"errorSummary": "The user is not locked out."}}})
		return
	}
	i.logUserAdmin(r, EventUnlockByAdmin, u, nil)
	oauth.WriteJSON(w, http.StatusOK, struct{}{})
}

// logUserAdmin records one change to user u made through the API: the
// Caddy log event (fields added), and its System Log events with the
// API token as actor and the user as target (debug added to debugData).
func (i *Issuer) logUserAdmin(r *http.Request, event string, u *directory.User, debug map[string]any, fields ...zap.Field) {
	if c := i.log.Check(zap.InfoLevel, event); c != nil {
		c.Write(append([]zap.Field{zap.String("user_id", u.ID), zap.String("outcome", "SUCCESS")}, fields...)...)
	}
	if i.sink == nil {
		return
	}
	d := decision{userID: u.ID, req: r}
	txn := transactionID(r)
	for _, k := range kindsOf(event, &d, false) {
		ev := i.baseEvent(&d, nil, txn)
		ev.UUID, ev.EventType, ev.DisplayMessage = newUUID(), k.name(nil), k.message
		actor := apiActor
		ev.Actor = &actor
		ev.Target = append(ev.Target, store.LogTarget{ID: u.ID, Type: "User", AlternateID: echo(u.Login), DisplayName: echo(u.Login)})
		for key, v := range debug {
			ev.DebugContext.DebugData[key] = v
		}
		i.sink.add(ev)
	}
}

// oktaFactor is Okta's UserFactor object (Factors API; UserFactorTOTP,
// UserFactorWebAuthn in the management OpenAPI spec).
type oktaFactor struct {
	ID          string                    `json:"id"`
	FactorType  string                    `json:"factorType"`
	Provider    string                    `json:"provider"`
	VendorName  string                    `json:"vendorName"`
	Status      string                    `json:"status"`
	Created     string                    `json:"created"`
	LastUpdated string                    `json:"lastUpdated"`
	Profile     map[string]string         `json:"profile"`
	Links       map[string]map[string]any `json:"_links"`
}

// factorType is Okta's factorType of a kind.
func factorType(k factors.Kind) string {
	if k == factors.KindWebAuthn {
		return "webauthn"
	}
	return "token:software:totp"
}

// oktaFactor is f (as List hands it out: no secret, no credential) in
// Okta's shape. A TOTP app is Okta's GOOGLE provider (any RFC 6238 app)
// whose credentialId is the user's login; a WebAuthn factor is FIDO's,
// with its credential id (base64url, as WebAuthn's id) and name.
// lastUpdated is the activation, else the enrollment. Of the links only
// self and user are served here.
func (i *Issuer) oktaFactor(f *factors.Factor, u *directory.User) oktaFactor {
	provider := "GOOGLE"
	profile := map[string]string{"credentialId": u.Login}
	if f.Kind == factors.KindWebAuthn {
		provider = "FIDO"
		profile = map[string]string{"credentialId": base64.RawURLEncoding.EncodeToString(f.CredentialID), "authenticatorName": f.Name}
	}
	updated := f.Created
	if f.Activated.After(updated) {
		updated = f.Activated
	}
	user := i.base + "/api/v1/users/" + url.PathEscape(u.ID)
	return oktaFactor{
		ID: f.ID, FactorType: factorType(f.Kind), Provider: provider, VendorName: provider, Status: f.Status,
		Created: oktaTime(f.Created), LastUpdated: oktaTime(updated), Profile: profile,
		Links: map[string]map[string]any{
			"self": {"href": user + "/factors/" + url.PathEscape(f.ID), "hints": map[string]any{"allow": []string{"GET", "DELETE"}}},
			"user": {"href": user, "hints": map[string]any{"allow": []string{"GET"}}},
		},
	}
}

// oktaTime is Okta's timestamp form: UTC, milliseconds.
func oktaTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
