package tokenissuer

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apiaccess/caddy-apiaccess/internal/promreg"
	"github.com/apiaccess/caddy-apiaccess/tokenissuer/authserver"
)

// The issuer's collectors are created once per process and registered
// into each config's registry (Caddy makes a new one per config load),
// so `caddy reload` does not restart them from zero.
var (
	tokenRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "token_issuer", Name: "token_requests_total",
		Help: "Token endpoint answers, by authorization server, grant type (other for an unknown or missing one) and outcome (success, or the OAuth error code).",
	}, []string{"server", "grant_type", "outcome"})

	tokenDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "caddy", Subsystem: "token_issuer", Name: "token_request_duration_seconds",
		Help:    "Time the token endpoint took to answer, by authorization server and grant type (other for an unknown or missing one).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2},
	}, []string{"server", "grant_type"})

	introspections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "token_issuer", Name: "introspections_total",
		Help: "Introspection answers, by authorization server and whether the token was active; requests refused (bad client) are counted in neither.",
	}, []string{"server", "active"})

	revocations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "token_issuer", Name: "revocations_total",
		Help: "Revocation answers, by authorization server and outcome (success, also for unknown tokens as RFC 7009 answers them; rate_limited; or the OAuth error code).",
	}, []string{"server", "outcome"})

	keyRotations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "token_issuer", Name: "key_rotations_total",
		Help: "Signing key changes made by this instance, by authorization server and reason (scheduled, admin, created, published: a key of a new signing_alg published as NEXT, alg_change: that key promoted at start).",
	}, []string{"server", "reason"})

	logEventsDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "token_issuer", Name: "log_events_dropped_total",
		Help: "System Log events not kept in the store because the writer's queue was full (the issuer's events and gateway refusals are still in Caddy's log; gateway acceptances only at DEBUG level).",
	})

	logEventWriteErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "token_issuer", Name: "log_events_write_failed_total",
		Help: "System Log events lost because the store refused the batch they were written in (the issuer's events and gateway refusals are still in Caddy's log; gateway acceptances only at DEBUG level).",
	})

	logEventsSuppressed = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "token_issuer", Name: "log_events_suppressed_total",
		Help: "require_token events not kept in the System Log: a client address over its budget of 10 refusals a second, or all gateway events over theirs of 200 a second (refusals are still in Caddy's log; acceptances only at DEBUG level).",
	})

	feedEntriesSkipped = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "token_issuer", Name: "feed_entries_skipped_total",
		Help: "Revocation feed entries this node could not decode and skipped (each counted once; an entry from a newer version, or damage): its streams and in-process view miss them.",
	})

	storeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "token_issuer", Name: "store_errors_total",
		Help: "Failed calls to the issuer's store, by operation; not-found answers and requests the client abandoned are not failures.",
	}, []string{"operation"})
)

// registerMetrics adds the issuer's collectors to a config's registry.
func registerMetrics(reg *prometheus.Registry) error {
	return promreg.Register(reg, tokenRequests, tokenDuration, introspections, revocations, keyRotations, storeErrors, logEventsDropped, logEventWriteErrors, logEventsSuppressed, feedEntriesSkipped)
}

// grantLabels bounds the grant_type label to the grants the issuer
// knows: the parameter is the client's to choose.
var grantLabels = map[string]string{
	authserver.GrantClientCredentials: authserver.GrantClientCredentials,
	authserver.GrantPassword:          authserver.GrantPassword,
	authserver.GrantRefreshToken:      authserver.GrantRefreshToken,
	authserver.GrantAuthorizationCode: authserver.GrantAuthorizationCode,
	authserver.GrantDeviceCode:        authserver.GrantDeviceCode,
}

// grantLabel is the grant_type label of a requested grant type.
func grantLabel(g string) string {
	if l, ok := grantLabels[g]; ok {
		return l
	}
	return "other"
}

// observer is the authserver.Observer that counts into the collectors
// above. Every other label value (server ids, error codes, rotation
// reasons) comes from the configuration or the code, never a client.
type observer struct{}

func (observer) TokenRequest(server, grantType, outcome string, elapsed time.Duration) {
	g := grantLabel(grantType)
	tokenRequests.WithLabelValues(server, g, outcome).Inc()
	tokenDuration.WithLabelValues(server, g).Observe(elapsed.Seconds())
}

func (observer) Introspection(server string, active bool) {
	introspections.WithLabelValues(server, strconv.FormatBool(active)).Inc()
}

func (observer) Revocation(server, outcome string) {
	revocations.WithLabelValues(server, outcome).Inc()
}

func (observer) KeyRotation(server, reason string) {
	keyRotations.WithLabelValues(server, reason).Inc()
}

func (observer) EventsDropped(n int) { logEventsDropped.Add(float64(n)) }

func (observer) EventWriteFailed(n int) { logEventWriteErrors.Add(float64(n)) }

func (observer) EventsSuppressed(n int) { logEventsSuppressed.Add(float64(n)) }

func (observer) FeedEntrySkipped() { feedEntriesSkipped.Inc() }

var (
	_ authserver.Observer      = observer{}
	_ authserver.EventObserver = observer{}
)
