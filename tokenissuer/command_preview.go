package tokenissuer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/authserver"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "apiaccess-token-preview",
		Usage: "--client <id> [--server <as>] [--grant-type <type>] [--user <login|id>] [--scope <scope>...] [--json] [--address <admin>] [--config <file> [--adapter <name>]]",
		Short: "Shows the tokens an authorization server would issue, without issuing them",
		Long: `Asks the running Caddy's admin API (POST /token_issuer/{as}/preview) what a
token request would be answered, like the Token Preview tab of an Okta
authorization server: which access policy and rule match (every policy and
rule, and why each did or did not), the claims and lifetimes of the access
token and ID token, whether a refresh token is issued, and the inline hook
the rule runs. Nothing is signed, stored or sent.

--grant-type is client_credentials, password, authorization_code (default)
or device_code (urn:ietf:params:oauth:grant-type:device_code). --user is a
login (password, authorization_code, device_code) or, for the browser
flows, a user id of the directory (none for client_credentials). --scope
may be repeated or hold several scopes separated by spaces (a comma is
part of a scope, as RFC 6749 section 3.3 allows); none means the server's
default scopes, as in a real request.

The admin API address is --address, else the admin listener of --config,
else Caddy's default (localhost:2019).`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().StringP("server", "s", "default", "authorization server id, or org")
			cmd.Flags().StringP("client", "c", "", "client id (required)")
			cmd.Flags().StringP("grant-type", "g", authserver.GrantAuthorizationCode, "grant type")
			cmd.Flags().StringP("user", "u", "", "user login or id")
			// StringArray: RFC 6749 scope tokens may hold commas.
			cmd.Flags().StringArray("scope", nil, "scope to request (repeatable, or several separated by spaces; default: the server's default scopes)")
			cmd.Flags().Bool("json", false, "print the admin API's JSON answer")
			cmd.Flags().String("address", "", "admin API address (default: from --config, else localhost:2019)")
			cmd.Flags().String("config", "", "configuration file whose admin address to use")
			cmd.Flags().String("adapter", "", "name of the config adapter of --config")
			cmd.RunE = func(cmd *cobra.Command, _ []string) error {
				return cmdTokenPreview(caddycmd.Flags{FlagSet: cmd.Flags()}, cmd.OutOrStdout())
			}
		},
	})
}

func cmdTokenPreview(fl caddycmd.Flags, out io.Writer) error {
	client := fl.String("client")
	if client == "" {
		return fmt.Errorf("--client is required")
	}
	scopes, err := fl.GetStringArray("scope")
	if err != nil {
		return err
	}
	var list []string
	for _, s := range scopes {
		list = append(list, strings.Fields(s)...)
	}
	grant := fl.String("grant-type")
	if grant == "device_code" {
		grant = authserver.GrantDeviceCode
	}
	body, err := json.Marshal(authserver.PreviewRequest{ClientID: client, GrantType: grant, User: fl.String("user"), Scopes: list})
	if err != nil {
		return err
	}
	addr, err := caddycmd.DetermineAdminAPIAddress(fl.String("address"), nil, fl.String("config"), fl.String("adapter"))
	if err != nil {
		return fmt.Errorf("finding the admin API: %w", err)
	}
	resp, err := caddycmd.AdminAPIRequest(addr, http.MethodPost, "/token_issuer/"+url.PathEscape(fl.String("server"))+"/preview", nil, bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("reading the preview: %w", err)
	}
	if fl.Bool("json") {
		var buf bytes.Buffer
		if err := json.Indent(&buf, raw, "", "  "); err != nil {
			return fmt.Errorf("the admin API answered no JSON: %w", err)
		}
		buf.WriteByte('\n')
		_, err := buf.WriteTo(out)
		return err
	}
	var p authserver.Preview
	if err := json.Unmarshal(raw, &p); err != nil {
		return fmt.Errorf("the admin API answered no preview: %w", err)
	}
	writePreview(out, &p)
	return nil
}

// writePreview prints p for people.
func writePreview(w io.Writer, p *authserver.Preview) {
	pf := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	pf("Authorization server %s, client %s, grant type %s\n", p.AuthorizationServer, p.ClientID, p.GrantType)
	if p.User != nil {
		pf("User: %s (%s)", p.User.Login, p.User.ID)
		if p.User.Status != "" {
			pf(", %s", p.User.Status)
		}
		pf("\n")
	}
	dflt := ""
	if p.DefaultScopes {
		dflt = " (the server's defaults)"
	}
	pf("Scopes: %s%s\n", strings.Join(p.Scopes, " "), dflt)
	if p.OrgRule != "" {
		pf("\nOrg authorization server: %s\n", p.OrgRule)
	}
	if x := p.Evaluation; x != nil {
		pf("\nPolicy evaluation:\n")
		if len(x.Policies) == 0 {
			pf("  no policies\n")
		}
		for _, pv := range x.Policies {
			state := ""
			if !pv.Evaluated {
				state = ", after the decision"
			}
			if !pv.CoversClient {
				pf("  policy %q (priority %d): does not cover the client%s\n", pv.Policy, pv.Priority, state)
				continue
			}
			pf("  policy %q (priority %d): covers the client%s\n", pv.Policy, pv.Priority, state)
			if len(pv.Rules) == 0 {
				pf("    no rules\n")
			}
			for _, rv := range pv.Rules {
				verdict := "does not match"
				if rv.Matched {
					verdict = "matches"
				}
				switch {
				case x.Matched && pv.Policy == x.Policy && rv.Rule == x.Rule:
					verdict = "MATCHES: decides"
				case !rv.Evaluated:
					// Okta stops at the first match: listed for completeness.
					verdict += ", after the decision"
				}
				pf("    rule %q (priority %d): %s\n", rv.Rule, rv.Priority, verdict)
				pf("      grant type listed: %s\n", previewYesNo(rv.GrantTypeListed))
				if rv.ScopesAllowed {
					pf("      scopes allowed: yes\n")
				} else {
					pf("      scopes allowed: no (not allowed: %s)\n", strings.Join(rv.ScopesNotAllowed, " "))
				}
				pf("      people: %s\n", rv.PeopleReason)
			}
		}
	}
	pf("\n")
	switch {
	case p.Rule != "":
		pf("Matched: policy %q, rule %q\n", p.Policy, p.Rule)
	case p.Evaluation != nil:
		pf("No rule matched: %s\n", p.Evaluation.Reason)
	}
	if p.SignOn != nil {
		pf("Sign-on policy: %q rule %q, factor %s, deny %s\n", p.SignOn.Policy, p.SignOn.Rule, p.SignOn.Factor, previewYesNo(p.SignOn.Deny))
	}
	if p.InlineHook != "" {
		pf("Inline hook: %s (not called by the preview)\n", p.InlineHook)
	}
	for _, c := range p.Consent {
		if c.Granted {
			pf("Consent: %s required, granted before by the user\n", c.Scope)
		} else {
			pf("Consent: %s required, not granted yet: the sign-in asks for it\n", c.Scope)
		}
	}
	if p.Error != nil {
		pf("A real request gets: %s: %s", p.Error.Code, p.Error.Description)
		if p.Error.Reason != "" {
			pf(" (%s)", p.Error.Reason)
		}
		pf("\n")
	}
	if t := p.AccessToken; t != nil {
		pf("\nAccess token (lifetime %s):\n", t.Lifetime)
		writePreviewClaims(w, t.Claims)
	}
	if t := p.IDToken; t != nil {
		pf("\nID token (lifetime %s):\n", t.Lifetime)
		writePreviewClaims(w, t.Claims)
	}
	if r := p.RefreshToken; r != nil {
		if r.Issued {
			pf("\nRefresh token: issued, lifetime %s, idle window %s\n", r.Lifetime, r.Idle)
		} else {
			pf("\nRefresh token: not issued (%s); the rule's lifetime %s, idle window %s\n", r.Reason, r.Lifetime, r.Idle)
		}
	}
	if len(p.FailedClaims) > 0 {
		pf("\nClaims left out (their expression failed):\n")
		for _, f := range p.FailedClaims {
			pf("  %s (%s): %s\n", f.Claim, f.Token, f.Error)
		}
	}
	for _, n := range p.Notes {
		pf("Note: %s\n", n)
	}
}

func writePreviewClaims(w io.Writer, m map[string]any) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b, _ := json.Marshal(m[k])
		fmt.Fprintf(w, "  %s: %s\n", k, b)
	}
}

func previewYesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
