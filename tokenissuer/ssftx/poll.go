package ssftx

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/apiaccess/caddy-apiaccess/internal/ssf"
)

// Poll implements ssf.Queue (RFC 8936 section 2.4): it records
// req.Ack and req.SetErrs, then returns the stream's unacknowledged
// SETs, oldest first, up to req.MaxEvents, waiting up to LongPoll for
// one unless req.ReturnImmediately.
func (q *StoreQueue) Poll(ctx context.Context, streamID string, req ssf.PollRequest) (ssf.PollResponse, error) {
	limit := q.maxBatch()
	if req.MaxEvents != nil {
		if *req.MaxEvents < 0 {
			return ssf.PollResponse{}, fmt.Errorf("%w: negative maxEvents", ssf.ErrInvalidRequest)
		}
		limit = min(limit, *req.MaxEvents)
	}
	acks := make([]string, 0, len(req.Ack)+len(req.SetErrs))
	acks = append(acks, req.Ack...)
	for jti := range req.SetErrs {
		acks = append(acks, jti) // a reported SET is not sent again
	}
	// A newer poll of the stream supersedes this one (see pollRegistry).
	current, end := q.beginPoll(ctx, streamID)
	defer end()
	var waitCtx context.Context
	for first := true; ; first = false {
		st, items, end, head, err := q.window(ctx, streamID)
		if err != nil {
			return ssf.PollResponse{}, err
		}
		var acked []uint64
		if first {
			acked = q.verifyAcks(streamID, &st, items, acks)
		}
		if st, err = q.record(ctx, streamID, st, items, end, acked); err != nil {
			return ssf.PollResponse{}, err
		}
		if first && q.OnSetErr != nil {
			for jti, e := range req.SetErrs {
				q.OnSetErr(streamID, jti, e)
			}
		}
		batch, more := q.pending(streamID, &st, items, limit)
		if len(batch) == 0 && st.Cursor >= end && end < head {
			continue // the cursor left the window: read the next one
		}
		if len(batch) > 0 || more || limit == 0 || req.ReturnImmediately {
			return q.signBatch(current, &st, batch, more)
		}
		// Long polling (RFC 8936 section 2.1): hold the request until an
		// event may have come or the deadline.
		if waitCtx == nil {
			var cancel context.CancelFunc
			waitCtx, cancel = context.WithTimeout(current, orDefault(q.LongPoll, DefaultLongPoll))
			defer cancel()
		}
		q.Wait(waitCtx, end)
		if err := ctx.Err(); err != nil {
			return ssf.PollResponse{}, err
		}
		if current.Err() != nil {
			// Superseded by a newer poll of the stream: empty, and
			// moreAvailable so a receiver still listening polls again
			// at once rather than think itself up to date.
			return ssf.PollResponse{Sets: map[string]string{}, MoreAvailable: true}, nil
		}
		if waitCtx.Err() != nil {
			return ssf.PollResponse{Sets: map[string]string{}}, nil
		}
	}
}

// window reads a stream's state, the feed's head, the live entries in
// the MaxAcked seqs above the cursor, and the seq up to which that read
// is complete: the head was read first, so by the prefix property every
// entry at or below it is in the read (or expired), capped at the
// window.
func (q *StoreQueue) window(ctx context.Context, streamID string) (st stream, items []item, end, head uint64, err error) {
	if st, err = q.stream(ctx, streamID); err != nil {
		return stream{}, nil, 0, 0, err
	}
	if head, err = q.log.FeedHead(ctx); err != nil {
		return stream{}, nil, 0, 0, err
	}
	q.n.observe(head)
	w := uint64(q.maxAcked())
	top := st.Cursor + w
	if top < st.Cursor {
		top = ^uint64(0)
	}
	entries, err := q.log.ReadFeed(ctx, st.Cursor, int(w))
	if err != nil {
		return stream{}, nil, 0, 0, err
	}
	for _, e := range entries {
		if e.Seq > top {
			break
		}
		it, err := decodeEntry(e.Seq, e.Data, e.Until)
		if err != nil {
			// Left out: the cursor passes it as it passes an expired one.
			q.badEntry(e.Seq, err)
			continue
		}
		items = append(items, it)
	}
	end = min(head, top)
	if n := len(items); n > 0 {
		end = max(end, items[n-1].seq)
	}
	return st, items, end, head, nil
}

// setID is the jti of seq's SET on the stream tagged tag, as MemQueue
// writes it.
func setID(seq uint64, tag, txn string) string {
	return strconv.FormatUint(seq, 10) + "." + tag + "." + txn
}

// verifyAcks are the seqs of the jtis that name one of the stream's
// SETs in the window; others (another stream's, unknown, already
// below the cursor) are ignored.
func (q *StoreQueue) verifyAcks(streamID string, st *stream, items []item, jtis []string) []uint64 {
	var out []uint64
	for _, jti := range jtis {
		seqS, rest, ok := strings.Cut(jti, ".")
		if !ok {
			continue
		}
		tag, txn, ok := strings.Cut(rest, ".")
		seq, err := strconv.ParseUint(seqS, 10, 64)
		if !ok || err != nil || tag != st.Tag || seq <= st.Cursor {
			continue
		}
		i, found := slices.BinarySearchFunc(items, seq, func(it item, s uint64) int { return cmp.Compare(it.seq, s) })
		if found && items[i].ev.Txn == txn && items[i].eligible(streamID) {
			out = append(out, seq)
		}
	}
	slices.Sort(out)
	return slices.Compact(out) // at most MaxAcked, however often a jti repeats
}

// record merges acked into the stream's current state and moves its
// cursor over what it no longer waits for, writing only a change. The
// state is re-read inside the store's atomic update, so polls of one
// stream at several nodes never lose each other's acknowledgements.
func (q *StoreQueue) record(ctx context.Context, streamID string, read stream, items []item, end uint64, acked []uint64) (stream, error) {
	next := read
	q.apply(streamID, &next, read.Cursor, items, end, acked)
	if next.Cursor == read.Cursor && slices.Equal(next.Acked, read.Acked) {
		return read, nil
	}
	var out stream
	err := q.updateStream(ctx, streamID, func(cur *stream) error {
		if cur.Tag == read.Tag {
			q.apply(streamID, cur, read.Cursor, items, end, acked)
		}
		out = *cur
		return nil
	})
	return out, err
}

// apply adds acked to st and advances its cursor over acknowledged,
// expired and other streams' entries, given items: the entries above
// from, complete up to end. A cursor behind from (rewound meanwhile)
// keeps the acks and is not advanced.
func (q *StoreQueue) apply(streamID string, st *stream, from uint64, items []item, end uint64, acked []uint64) {
	w := uint64(q.maxAcked())
	merged := slices.Clone(st.Acked) // st may share it with the state read
	for _, s := range acked {
		if s > st.Cursor && s-st.Cursor <= w {
			merged = append(merged, s)
		}
	}
	slices.Sort(merged)
	st.Acked = slices.Compact(merged)
	if st.Cursor >= from && st.Cursor <= end {
		now := q.now()
		stopped := false
		for i := range items {
			it := &items[i]
			if it.seq <= st.Cursor {
				continue
			}
			if _, done := slices.BinarySearch(st.Acked, it.seq); it.eligible(streamID) && !done && it.until.After(now) {
				// Seqs missing below it were purged or expired.
				st.Cursor = max(st.Cursor, it.seq-1)
				stopped = true
				break
			}
			st.Cursor = it.seq
		}
		if !stopped {
			st.Cursor = max(st.Cursor, end)
		}
	}
	st.Acked = slices.DeleteFunc(st.Acked, func(s uint64) bool { return s <= st.Cursor })
	if len(st.Acked) == 0 {
		st.Acked = nil
	}
}

// pending is up to limit unacknowledged live events of the stream, and
// whether more remain in the window.
func (q *StoreQueue) pending(streamID string, st *stream, items []item, limit int) ([]*item, bool) {
	now := q.now()
	var out []*item
	for i := range items {
		it := &items[i]
		if _, done := slices.BinarySearch(st.Acked, it.seq); it.seq <= st.Cursor || done || !it.eligible(streamID) || !it.until.After(now) {
			continue
		}
		if len(out) == limit {
			return out, true
		}
		out = append(out, it)
	}
	return out, false
}

// signBatch signs each SET for the stream (its aud, its jti), reusing
// those signed for an earlier poll. Superseded by a newer poll of the
// stream (current ended), it stops and answers what it has signed,
// with moreAvailable.
func (q *StoreQueue) signBatch(current context.Context, st *stream, batch []*item, more bool) (ssf.PollResponse, error) {
	resp := ssf.PollResponse{Sets: make(map[string]string, len(batch)), MoreAvailable: more}
	now := q.now()
	for i, it := range batch {
		ev := it.ev
		ev.ID = setID(it.seq, st.Tag, ev.Txn)
		k := setKey{tag: st.Tag, aud: st.Aud, seq: it.seq}
		if set, ok := q.cachedSET(k, ev.ID, now); ok {
			resp.Sets[ev.ID] = set
			continue
		}
		if current.Err() != nil {
			resp.MoreAvailable = resp.MoreAvailable || i < len(batch)
			return resp, nil
		}
		set, err := q.sign(ev, st.Aud)
		if err != nil {
			return ssf.PollResponse{}, fmt.Errorf("ssf: sign SET: %w", err)
		}
		q.keepSET(k, ev.ID, set, now)
		resp.Sets[ev.ID] = set
	}
	return resp, nil
}
