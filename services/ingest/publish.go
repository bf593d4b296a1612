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
	// One store read for every key of the call.
	var keys []store.IdempotencyKey
	for _, r := range reqs {
		if r.GetIdempotencyKey() != "" {
			keys = append(keys, store.IdempotencyKey{Tenant: r.GetTenant(), Key: r.GetIdempotencyKey()})
		}
	}
	var known map[store.IdempotencyKey]string
	if len(keys) > 0 {
		var err error
		if known, err = s.deps.Store.LookupIdempotencyKeys(ctx, keys); err != nil {
			return nil, status.Errorf(codes.Unavailable, "look up idempotency keys: %v", err)
		}
	}

	out := make([]*hooklinev1.PublishResponse, len(reqs))
	msgs := make([]transport.Message, 0, len(reqs))
	idx := make([]int, 0, len(reqs)) // out index of each message
	var recs []store.IdempotencyRecord
	seen := map[string]int{} // event id -> out index, for keys repeated within a batch
	for i, r := range reqs {
		var id string
		if key := r.GetIdempotencyKey(); key != "" {
			k := store.IdempotencyKey{Tenant: r.GetTenant(), Key: key}
			if existing, found := known[k]; found {
				out[i] = &hooklinev1.PublishResponse{EventId: existing, Duplicate: true}
				continue
			}
			id = ids.EventFromIdempotencyKey(r.GetTenant(), key)
			if j, dup := seen[id]; dup {
				out[i] = &hooklinev1.PublishResponse{EventId: out[j].GetEventId(), Duplicate: true}
				continue
			}
			recs = append(recs, store.IdempotencyRecord{IdempotencyKey: k, EventID: id})
		} else {
			id = ids.NewEvent(now)
		}
		seen[id] = i
		out[i] = &hooklinev1.PublishResponse{EventId: id}
		msgs = append(msgs, fanout.NewEventMessage(acceptedEvent(id, r, now)))
		idx = append(idx, i)
	}
	if len(msgs) == 0 {
		return out, nil
	}
	results, err := s.deps.Transport.Publish(ctx, transport.Events, msgs...)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "publish to the events stream (not accepted; retry with the same idempotency key): %v", err)
	}
	for k, r := range results {
		if r.Duplicate {
			out[idx[k]].Duplicate = true
		}
	}
	if len(recs) == 0 {
		return out, nil
	}
	// The events are durable already; recording their keys, in one write,
	// only lets later retries answer duplicate=true without the broker.
	recorded, err := s.deps.Store.PutIdempotencyKeys(ctx, recs, now)
	if err != nil {
		s.logger.Warn("record idempotency keys", "count", len(recs), "err", err)
		return out, nil
	}
	for k, rec := range recs {
		if recorded[k] != rec.EventID { // another publish recorded the key first
			i := seen[rec.EventID]
			out[i] = &hooklinev1.PublishResponse{EventId: recorded[k], Duplicate: true}
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
