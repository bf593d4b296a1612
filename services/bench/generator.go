package bench

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/status"

	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
)

// Event states in an eventLog.
const (
	evScheduled uint8 = iota
	evAccepted
	evRejected
)

// eventLog holds every event of a scenario by sequence number: its
// scheduled time and, once published, its id and state. Events are added
// by append between generator runs; a run writes only the entries of its
// own events, each from one goroutine.
type eventLog struct {
	sched []int64
	ids   []string
	state []uint8
}

// append schedules n events at rate per second from start (rate 0: all at
// start) and returns the first one's sequence number.
func (l *eventLog) append(n int, start time.Time, rate float64) int64 {
	first := int64(len(l.sched))
	t0 := start.UnixNano()
	for i := range n {
		t := t0
		if rate > 0 {
			t += int64(float64(i) * 1e9 / rate)
		}
		l.sched = append(l.sched, t)
	}
	l.ids = append(l.ids, make([]string, n)...)
	l.state = append(l.state, make([]uint8, n)...)
	return first
}

// len is the number of events scheduled.
func (l *eventLog) len() int64 { return int64(len(l.sched)) }

// generator publishes events to ingest at their scheduled times (open
// loop): a pacer marks events due as their time comes, and publishers
// send whatever is due — one PublishBatch per call, of up to maxBatch
// events, so that events falling due while every publisher is busy travel
// together. A publisher that cannot keep up delays events, which shows up
// in their latency, measured from the scheduled time.
type generator struct {
	clients    []hooklinev1.IngestServiceClient
	log        *eventLog
	tenant     string
	eventType  func(seq int64) string
	publishers int
	maxBatch   int
	idemKeys   bool
	logger     *slog.Logger

	accepted atomic.Int64
	rejected atomic.Int64
	calls    atomic.Int64
	errMu    sync.Mutex
	errs     map[string]int // rejection reasons (gRPC code: message), counted
}

// publishTimeout bounds one PublishBatch call.
const publishTimeout = 30 * time.Second

// run publishes events first..end-1 of the log, each at its scheduled
// time, and returns once every publish call has returned. Cancelling ctx
// stops the pacing; events not yet sent stay scheduled (neither accepted
// nor rejected).
func (g *generator) run(ctx context.Context, first, end int64) {
	var (
		mu   sync.Mutex
		cond = sync.NewCond(&mu)
		next = first // next event to hand to a publisher
		due  = first // events before due are due
		over bool
	)
	var wg sync.WaitGroup
	for i := range g.publishers {
		client := g.clients[i%len(g.clients)]
		wg.Go(func() {
			for {
				mu.Lock()
				for next >= due && !over {
					cond.Wait()
				}
				if next >= due {
					mu.Unlock()
					return
				}
				a := next
				b := min(next+int64(g.maxBatch), due)
				next = b
				mu.Unlock()
				g.publish(ctx, client, a, b)
			}
		})
	}
	g.pace(ctx, first, end, func(j int64) {
		mu.Lock()
		due = j
		mu.Unlock()
		cond.Broadcast()
	})
	mu.Lock()
	over = true
	mu.Unlock()
	cond.Broadcast()
	wg.Wait()
}

// pace is the pacer of run: it calls setDue(j) each time events up to
// j-1 have fallen due (their scheduled time has come), in order, until
// every event first..end-1 is due or ctx is done.
func (g *generator) pace(ctx context.Context, first, end int64, setDue func(j int64)) {
	for i := first; i < end; {
		now := time.Now().UnixNano()
		j := i
		for j < end && g.log.sched[j] <= now {
			j++
		}
		if j > i {
			setDue(j)
			i = j
			continue
		}
		wait := time.Duration(g.log.sched[i] - now)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			i = end
		case <-t.C:
		}
	}
}

// publish sends events a..b-1 in one PublishBatch call and records the
// outcome of each.
func (g *generator) publish(ctx context.Context, client hooklinev1.IngestServiceClient, a, b int64) {
	reqs := make([]*hooklinev1.PublishRequest, 0, b-a)
	for seq := a; seq < b; seq++ {
		r := &hooklinev1.PublishRequest{
			Tenant:    g.tenant,
			EventType: g.eventType(seq),
			Payload:   AppendPayload(make([]byte, 0, PayloadSize), g.log.sched[seq], seq),
		}
		if g.idemKeys {
			r.IdempotencyKey = "bench-" + strconv.FormatInt(seq, 10)
		}
		reqs = append(reqs, r)
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	g.calls.Add(1)
	res, err := client.PublishBatch(cctx, &hooklinev1.PublishBatchRequest{Events: reqs})
	if err == nil && len(res.GetResults()) != len(reqs) {
		err = fmt.Errorf("%d results for %d events", len(res.GetResults()), len(reqs))
	}
	if err != nil {
		for seq := a; seq < b; seq++ {
			g.log.state[seq] = evRejected
		}
		g.rejected.Add(b - a)
		reason := err.Error()
		if s, ok := status.FromError(err); ok {
			reason = s.Code().String() + ": " + s.Message()
		}
		g.errMu.Lock()
		if g.errs == nil {
			g.errs = map[string]int{}
		}
		if g.errs[reason] == 0 {
			g.logger.Warn("publish rejected", "events", b-a, "err", reason)
		}
		g.errs[reason] += int(b - a)
		g.errMu.Unlock()
		return
	}
	for i, r := range res.GetResults() {
		g.log.ids[a+int64(i)] = r.GetEventId()
		g.log.state[a+int64(i)] = evAccepted
	}
	g.accepted.Add(b - a)
}

// rejections returns the rejection reasons with their event counts.
func (g *generator) rejections() map[string]int {
	g.errMu.Lock()
	defer g.errMu.Unlock()
	out := make(map[string]int, len(g.errs))
	for k, v := range g.errs {
		out[k] = v
	}
	return out
}
