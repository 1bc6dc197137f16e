// Package storetest is the conformance suite every store.Store
// implementation must pass (DESIGN.md "State and storage": one suite runs
// against every store). It relies only on the store.Store contract, so
// it runs unchanged against the embedded bbolt store and shared stores
// such as PostgreSQL. RunEventLog is the System Log's part
// (store.EventLog), with RunEventLogBound for stores with a size bound
// and RunEventLogShared for shared stores (two nodes, one log).
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// Run runs the suite. open must return a fresh, empty store for each
// call; it is called once per subtest and should register its own
// cleanup with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"KeysEmptyForUnknownServer", testKeysEmpty},
		{"UpdateKeysRoundTrip", testUpdateKeysRoundTrip},
		{"UpdateKeysSeesCurrentRecords", testUpdateKeysSeesCurrent},
		{"UpdateKeysErrorLeavesStateUnchanged", testUpdateKeysError},
		{"UpdateKeysServersIndependent", testUpdateKeysServersIndependent},
		{"UpdateKeysConcurrentIsAtomic", testUpdateKeysConcurrent},
		{"MarkOnceWhileUnexpired", testMarkOnce},
		{"MarkAgainAfterExpiry", testMarkAfterExpiry},
		{"Marked", testMarked},
		{"MarkNamespacesIndependent", testMarkNamespaces},
		{"Purge", testPurge},
		{"MarkConcurrentExactlyOneWins", testMarkConcurrent},
		{"RefreshRoundTripAndUpdate", testRefreshRoundTrip},
		{"RefreshConcurrentRotationExactlyOnce", testRefreshConcurrent},
		{"RefreshPurge", testRefreshPurge},
		{"RecordsPutUpdateDelete", testRecords},
		{"RecordTakeExactlyOnce", testRecordTakeOnce},
		{"KeysAreOpaqueBytes", testOpaqueKeys},
		{"CreateRecordOnlyIfAbsentOrExpired", testCreateRecord},
		{"CreateRecordConcurrentExactlyOneWins", testCreateRecordConcurrent},
		{"IncrCountsKeepsExpiryAndDeletes", testIncr},
		{"IncrRestartsAfterExpiry", testIncrAfterExpiry},
		{"IncrConcurrentEachCountOnce", testIncrConcurrent},
		{"ListRecordsByPrefixInKeyOrder", testListRecords},
		{"ListRecordsPagesWithAfter", testListRecordsPaging},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

// ts is a timestamp every store can represent exactly: whole seconds,
// UTC (shared stores may keep only microseconds).
func ts(sec int64) time.Time { return time.Unix(1_700_000_000+sec, 0).UTC() }

func rec(kid string, state store.KeyState) store.KeyRecord {
	return store.KeyRecord{
		KID:     kid,
		Alg:     "RS256",
		State:   state,
		Created: ts(0),
		Sealed:  []byte("sealed-" + kid),
	}
}

func keys(t *testing.T, s store.Store, as string) []store.KeyRecord {
	t.Helper()
	recs, err := s.Keys(context.Background(), as)
	if err != nil {
		t.Fatalf("Keys(%q): %v", as, err)
	}
	return recs
}

func kids(recs []store.KeyRecord) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.KID
	}
	return out
}

func put(t *testing.T, s store.Store, as string, recs ...store.KeyRecord) {
	t.Helper()
	err := s.UpdateKeys(context.Background(), as, func([]store.KeyRecord) ([]store.KeyRecord, error) {
		return slices.Clone(recs), nil
	})
	if err != nil {
		t.Fatalf("UpdateKeys(%q): %v", as, err)
	}
}

func mark(t *testing.T, s store.Store, ns, key string, until time.Time) bool {
	t.Helper()
	fresh, err := s.Mark(context.Background(), ns, key, until)
	if err != nil {
		t.Fatalf("Mark(%q, %q): %v", ns, key, err)
	}
	return fresh
}

func marked(t *testing.T, s store.Store, ns, key string) bool {
	t.Helper()
	ok, err := s.Marked(context.Background(), ns, key)
	if err != nil {
		t.Fatalf("Marked(%q, %q): %v", ns, key, err)
	}
	return ok
}

func sameRecord(a, b store.KeyRecord) bool {
	return a.KID == b.KID && a.Alg == b.Alg && a.State == b.State &&
		a.Created.Equal(b.Created) && a.Activated.Equal(b.Activated) &&
		a.Expired.Equal(b.Expired) && a.RetireAt.Equal(b.RetireAt) &&
		bytes.Equal(a.Sealed, b.Sealed)
}

func testKeysEmpty(t *testing.T, s store.Store) {
	if recs := keys(t, s, "never-seen"); len(recs) != 0 {
		t.Fatalf("Keys of an unknown authorization server = %v, want none", kids(recs))
	}
}

func testUpdateKeysRoundTrip(t *testing.T, s store.Store) {
	want := []store.KeyRecord{
		{KID: "k-active", Alg: "ES256", State: store.KeyActive, Created: ts(1), Activated: ts(2),
			Sealed: []byte{0, 1, 2, 0xff, 'x'}},
		{KID: "k-next", Alg: "ES256", State: store.KeyNext, Created: ts(3), Sealed: []byte("eyJhbGciOiJkaXIifQ..a.b.c")},
		{KID: "k-old", Alg: "RS256", State: store.KeyExpired, Created: ts(-100), Activated: ts(-90),
			Expired: ts(2), RetireAt: ts(3600), Sealed: []byte("old")},
	}
	put(t, s, "default", want...)
	got := keys(t, s, "default")
	if len(got) != len(want) {
		t.Fatalf("Keys returned %d records %v, want %d", len(got), kids(got), len(want))
	}
	for i := range want {
		if !sameRecord(got[i], want[i]) {
			t.Errorf("record %d:\n got  %+v\n want %+v", i, got[i], want[i])
		}
	}
	// Zero times stay zero (a NEXT key has never been activated).
	if !got[1].Activated.IsZero() || !got[1].Expired.IsZero() || !got[1].RetireAt.IsZero() {
		t.Errorf("zero times of the NEXT record came back non-zero: %+v", got[1])
	}

	// A second update replaces, not appends.
	put(t, s, "default", want[0])
	if got := keys(t, s, "default"); len(got) != 1 || got[0].KID != "k-active" {
		t.Fatalf("after replacing with one record Keys = %v, want [k-active]", kids(got))
	}
	// Replacing with nothing empties the server.
	put(t, s, "default")
	if got := keys(t, s, "default"); len(got) != 0 {
		t.Fatalf("after replacing with no records Keys = %v, want none", kids(got))
	}
}

func testUpdateKeysSeesCurrent(t *testing.T, s store.Store) {
	put(t, s, "default", rec("a", store.KeyActive), rec("b", store.KeyNext))
	var seen []string
	err := s.UpdateKeys(context.Background(), "default", func(cur []store.KeyRecord) ([]store.KeyRecord, error) {
		seen = kids(cur)
		return append(cur, rec("c", store.KeyExpired)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seen, []string{"a", "b"}) {
		t.Errorf("fn was given %v, want the current records [a b]", seen)
	}
	if got := kids(keys(t, s, "default")); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("Keys = %v, want [a b c]", got)
	}
}

func testUpdateKeysError(t *testing.T, s store.Store) {
	put(t, s, "default", rec("a", store.KeyActive))
	boom := errors.New("boom")
	err := s.UpdateKeys(context.Background(), "default", func(cur []store.KeyRecord) ([]store.KeyRecord, error) {
		return []store.KeyRecord{rec("x", store.KeyActive)}, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("UpdateKeys returned %v, want the error of fn", err)
	}
	if got := kids(keys(t, s, "default")); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("after a failed update Keys = %v, want unchanged [a]", got)
	}

	// Also for a server that had no records yet.
	err = s.UpdateKeys(context.Background(), "fresh", func([]store.KeyRecord) ([]store.KeyRecord, error) {
		return []store.KeyRecord{rec("x", store.KeyActive)}, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("UpdateKeys returned %v, want the error of fn", err)
	}
	if got := keys(t, s, "fresh"); len(got) != 0 {
		t.Fatalf("after a failed first update Keys = %v, want none", kids(got))
	}
}

func testUpdateKeysServersIndependent(t *testing.T, s store.Store) {
	put(t, s, "a", rec("ka", store.KeyActive))
	put(t, s, "b", rec("kb1", store.KeyActive), rec("kb2", store.KeyNext))
	if got := kids(keys(t, s, "a")); !slices.Equal(got, []string{"ka"}) {
		t.Errorf("Keys(a) = %v, want [ka]", got)
	}
	if got := kids(keys(t, s, "b")); !slices.Equal(got, []string{"kb1", "kb2"}) {
		t.Errorf("Keys(b) = %v, want [kb1 kb2]", got)
	}
	// Nothing leaks into a server that was never written.
	if got := keys(t, s, "c"); len(got) != 0 {
		t.Errorf("Keys(c) = %v, want none", kids(got))
	}
}

func testUpdateKeysConcurrent(t *testing.T, s store.Store) {
	const n = 32
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			kid := fmt.Sprintf("k%02d", i)
			errs <- s.UpdateKeys(context.Background(), "default", func(cur []store.KeyRecord) ([]store.KeyRecord, error) {
				return append(slices.Clone(cur), rec(kid, store.KeyExpired)), nil
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent UpdateKeys: %v", err)
		}
	}
	got := kids(keys(t, s, "default"))
	slices.Sort(got)
	if len(got) != n {
		t.Fatalf("after %d concurrent appends Keys has %d records: %v (lost updates)", n, len(got), got)
	}
	for i := range n {
		if want := fmt.Sprintf("k%02d", i); got[i] != want {
			t.Fatalf("records after concurrent appends = %v, missing or duplicated %s", got, want)
		}
	}
}

func testMarkOnce(t *testing.T, s store.Store) {
	until := time.Now().Add(time.Hour)
	if !mark(t, s, store.NSAssertion, "c1:jti-1", until) {
		t.Fatal("first Mark = false, want true")
	}
	if mark(t, s, store.NSAssertion, "c1:jti-1", until) {
		t.Fatal("second Mark of an unexpired key = true, want false (replay)")
	}
	// A repeat with a later expiry is still a repeat.
	if mark(t, s, store.NSAssertion, "c1:jti-1", until.Add(time.Hour)) {
		t.Fatal("Mark with a later until = true, want false")
	}
	if !mark(t, s, store.NSAssertion, "c1:jti-2", until) {
		t.Fatal("Mark of another key = false, want true")
	}
}

func testMarkAfterExpiry(t *testing.T, s store.Store) {
	past := time.Now().Add(-time.Second)
	if !mark(t, s, store.NSAssertion, "k", past) {
		t.Fatal("first Mark = false, want true")
	}
	// Its mark has already expired: the key is usable again.
	if !mark(t, s, store.NSAssertion, "k", past) {
		t.Fatal("Mark of an expired key = false, want true")
	}
	// Re-marked until the future: now it is a repeat.
	if !mark(t, s, store.NSAssertion, "k", time.Now().Add(time.Hour)) {
		t.Fatal("Mark over an expired mark = false, want true")
	}
	if mark(t, s, store.NSAssertion, "k", time.Now().Add(time.Hour)) {
		t.Fatal("Mark after re-marking into the future = true, want false")
	}
	if !marked(t, s, store.NSAssertion, "k") {
		t.Fatal("Marked after re-marking into the future = false, want true")
	}
}

func testMarked(t *testing.T, s store.Store) {
	if marked(t, s, store.NSRevoked, "jti-live") {
		t.Fatal("Marked of a key never marked = true")
	}
	mark(t, s, store.NSRevoked, "jti-live", time.Now().Add(time.Hour))
	if !marked(t, s, store.NSRevoked, "jti-live") {
		t.Fatal("Marked of a live mark = false, want true")
	}
	mark(t, s, store.NSRevoked, "jti-dead", time.Now().Add(-time.Second))
	if marked(t, s, store.NSRevoked, "jti-dead") {
		t.Fatal("Marked of an expired mark = true, want false")
	}
	// Keys are exact: no prefix or case folding.
	for _, k := range []string{"jti-liv", "jti-live2", "JTI-LIVE", ""} {
		if marked(t, s, store.NSRevoked, k) {
			t.Errorf("Marked(%q) = true; only %q was marked", k, "jti-live")
		}
	}
}

func testMarkNamespaces(t *testing.T, s store.Store) {
	until := time.Now().Add(time.Hour)
	if !mark(t, s, store.NSRevoked, "same", until) {
		t.Fatal("Mark in revoked = false")
	}
	if marked(t, s, store.NSAssertion, "same") {
		t.Fatal("a mark in revoked is visible in assertion")
	}
	if !mark(t, s, store.NSAssertion, "same", until) {
		t.Fatal("Mark of the same key in another namespace = false, want true")
	}
	// Namespace and key must not be confusable by concatenation.
	if !mark(t, s, "ab", "c", until) {
		t.Fatal("Mark(ab, c) = false")
	}
	if !mark(t, s, "a", "bc", until) {
		t.Fatal("Mark(a, bc) = false after Mark(ab, c): namespace and key run together")
	}
}

func testPurge(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now()
	mark(t, s, store.NSRevoked, "expired", now.Add(-time.Minute))
	mark(t, s, store.NSRevoked, "soon", now.Add(time.Hour))
	mark(t, s, store.NSAssertion, "soon", now.Add(time.Hour))
	mark(t, s, store.NSRevoked, "later", now.Add(3*time.Hour))

	if err := s.Purge(ctx, now); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	for _, k := range []string{"soon", "later"} {
		if !marked(t, s, store.NSRevoked, k) {
			t.Errorf("Purge(now) removed live mark %q", k)
		}
	}
	if mark(t, s, store.NSRevoked, "soon", now.Add(time.Hour)) {
		t.Error("after Purge(now) a live mark can be taken again")
	}

	// Purge deletes marks that expired before the given time: purging
	// as of two hours from now drops the marks ending in one hour (in
	// every namespace) and keeps the one ending in three.
	if err := s.Purge(ctx, now.Add(2*time.Hour)); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	if marked(t, s, store.NSRevoked, "soon") || marked(t, s, store.NSAssertion, "soon") {
		t.Error("Purge(now+2h) kept marks that expire at now+1h")
	}
	if !marked(t, s, store.NSRevoked, "later") {
		t.Error("Purge(now+2h) removed a mark that expires at now+3h")
	}
	if !mark(t, s, store.NSRevoked, "soon", now.Add(time.Hour)) {
		t.Error("Mark after its mark was purged = false, want true")
	}
	// Purging an empty or already purged store is fine.
	if err := s.Purge(ctx, now); err != nil {
		t.Fatalf("second Purge: %v", err)
	}
}

func testMarkConcurrent(t *testing.T, s store.Store) {
	const n = 32
	until := time.Now().Add(time.Hour)
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	var firstErr error
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			fresh, err := s.Mark(context.Background(), store.NSAssertion, "client:jti", until)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			if fresh {
				wins++
			}
		})
	}
	close(start)
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("concurrent Mark: %v", firstErr)
	}
	if wins != 1 {
		t.Fatalf("%d concurrent Marks of one key: %d reported new, want exactly 1", n, wins)
	}
}

func refreshRec(hash string, idle time.Time) store.RefreshToken {
	return store.RefreshToken{Hash: hash, Family: "fam-" + hash, Server: "default", ClientID: "c", UserID: "u",
		Scopes: []string{"openid", "offline_access"}, AuthTime: ts(0), Issued: ts(1), FamilyExpires: idle.Add(time.Hour), IdleExpires: idle}
}

func testRefreshRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.UpdateRefresh(ctx, "nope", func(*store.RefreshToken) error { t.Fatal("fn called for a missing token"); return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing token: %v", err)
	}
	want := refreshRec("h1", time.Now().Add(time.Hour).UTC().Truncate(time.Second))
	if err := s.PutRefresh(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := s.UpdateRefresh(ctx, "h1", func(rt *store.RefreshToken) error {
		if rt.Family != want.Family || rt.UserID != "u" || len(rt.Scopes) != 2 || !rt.IdleExpires.Equal(want.IdleExpires) || !rt.AuthTime.Equal(want.AuthTime) {
			t.Errorf("read back %+v", rt)
		}
		rt.Rotated = ts(5)
		return nil
	})
	if err != nil || !got.Rotated.Equal(ts(5)) {
		t.Fatalf("update: %+v %v", got, err)
	}
	// GetRefresh reads what UpdateRefresh wrote, and changes nothing.
	if read, err := s.GetRefresh(ctx, "h1"); err != nil || !read.Rotated.Equal(ts(5)) || read.Family != want.Family ||
		!read.IdleExpires.Equal(want.IdleExpires) || len(read.Scopes) != 2 {
		t.Fatalf("GetRefresh after update: %+v %v", read, err)
	}
	if _, err := s.GetRefresh(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetRefresh of a missing token: %v", err)
	}
	// An error from fn changes nothing.
	boom := errors.New("boom")
	if _, err := s.UpdateRefresh(ctx, "h1", func(rt *store.RefreshToken) error { rt.Rotated = ts(9); return boom }); !errors.Is(err, boom) {
		t.Fatalf("fn error: %v", err)
	}
	got, _ = s.UpdateRefresh(ctx, "h1", func(*store.RefreshToken) error { return nil })
	if !got.Rotated.Equal(ts(5)) {
		t.Fatalf("a failed update changed the record: %v", got.Rotated)
	}
}

// testRefreshConcurrent: many concurrent uses of one refresh token, each
// rotating it only if not yet rotated: exactly one wins.
func testRefreshConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.PutRefresh(ctx, refreshRec("h2", time.Now().Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	errUsed := errors.New("used")
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.UpdateRefresh(ctx, "h2", func(rt *store.RefreshToken) error {
				if !rt.Rotated.IsZero() {
					return errUsed
				}
				rt.Rotated = time.Now()
				return nil
			})
			if err == nil {
				wins.Add(1)
			} else if !errors.Is(err, errUsed) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d concurrent rotations won, want 1", wins.Load())
	}
}

func testRefreshPurge(t *testing.T, s store.Store) {
	ctx := context.Background()
	_ = s.PutRefresh(ctx, refreshRec("old", time.Now().Add(-time.Minute)))
	_ = s.PutRefresh(ctx, refreshRec("live", time.Now().Add(time.Hour)))
	if err := s.Purge(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	noop := func(*store.RefreshToken) error { return nil }
	if _, err := s.UpdateRefresh(ctx, "old", noop); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an idle-expired refresh token survived Purge: %v", err)
	}
	if _, err := s.UpdateRefresh(ctx, "live", noop); err != nil {
		t.Errorf("a live refresh token was purged: %v", err)
	}
}

func testRecords(t *testing.T, s store.Store) {
	ctx := context.Background()
	noop := func(v []byte) ([]byte, error) { return v, nil }
	if _, err := s.UpdateRecord(ctx, "ns", "k", noop); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing record: %v", err)
	}
	if err := s.PutRecord(ctx, "ns", "k", []byte("v1"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateRecord(ctx, "other", "k", noop); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("namespaces are not independent")
	}
	if v, err := s.GetRecord(ctx, "ns", "k"); err != nil || string(v) != "v1" {
		t.Fatalf("GetRecord: %q %v", v, err)
	}
	if _, err := s.GetRecord(ctx, "other", "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("GetRecord: namespaces are not independent")
	}
	old, err := s.UpdateRecord(ctx, "ns", "k", func(v []byte) ([]byte, error) { return append(v, '+'), nil })
	if err != nil || string(old) != "v1" {
		t.Fatalf("update saw %q %v", old, err)
	}
	if old, _ := s.UpdateRecord(ctx, "ns", "k", noop); string(old) != "v1+" {
		t.Fatalf("update not stored: %q", old)
	}
	boom := errors.New("boom")
	if _, err := s.UpdateRecord(ctx, "ns", "k", func([]byte) ([]byte, error) { return []byte("x"), boom }); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if old, _ := s.UpdateRecord(ctx, "ns", "k", noop); string(old) != "v1+" {
		t.Fatalf("a failed update changed the record: %q", old)
	}
	if _, err := s.UpdateRecord(ctx, "ns", "k", func([]byte) ([]byte, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateRecord(ctx, "ns", "k", noop); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("a deleted record is still there")
	}
	_ = s.PutRecord(ctx, "ns", "old", []byte("x"), time.Now().Add(-time.Second))
	if _, err := s.UpdateRecord(ctx, "ns", "old", noop); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("an expired record is still readable")
	}
	if _, err := s.GetRecord(ctx, "ns", "old"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("GetRecord returns an expired record")
	}
	_ = s.PutRecord(ctx, "ns", "live", []byte("x"), time.Now().Add(time.Hour))
	if err := s.Purge(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateRecord(ctx, "ns", "live", noop); err != nil {
		t.Fatal("Purge removed a live record")
	}
}

// testRecordTakeExactlyOnce: concurrent single-use consumption (codes).
func testRecordTakeOnce(t *testing.T, s store.Store) {
	ctx := context.Background()
	_ = s.PutRecord(ctx, "code", "c1", []byte("grant"), time.Now().Add(time.Minute))
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.UpdateRecord(ctx, "code", "c1", func([]byte) ([]byte, error) { return nil, nil }); err == nil {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d concurrent takes won, want 1", wins.Load())
	}
}

// testOpaqueKeys: mark and record keys come from clients (a JWT's jti, a
// form value), so they can hold any bytes, NUL or not UTF-8. Each must
// work as a key, distinct from its neighbours; an unknown one is simply
// not found (a store with text keys would fail the request instead).
func testOpaqueKeys(t *testing.T, s store.Store) {
	ctx := context.Background()
	until := time.Now().Add(time.Hour)
	odd := []string{"a\x00b", "a\x00", "\xff\xfe", "caf\xc3\xa9", "caf\xe9"}
	for _, k := range odd {
		if marked(t, s, store.NSAssertion, k) {
			t.Fatalf("Marked(%q) before any Mark = true", k)
		}
		if _, err := s.GetRecord(ctx, store.NSTransaction, k); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetRecord(%q) of a missing record: %v, want ErrNotFound", k, err)
		}
	}
	for _, k := range odd {
		if !mark(t, s, store.NSAssertion, k, until) {
			t.Fatalf("first Mark(%q) = false, want true", k)
		}
		if err := s.PutRecord(ctx, store.NSTransaction, k, []byte("v:"+k), until); err != nil {
			t.Fatalf("PutRecord(%q): %v", k, err)
		}
	}
	for _, k := range odd {
		if mark(t, s, store.NSAssertion, k, until) {
			t.Errorf("second Mark(%q) = true, want false (replay)", k)
		}
		if v, err := s.GetRecord(ctx, store.NSTransaction, k); err != nil || string(v) != "v:"+k {
			t.Errorf("GetRecord(%q) = %q, %v; want %q", k, v, err, "v:"+k)
		}
	}
	if marked(t, s, store.NSAssertion, "a") {
		t.Error(`Marked("a") = true; only keys starting with "a\x00" were marked`)
	}
	if _, err := s.UpdateRecord(ctx, store.NSTransaction, "a\x00b", func([]byte) ([]byte, error) { return nil, nil }); err != nil {
		t.Fatalf("UpdateRecord deleting %q: %v", "a\x00b", err)
	}
	if _, err := s.GetRecord(ctx, store.NSTransaction, "a\x00b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetRecord of the deleted %q: %v, want ErrNotFound", "a\x00b", err)
	}
	if v, err := s.GetRecord(ctx, store.NSTransaction, "a\x00"); err != nil || string(v) != "v:a\x00" {
		t.Errorf("deleting %q touched %q: %q, %v", "a\x00b", "a\x00", v, err)
	}
}

// testIncr: the attempt counter. Counts add up, a negative delta takes
// back, the value reads as a record and deletes like one, namespaces and
// keys are separate, a record that is not a counter is refused.
func testIncr(t *testing.T, s store.Store) {
	ctx := context.Background()
	until := time.Now().Add(time.Hour)
	incr := func(ns, key string, delta, want int64) {
		t.Helper()
		n, err := s.Incr(ctx, ns, key, delta, until)
		if err != nil || n != want {
			t.Fatalf("Incr(%q, %q, %d) = %d, %v; want %d", ns, key, delta, n, err, want)
		}
	}
	incr(store.NSAttempts, "user:alice", 1, 1)
	incr(store.NSAttempts, "user:alice", 1, 2)
	incr(store.NSAttempts, "user:alice", 3, 5)
	incr(store.NSAttempts, "user:alice", -1, 4)
	incr(store.NSAttempts, "user:alice\x00", 1, 1)
	incr("other", "user:alice", 1, 1)
	if v, err := s.GetRecord(ctx, store.NSAttempts, "user:alice"); err != nil || string(v) != "4" {
		t.Fatalf("GetRecord of a counter = %q, %v; want \"4\"", v, err)
	}
	if _, err := s.UpdateRecord(ctx, store.NSAttempts, "user:alice", func([]byte) ([]byte, error) { return nil, nil }); err != nil {
		t.Fatalf("deleting a counter: %v", err)
	}
	incr(store.NSAttempts, "user:alice", 1, 1)
	if err := s.PutRecord(ctx, store.NSAttempts, "json", []byte(`{"n":3}`), until); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Incr(ctx, store.NSAttempts, "json", 1, until); err == nil {
		t.Fatalf("Incr of a record that is not a counter = %d, nil; want an error", n)
	}
}

// testIncrAfterExpiry: an expired counter restarts from zero with the
// new expiry; a live one keeps the expiry of its first count.
func testIncrAfterExpiry(t *testing.T, s store.Store) {
	ctx := context.Background()
	past := time.Now().Add(-time.Second)
	if n, err := s.Incr(ctx, store.NSAttempts, "k", 7, past); err != nil || n != 7 {
		t.Fatalf("first Incr = %d, %v; want 7", n, err)
	}
	if _, err := s.GetRecord(ctx, store.NSAttempts, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetRecord of an expired counter: %v, want ErrNotFound", err)
	}
	if n, err := s.Incr(ctx, store.NSAttempts, "k", 1, time.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("Incr of an expired counter = %d, %v; want 1", n, err)
	}
	// A later count does not move the window: an until in the past
	// passed now must not expire the live counter.
	if n, err := s.Incr(ctx, store.NSAttempts, "k", 1, past); err != nil || n != 2 {
		t.Fatalf("second Incr = %d, %v; want 2", n, err)
	}
	if v, err := s.GetRecord(ctx, store.NSAttempts, "k"); err != nil || string(v) != "2" {
		t.Fatalf("the counter lost its expiry: %q, %v", v, err)
	}
	if err := s.Purge(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	if v, err := s.GetRecord(ctx, store.NSAttempts, "k"); err != nil || string(v) != "2" {
		t.Fatalf("Purge removed a live counter: %q, %v", v, err)
	}
}

// testIncrConcurrent: callers released together each get a distinct
// count, and none is lost: the property an attempt limit rests on (a
// read-then-write counter lets every parallel guess see the same count).
func testIncrConcurrent(t *testing.T, s store.Store) {
	const n = 64
	until := time.Now().Add(time.Hour)
	got := make([]int64, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for j := range n {
		wg.Go(func() {
			<-start
			got[j], errs[j] = s.Incr(context.Background(), store.NSAttempts, "user:alice", 1, until)
		})
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Incr: %v", err)
		}
	}
	slices.Sort(got)
	for j, v := range got {
		if v != int64(j+1) {
			t.Fatalf("%d concurrent Incr returned %v, want each of 1..%d once", n, got, n)
		}
	}
	if v, err := s.GetRecord(context.Background(), store.NSAttempts, "user:alice"); err != nil || string(v) != fmt.Sprint(n) {
		t.Fatalf("counter after %d Incr: %q, %v", n, v, err)
	}
}

// testCreateRecord: CreateRecord writes an absent or expired record and
// leaves a live one (value and expiry) alone; what it creates is an
// ordinary record, in its own namespace.
func testCreateRecord(t *testing.T, s store.Store) {
	ctx := context.Background()
	hour := time.Now().Add(time.Hour)
	create := func(ns, key, value string, until time.Time, want bool) {
		t.Helper()
		created, err := s.CreateRecord(ctx, ns, key, []byte(value), until)
		if err != nil || created != want {
			t.Fatalf("CreateRecord(%q, %q, %q) = %v, %v; want %v", ns, key, value, created, err, want)
		}
	}
	get := func(ns, key, want string) {
		t.Helper()
		if v, err := s.GetRecord(ctx, ns, key); err != nil || string(v) != want {
			t.Fatalf("GetRecord(%q, %q) = %q, %v; want %q", ns, key, v, err, want)
		}
	}
	// Absent.
	create(store.NSFactors, "u1", "v1", hour, true)
	get(store.NSFactors, "u1", "v1")
	// Present: neither the value nor the expiry changes (an until in
	// the past would otherwise expire it).
	create(store.NSFactors, "u1", "v2", time.Now().Add(-time.Second), false)
	get(store.NSFactors, "u1", "v1")
	// Other namespaces and keys are independent.
	create("other", "u1", "o", hour, true)
	create(store.NSFactors, "u1\x00", "n", hour, true)
	get(store.NSFactors, "u1", "v1")
	// A record PutRecord wrote, or a counter, is present too.
	if err := s.PutRecord(ctx, store.NSFactors, "put", []byte("p"), hour); err != nil {
		t.Fatal(err)
	}
	create(store.NSFactors, "put", "x", hour, false)
	get(store.NSFactors, "put", "p")
	if _, err := s.Incr(ctx, store.NSAttempts, "n", 1, hour); err != nil {
		t.Fatal(err)
	}
	create(store.NSAttempts, "n", "x", hour, false)
	get(store.NSAttempts, "n", "1")
	// Expired: replaced, with the new expiry.
	if err := s.PutRecord(ctx, store.NSFactors, "old", []byte("stale"), time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	create(store.NSFactors, "old", "fresh", hour, true)
	get(store.NSFactors, "old", "fresh")
	if err := s.Purge(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	get(store.NSFactors, "old", "fresh")
	// A created record is an ordinary one: UpdateRecord changes it and
	// keeps its expiry, and deleting it lets it be created again.
	if old, err := s.UpdateRecord(ctx, store.NSFactors, "old", func(v []byte) ([]byte, error) { return append(v, '+'), nil }); err != nil || string(old) != "fresh" {
		t.Fatalf("UpdateRecord of a created record saw %q, %v", old, err)
	}
	get(store.NSFactors, "old", "fresh+")
	if _, err := s.UpdateRecord(ctx, store.NSFactors, "old", func([]byte) ([]byte, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	create(store.NSFactors, "old", "again", hour, true)
	get(store.NSFactors, "old", "again")
	// A created record that has since expired is gone.
	create(store.NSFactors, "brief", "b", time.Now().Add(-time.Second), true)
	if _, err := s.GetRecord(ctx, store.NSFactors, "brief"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetRecord of an expired created record: %v, want ErrNotFound", err)
	}
	// An empty value is a record all the same.
	create(store.NSFactors, "empty", "", hour, true)
	create(store.NSFactors, "empty", "x", hour, false)
	if v, err := s.GetRecord(ctx, store.NSFactors, "empty"); err != nil || len(v) != 0 {
		t.Fatalf("GetRecord of an empty created record = %q, %v", v, err)
	}
}

// testCreateRecordConcurrent: creators released together, each with its
// own value: exactly one creates, and its value is the one stored.
func testCreateRecordConcurrent(t *testing.T, s store.Store) {
	const n = 32
	ctx := context.Background()
	until := time.Now().Add(time.Hour)
	// Over an expired record too: the re-check must see the winner.
	if err := s.PutRecord(ctx, store.NSFactors, "expired", []byte("stale"), time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"absent", "expired"} {
		created := make([]bool, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for j := range n {
			wg.Go(func() {
				<-start
				created[j], errs[j] = s.CreateRecord(ctx, store.NSFactors, key, []byte(fmt.Sprint("v", j)), until)
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for j := range n {
			if errs[j] != nil {
				t.Fatalf("%s: concurrent CreateRecord: %v", key, errs[j])
			}
			if created[j] {
				if winner >= 0 {
					t.Fatalf("%s: CreateRecord of %d and %d both created the record", key, winner, j)
				}
				winner = j
			}
		}
		if winner < 0 {
			t.Fatalf("%s: none of %d concurrent CreateRecord created the record", key, n)
		}
		if v, err := s.GetRecord(ctx, store.NSFactors, key); err != nil || string(v) != fmt.Sprint("v", winner) {
			t.Fatalf("%s: stored %q, %v; want the winner's %q", key, v, err, fmt.Sprint("v", winner))
		}
	}
}

// testListRecords: a prefix selects exactly the keys that begin with it
// (bytewise: NUL and 0xff bytes too, never a neighbour's namespace),
// unexpired ones only, in bytewise key order, whole keys returned.
func testListRecords(t *testing.T, s store.Store) {
	ctx := context.Background()
	live, gone := time.Now().Add(time.Hour), time.Now().Add(-time.Second)
	for _, k := range []string{"c1\x00u2\x00b", "c1\x00u1\x00b", "c1\x00u1\x00a", "c1\x00", "c1", "c10\x00u1\x00a", "c1\x00u1\x00\xff", "c\xff\xff", "c\xff\xff\x00x", "d"} {
		if err := s.PutRecord(ctx, "idx", k, []byte("v:"+k), live); err != nil {
			t.Fatal(err)
		}
	}
	_ = s.PutRecord(ctx, "idx", "c1\x00u1\x00expired", []byte("x"), gone)
	_ = s.PutRecord(ctx, "idx2", "c1\x00u1\x00other-namespace", []byte("x"), live)
	list := func(prefix, after string, limit int) []string {
		t.Helper()
		recs, err := s.ListRecords(ctx, "idx", prefix, after, limit)
		if err != nil {
			t.Fatalf("ListRecords(%q, %q, %d): %v", prefix, after, limit, err)
		}
		var out []string
		for _, r := range recs {
			if string(r.Value) != "v:"+r.Key {
				t.Errorf("record %q has value %q", r.Key, r.Value)
			}
			out = append(out, r.Key)
		}
		return out
	}
	for _, c := range []struct {
		prefix string
		want   []string
	}{
		{"c1\x00u1\x00", []string{"c1\x00u1\x00a", "c1\x00u1\x00b", "c1\x00u1\x00\xff"}},
		{"c1\x00", []string{"c1\x00", "c1\x00u1\x00a", "c1\x00u1\x00b", "c1\x00u1\x00\xff", "c1\x00u2\x00b"}},
		{"c\xff\xff", []string{"c\xff\xff", "c\xff\xff\x00x"}},
		{"c1\x00u3", nil},
		{"", []string{"c1", "c1\x00", "c1\x00u1\x00a", "c1\x00u1\x00b", "c1\x00u1\x00\xff", "c1\x00u2\x00b", "c10\x00u1\x00a", "c\xff\xff", "c\xff\xff\x00x", "d"}},
	} {
		if got := list(c.prefix, "", 100); !slices.Equal(got, c.want) {
			t.Errorf("ListRecords(%q) = %q, want %q", c.prefix, got, c.want)
		}
	}
	if _, err := s.ListRecords(ctx, "idx", "c1", "", 0); err == nil {
		t.Error("ListRecords with limit 0 succeeded")
	}
	// A record deleted is no longer listed.
	if _, err := s.UpdateRecord(ctx, "idx", "c1\x00u1\x00b", func([]byte) ([]byte, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if got := list("c1\x00u1\x00", "", 100); !slices.Equal(got, []string{"c1\x00u1\x00a", "c1\x00u1\x00\xff"}) {
		t.Errorf("after a delete: %q", got)
	}
}

// testListRecordsPaging: limit bounds a page and the last key of a page
// is the after of the next, so pages join up with nothing twice and
// nothing left out; an after below the prefix lists from its start, one
// above every key lists nothing.
func testListRecordsPaging(t *testing.T, s store.Store) {
	ctx := context.Background()
	var want []string
	for n := range 7 {
		k := fmt.Sprintf("app\x00user\x00tok%02d", n)
		want = append(want, k)
		if err := s.PutRecord(ctx, "idx", k, []byte("v"), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	_ = s.PutRecord(ctx, "idx", "app\x00user\x00tok99", []byte("v"), time.Now().Add(-time.Second))
	_ = s.PutRecord(ctx, "idx", "apq", []byte("v"), time.Now().Add(time.Hour))
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		recs, err := s.ListRecords(ctx, "idx", "app\x00", after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) > 3 {
			t.Fatalf("page of %d records, limit 3", len(recs))
		}
		for _, r := range recs {
			got = append(got, r.Key)
		}
		if len(recs) < 3 {
			break
		}
		after = recs[len(recs)-1].Key
	}
	if !slices.Equal(got, want) {
		t.Errorf("pages joined = %q, want %q", got, want)
	}
	if recs, _ := s.ListRecords(ctx, "idx", "app\x00", "aaa", 2); len(recs) != 2 || recs[0].Key != want[0] {
		t.Errorf("after below the prefix: %v", recs)
	}
	if recs, _ := s.ListRecords(ctx, "idx", "app\x00", "app\x00zzz", 2); len(recs) != 0 {
		t.Errorf("after above every key: %v", recs)
	}
	if recs, _ := s.ListRecords(ctx, "idx", "app\x00", want[2], 100); len(recs) != 4 || recs[0].Key != want[3] {
		t.Errorf("after an existing key: %v", recs)
	}
}
