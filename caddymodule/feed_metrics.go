package caddymodule

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/apiaccess/caddy-apiaccess/internal/promreg"
)

// Revocation feed gauges, per feed URL; created once per process and
// registered into each config's registry, like decisions.
var (
	feedSynced = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "caddy",
		Subsystem: "require_token",
		Name:      "revocation_feed_synced_timestamp_seconds",
		Help:      "When the revocation feed's last poll answer was fully applied (Unix time); time() minus it is the feed's staleness.",
	}, []string{"feed"})
	feedHeld = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "caddy",
		Subsystem: "require_token",
		Name:      "revocations_held",
		Help:      "Revocations in force held from the feed, by kind: tokens (jti) and subjects (user, client and user-at-client cut-offs).",
	}, []string{"feed", "kind"})
)

func registerFeedMetrics(reg *prometheus.Registry) error {
	if reg == nil {
		return nil
	}
	return promreg.Register(reg, feedSynced, feedHeld)
}

// updateFeedMetrics records fr's state after a poll.
func updateFeedMetrics(fr *feedReceiver, synced bool) {
	if synced {
		feedSynced.WithLabelValues(fr.feed).Set(float64(fr.synced.Load()) / 1e9)
	}
	tokens, subjects := fr.revs.Len()
	feedHeld.WithLabelValues(fr.feed, "tokens").Set(float64(tokens))
	feedHeld.WithLabelValues(fr.feed, "subjects").Set(float64(subjects))
}

// deleteFeedMetrics drops fr's series when it stops.
func deleteFeedMetrics(fr *feedReceiver) {
	feedSynced.DeleteLabelValues(fr.feed)
	feedHeld.DeleteLabelValues(fr.feed, "tokens")
	feedHeld.DeleteLabelValues(fr.feed, "subjects")
}
