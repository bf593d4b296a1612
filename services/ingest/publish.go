package ingest

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hookline/hookline/pkg/ids"
	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/transport"
	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
	"github.com/hookline/hookline/services/fanout"
)

// ingestServer implements hooklinev1.IngestServiceServer.
type ingestServer struct {
	hooklinev1.UnimplementedIngestServiceServer
	s *Service
}

var _ hooklinev1.IngestServiceServer = (*ingestServer)(nil)

// Publish accepts one event; it returns only once the event is durably in
// the EVENTS stream.
func (g *ingestServer) Publish(ctx context.Context, req *hooklinev1.PublishRequest) (*hooklinev1.PublishResponse, error) {
	var v violations
	g.s.validatePublish(&v, "", req)
	if err := v.err(); err != nil {
		return nil, err
	}
	res, err := g.s.publish(ctx, []*hooklinev1.PublishRequest{req})
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

// PublishBatch accepts several events at once, all or none: every event is
// validated before any is published.
func (g *ingestServer) PublishBatch(ctx context.Context, req *hooklinev1.PublishBatchRequest) (*hooklinev1.PublishBatchResponse, error) {
	var v violations
	switch n := len(req.GetEvents()); {
	case n == 0:
		v.add("events", "must contain at least one event")
	case n > g.s.cfg.MaxBatchEvents:
		v.add("events", "%d events exceeds the limit of %d per batch", n, g.s.cfg.MaxBatchEvents)
	}
	for i, ev := range req.GetEvents() {
		g.s.validatePublish(&v, fmt.Sprintf("events[%d].", i), ev)
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	res, err := g.s.publish(ctx, req.GetEvents())
	if err != nil {
		return nil, err
	}
	return &hooklinev1.PublishBatchResponse{Results: res}, nil
}

// publish makes validated requests durable. Events with an idempotency
// key get an ID derived from it, so a retry after a lost response maps to
// the same ID, and the broker's deduplication collapses it even before the
// key is recorded in the store.
func (s *Service) publish(ctx context.Context, reqs []*hooklinev1.PublishRequest) ([]*hooklinev1.PublishResponse, error) {
	now := s.now().UTC()
	out := make([]*hooklinev1.PublishResponse, len(reqs))
	msgs := make([]transport.Message, 0, len(reqs))
	idx := make([]int, 0, len(reqs)) // out index of each message
	seen := map[string]int{}         // event id -> out index, for keys repeated within a batch
	for i, r := range reqs {
		var id string
		if key := r.GetIdempotencyKey(); key != "" {
			existing, found, err := s.deps.Store.LookupIdempotencyKey(ctx, r.GetTenant(), key)
			if err != nil {
				return nil, status.Errorf(codes.Unavailable, "look up idempotency key: %v", err)
			}
			if found {
				out[i] = &hooklinev1.PublishResponse{EventId: existing, Duplicate: true}
				continue
			}
			id = ids.EventFromIdempotencyKey(r.GetTenant(), key)
			if j, dup := seen[id]; dup {
				out[i] = &hooklinev1.PublishResponse{EventId: out[j].GetEventId(), Duplicate: true}
				continue
			}
		} else {
			id = ids.NewEvent(now)
		}
		seen[id] = i
		out[i] = &hooklinev1.PublishResponse{EventId: id}
		msgs = append(msgs, fanout.NewEventMessage(acceptedEvent(id, r, now)))
		idx = append(idx, i)
	}
	if len(msgs) > 0 {
		results, err := s.deps.Transport.Publish(ctx, transport.Events, msgs...)
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "publish to the events stream (not accepted; retry with the same idempotency key): %v", err)
		}
		for k, r := range results {
			if r.Duplicate {
				out[idx[k]].Duplicate = true
			}
		}
	}
	for k := range msgs {
		r := reqs[idx[k]]
		if r.GetIdempotencyKey() == "" {
			continue
		}
		// The event is durable already; recording the key only lets later
		// retries answer duplicate=true without reaching the broker.
		recorded, err := s.deps.Store.PutIdempotencyKey(ctx, r.GetTenant(), r.GetIdempotencyKey(), out[idx[k]].GetEventId(), now)
		if err != nil {
			s.logger.Warn("record idempotency key", "tenant", r.GetTenant(), "event_id", out[idx[k]].GetEventId(), "err", err)
			continue
		}
		if recorded != out[idx[k]].GetEventId() {
			out[idx[k]] = &hooklinev1.PublishResponse{EventId: recorded, Duplicate: true}
		}
	}
	return out, nil
}

// acceptedEvent is the event a validated request describes, as accepted
// at now.
func acceptedEvent(id string, r *hooklinev1.PublishRequest, now time.Time) *store.Event {
	occurred := now
	if ts := r.GetOccurredAt(); ts != nil {
		occurred = ts.AsTime()
	}
	return &store.Event{
		ID: id, Tenant: r.GetTenant(), Type: r.GetEventType(), Payload: r.GetPayload(),
		Labels: r.GetLabels(), OccurredAt: occurred, ReceivedAt: now,
	}
}
