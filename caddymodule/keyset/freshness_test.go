package keyset_test

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/caddymodule/keyset"
)

// The freshness bound of issue 10: a key activated without prior
// publication (an emergency rotation) is accepted by a remote gateway
// within 15 s, with MinRefresh left at its default.
const freshness = 15 * time.Second

// TestUnpublishedKeyAcceptedWithin15s: the gateway fetched just before
// the issuer activated k2 without publishing it first, and forged kids
// keep arriving; every request with k2 from 15 s after its activation
// on is accepted, with the default MinRefresh.
func TestUnpublishedKeyAcceptedWithin15s(t *testing.T) {
	s := newIssuerServer(t, jwksOf(t, "k1"), false)
	clk := newFakeClock()
	r, _ := newRemote(s, clk, 0)
	ctx := context.Background()
	if _, err := r.Key(ctx, "k1"); err != nil {
		t.Fatal(err)
	}

	// One second later the issuer activates (and so publishes) k2.
	clk.Advance(time.Second)
	s.set(func(s *issuerServer) { s.jwks = jwksOf(t, "k1", "k2") })
	activated := clk.Now()
	for clk.Now().Before(activated.Add(freshness)) {
		if _, err := r.Key(ctx, rand.Text()); !errors.Is(err, keyset.ErrUnknownKID) {
			t.Fatalf("forged kid: %v", err)
		}
		clk.Advance(500 * time.Millisecond)
	}
	k, err := r.Key(ctx, "k2")
	if err != nil || k.KID != "k2" {
		t.Fatalf("k2 %v after activation: %v, %v; want it accepted", clk.Now().Sub(activated), k, err)
	}
}

// TestKeySeenBeforeItsJWKSAcceptedWithin15s: a token with k2 arrives
// before the JWKS the gateway gets shows k2 (the fetch it causes
// answers the old set, and takes 5 s). The bound counts from when that
// fetch began, not from when it ended: 15 s after it began, k2 is found.
func TestKeySeenBeforeItsJWKSAcceptedWithin15s(t *testing.T) {
	s := newIssuerServer(t, jwksOf(t, "k1"), false)
	clk := newFakeClock()
	r, _ := newRemote(s, clk, 0)
	ctx := context.Background()
	if _, err := r.Key(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(freshness)

	s.set(func(s *issuerServer) { s.gate = make(chan struct{}) })
	began := clk.Now()
	res := make(chan error, 1)
	go func() { _, err := r.Key(ctx, "k2"); res <- err }()
	waitFor(t, "the second JWKS request", func() bool { return s.entered.Load() == 1 })
	clk.Advance(5 * time.Second)
	s.release()
	if err := <-res; !errors.Is(err, keyset.ErrUnknownKID) {
		t.Fatalf("k2 before its JWKS shows it: %v", err)
	}
	s.set(func(s *issuerServer) { s.jwks, s.gate = jwksOf(t, "k1", "k2"), nil })

	clk.Advance(began.Add(freshness).Sub(clk.Now()))
	if k, err := r.Key(ctx, "k2"); err != nil || k.KID != "k2" {
		t.Fatalf("k2 %v after the fetch that missed it began: %v, %v; want it accepted", freshness, k, err)
	}
}

// TestUnknownKidFloodOneFetchPerInterval: 10,000 random kids spread
// over a minute cost one fetch per MinRefresh (default 15 s), plus the
// first use; a known key keeps working throughout.
func TestUnknownKidFloodOneFetchPerInterval(t *testing.T) {
	s := newIssuerServer(t, jwksOf(t, "k1"), false)
	clk := newFakeClock()
	r, _ := newRemote(s, clk, 0)
	ctx := context.Background()
	if _, err := r.Key(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	const n, span = 10000, time.Minute
	step := span / n
	for i := range n {
		if _, err := r.Key(ctx, rand.Text()); !errors.Is(err, keyset.ErrUnknownKID) {
			t.Fatalf("forged kid %d: %v", i, err)
		}
		if i%1000 == 0 {
			if _, err := r.Key(ctx, "k1"); err != nil {
				t.Fatalf("known kid during the flood: %v", err)
			}
		}
		clk.Advance(step)
	}
	// First use at 0, then at most one per 15 s within the minute: 0,
	// 15, 30, 45 s and the one just due at 60 s.
	want := int64(1 + span/keyset.DefaultMinRefresh)
	if got := r.Fetches(); got > want {
		t.Fatalf("%d JWKS fetches for %d unknown kids over %v; want at most %d", got, n, span, want)
	}
	if got := s.jwksHits.Load(); got != r.Fetches() {
		t.Fatalf("server saw %d JWKS requests, Fetches() says %d", got, r.Fetches())
	}
}
