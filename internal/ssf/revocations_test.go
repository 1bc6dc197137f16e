package ssf

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/testkit"
)

func newRevocations(clock *testkit.Clock) *Revocations {
	r := NewRevocations()
	r.Now = clock.Now
	r.Leeway = time.Minute
	return r
}

func TestRevocationsTokenUntilExp(t *testing.T) {
	clock := testkit.NewClock(t0)
	r := newRevocations(clock)
	if r.Revoked("AT.1", "", "", "", t0) {
		t.Fatal("empty set revokes")
	}
	if err := r.RevokeToken("AT.1", t0.Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if !r.Revoked("AT.1", "jane", "00u1", "0oa1", t0) {
		t.Fatal("revoked jti passes")
	}
	if r.Revoked("AT.2", "jane", "00u1", "0oa1", t0) {
		t.Fatal("another jti is revoked")
	}
	// Kept through exp plus the leeway, forgotten after.
	clock.Advance(10*time.Minute + 59*time.Second)
	r.Prune()
	if !r.Revoked("AT.1", "", "", "", t0) {
		t.Fatal("forgotten within the leeway")
	}
	clock.Advance(time.Second)
	r.Prune()
	if r.Revoked("AT.1", "", "", "", t0) {
		t.Fatal("kept after exp + leeway")
	}
	if n, _ := r.Len(); n != 0 {
		t.Errorf("%d jtis kept", n)
	}
	// Already expired: not kept at all.
	if err := r.RevokeToken("AT.old", clock.Now().Add(-2*time.Minute)); err != nil || r.Revoked("AT.old", "", "", "", t0) {
		t.Errorf("expired token kept: %v", err)
	}
	// Unknown exp: kept for the longest lifetime; a far exp is cut to it.
	_ = r.RevokeToken("AT.noexp", time.Time{})
	_ = r.RevokeToken("AT.far", clock.Now().Add(365*24*time.Hour))
	clock.Advance(MaxTokenLifetime)
	r.Prune()
	if !r.Revoked("AT.noexp", "", "", "", t0) || !r.Revoked("AT.far", "", "", "", t0) {
		t.Fatal("forgotten before MaxLifetime + leeway")
	}
	clock.Advance(time.Minute)
	r.Prune()
	if r.Revoked("AT.noexp", "", "", "", t0) || r.Revoked("AT.far", "", "", "", t0) {
		t.Fatal("kept beyond MaxLifetime + leeway")
	}
}

func TestRevocationsCutOff(t *testing.T) {
	clock := testkit.NewClock(t0)
	r := newRevocations(clock)
	cut := t0.Add(-time.Minute)
	if err := r.RevokeUser("jane@example.com", "", cut); err != nil {
		t.Fatal(err)
	}
	if err := r.RevokeUser("", "00u2", cut); err != nil {
		t.Fatal(err)
	}
	if err := r.RevokeClient("0oa1", cut); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name          string
		sub, uid, cid string
		iat           time.Time
		want          bool
	}{
		{"user's token before the cut-off", "jane@example.com", "00u1", "0oaX", cut.Add(-time.Hour), true},
		{"user's token at the cut-off", "jane@example.com", "00u1", "0oaX", cut, true},
		{"user's token after the cut-off", "jane@example.com", "00u1", "0oaX", cut.Add(time.Second), false},
		{"user by uid", "someone", "00u2", "0oaX", cut, true},
		{"user by uid, later token", "someone", "00u2", "0oaX", cut.Add(time.Second), false},
		{"client's token", "bob", "00u3", "0oa1", cut.Add(-time.Second), true},
		{"client's later token", "bob", "00u3", "0oa1", cut.Add(time.Second), false},
		{"client credentials token (no user)", "0oa1", "", "0oa1", cut, true},
		{"another user and client", "bob", "00u3", "0oa2", cut.Add(-time.Hour), false},
		{"no iat: revoked by any cut-off", "jane@example.com", "", "", time.Time{}, true},
		{"sub of a revoked uid does not match", "00u2", "", "", cut, false},
	} {
		if got := r.Revoked("AT.x", c.sub, c.uid, c.cid, c.iat); got != c.want {
			t.Errorf("%s: revoked %v, want %v", c.name, got, c.want)
		}
	}
	// The latest cut-off wins; an older one never moves it back.
	later := t0.Add(time.Minute)
	_ = r.RevokeClient("0oa1", later)
	_ = r.RevokeClient("0oa1", cut)
	if !r.Revoked("", "", "", "0oa1", later) || r.Revoked("", "", "", "0oa1", later.Add(time.Second)) {
		t.Error("client cut-off not at the latest revocation")
	}
	// A cut-off is forgotten once every token it covers has expired:
	// cut-off + MaxLifetime + leeway.
	clock.Set(cut.Add(MaxTokenLifetime + time.Minute - time.Second))
	r.Prune()
	if !r.Revoked("", "jane@example.com", "", "", cut) {
		t.Fatal("cut-off forgotten too early")
	}
	clock.Advance(time.Second)
	r.Prune()
	if r.Revoked("", "jane@example.com", "", "", cut) || r.Revoked("", "", "00u2", "", cut) {
		t.Fatal("cut-off kept beyond its reach")
	}
	if _, n := r.Len(); n != 1 { // the client's later cut-off
		t.Errorf("%d subjects kept, want 1", n)
	}
}

func TestRevocationsApply(t *testing.T) {
	clock := testkit.NewClock(t0)
	r := newRevocations(clock)
	for _, ev := range []Event{
		tokenEvent("AT.1", t0.Add(time.Hour)),
		{Time: t0, Subject: Subject{Kind: SubjectUser, Issuer: testIss, Sub: "jane", UID: "00u1"}},
		{Time: t0, Subject: Subject{Kind: SubjectClient, ClientID: "0oa1"}},
		{Type: EventVerification, Subject: Subject{Kind: SubjectStream, StreamID: "s"}},
	} {
		if err := r.Apply(ev); err != nil {
			t.Fatal(err)
		}
	}
	if !r.Revoked("AT.1", "", "", "", t0.Add(time.Hour)) || !r.Revoked("", "jane", "", "", t0) ||
		!r.Revoked("", "", "00u1", "", t0) || !r.Revoked("", "", "", "0oa1", t0) {
		t.Fatal("applied events do not revoke")
	}
	if err := r.Apply(Event{Time: t0, Subject: Subject{Kind: SubjectStream, StreamID: "s"}}); !errors.Is(err, ErrSubject) {
		t.Errorf("session-revoked of a stream: %v", err)
	}
	if err := r.RevokeUser("", "", t0); !errors.Is(err, ErrSubject) {
		t.Errorf("user without sub or uid: %v", err)
	}
}

func TestRevocationsBounds(t *testing.T) {
	clock := testkit.NewClock(t0)
	r := newRevocations(clock)
	r.MaxTokens, r.MaxSubjects = 100, 2
	for i := range 100 {
		if err := r.RevokeToken(fmt.Sprint("AT.", i), t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.RevokeToken("AT.more", t0.Add(time.Hour)); !errors.Is(err, ErrRevocationsFull) {
		t.Fatalf("over MaxTokens: %v", err)
	}
	// A jti already kept is not a new entry.
	if err := r.RevokeToken("AT.5", t0.Add(2*time.Minute)); err != nil {
		t.Fatalf("same jti again: %v", err)
	}
	_ = r.RevokeClient("a", t0)
	_ = r.RevokeClient("b", t0)
	if err := r.RevokeClient("c", t0); !errors.Is(err, ErrRevocationsFull) {
		t.Fatalf("over MaxSubjects: %v", err)
	}
	// Once they expire there is room again.
	clock.Advance(3 * time.Minute)
	r.Prune()
	if err := r.RevokeToken("AT.more", clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n, _ := r.Len(); n != 1 {
		t.Errorf("%d jtis after expiry, want 1", n)
	}
}

func TestRevokedAllocatesNothing(t *testing.T) {
	clock := testkit.NewClock(t0)
	r := newRevocations(clock)
	_ = r.RevokeToken("AT.1", t0.Add(time.Hour))
	_ = r.RevokeUser("jane", "00u1", t0)
	_ = r.RevokeClient("0oa1", t0)
	_ = r.RevokeUserAt("ann", "00u9", "0oa9", t0)
	jti, miss := "AT.1", "AT.2"
	if n := testing.AllocsPerRun(1000, func() {
		r.Revoked(jti, "jane", "00u1", "0oa1", t0)
		r.Revoked(miss, "bob", "00u2", "0oa2", t0)
		r.Revoked(miss, "ann", "00u9", "0oa9", t0)
		r.Revoked(miss, "ann", "00u9", "0oa8", t0)
	}); n != 0 {
		t.Fatalf("Revoked allocates %v times", n)
	}
}

func TestRevocationsConcurrent(t *testing.T) {
	clock := testkit.NewClock(t0)
	r := newRevocations(clock)
	const writers, perWriter = 4, 2000
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				jti := fmt.Sprintf("AT.%d.%d", w, i)
				if err := r.RevokeToken(jti, t0.Add(time.Hour)); err != nil {
					t.Error(err)
					return
				}
				if !r.Revoked(jti, "", "", "", t0) {
					t.Errorf("%s not revoked right after RevokeToken", jti)
					return
				}
				if i%100 == 0 {
					_ = r.RevokeUser(fmt.Sprint("user", w, i), "", t0)
					r.Prune()
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := range perWriter {
				r.Revoked(fmt.Sprintf("AT.%d.%d", w, i), "jane", "00u1", "0oa1", t0)
			}
		}()
	}
	wg.Wait()
	if n, s := r.Len(); n != writers*perWriter || s != writers*perWriter/100 {
		t.Fatalf("len %d %d", n, s)
	}
}

func TestRevocationsShrink(t *testing.T) {
	// Pruning builds a table sized for what is left: the memory goes back.
	clock := testkit.NewClock(t0)
	r := newRevocations(clock)
	for i := range 200_000 {
		_ = r.RevokeToken(fmt.Sprint("AT.", i), t0.Add(time.Minute))
	}
	_ = r.RevokeToken("AT.keep", t0.Add(time.Hour))
	clock.Advance(5 * time.Minute)
	r.Prune()
	if n, _ := r.Len(); n != 1 || !r.Revoked("AT.keep", "", "", "", t0) {
		t.Fatalf("after prune: %d kept", n)
	}
	if n := len(r.tokens.table()); n > minSlots {
		t.Fatalf("%d slots kept for one jti", n)
	}
}

func TestRevocationsUserAtClient(t *testing.T) {
	clock := testkit.NewClock(t0)
	r := newRevocations(clock)
	cut := t0.Add(-time.Minute)
	if err := r.Apply(Event{Time: cut, Subject: Subject{Kind: SubjectUser, Issuer: testIss, Sub: "jane", UID: "00u1", ClientID: "0oa1"}}); err != nil {
		t.Fatal(err)
	}
	if err := r.RevokeUserAt("", "00u2", "0oa2", cut); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name          string
		sub, uid, cid string
		iat           time.Time
		want          bool
	}{
		{"user at the client, by sub and uid", "jane", "00u1", "0oa1", cut, true},
		{"user at the client, by sub only", "jane", "", "0oa1", cut, true},
		{"user at the client, by uid only", "", "00u1", "0oa1", cut, true},
		{"user at the client, later token", "jane", "00u1", "0oa1", cut.Add(time.Second), false},
		{"user at another client", "jane", "00u1", "0oa2", cut, false},
		{"user without client", "jane", "00u1", "", cut, false},
		{"another user at the client", "bob", "00u3", "0oa1", cut, false},
		{"the client's id as sub does not match", "0oa1", "", "jane", cut, false},
		{"uid-only pair", "x", "00u2", "0oa2", cut, true},
		{"uid-only pair, sub equal to the uid elsewhere", "00u2", "", "0oa1", cut, false},
		{"no iat: revoked by the pair's cut-off", "jane", "", "0oa1", time.Time{}, true},
	} {
		if got := r.Revoked("AT.x", c.sub, c.uid, c.cid, c.iat); got != c.want {
			t.Errorf("%s: revoked %v, want %v", c.name, got, c.want)
		}
	}
	if _, n := r.Len(); n != 3 {
		t.Errorf("%d subjects, want 3 (sub and uid at 0oa1, uid at 0oa2)", n)
	}
	if err := r.RevokeUserAt("jane", "", "", cut); !errors.Is(err, ErrSubject) {
		t.Errorf("pair without client: %v", err)
	}
	if err := r.RevokeUserAt("", "", "0oa1", cut); !errors.Is(err, ErrSubject) {
		t.Errorf("pair without user: %v", err)
	}
	// Bounded like every subject table, and pruned after its reach.
	r.MaxSubjects = 1 // each table: 0oa1's sub pair is there
	if err := r.RevokeUserAt("bob", "", "0oa1", cut); !errors.Is(err, ErrRevocationsFull) {
		t.Errorf("over MaxSubjects: %v", err)
	}
	clock.Set(cut.Add(MaxTokenLifetime + time.Minute))
	r.Prune()
	if _, n := r.Len(); n != 0 || r.Revoked("", "jane", "", "0oa1", cut) {
		t.Errorf("pairs kept beyond their reach: %d", n)
	}
}
