//go:build unix

package authserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/clientauth"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/directory"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/keys"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/policy"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/embedded"
)

// newUserBenchIssuer has one user and a confidential client that may
// use authorization_code and refresh_token (issue 4's benchmarks).
func newUserBenchIssuer(b *testing.B, alg string) *Issuer {
	b.Helper()
	st, err := embedded.Open(filepath.Join(b.TempDir(), "db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	return newUserBenchIssuerOn(b, alg, st)
}

// newUserBenchIssuerOn is newUserBenchIssuer on a given store.
func newUserBenchIssuerOn(b *testing.B, alg string, st store.Store) *Issuer {
	b.Helper()
	dir, err := directory.ParseFile([]byte(`{"users":[{"id":"00u1","login":"alice@example.com","groups":["staff"],"profile":{"email":"alice@example.com"}}]}`))
	if err != nil {
		b.Fatal(err)
	}
	iss, err := New(Options{
		BaseURL:   "http://issuer.test",
		Directory: dir,
		Servers: map[string]*ServerConfig{"default": {SigningAlg: alg, Scopes: []*Scope{{Name: "orders:read"}},
			Policies: []*policy.Policy{{Name: "p", Clients: []string{"*"}, Rules: []*policy.Rule{{Name: "r",
				GrantTypes: []string{GrantAuthorizationCode, GrantClientCredentials}, Scopes: []string{"*"}}}}}}},
		Clients: []*clientauth.Client{{ID: "web", Secret: "web-secret", GrantTypes: []string{GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials},
			RedirectURIs: []string{"https://app.test/cb"}}},
		Logger: zap.New(zap.NewNop().Core()),
	})
	if err != nil {
		b.Fatal(err)
	}
	sealer, _ := keys.NewSealer([]byte("bench-seal-secret-0123456789abcdef"))
	if err := iss.Start(context.Background(), st, sealer); err != nil {
		b.Fatal(err)
	}
	return iss
}

func tokenCall(iss *Issuer, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/oauth2/default/v1/token", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.SetBasicAuth("web", "web-secret")
	w := httptest.NewRecorder()
	iss.ServeHTTP(w, r)
	return w
}

// BenchmarkCodeRedemption is one authorization_code grant (with
// openid: access and ID token signed): the code's atomic single use in
// the store, the user lookup, policy, two signatures, and the second
// store write that remembers what the code issued.
func BenchmarkCodeRedemption(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256"} {
		b.Run(alg, func(b *testing.B) {
			iss := newUserBenchIssuer(b, alg)
			codes := make([]string, b.N)
			g, _ := json.Marshal(codeGrant{authzRequest: authzRequest{Server: "default", ClientID: "web", RedirectURI: "https://app.test/cb",
				Scopes: []string{"openid", "orders:read"}, UserID: "00u1", AuthTime: time.Now(), Amr: []string{"pwd"}}})
			for i := range codes {
				codes[i] = randomToken()
				if err := iss.store.PutRecord(context.Background(), store.NSCode, refreshHash(codes[i]), g, time.Now().Add(time.Hour)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				w := tokenCall(iss, url.Values{"grant_type": {"authorization_code"}, "code": {codes[i]}, "redirect_uri": {"https://app.test/cb"}}.Encode())
				if w.Code != http.StatusOK {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
		})
	}
}

// BenchmarkRefresh is one refresh_token grant with rotation: the old
// token's atomic rotation and the new one's write in the store, the
// family check, the user lookup, policy, and the access token.
func BenchmarkRefresh(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256"} {
		b.Run(alg, func(b *testing.B) {
			iss := newUserBenchIssuer(b, alg)
			// A family keeps at most maxFamilyTokens unexpired access
			// tokens (the revocation feed names each): a fresh family
			// every few hundred refreshes keeps the loop under it.
			families := 0
			seed := func() string {
				families++
				rt := randomToken()
				rec := store.RefreshToken{Hash: refreshHash(rt), Family: fmt.Sprintf("f%d", families), Server: "default", ClientID: "web", UserID: "00u1",
					Scopes: []string{"orders:read", "offline_access"}, Policy: "p", Rule: "r", Grant: GrantAuthorizationCode,
					AuthTime: time.Now(), Issued: time.Now(), FamilyExpires: time.Now().Add(24 * time.Hour), IdleExpires: time.Now().Add(time.Hour)}
				if err := iss.store.PutRefresh(context.Background(), rec); err != nil {
					b.Fatal(err)
				}
				return rt
			}
			rt := seed()
			n := 0
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if n++; n%(maxFamilyTokens-10) == 0 {
					rt = seed()
				}
				w := tokenCall(iss, "grant_type=refresh_token&refresh_token="+rt)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
				body, _ := io.ReadAll(w.Body)
				// The next token is the rotated one.
				i := strings.Index(string(body), `"refresh_token":"`)
				if i < 0 {
					b.Fatal("no refresh token")
				}
				rest := string(body[i+len(`"refresh_token":"`):])
				rt = rest[:strings.IndexByte(rest, '"')]
			}
		})
	}
}
