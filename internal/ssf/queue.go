package ssf

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Queue is the transmitter side of poll delivery (RFC 8936): a log of
// events and, per stream, what the receiver acknowledged. A persistent
// implementation (cluster mode, issuer restarts) keeps the same
// semantics; MemQueue is the in-memory one.
type Queue interface {
	// Publish queues ev for every stream; it is retained until
	// ev.RelevantUntil.
	Publish(ctx context.Context, ev Event) error
	// PublishTo queues ev for one stream only (verification and
	// stream-updated events).
	PublishTo(ctx context.Context, streamID string, ev Event) error
	// AddStream starts a stream whose SETs carry aud; its cursor is 0, so
	// it receives every retained event.
	AddStream(ctx context.Context, streamID, aud string) error
	RemoveStream(ctx context.Context, streamID string) error
	// Poll acknowledges req.Ack and req.SetErrs, then returns the
	// stream's unacknowledged SETs, oldest first, up to req.MaxEvents.
	Poll(ctx context.Context, streamID string, req PollRequest) (PollResponse, error)
	// Cursor is the stream's low-water mark: every event with a sequence
	// number at or below it is acknowledged (or expired).
	Cursor(ctx context.Context, streamID string) (uint64, error)
	// Rewind sets the cursor back (0: everything retained) and forgets
	// the acknowledgements above it, for a receiver that lost its state.
	Rewind(ctx context.Context, streamID string, cursor uint64) error
}

// Queue errors.
var (
	ErrUnknownStream  = errors.New("ssf: unknown stream")
	ErrStreamExists   = errors.New("ssf: stream exists")
	ErrTooManyStreams = errors.New("ssf: too many streams")
	// ErrQueueFull: MaxRetained events still matter; the event is not
	// queued. Size MaxRetained for the revocations of one token lifetime.
	ErrQueueFull = errors.New("ssf: event queue full")
	// ErrInvalidRequest answers a malformed poll (RFC 8936 2.4: HTTP 400
	// with err invalid_request).
	ErrInvalidRequest = errors.New("ssf: invalid poll request")
)

// MemQueue defaults.
const (
	DefaultMaxRetained = 1 << 20
	DefaultMaxStreams  = 1024
	DefaultMaxBatch    = 1000
	DefaultLongPoll    = 30 * time.Second
)

// Signer signs one stream's SET for ev (Sign with the issuer's key, iss
// and the stream's aud).
type Signer func(ev Event, aud string) (string, error)

// MemQueue is a Queue in memory, safe for concurrent use. The log holds
// each event until its RelevantUntil, shared by all streams; a stream is
// its cursor plus the acknowledged sequence numbers above it, so a
// receiver that stops polling costs no memory beyond the log. SETs are
// signed per stream (each has its aud and its own jti) when polled.
type MemQueue struct {
	sign Signer

	// MaxRetained bounds the log, MaxStreams the streams; MaxBatch caps
	// one poll's SETs; LongPoll is how long a poll without
	// returnImmediately waits for an event. Zero means the default. Set
	// them before first use.
	MaxRetained int
	MaxStreams  int
	MaxBatch    int
	LongPoll    time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// OnSetErr, if set, hears every setErrs entry a receiver reports
	// (for the log); it is called without the queue's lock.
	OnSetErr func(streamID, jti string, e SetErr)

	mu        sync.Mutex
	log       []*entry // ascending seq
	seq       uint64
	streams   map[string]*streamState
	wake      chan struct{} // closed and replaced on every publish
	nextPrune time.Time
}

type entry struct {
	seq   uint64
	ev    Event
	until time.Time
	only  string // stream id, or "" for every stream
}

type streamState struct {
	aud    string
	tag    string // in every jti of the stream
	cursor uint64
	acked  map[uint64]struct{} // acknowledged sequence numbers > cursor
}

// NewMemQueue is an empty MemQueue signing with sign.
func NewMemQueue(sign Signer) *MemQueue {
	return &MemQueue{sign: sign, streams: map[string]*streamState{}, wake: make(chan struct{})}
}

func (q *MemQueue) now() time.Time {
	if q.Now != nil {
		return q.Now()
	}
	return time.Now()
}

func orDefault[T int | time.Duration](v, d T) T {
	if v <= 0 {
		return d
	}
	return v
}

// Publish implements Queue.
func (q *MemQueue) Publish(_ context.Context, ev Event) error { return q.publish(ev, "") }

// PublishTo implements Queue.
func (q *MemQueue) PublishTo(_ context.Context, streamID string, ev Event) error {
	if streamID == "" {
		return ErrUnknownStream
	}
	return q.publish(ev, streamID)
}

func (q *MemQueue) publish(ev Event, only string) error {
	now := q.now()
	if ev.IssuedAt.IsZero() {
		ev.IssuedAt = now
	}
	if ev.Txn == "" {
		ev.Txn = randomID()
	}
	// Refuse an event no SET can carry now, not at every poll.
	probe := ev
	probe.ID = "probe"
	if _, err := probe.claims("probe", []string{"probe"}); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if only != "" && q.streams[only] == nil {
		return ErrUnknownStream
	}
	until := ev.RelevantUntil()
	if !until.After(now) {
		return nil // matters to no one
	}
	if len(q.log) >= orDefault(q.MaxRetained, DefaultMaxRetained) {
		q.prune(now)
		if len(q.log) >= orDefault(q.MaxRetained, DefaultMaxRetained) {
			return ErrQueueFull
		}
	}
	q.seq++
	q.log = append(q.log, &entry{seq: q.seq, ev: ev, until: until, only: only})
	close(q.wake)
	q.wake = make(chan struct{})
	return nil
}

// AddStream implements Queue.
func (q *MemQueue) AddStream(_ context.Context, streamID, aud string) error {
	if streamID == "" || aud == "" {
		return fmt.Errorf("%w: stream id and aud are required", ErrInvalidRequest)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.streams[streamID] != nil {
		return ErrStreamExists
	}
	if len(q.streams) >= orDefault(q.MaxStreams, DefaultMaxStreams) {
		return ErrTooManyStreams
	}
	h := fnv.New64a()
	h.Write([]byte(streamID))
	q.streams[streamID] = &streamState{aud: aud, tag: strconv.FormatUint(h.Sum64(), 36), acked: map[uint64]struct{}{}}
	return nil
}

// RemoveStream implements Queue. Events only for it are left to expire.
func (q *MemQueue) RemoveStream(_ context.Context, streamID string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.streams[streamID] == nil {
		return ErrUnknownStream
	}
	delete(q.streams, streamID)
	return nil
}

// Cursor implements Queue.
func (q *MemQueue) Cursor(_ context.Context, streamID string) (uint64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	st := q.streams[streamID]
	if st == nil {
		return 0, ErrUnknownStream
	}
	return st.cursor, nil
}

// Rewind implements Queue.
func (q *MemQueue) Rewind(_ context.Context, streamID string, cursor uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	st := q.streams[streamID]
	if st == nil {
		return ErrUnknownStream
	}
	if cursor > st.cursor {
		return fmt.Errorf("%w: rewind forward", ErrInvalidRequest)
	}
	st.cursor = cursor
	clear(st.acked)
	return nil
}

// Len is the number of events retained.
func (q *MemQueue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.log)
}

// Poll implements Queue.
func (q *MemQueue) Poll(ctx context.Context, streamID string, req PollRequest) (PollResponse, error) {
	limit := orDefault(q.MaxBatch, DefaultMaxBatch)
	if req.MaxEvents != nil {
		if *req.MaxEvents < 0 {
			return PollResponse{}, fmt.Errorf("%w: negative maxEvents", ErrInvalidRequest)
		}
		limit = min(limit, *req.MaxEvents)
	}
	q.mu.Lock()
	st := q.streams[streamID]
	if st == nil {
		q.mu.Unlock()
		return PollResponse{}, ErrUnknownStream
	}
	for _, jti := range req.Ack {
		q.ack(streamID, st, jti)
	}
	for jti := range req.SetErrs {
		q.ack(streamID, st, jti)
	}
	q.advance(streamID, st)
	q.mu.Unlock()
	if q.OnSetErr != nil {
		for jti, e := range req.SetErrs {
			q.OnSetErr(streamID, jti, e)
		}
	}

	var deadline <-chan time.Time
	for {
		q.mu.Lock()
		st = q.streams[streamID]
		if st == nil {
			q.mu.Unlock()
			return PollResponse{}, ErrUnknownStream
		}
		now := q.now()
		if !now.Before(q.nextPrune) {
			q.prune(now)
		}
		batch, more := q.pending(streamID, st, now, limit)
		aud, tag, wake := st.aud, st.tag, q.wake
		q.mu.Unlock()

		if len(batch) > 0 || more || limit == 0 || req.ReturnImmediately {
			resp := PollResponse{Sets: make(map[string]string, len(batch)), MoreAvailable: more}
			for _, e := range batch {
				ev := e.ev
				ev.ID = setID(e.seq, tag, ev.Txn)
				set, err := q.sign(ev, aud)
				if err != nil {
					return PollResponse{}, fmt.Errorf("ssf: sign SET: %w", err)
				}
				resp.Sets[ev.ID] = set
			}
			return resp, nil
		}
		// Long polling (RFC 8936 section 2.1, returnImmediately false):
		// hold the request until an event or the deadline.
		if deadline == nil {
			t := time.NewTimer(orDefault(q.LongPoll, DefaultLongPoll))
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-wake:
		case <-deadline:
			return PollResponse{Sets: map[string]string{}}, nil
		case <-ctx.Done():
			return PollResponse{}, ctx.Err()
		}
	}
}

// setID is the jti of entry seq's SET on the stream tagged tag.
func setID(seq uint64, tag, txn string) string {
	return strconv.FormatUint(seq, 10) + "." + tag + "." + txn
}

// find is the index of seq in the log, or -1.
func (q *MemQueue) find(seq uint64) int {
	i := sort.Search(len(q.log), func(i int) bool { return q.log[i].seq >= seq })
	if i < len(q.log) && q.log[i].seq == seq {
		return i
	}
	return -1
}

// ack records jti as processed by the stream; jtis that are not one of
// its pending SETs are ignored.
func (q *MemQueue) ack(streamID string, st *streamState, jti string) {
	seqS, rest, ok := strings.Cut(jti, ".")
	if !ok {
		return
	}
	tag, txn, ok := strings.Cut(rest, ".")
	seq, err := strconv.ParseUint(seqS, 10, 64)
	if !ok || err != nil || tag != st.tag || seq <= st.cursor {
		return
	}
	i := q.find(seq)
	if i < 0 || q.log[i].ev.Txn != txn || !eligible(q.log[i], streamID) {
		return
	}
	st.acked[seq] = struct{}{}
}

func eligible(e *entry, streamID string) bool { return e.only == "" || e.only == streamID }

// advance moves the cursor over acknowledged and foreign events.
func (q *MemQueue) advance(streamID string, st *streamState) {
	i := sort.Search(len(q.log), func(i int) bool { return q.log[i].seq > st.cursor })
	for ; i < len(q.log); i++ {
		e := q.log[i]
		if _, done := st.acked[e.seq]; eligible(e, streamID) && !done {
			// Sequence numbers missing below e were pruned: expired.
			st.cursor = max(st.cursor, e.seq-1)
			break
		}
		st.cursor = e.seq
	}
	if i == len(q.log) {
		st.cursor = q.seq
	}
	for s := range st.acked {
		if s <= st.cursor {
			delete(st.acked, s)
		}
	}
}

// pending is up to limit unacknowledged live events of the stream, and
// whether more remain.
func (q *MemQueue) pending(streamID string, st *streamState, now time.Time, limit int) ([]*entry, bool) {
	var out []*entry
	i := sort.Search(len(q.log), func(i int) bool { return q.log[i].seq > st.cursor })
	for ; i < len(q.log); i++ {
		e := q.log[i]
		if _, done := st.acked[e.seq]; done || !eligible(e, streamID) || !e.until.After(now) {
			continue
		}
		if len(out) == limit {
			return out, true
		}
		out = append(out, e)
	}
	return out, false
}

// prune drops the events that matter no more.
func (q *MemQueue) prune(now time.Time) {
	kept := q.log[:0]
	for _, e := range q.log {
		if e.until.After(now) {
			kept = append(kept, e)
		}
	}
	clear(q.log[len(kept):])
	q.log = kept
	q.nextPrune = now.Add(time.Second)
	for id, st := range q.streams {
		for s := range st.acked {
			if q.find(s) < 0 {
				delete(st.acked, s)
			}
		}
		q.advance(id, st)
	}
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
