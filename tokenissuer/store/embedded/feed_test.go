package embedded

import (
	"path/filepath"
	"testing"

	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/store/storetest"
)

func TestFeedConformance(t *testing.T) {
	storetest.RunFeed(t, func(t *testing.T) store.FeedLog { return openLog(t) })
}

func TestFeedSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "feed.db")
	storetest.RunFeedReopen(t,
		func(t *testing.T) store.FeedLog { return open(t, path) },
		func(t *testing.T, l store.FeedLog) store.FeedLog {
			if err := l.(*DB).Close(); err != nil {
				t.Fatal(err)
			}
			db := open(t, path)
			t.Cleanup(func() { db.Close() })
			return db
		})
}
