package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// RunFeed runs the revocation feed's part of the suite (store.FeedLog).
// open must return a fresh, empty feed for each call. A feed that is
// also a store.Store is checked to drop expired entries in Purge.
func RunFeed(t *testing.T, open func(t *testing.T) store.FeedLog) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(*testing.T, store.FeedLog)
	}{
		{"AppendReadOrder", testFeedOrder},
		{"Limit", testFeedLimit},
		{"ExpiryAndHeadNeverGoesBack", testFeedExpiry},
		{"RefusesBadEntries", testFeedRefuses},
		{"UntilMicrosecondsUTC", testFeedPrecision},
		{"ConcurrentAppendersPrefix", func(t *testing.T, l store.FeedLog) { checkFeedPrefix(t, l, l) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

// RunFeedShared checks two handles of one shared store (two nodes):
// appenders on both, a reader on each, one gap-free sequence.
func RunFeedShared(t *testing.T, a, b store.FeedLog) {
	t.Helper()
	last := appendFeed(t, a, feedEntry("a1", time.Hour))
	if got := readFeed(t, b, 0, 10); len(got) != 1 || got[0].Seq != last || string(got[0].Data) != "a1" {
		t.Fatalf("node b reads %v after node a appended seq %d", feedSeqs(got), last)
	}
	if n := appendFeed(t, b, feedEntry("b1", time.Hour)); n != last+1 {
		t.Fatalf("node b appended seq %d after node a's %d", n, last)
	}
	if h := feedHead(t, a); h != last+1 {
		t.Fatalf("node a's head %d, want %d", h, last+1)
	}
	checkFeedPrefix(t, a, b)
}

// RunFeedReopen checks that the feed survives closing its store: open
// returns a fresh feed, reopen closes l's store and opens it again.
func RunFeedReopen(t *testing.T, open func(t *testing.T) store.FeedLog, reopen func(t *testing.T, l store.FeedLog) store.FeedLog) {
	t.Helper()
	ctx := context.Background()
	l := open(t)
	appendFeed(t, l, feedEntry("a", time.Hour), feedEntry("b", time.Hour))
	appendFeed(t, l, feedEntry("gone", -time.Minute))
	if err := l.PurgeFeed(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	l = reopen(t, l)
	if got := readFeed(t, l, 0, 10); len(got) != 2 || string(got[0].Data) != "a" || string(got[1].Data) != "b" {
		t.Fatalf("after reopen: %v", feedSeqs(got))
	}
	if h := feedHead(t, l); h != 3 {
		t.Fatalf("after purge and reopen the head is %d, want 3", h)
	}
	if n := appendFeed(t, l, feedEntry("c", time.Hour)); n != 4 {
		t.Fatalf("append after reopen got seq %d, want 4", n)
	}
}

func feedEntry(data string, ttl time.Duration) store.FeedEntry {
	return store.FeedEntry{Data: []byte(data), Until: time.Now().Add(ttl).UTC().Truncate(time.Second)}
}

func appendFeed(t testing.TB, l store.FeedLog, entries ...store.FeedEntry) uint64 {
	t.Helper()
	n, err := l.AppendFeed(context.Background(), entries)
	if err != nil {
		t.Fatalf("AppendFeed: %v", err)
	}
	return n
}

func readFeed(t testing.TB, l store.FeedLog, after uint64, limit int) []store.FeedEntry {
	t.Helper()
	got, err := l.ReadFeed(context.Background(), after, limit)
	if err != nil {
		t.Fatalf("ReadFeed(%d, %d): %v", after, limit, err)
	}
	return got
}

func feedHead(t testing.TB, l store.FeedLog) uint64 {
	t.Helper()
	h, err := l.FeedHead(context.Background())
	if err != nil {
		t.Fatalf("FeedHead: %v", err)
	}
	return h
}

func feedSeqs(es []store.FeedEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, fmt.Sprintf("%d:%s", e.Seq, e.Data))
	}
	return out
}

func testFeedOrder(t *testing.T, l store.FeedLog) {
	if h := feedHead(t, l); h != 0 {
		t.Fatalf("empty feed head %d", h)
	}
	if got := readFeed(t, l, 0, 10); len(got) != 0 {
		t.Fatalf("empty feed reads %v", feedSeqs(got))
	}
	first := []store.FeedEntry{feedEntry("a", time.Hour), feedEntry("b", 2*time.Hour), {Data: nil, Until: time.Now().Add(time.Hour)}}
	first[0].Seq = 99 // ignored
	if n := appendFeed(t, l, first...); n != 3 {
		t.Fatalf("first append returned %d, want 3", n)
	}
	if n := appendFeed(t, l, feedEntry("d", time.Hour), feedEntry("e", time.Hour)); n != 5 {
		t.Fatalf("second append returned %d, want 5", n)
	}
	got := readFeed(t, l, 0, 10)
	want := []string{"1:a", "2:b", "3:", "4:d", "5:e"}
	if fmt.Sprint(feedSeqs(got)) != fmt.Sprint(want) {
		t.Fatalf("read %v, want %v", feedSeqs(got), want)
	}
	if !got[1].Until.Equal(first[1].Until) {
		t.Errorf("until %v, want %v", got[1].Until, first[1].Until)
	}
	if len(got[2].Data) != 0 {
		t.Errorf("empty data read back as %q", got[2].Data)
	}
	if got := readFeed(t, l, 3, 10); fmt.Sprint(feedSeqs(got)) != "[4:d 5:e]" {
		t.Fatalf("after 3: %v", feedSeqs(got))
	}
	if got := readFeed(t, l, 5, 10); len(got) != 0 {
		t.Fatalf("after the head: %v", feedSeqs(got))
	}
	if got := readFeed(t, l, ^uint64(0), 10); len(got) != 0 {
		t.Fatalf("after the largest seq: %v", feedSeqs(got))
	}
	if h := feedHead(t, l); h != 5 {
		t.Fatalf("head %d, want 5", h)
	}
	// What ReadFeed returns is the caller's: changing it changes no
	// later read.
	got[0].Data[0] = 'X'
	if again := readFeed(t, l, 0, 1); string(again[0].Data) != "a" {
		t.Fatalf("data changed under the store: %q", again[0].Data)
	}
}

func testFeedLimit(t *testing.T, l store.FeedLog) {
	for i := range 5 {
		appendFeed(t, l, feedEntry(fmt.Sprint(i), time.Hour))
	}
	if got := readFeed(t, l, 0, 2); fmt.Sprint(feedSeqs(got)) != "[1:0 2:1]" {
		t.Fatalf("limit 2: %v", feedSeqs(got))
	}
	if got := readFeed(t, l, 2, 2); fmt.Sprint(feedSeqs(got)) != "[3:2 4:3]" {
		t.Fatalf("after 2, limit 2: %v", feedSeqs(got))
	}
	for _, bad := range []int{0, -1} {
		if _, err := l.ReadFeed(context.Background(), 0, bad); !errors.Is(err, store.ErrInvalidFeed) {
			t.Errorf("limit %d: %v, want ErrInvalidFeed", bad, err)
		}
	}
}

func testFeedExpiry(t *testing.T, l store.FeedLog) {
	ctx := context.Background()
	appendFeed(t, l, feedEntry("live", time.Hour), feedEntry("expired", -time.Second), feedEntry("later", 2*time.Hour))
	// An expired entry is not read, purged or not, and the limit counts
	// only what is returned.
	if got := readFeed(t, l, 0, 2); fmt.Sprint(feedSeqs(got)) != "[1:live 3:later]" {
		t.Fatalf("with one expired: %v", feedSeqs(got))
	}
	if err := l.PurgeFeed(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := readFeed(t, l, 0, 10); fmt.Sprint(feedSeqs(got)) != "[1:live 3:later]" {
		t.Fatalf("after purge: %v", feedSeqs(got))
	}
	// Everything purged: the head stays, and appends go on after it.
	purge := l.PurgeFeed
	if s, ok := l.(store.Store); ok {
		purge = s.Purge // the issuer's maintenance purges the feed too
	}
	if err := purge(ctx, time.Now().Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if h := feedHead(t, l); h != 3 {
		t.Fatalf("head after purging all: %d, want 3 (never back)", h)
	}
	if n := appendFeed(t, l, feedEntry("next", time.Hour)); n != 4 {
		t.Fatalf("append after purging all: seq %d, want 4", n)
	}
	if got := readFeed(t, l, 0, 10); fmt.Sprint(feedSeqs(got)) != "[4:next]" {
		t.Fatalf("after purging all and one append: %v", feedSeqs(got))
	}
}

func testFeedRefuses(t *testing.T, l store.FeedLog) {
	ctx := context.Background()
	if n, err := l.AppendFeed(ctx, nil); n != 0 || err != nil {
		t.Fatalf("empty append: %d, %v", n, err)
	}
	for name, bad := range map[string]store.FeedEntry{
		"data too large":  {Data: bytes.Repeat([]byte("x"), store.MaxFeedData+1), Until: time.Now().Add(time.Hour)},
		"zero until":      {Data: []byte("x")},
		"until past 2261": {Data: []byte("x"), Until: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		// The good entry before it is not appended either.
		if _, err := l.AppendFeed(ctx, []store.FeedEntry{feedEntry("ok", time.Hour), bad}); !errors.Is(err, store.ErrInvalidFeed) {
			t.Errorf("%s: %v, want ErrInvalidFeed", name, err)
		}
	}
	if h := feedHead(t, l); h != 0 {
		t.Fatalf("head %d after refused appends", h)
	}
	big := store.FeedEntry{Data: bytes.Repeat([]byte{0, 0xff}, store.MaxFeedData/2), Until: time.Now().Add(time.Hour)}
	appendFeed(t, l, big)
	if got := readFeed(t, l, 0, 1); len(got) != 1 || !bytes.Equal(got[0].Data, big.Data) {
		t.Fatal("the largest entry, any bytes, did not read back")
	}
}

func testFeedPrecision(t *testing.T, l store.FeedLog) {
	until := time.Now().Add(time.Hour).Truncate(time.Second).Add(123456789 * time.Nanosecond).In(time.FixedZone("X", 3600))
	appendFeed(t, l, store.FeedEntry{Data: []byte("p"), Until: until})
	got := readFeed(t, l, 0, 1)
	if len(got) != 1 || got[0].Until.Location() != time.UTC || !got[0].Until.Equal(until.Truncate(time.Microsecond)) {
		t.Fatalf("until read back as %v, want %v in UTC", got, until.Truncate(time.Microsecond))
	}
}

// checkFeedPrefix runs appenders on a and b (goroutines, or nodes when
// they are two handles) while a reader on each follows the feed: every
// read must continue exactly after the last seq seen (the prefix
// property: nothing below a seen seq appears later), and reach at least
// the head read just before it. At the end each batch lies at the seqs
// its append returned, in order.
func checkFeedPrefix(t *testing.T, a, b store.FeedLog) {
	ctx := context.Background()
	start := feedHead(t, a)
	const appenders, batches = 6, 20
	type batch struct {
		last uint64
		data []string
	}
	var (
		mu   sync.Mutex
		done []batch
		wg   sync.WaitGroup
	)
	for g := range appenders {
		l := a
		if g%2 == 1 {
			l = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range batches {
				var es []store.FeedEntry
				var data []string
				for j := range 1 + (g+i)%3 {
					d := fmt.Sprintf("%d/%d/%d", g, i, j)
					es = append(es, feedEntry(d, time.Hour))
					data = append(data, d)
				}
				last, err := l.AppendFeed(ctx, es)
				if err != nil {
					t.Errorf("appender %d: %v", g, err)
					return
				}
				mu.Lock()
				done = append(done, batch{last, data})
				mu.Unlock()
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	var rg sync.WaitGroup
	for _, l := range []store.FeedLog{a, b} {
		rg.Add(1)
		go func() {
			defer rg.Done()
			seen := start
			for {
				over := false
				select {
				case <-finished:
					over = true
				default:
				}
				head, err := l.FeedHead(ctx)
				if err != nil {
					t.Errorf("reader: FeedHead: %v", err)
					return
				}
				got, err := l.ReadFeed(ctx, seen, 5)
				if err != nil {
					t.Errorf("reader: ReadFeed: %v", err)
					return
				}
				for _, e := range got {
					if e.Seq != seen+1 {
						t.Errorf("reader after seq %d got %d: a gap (prefix property)", seen, e.Seq)
						return
					}
					seen = e.Seq
				}
				if len(got) < 5 && seen < head {
					t.Errorf("reader read the head %d, then the feed up to %d only", head, seen)
					return
				}
				if over && len(got) == 0 {
					if seen == head {
						return
					}
					t.Errorf("reader stopped at %d, head %d", seen, head)
					return
				}
			}
		}()
	}
	rg.Wait()
	<-finished // appenders end before the store is closed
	if t.Failed() {
		return
	}
	total := 0
	bySeq := map[uint64]string{}
	for _, bt := range done {
		for j, d := range bt.data {
			bySeq[bt.last-uint64(len(bt.data)-1-j)] = d
		}
		total += len(bt.data)
	}
	if h := feedHead(t, b); h != start+uint64(total) {
		t.Fatalf("head %d after %d entries from %d", h, total, start)
	}
	for after := start; after < start+uint64(total); {
		got := readFeed(t, a, after, 100)
		for _, e := range got {
			if bySeq[e.Seq] != string(e.Data) {
				t.Fatalf("seq %d holds %q, its append said %q", e.Seq, e.Data, bySeq[e.Seq])
			}
			after = e.Seq
		}
	}
}
