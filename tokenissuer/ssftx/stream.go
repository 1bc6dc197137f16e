package ssftx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/ssf"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// A stream is the record store.NSSSFStream/<stream id>; the record
// under the empty key is the index of stream ids that MaxStreams
// counts. Both last until removed: records need an expiry, so a far one.
const (
	indexKey       = ""
	recordLifetime = 100 * 365 * 24 * time.Hour
	// maxIDLen bounds stream ids and auds (the index holds every id).
	maxIDLen = 1024
)

// stream is a stream's state.
type stream struct {
	Aud string `json:"aud"`
	// Tag is in every jti of the stream (random per AddStream, so a
	// stream removed and added again shares no jti with its past).
	Tag string `json:"tag"`
	// Cursor is the low-water mark: every seq at or below it is
	// acknowledged, expired or not for this stream.
	Cursor uint64 `json:"cursor"`
	// Acked are the acknowledged seqs above the cursor, ascending, each
	// at most Cursor+MaxAcked.
	Acked []uint64 `json:"acked,omitempty"`
}

func recordUntil() time.Time { return time.Now().Add(recordLifetime) }

// stream reads a stream's state; a missing one is ssf.ErrUnknownStream.
func (q *StoreQueue) stream(ctx context.Context, id string) (stream, error) {
	if id == indexKey {
		return stream{}, ssf.ErrUnknownStream
	}
	v, err := q.st.GetRecord(ctx, store.NSSSFStream, id)
	if errors.Is(err, store.ErrNotFound) {
		return stream{}, ssf.ErrUnknownStream
	}
	if err != nil {
		return stream{}, err
	}
	var s stream
	if err := json.Unmarshal(v, &s); err != nil {
		return stream{}, fmt.Errorf("ssftx: decoding stream %q: %w", id, err)
	}
	return s, nil
}

// updateStream changes a stream's state atomically (across nodes: the
// store's UpdateRecord); fn may run more than once.
func (q *StoreQueue) updateStream(ctx context.Context, id string, fn func(*stream) error) error {
	if id == indexKey {
		return ssf.ErrUnknownStream
	}
	_, err := q.st.UpdateRecord(ctx, store.NSSSFStream, id, func(old []byte) ([]byte, error) {
		var s stream
		if err := json.Unmarshal(old, &s); err != nil {
			return nil, fmt.Errorf("ssftx: decoding stream %q: %w", id, err)
		}
		if err := fn(&s); err != nil {
			return nil, err
		}
		return json.Marshal(s)
	})
	if errors.Is(err, store.ErrNotFound) {
		return ssf.ErrUnknownStream
	}
	return err
}

// AddStream implements ssf.Queue. The stream's cursor is 0: it receives
// every retained event.
func (q *StoreQueue) AddStream(ctx context.Context, streamID, aud string) error {
	if streamID == "" || aud == "" {
		return fmt.Errorf("%w: stream id and aud are required", ssf.ErrInvalidRequest)
	}
	if len(streamID) > maxIDLen || len(aud) > maxIDLen {
		return fmt.Errorf("%w: stream id or aud longer than %d bytes", ssf.ErrInvalidRequest, maxIDLen)
	}
	if _, err := q.stream(ctx, streamID); err == nil {
		return ssf.ErrStreamExists
	} else if !errors.Is(err, ssf.ErrUnknownStream) {
		return err
	}
	if err := q.reserve(ctx, streamID); err != nil {
		return err
	}
	v, err := json.Marshal(stream{Aud: aud, Tag: randomHex(8)})
	if err != nil {
		return err
	}
	created, err := q.st.CreateRecord(ctx, store.NSSSFStream, streamID, v, recordUntil())
	if err != nil {
		return err
	}
	if !created {
		return ssf.ErrStreamExists // another node's AddStream won
	}
	return nil
}

// RemoveStream implements ssf.Queue. Events only for it are left to
// expire.
func (q *StoreQueue) RemoveStream(ctx context.Context, streamID string) error {
	if streamID == indexKey {
		return ssf.ErrUnknownStream
	}
	_, err := q.st.UpdateRecord(ctx, store.NSSSFStream, streamID, func([]byte) ([]byte, error) { return nil, nil })
	if errors.Is(err, store.ErrNotFound) {
		return ssf.ErrUnknownStream
	}
	if err != nil {
		return err
	}
	return q.updateIndex(ctx, func(ids []string) ([]string, error) {
		return slices.DeleteFunc(ids, func(id string) bool { return id == streamID }), nil
	})
}

// Cursor implements ssf.Queue.
func (q *StoreQueue) Cursor(ctx context.Context, streamID string) (uint64, error) {
	s, err := q.stream(ctx, streamID)
	return s.Cursor, err
}

// Rewind implements ssf.Queue.
func (q *StoreQueue) Rewind(ctx context.Context, streamID string, cursor uint64) error {
	return q.updateStream(ctx, streamID, func(s *stream) error {
		if cursor > s.Cursor {
			return fmt.Errorf("%w: rewind forward", ssf.ErrInvalidRequest)
		}
		s.Cursor, s.Acked = cursor, nil
		return nil
	})
}

// reserve puts id in the index unless MaxStreams ids are there; a full
// index is first cleared of ids whose stream is gone (a node stopped
// between the two writes of AddStream or RemoveStream).
func (q *StoreQueue) reserve(ctx context.Context, id string) error {
	add := func(ids []string) ([]string, error) {
		if slices.Contains(ids, id) {
			return ids, nil
		}
		if len(ids) >= q.maxStreams() {
			return nil, ssf.ErrTooManyStreams
		}
		return append(ids, id), nil
	}
	err := q.updateIndex(ctx, add)
	if !errors.Is(err, ssf.ErrTooManyStreams) {
		return err
	}
	if err := q.pruneIndex(ctx); err != nil {
		return err
	}
	return q.updateIndex(ctx, add)
}

// pruneIndex drops the ids of streams that do not exist.
func (q *StoreQueue) pruneIndex(ctx context.Context) error {
	v, err := q.st.GetRecord(ctx, store.NSSSFStream, indexKey)
	if err != nil {
		return err
	}
	var ids, gone []string
	if err := json.Unmarshal(v, &ids); err != nil {
		return fmt.Errorf("ssftx: decoding the stream index: %w", err)
	}
	for _, id := range ids {
		if _, err := q.stream(ctx, id); errors.Is(err, ssf.ErrUnknownStream) {
			gone = append(gone, id)
		} else if err != nil {
			return err
		}
	}
	if len(gone) == 0 {
		return nil
	}
	return q.updateIndex(ctx, func(ids []string) ([]string, error) {
		return slices.DeleteFunc(ids, func(id string) bool { return slices.Contains(gone, id) }), nil
	})
}

// updateIndex changes the index atomically, creating it if missing.
func (q *StoreQueue) updateIndex(ctx context.Context, fn func([]string) ([]string, error)) error {
	update := func(old []byte) ([]byte, error) {
		var ids []string
		if err := json.Unmarshal(old, &ids); err != nil {
			return nil, fmt.Errorf("ssftx: decoding the stream index: %w", err)
		}
		ids, err := fn(ids)
		if err != nil {
			return nil, err
		}
		return json.Marshal(ids)
	}
	for range 2 {
		_, err := q.st.UpdateRecord(ctx, store.NSSSFStream, indexKey, update)
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if _, err := q.st.CreateRecord(ctx, store.NSSSFStream, indexKey, []byte("[]"), recordUntil()); err != nil {
			return err
		}
	}
	return errors.New("ssftx: the stream index vanished while being created")
}
