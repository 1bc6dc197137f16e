//go:build unix

package authserver

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/embedded"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/postgres"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/postgres/pgtest"
)

// benchStores opens each store the issuer can run on, for issue 5's
// side-by-side figures (BENCHMARKS.md "Stores"). PostgreSQL comes from
// APIACCESS_POSTGRES_DSN (default: 127.0.0.1:5432, database test) in a
// schema of its own; without a server it is skipped, or fails under
// APIACCESS_STRICT=1.
func benchStores(b *testing.B) map[string]func(b *testing.B) store.Store {
	return map[string]func(b *testing.B) store.Store{
		"embedded": func(b *testing.B) store.Store {
			st, err := embedded.Open(filepath.Join(b.TempDir(), "db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = st.Close() })
			return st
		},
		"postgres": func(b *testing.B) store.Store {
			schema := pgtest.FreshSchema(b, "apiaccess_bench_")
			st, err := postgres.Open(context.Background(), postgres.Config{DSN: pgtest.DSN(b), Schema: schema, MaxConns: 16})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = st.Close() })
			return st
		},
	}
}

// BenchmarkStores: the grants whose cost the store decides, on each
// store, 8 requests in flight (RunParallel x4 on 2 cores), ES256.
// client_credentials writes nothing (a baseline for the others); a code
// redemption is an atomic consume plus a write of what it issued; a
// refresh reads the token and its family, stores the successor and
// marks the old one used.
func BenchmarkStores(b *testing.B) {
	for _, name := range []string{"embedded", "postgres"} {
		open := benchStores(b)[name]
		b.Run(name, func(b *testing.B) {
			b.Run("ClientCredentials", func(b *testing.B) {
				iss := newUserBenchIssuerOn(b, "ES256", open(b))
				b.SetParallelism(4)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if w := tokenCall(iss, "grant_type=client_credentials&scope=orders:read"); w.Code != http.StatusOK {
							b.Errorf("status %d: %s", w.Code, w.Body)
							return
						}
					}
				})
			})
			b.Run("CodeRedemption", func(b *testing.B) {
				iss := newUserBenchIssuerOn(b, "ES256", open(b))
				g, _ := json.Marshal(codeGrant{authzRequest: authzRequest{Server: "default", ClientID: "web", RedirectURI: "https://app.test/cb",
					Scopes: []string{"openid", "orders:read"}, UserID: "00u1", AuthTime: time.Now(), Amr: []string{"pwd"}}})
				codes := make([]string, b.N)
				for i := range codes {
					codes[i] = randomToken()
					if err := iss.store.PutRecord(context.Background(), store.NSCode, refreshHash(codes[i]), g, time.Now().Add(time.Hour)); err != nil {
						b.Fatal(err)
					}
				}
				var next atomic.Int64
				b.SetParallelism(4)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						code := codes[next.Add(1)-1]
						w := tokenCall(iss, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.test/cb"}}.Encode())
						if w.Code != http.StatusOK {
							b.Errorf("status %d: %s", w.Code, w.Body)
							return
						}
					}
				})
			})
			b.Run("Refresh", func(b *testing.B) {
				iss := newUserBenchIssuerOn(b, "ES256", open(b))
				b.SetParallelism(4)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					// One token family per goroutine, rotated each time.
					rt := randomToken()
					rec := store.RefreshToken{Hash: refreshHash(rt), Family: randomToken(), Server: "default", ClientID: "web", UserID: "00u1",
						Scopes: []string{"orders:read", "offline_access"}, Policy: "p", Rule: "r", Grant: GrantAuthorizationCode,
						AuthTime: time.Now(), Issued: time.Now(), FamilyExpires: time.Now().Add(24 * time.Hour), IdleExpires: time.Now().Add(time.Hour)}
					if err := iss.store.PutRefresh(context.Background(), rec); err != nil {
						b.Error(err)
						return
					}
					for pb.Next() {
						w := tokenCall(iss, "grant_type=refresh_token&refresh_token="+rt)
						body := w.Body.String()
						i := strings.Index(body, `"refresh_token":"`)
						if w.Code != http.StatusOK || i < 0 {
							b.Errorf("status %d: %s", w.Code, body)
							return
						}
						rest := body[i+len(`"refresh_token":"`):]
						rt = rest[:strings.IndexByte(rest, '"')]
					}
				})
			})
		})
	}
}
