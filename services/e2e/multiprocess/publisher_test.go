package multiprocess

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hookline/hookline/pkg/poll"
	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
)

// fault is something done to the cluster once `at` events are published.
type fault struct {
	at     int
	name   string
	inject func(*publisher)
}

// publisher publishes the events in batches, paced by deliveries, and
// injects the faults along the way.
type publisher struct {
	t   *testing.T
	api apiClients
	rcv *receiver

	published  int // events published so far: 0..published-1
	retries    int // publish calls that failed and were repeated
	duplicates int // events answered duplicate=true
}

// run publishes every event, injecting each fault when its turn comes.
func (p *publisher) run(faults []fault) {
	p.t.Helper()
	for p.published < numEvents {
		for len(faults) > 0 && p.published >= faults[0].at {
			f := faults[0]
			faults = faults[1:]
			began, delivered := time.Now(), p.rcv.acceptedPairs()
			f.inject(p)
			p.t.Logf("fault %q injected at %s after %d events published, %d pairs delivered; took %v",
				f.name, began.Format("15:04:05.000"), p.published, delivered, since(began))
		}
		p.waitForDeliveries()
		p.publishBatch()
	}
}

// nextBatch is the next batchSize events, each with its idempotency key.
func (p *publisher) nextBatch() []*hooklinev1.PublishRequest {
	n := min(batchSize, numEvents-p.published)
	reqs := make([]*hooklinev1.PublishRequest, n)
	for i := range reqs {
		seq := p.published + i
		reqs[i] = &hooklinev1.PublishRequest{
			Tenant: tenant, EventType: eventType, IdempotencyKey: idempotencyKey(seq),
			Payload: fmt.Appendf(nil, `{"seq":%d}`, seq),
		}
	}
	return reqs
}

// waitForDeliveries waits until at most aheadEvents published events are
// not yet delivered to every subscription.
func (p *publisher) waitForDeliveries() {
	p.t.Helper()
	want := (p.published - aheadEvents) * numSubs
	if want <= 0 {
		return
	}
	poll.WithinReason(p.t, paceTimeout, "deliveries to catch up with publishing", func() (bool, string) {
		got := p.rcv.acceptedPairs()
		return got >= want, fmt.Sprintf("%d of the %d pairs published %d events ago delivered", got, want, aheadEvents)
	})
}

// publishBatch publishes the next batch, repeating the call with the same
// idempotency keys while it fails with a retryable error.
func (p *publisher) publishBatch() {
	p.t.Helper()
	reqs := p.nextBatch()
	deadline := time.Now().Add(publishTimeout)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		res, err := withTimeout(10*time.Second, func(ctx context.Context) (*hooklinev1.PublishBatchResponse, error) {
			return p.api.ingest.PublishBatch(ctx, &hooklinev1.PublishBatchRequest{Events: reqs})
		})
		if err == nil {
			if n := len(res.GetResults()); n != len(reqs) {
				p.t.Fatalf("publishing events %d..%d: %d results for %d events", p.published, p.published+len(reqs)-1, n, len(reqs))
			}
			p.checkResults(res.GetResults())
			p.published += len(reqs)
			return
		}
		if !retryable(err) {
			p.t.Fatalf("publishing events %d..%d: %v", p.published, p.published+len(reqs)-1, err)
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("publishing events %d..%d: still failing after %v: %v", p.published, p.published+len(reqs)-1, publishTimeout, err)
		}
		p.retries++
		<-tick.C
	}
}

// checkResults checks that each event got the id derived from its key.
func (p *publisher) checkResults(res []*hooklinev1.PublishResponse) {
	p.t.Helper()
	for i, r := range res {
		seq := p.published + i
		if want := eventID(seq); r.GetEventId() != want {
			p.t.Fatalf("event %d got id %s, want %s (derived from its idempotency key)", seq, r.GetEventId(), want)
		}
		if r.GetDuplicate() {
			p.duplicates++
		}
	}
}

// publishWhileBrokerDown tries to publish the next batch while the broker
// is stopped: ingest must refuse it (it cannot make it
// durable). The batch is published again, with the same keys, once the
// broker is back.
func (p *publisher) publishWhileBrokerDown() {
	p.t.Helper()
	if p.published >= numEvents {
		return
	}
	_, err := withTimeout(3*time.Second, func(ctx context.Context) (*hooklinev1.PublishBatchResponse, error) {
		return p.api.ingest.PublishBatch(ctx, &hooklinev1.PublishBatchRequest{Events: p.nextBatch()})
	})
	if err == nil {
		p.t.Fatalf("PublishBatch succeeded while the broker was down: events %d.. were acknowledged without being durable", p.published)
	}
	p.retries++
	p.t.Logf("publish with the broker down failed as it should: %v", err)
}

// retryable reports whether a failed publish may be repeated.
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.ResourceExhausted, codes.Internal:
		return true
	}
	return false
}
