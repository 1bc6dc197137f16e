package authserver

import (
	"strconv"
	"sync"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/gatewaylog"
)

// A route that logs every decision (`log_decisions all`) sees mostly the
// same caller again and again: a client calls with one token until it
// expires. One event per request costs the gateway about 16% of its
// throughput (BENCHMARKS.md, "Gateway decisions in the System Log"), so
// acceptances of one token, from one address, on one route and method,
// within summaryWindow are one event whose debugData.requestCount says
// how many; its request id, path and time are the first request's.
// Refusals are never summarised: each is its own event.
const (
	summaryWindow = time.Second
	// summaryKeys bounds the summaries open at once; past it, an
	// acceptance is its own event.
	summaryKeys = 10_000
)

type summaryKey struct {
	route, host, method, ip, issuer, jti, client, subject string
}

type summary struct {
	first gatewaylog.Decision
	n     int64
}

// summaries collects acceptances until their window ends.
type summaries struct {
	mu   sync.Mutex
	open map[summaryKey]*summary
	// emit logs one summary (called without mu held).
	emit func(d *gatewaylog.Decision, n int64)
}

func newSummaries(emit func(*gatewaylog.Decision, int64)) *summaries {
	return &summaries{open: map[summaryKey]*summary{}, emit: emit}
}

// add counts an acceptance made at d.Time.
func (s *summaries) add(d gatewaylog.Decision) {
	k := summaryKey{d.Route, d.Host, d.Method, d.ClientIP, d.Issuer, d.JTI, d.ClientID, d.Subject}
	s.mu.Lock()
	if e := s.open[k]; e != nil {
		if d.Time.Sub(e.first.Time) < summaryWindow {
			e.n++
			s.mu.Unlock()
			return
		}
		delete(s.open, k) // its window is over: log it, start anew
		s.open[k] = &summary{first: d, n: 1}
		s.mu.Unlock()
		s.emit(&e.first, e.n)
		return
	}
	if len(s.open) >= summaryKeys {
		s.mu.Unlock()
		s.emit(&d, 1)
		return
	}
	s.open[k] = &summary{first: d, n: 1}
	s.mu.Unlock()
}

// flush logs the summaries whose window ended by now, or all of them
// when now is zero (the writer stopping).
func (s *summaries) flush(now time.Time) {
	var done []*summary
	s.mu.Lock()
	for k, e := range s.open {
		if now.IsZero() || now.Sub(e.first.Time) >= summaryWindow {
			done = append(done, e)
			delete(s.open, k)
		}
	}
	s.mu.Unlock()
	for _, e := range done {
		s.emit(&e.first, e.n)
	}
}

func countNote(n int64) string { return strconv.FormatInt(n, 10) }
