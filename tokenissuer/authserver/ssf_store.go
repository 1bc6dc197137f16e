package authserver

import (
	"go.uber.org/zap"

	"github.com/apiaccess/caddy-apiaccess/internal/ssf"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/ssftx"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
)

// newStoreFeed is the feed of a store that keeps the feed log: every
// node of a cluster appends to and polls the same log.
func newStoreFeed(st store.Store, fl store.FeedLog, sign ssf.Signer, log *zap.Logger, obs Observer) feedQueue {
	q := ssftx.NewStoreQueue(st, fl, sign)
	q.Logger = log.Named("feed")
	if fo, ok := obs.(FeedObserver); ok {
		q.OnBadEntry = func(uint64, error) { fo.FeedEntrySkipped() }
	}
	return q
}
