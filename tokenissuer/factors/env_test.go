package factors

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/keys"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/embedded"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/postgres"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/postgres/pgtest"
)

// t0 is the start of a TOTP time step (RFC 6238: 30 s from the epoch).
var t0 = time.Unix(1_800_000_000/30*30, 0)

// env is one store with two Managers on it: on PostgreSQL each has a
// pool of its own, as two cluster nodes would; the embedded file can
// be open once, so there both share it.
type env struct {
	st, st2 store.Store
	m, m2   *Manager
	clock   *testkit.Clock
	ctx     context.Context
}

func newSealer(t *testing.T) *keys.Sealer {
	t.Helper()
	s, err := keys.NewSealer([]byte("0123456789abcdef0123456789abcdef-test"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// eachStore runs f against the embedded store and against PostgreSQL
// (skipped without a server, failed under APIACCESS_STRICT=1).
func eachStore(t *testing.T, f func(t *testing.T, e *env)) {
	t.Run("embedded", func(t *testing.T) {
		db, err := embedded.Open(filepath.Join(t.TempDir(), "factors.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		f(t, newEnv(t, db, db))
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := pgtest.DSN(t)
		schema := pgtest.FreshSchema(t, "apiaccess_factors_")
		open := func() store.Store {
			d, err := postgres.Open(context.Background(), postgres.Config{DSN: dsn, Schema: schema})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Close() })
			return d
		}
		f(t, newEnv(t, open(), open()))
	})
}

func newEnv(t *testing.T, st, st2 store.Store) *env {
	c := testkit.NewClock(t0)
	s := newSealer(t)
	return &env{st: st, st2: st2, clock: c, ctx: context.Background(),
		m: New(st, s, "Example Issuer", c.Now), m2: New(st2, s, "Example Issuer", c.Now)}
}

// code is the TOTP code of secret at the clock's time plus offset
// steps, as an authenticator app computes it.
func (e *env) code(t *testing.T, secret string, offset int) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, e.clock.Now().Add(time.Duration(offset)*30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// enrolled enrolls and activates a TOTP factor for uid and returns its
// id and secret; the clock moves to the next step, so the activating
// code's step is in the past.
func (e *env) enrolled(t *testing.T, uid string) (string, string) {
	t.Helper()
	en, err := e.m.EnrollTOTP(e.ctx, uid, uid+"@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.m.ActivateTOTP(e.ctx, uid, en.FactorID, e.code(t, en.Secret, 0)); err != nil {
		t.Fatalf("ActivateTOTP: %v", err)
	}
	e.clock.Advance(30 * time.Second)
	return en.FactorID, en.Secret
}

// raw is uid's record as the store holds it.
func (e *env) raw(t *testing.T, uid string) []byte {
	t.Helper()
	v, err := e.st.GetRecord(e.ctx, store.NSFactors, uid)
	if err != nil {
		t.Fatalf("GetRecord(factors, %s): %v", uid, err)
	}
	return v
}
