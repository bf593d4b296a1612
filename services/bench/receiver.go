package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// SlowDelay is how long a Slow endpoint waits before answering 200.
const SlowDelay = 2 * time.Second

// chunkSize is the number of pair slots allocated at once per endpoint.
const chunkSize = 1 << 14

// slot is what the receiver knows about one (event, endpoint) pair.
type slot struct {
	recv     int64 // unix nanos of the first 2xx answer; 0: none yet
	sched    int64 // scheduled time read from the payload
	requests int32 // requests received for the pair, any answer
	ok       int32 // requests answered 2xx
	id       string
}

// endpointLog records the requests of one endpoint, indexed by event
// sequence number.
type endpointLog struct {
	mu     sync.Mutex
	chunks [][]slot

	requests   atomic.Int64 // every request
	delivered  atomic.Int64 // distinct pairs answered 2xx
	duplicates atomic.Int64 // 2xx answers beyond a pair's first
	idChanges  atomic.Int64 // requests whose webhook-id differs from the pair's first
}

// at returns the slot of seq, allocating it; the caller holds l.mu.
func (l *endpointLog) at(seq int64) *slot {
	c := int(seq / chunkSize)
	for len(l.chunks) <= c {
		l.chunks = append(l.chunks, nil)
	}
	if l.chunks[c] == nil {
		l.chunks[c] = make([]slot, chunkSize)
	}
	return &l.chunks[c][seq%chunkSize]
}

// get returns a copy of the slot of seq (zero if never touched).
func (l *endpointLog) get(seq int64) slot {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := int(seq / chunkSize)
	if c >= len(l.chunks) || l.chunks[c] == nil {
		return slot{}
	}
	return l.chunks[c][seq%chunkSize]
}

// each calls fn for every pair that received a request, in seq order.
func (l *endpointLog) each(fn func(seq int64, s slot)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c, chunk := range l.chunks {
		for i := range chunk {
			if chunk[i].requests > 0 {
				fn(int64(c*chunkSize+i), chunk[i])
			}
		}
	}
}

// record notes a request for seq with webhook-id id, answered 2xx (at
// now) when ok.
func (l *endpointLog) record(seq, sched, now int64, id string, ok bool) {
	l.requests.Add(1)
	l.mu.Lock()
	s := l.at(seq)
	s.requests++
	if s.requests == 1 {
		s.id, s.sched = id, sched
	} else if s.id != id {
		l.idChanges.Add(1)
	}
	first := false
	if ok {
		s.ok++
		if s.ok == 1 {
			s.recv = now
			first = true
		}
	}
	l.mu.Unlock()
	switch {
	case first:
		l.delivered.Add(1)
	case ok:
		l.duplicates.Add(1)
	}
}

// Receiver is the webhook endpoint of every subscription of a scenario:
// an HTTP/1.1 server with keep-alive on 127.0.0.1. Endpoint i is served at
// /s/<i>; /baseline serves the baseline client. Each endpoint answers by
// its Behaviour, and every request is recorded per (event, endpoint)
// pair: first 2xx time, requests, duplicates, webhook-id changes.
type Receiver struct {
	addr       string
	behaviours []Behaviour
	eps        []*endpointLog // len(behaviours)+1: the last is /baseline
	bad        atomic.Int64
	bufs       sync.Pool
	// baselineSeq hands out the baseline's sequence numbers across runs.
	baselineSeq atomic.Int64

	mu   sync.Mutex
	srv  *http.Server
	done chan struct{}
}

// NewReceiver returns a receiver for endpoints with the given behaviours,
// bound to a free loopback port but not yet serving (see Up).
func NewReceiver(behaviours []Behaviour) (*Receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("receiver: listen: %w", err)
	}
	r := &Receiver{addr: ln.Addr().String(), behaviours: behaviours}
	r.bufs.New = func() any { b := make([]byte, 0, 2*PayloadSize); return &b }
	for range len(behaviours) + 1 {
		r.eps = append(r.eps, &endpointLog{})
	}
	if err := ln.Close(); err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	return r, nil
}

// URL returns the URL of endpoint i.
func (r *Receiver) URL(i int) string { return fmt.Sprintf("http://%s/s/%d", r.addr, i) }

// BaselineURL is the URL the baseline client posts to.
func (r *Receiver) BaselineURL() string { return "http://" + r.addr + "/baseline" }

// Up starts serving on the receiver's address (again, after Down).
func (r *Receiver) Up() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.srv != nil {
		return nil
	}
	var ln net.Listener
	var err error
	// The port was ours a moment ago; a connection of the previous server
	// may keep it busy briefly.
	for deadline := time.Now().Add(5 * time.Second); ; {
		if ln, err = net.Listen("tcp", r.addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("receiver: listen on %s: %w", r.addr, err)
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	r.srv, r.done = srv, done
	return nil
}

// Down closes the listener and every connection: new connections are
// refused until Up.
func (r *Receiver) Down() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.srv == nil {
		return nil
	}
	err := r.srv.Close()
	<-r.done
	r.srv, r.done = nil, nil
	if err != nil {
		return fmt.Errorf("receiver: close: %w", err)
	}
	return nil
}

// ServeHTTP records a webhook request and answers by the endpoint's
// behaviour.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	now := time.Now().UnixNano()
	ep, b, ok := r.route(req.URL.Path)
	bufp := r.bufs.Get().(*[]byte)
	defer r.bufs.Put(bufp)
	body, err := readAll(req.Body, (*bufp)[:0])
	*bufp = body[:0]
	if err != nil || !ok {
		r.bad.Add(1)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	sched, seq, ok := ParsePayload(body)
	if !ok {
		r.bad.Add(1)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	id := req.Header.Get("webhook-id")
	switch b {
	case Slow:
		t := time.NewTimer(SlowDelay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-req.Context().Done():
			ep.record(seq, sched, now, id, false)
			return
		}
		ep.record(seq, sched, time.Now().UnixNano(), id, true)
		w.WriteHeader(http.StatusOK)
	case Failing:
		ep.record(seq, sched, now, id, false)
		w.WriteHeader(http.StatusInternalServerError)
	default:
		ep.record(seq, sched, now, id, true)
		w.WriteHeader(http.StatusOK)
	}
}

// route maps a path to its endpoint log and behaviour.
func (r *Receiver) route(path string) (*endpointLog, Behaviour, bool) {
	if path == "/baseline" {
		return r.eps[len(r.eps)-1], Healthy, true
	}
	rest, found := strings.CutPrefix(path, "/s/")
	if !found {
		return nil, 0, false
	}
	i, err := strconv.Atoi(rest)
	if err != nil || i < 0 || i >= len(r.behaviours) {
		return nil, 0, false
	}
	return r.eps[i], r.behaviours[i], true
}

// readAll reads body into buf, growing it as needed.
func readAll(body io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// Delivered returns the distinct pairs answered 2xx by endpoint i.
func (r *Receiver) Delivered(i int) int64 { return r.eps[i].delivered.Load() }

// DeliveredTo sums Delivered over the endpoints whose behaviour keep
// accepts.
func (r *Receiver) DeliveredTo(keep func(Behaviour) bool) int64 {
	var n int64
	for i, b := range r.behaviours {
		if keep(b) {
			n += r.Delivered(i)
		}
	}
	return n
}

// Requests returns every request endpoint i received.
func (r *Receiver) Requests(i int) int64 { return r.eps[i].requests.Load() }

// Pair returns what endpoint i received for event seq: the first 2xx time
// (unix nanos, 0 if none) and the scheduled time read from the payload.
func (r *Receiver) Pair(i int, seq int64) (recv, sched int64) {
	s := r.eps[i].get(seq)
	return s.recv, s.sched
}

// BadRequests counts requests whose path or payload could not be read.
func (r *Receiver) BadRequests() int64 { return r.bad.Load() }

// baselineLog is the log of the /baseline endpoint.
func (r *Receiver) baselineLog() *endpointLog { return r.eps[len(r.eps)-1] }

// Shutdown stops serving; in-flight slow requests are cut.
func (r *Receiver) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	srv, done := r.srv, r.done
	r.srv, r.done = nil, nil
	r.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Shutdown(ctx)
	if err != nil {
		err = srv.Close()
	}
	<-done
	return err
}
