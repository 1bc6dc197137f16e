package authserver

import (
	"net/http"
	"sync"
	"time"

	"github.com/apiaccess/caddy-apiaccess/internal/gatewaylog"
)

// A route that logs every decision (`log_decisions all`) sees mostly the
// same caller again and again: a client calls with one token until it
// expires. One event per request cost the gateway 16% of its throughput
// (BENCHMARKS.md, "Gateway decisions in the System Log"), so
// acceptances of one token, from one address, on one route and method,
// within summaryWindow are one event whose debugData.requestCount says
// how many; its request id, path and time are the first request's.
// Refusals are never summarised: each is its own event.
const (
	summaryWindow = time.Second
	// summaryKeys bounds the summaries open at once; past it, an
	// acceptance is its own event (and meets the gateway budget). It
	// stays below the sink's queue, so one tick's summaries fit.
	summaryKeys = 4096
)

type summaryKey struct {
	route, host, method, ip, issuer, jti, client, subject string
}

// summary is n acceptances like first.
type summary struct {
	first gatewaylog.Decision
	n     int64
}

// summaries collects acceptances until their window ends.
type summaries struct {
	mu     sync.Mutex
	open   map[summaryKey]*summary
	closed bool
}

func newSummaries() *summaries { return &summaries{open: map[summaryKey]*summary{}} }

// methodClass is the method as a summary key: the client chooses it, so
// anything but the standard methods is one class (else one token could
// open a summary per made-up method).
func methodClass(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// add counts an acceptance made at d.Time. It returns a summary to log
// now: one whose window ended (a new one starts with d), or d alone when
// the table is full or the log has stopped.
func (s *summaries) add(d gatewaylog.Decision) *summary {
	k := summaryKey{route: d.Route, method: methodClass(d.Method), ip: d.ClientIP, issuer: d.Issuer, jti: d.JTI, client: d.ClientID, subject: d.Subject}
	if d.Route == "" { // the route is named by its host, which the client sends
		k.host = d.Host
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return &summary{first: d, n: 1}
	}
	if e := s.open[k]; e != nil {
		if d.Time.Sub(e.first.Time) < summaryWindow {
			e.n++
			return nil
		}
		s.open[k] = &summary{first: d, n: 1} // its window is over: log it, start anew
		return e
	}
	if len(s.open) >= summaryKeys {
		return &summary{first: d, n: 1}
	}
	s.open[k] = &summary{first: d, n: 1}
	return nil
}

// flush takes the summaries whose window ended by now.
func (s *summaries) flush(now time.Time) []*summary {
	var done []*summary
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, e := range s.open {
		if now.Sub(e.first.Time) >= summaryWindow {
			done = append(done, e)
			delete(s.open, k)
		}
	}
	return done
}

// close takes every open summary; acceptances added later are returned
// by add at once (and then counted as dropped by the stopped writer).
func (s *summaries) close() []*summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	done := make([]*summary, 0, len(s.open))
	for k, e := range s.open {
		done = append(done, e)
		delete(s.open, k)
	}
	return done
}
