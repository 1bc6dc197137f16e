package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// FeedEntry is one entry of the cluster-wide revocation feed.
type FeedEntry struct {
	Seq   uint64    // assigned by AppendFeed: ascending, starts at 1
	Data  []byte    // opaque to the store
	Until time.Time // the entry is dropped (by PurgeFeed / Purge) after this
}

// FeedLog is implemented by the embedded and PostgreSQL stores beside
// Store and EventLog: the log behind the SSF transmitter's poll queue
// (RFC 8936), shared by every node.
//
// Prefix property: a reader that sees seq N also sees every entry below
// N that will ever be visible. Appends commit in seq order and a failed
// append leaves no gap.
type FeedLog interface {
	// AppendFeed appends entries (in order) atomically and returns the
	// seq of the last; their Seq fields are ignored. Appending none
	// writes nothing and returns 0. Entries CheckFeedEntry refuses are
	// an error and nothing is appended.
	AppendFeed(ctx context.Context, entries []FeedEntry) (uint64, error)
	// ReadFeed returns unexpired entries with Seq > after, ascending, at
	// most limit (at least 1). Until is read back in UTC, to the
	// microsecond.
	ReadFeed(ctx context.Context, after uint64, limit int) ([]FeedEntry, error)
	// FeedHead is the highest seq ever appended (0: none). It never goes
	// back, even when every entry expired and was purged.
	FeedHead(ctx context.Context) (uint64, error)
	// PurgeFeed drops entries whose Until is before now.
	PurgeFeed(ctx context.Context, now time.Time) error
}

// MaxFeedData is the largest FeedEntry.Data a store accepts: an SSF
// event is a few hundred bytes.
const MaxFeedData = 64 << 10

// ErrInvalidFeed is returned (wrapped) for a ReadFeed limit below 1 or
// an entry CheckFeedEntry refuses.
var ErrInvalidFeed = errors.New("store: invalid feed request")

// CheckFeedEntry reports an entry stores refuse to append: Data over
// MaxFeedData, or an Until outside years 1678..2261 (what Unix
// nanoseconds hold; zero is outside).
func CheckFeedEntry(e *FeedEntry) error {
	if len(e.Data) > MaxFeedData {
		return fmt.Errorf("%w: entry data of %d bytes, at most %d", ErrInvalidFeed, len(e.Data), MaxFeedData)
	}
	if y := e.Until.Year(); y < 1678 || y > 2261 {
		return fmt.Errorf("%w: entry until %s out of range", ErrInvalidFeed, e.Until)
	}
	return nil
}

// CheckFeedLimit reports a ReadFeed limit stores refuse (below 1).
func CheckFeedLimit(limit int) error {
	if limit < 1 {
		return fmt.Errorf("%w: read limit %d, want at least 1", ErrInvalidFeed, limit)
	}
	return nil
}
