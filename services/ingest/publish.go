package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/hookline/hookline/pkg/ids"
	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/transport"
	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
	"github.com/hookline/hookline/services/internal/tenantlimit"
	"github.com/hookline/hookline/services/internal/wire"
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
	if err := s.allowPublish(ctx, reqs); err != nil {
		return nil, err
	}
	now := s.now().UTC()
	known, err := s.lookupKeys(ctx, reqs)
	if err != nil {
		return nil, err
	}
	b, err := s.plan(reqs, known, now)
	if err != nil {
		return nil, err
	}
	if len(b.msgs) == 0 {
		return b.out, nil
	}
	results, err := s.deps.Transport.Publish(ctx, transport.Events, b.msgs...)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "publish to the events stream (not accepted; retry with the same idempotency key): %v", err)
	}
	for k, r := range results {
		if r.Duplicate {
			b.out[b.idx[k]].Duplicate = true
		}
	}
	if conflict := s.recordKeys(ctx, b, now); conflict != nil && len(reqs) == 1 {
		return nil, conflict
	}
	return b.out, nil
}

// lookupKeys reads, in one store call, the event recorded for every
// idempotency key of reqs that has one.
func (s *Service) lookupKeys(ctx context.Context, reqs []*hooklinev1.PublishRequest) (map[store.IdempotencyKey]store.IdempotencyRecord, error) {
	var keys []store.IdempotencyKey
	for _, r := range reqs {
		if r.GetIdempotencyKey() != "" {
			keys = append(keys, store.IdempotencyKey{Tenant: r.GetTenant(), Key: r.GetIdempotencyKey()})
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	known, err := s.deps.Store.LookupIdempotencyKeys(ctx, keys)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "look up idempotency keys: %v", err)
	}
	return known, nil
}

// publishBatch is what one publish call sends and answers.
type publishBatch struct {
	out  []*hooklinev1.PublishResponse // one per request
	msgs []transport.Message           // the events to publish
	idx  []int                         // out index of each message
	recs []store.IdempotencyRecord     // the keys to record once published
	seen map[string]int                // event id -> out index
}

// fingerprint identifies what a publish request asks for, to tell a retry
// of it (same idempotency key, same fingerprint) from a reuse of the key
// for something else: the event type and the payload.
func fingerprint(r *hooklinev1.PublishRequest) []byte {
	h := sha256.New()
	h.Write([]byte(r.GetEventType()))
	h.Write([]byte{0})
	h.Write(r.GetPayload())
	return h.Sum(nil)
}

// keyReused is the refusal of an idempotency key used before for another
// request: AlreadyExists, naming the field and the event the key was
// first used for.
func keyReused(prefix, eventID string) error {
	st := status.New(codes.AlreadyExists, fmt.Sprintf(
		"%sidempotency_key: already used for event %s with a different event type or payload; use a new key for a new event", prefix, eventID))
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: "IDEMPOTENCY_KEY_REUSED", Domain: "hookline.dev",
		Metadata: map[string]string{"event_id": eventID}}); err == nil {
		st = d
	}
	return st.Err()
}

// plan answers the requests whose key is known already (duplicate=true with
// the recorded event) or repeated within the call, and gives every other
// request its event id and EVENTS message. A key known or repeated with
// another event type or payload refuses the whole call (AlreadyExists):
// nothing of it is published.
func (s *Service) plan(reqs []*hooklinev1.PublishRequest, known map[store.IdempotencyKey]store.IdempotencyRecord, now time.Time) (publishBatch, error) {
	b := publishBatch{
		out:  make([]*hooklinev1.PublishResponse, len(reqs)),
		msgs: make([]transport.Message, 0, len(reqs)),
		idx:  make([]int, 0, len(reqs)),
		seen: map[string]int{},
	}
	prefix := func(i int) string {
		if len(reqs) == 1 {
			return ""
		}
		return fmt.Sprintf("events[%d].", i)
	}
	for i, r := range reqs {
		var id string
		if key := r.GetIdempotencyKey(); key != "" {
			k := store.IdempotencyKey{Tenant: r.GetTenant(), Key: key}
			fp := fingerprint(r)
			if rec, found := known[k]; found {
				if len(rec.Fingerprint) > 0 && !bytes.Equal(rec.Fingerprint, fp) {
					return b, keyReused(prefix(i), rec.EventID)
				}
				b.out[i] = &hooklinev1.PublishResponse{EventId: rec.EventID, Duplicate: true}
				continue
			}
			id = ids.EventFromIdempotencyKey(r.GetTenant(), key)
			if j, dup := b.seen[id]; dup {
				if !bytes.Equal(fingerprint(reqs[j]), fp) {
					return b, keyReused(prefix(i), id)
				}
				b.out[i] = &hooklinev1.PublishResponse{EventId: b.out[j].GetEventId(), Duplicate: true}
				continue
			}
			b.recs = append(b.recs, store.IdempotencyRecord{IdempotencyKey: k, EventID: id, Fingerprint: fp})
		} else {
			id = ids.NewEvent(now)
		}
		b.seen[id] = i
		b.out[i] = &hooklinev1.PublishResponse{EventId: id}
		b.msgs = append(b.msgs, wire.EventMessage(acceptedEvent(id, r, now)))
		b.idx = append(b.idx, i)
	}
	return b, nil
}

// recordKeys records the idempotency keys of published events, in one
// write. The events are durable already; the record only lets later
// retries answer duplicate=true without the broker, so a failure is logged,
// not returned. A key another publish recorded first turns this answer
// into a duplicate of that event (the broker dropped this one as a
// duplicate of the same id) — unless that publish asked for another event
// type or payload: then the answer is the reuse refusal, returned for a
// single publish; within a batch, whose other events are accepted, the
// event's answer stays duplicate and the reuse is logged.
func (s *Service) recordKeys(ctx context.Context, b publishBatch, now time.Time) error {
	if len(b.recs) == 0 {
		return nil
	}
	recorded, err := s.deps.Store.PutIdempotencyKeys(ctx, b.recs, now)
	if err != nil {
		s.logger.Warn("record idempotency keys", "count", len(b.recs), "err", err)
		return nil
	}
	var conflict error
	for k, rec := range b.recs {
		kept := recorded[k]
		reused := len(kept.Fingerprint) > 0 && !bytes.Equal(kept.Fingerprint, rec.Fingerprint)
		if reused {
			conflict = keyReused("", kept.EventID)
			s.logger.Warn("idempotency key reused concurrently with another payload", "tenant", rec.Tenant, "event_id", kept.EventID)
		}
		if kept.EventID != rec.EventID || reused {
			b.out[b.seen[rec.EventID]] = &hooklinev1.PublishResponse{EventId: kept.EventID, Duplicate: true}
		}
	}
	return conflict
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

// retryAfterHeader is the response metadata carrying a rate limit's hint,
// in whole seconds (rounded up) as HTTP's Retry-After; the HTTP API sends
// it as that header.
const retryAfterHeader = "retry-after"

// allowPublish takes reqs' events from their tenants' publish buckets, or
// refuses with ResourceExhausted carrying when to retry (a RetryInfo
// detail and the retry-after header) or, for a batch that can never fit,
// InvalidArgument.
func (s *Service) allowPublish(ctx context.Context, reqs []*hooklinev1.PublishRequest) error {
	// Nearly every call is one tenant's (a tenant key's always are): count
	// it without building a map.
	first, same := reqs[0].GetTenant(), true
	for _, r := range reqs[1:] {
		if r.GetTenant() != first {
			same = false
			break
		}
	}
	if same {
		return s.allowTenant(ctx, first, len(reqs))
	}
	counts := map[string]int{}
	for _, r := range reqs {
		counts[r.GetTenant()]++
	}
	for tenant, n := range counts {
		if err := s.allowTenant(ctx, tenant, n); err != nil {
			return err
		}
	}
	return nil
}

// allowTenant takes n events from tenant's publish bucket, or refuses as
// allowPublish says.
func (s *Service) allowTenant(ctx context.Context, tenant string, n int) error {
	err := s.limits.AllowPublish(tenant, n)
	var rl *tenantlimit.RateLimitError
	var big *tenantlimit.BatchTooLargeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &rl):
		secs := int64((rl.RetryAfter + time.Second - 1) / time.Second)
		_ = grpc.SetHeader(ctx, metadata.Pairs(retryAfterHeader, strconv.FormatInt(secs, 10)))
		st := status.New(codes.ResourceExhausted, err.Error())
		if d, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(rl.RetryAfter)}); derr == nil {
			st = d
		}
		return st.Err()
	case errors.As(err, &big):
		var v violations
		v.add("events", "%v", err)
		return v.err()
	}
	return status.Errorf(codes.Internal, "publish limit: %v", err)
}
