package authserver

import (
	"context"
	"errors"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// endSession ends the SSO session sid. It first marks the session as
// ended and only then deletes its record, so a Sessions API refresh that
// read the record before the end and writes it back after (another tab
// refreshing while this one signs out) sees the mark and deletes it
// again (sessionEnded). A session already gone is not an error.
func (i *Issuer) endSession(ctx context.Context, sid string) error {
	if _, err := i.store.Mark(ctx, store.NSSessionEnded, sid, i.now().Add(sessionMaxLifetime)); err != nil {
		return err
	}
	_, err := i.store.UpdateRecord(ctx, store.NSSession, sid, func([]byte) ([]byte, error) { return nil, nil })
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// sessionEnded reports whether sid was ended; after rewriting a session
// record, a true answer means the write raced an end and must be undone.
func (i *Issuer) sessionEnded(ctx context.Context, sid string) (bool, error) {
	return i.store.Marked(ctx, store.NSSessionEnded, sid)
}
