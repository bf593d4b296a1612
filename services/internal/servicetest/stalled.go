package servicetest

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

// Stalled is a webhook endpoint on loopback that holds every request
// until Unblock is called (or the request ends), answering 200 then: a
// slow or hung receiver. It counts the requests it holds.
type Stalled struct {
	URL string

	release  chan struct{}
	once     sync.Once
	inFlight atomic.Int32
	most     atomic.Int32
}

// StalledEndpoint serves a Stalled endpoint until tb ends; it is unblocked
// before it closes, even when the test fails early.
func StalledEndpoint(tb testing.TB) *Stalled {
	tb.Helper()
	s := &Stalled{release: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.inFlight.Add(1)
		defer s.inFlight.Add(-1)
		for m := s.most.Load(); n > m && !s.most.CompareAndSwap(m, n); m = s.most.Load() {
		}
		select {
		case <-s.release:
		case <-r.Context().Done():
		}
	}))
	s.URL = srv.URL
	tb.Cleanup(srv.Close)
	tb.Cleanup(s.Unblock) // runs first: cleanups run last in, first out
	return s
}

// Unblock answers every held request and every later one at once. It may
// be called more than once.
func (s *Stalled) Unblock() { s.once.Do(func() { close(s.release) }) }

// InFlight is how many requests the endpoint holds now.
func (s *Stalled) InFlight() int32 { return s.inFlight.Load() }

// MostInFlight is the most requests the endpoint held at once.
func (s *Stalled) MostInFlight() int32 { return s.most.Load() }
