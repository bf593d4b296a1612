package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hookline/hookline/pkg/eventtype"
	"github.com/hookline/hookline/pkg/ids"
	"github.com/hookline/hookline/pkg/signature"
	"github.com/hookline/hookline/pkg/store"
	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
)

// adminServer implements hooklinev1.AdminServiceServer over the store.
type adminServer struct {
	hooklinev1.UnimplementedAdminServiceServer
	s *Service
}

var _ hooklinev1.AdminServiceServer = (*adminServer)(nil)

// storeErr maps a store error to a gRPC status naming what was looked for.
func storeErr(what string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return status.Errorf(codes.NotFound, "%s not found", what)
	case errors.Is(err, store.ErrInvalidPageToken):
		return status.Error(codes.InvalidArgument, "page_token: not a token returned by an earlier page of this list")
	case errors.Is(err, store.ErrConflict):
		return status.Errorf(codes.AlreadyExists, "%s already exists with different content", what)
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Errorf(codes.Unavailable, "%s: store: %v", what, err)
}

func pageSize(v *violations, n int32) int {
	switch {
	case n < 0:
		v.add("page_size", "must not be negative")
	case n == 0:
		return 50
	case n > 1000:
		return 1000
	}
	return int(n)
}

func (a *adminServer) CreateSubscription(ctx context.Context, req *hooklinev1.CreateSubscriptionRequest) (*hooklinev1.Subscription, error) {
	sub := req.GetSubscription()
	var v violations
	if sub == nil {
		v.add("subscription", "must be set")
		return nil, v.err()
	}
	validateTenant(&v, "subscription.tenant", sub.GetTenant())
	a.s.validateSubscription(ctx, &v, sub, nil)
	if err := v.err(); err != nil {
		return nil, err
	}
	now := a.s.now().UTC()
	secret, err := signature.NewSecret()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "generate secret: %v", err)
	}
	st := &store.Subscription{
		ID:        ids.NewSubscription(now),
		Tenant:    sub.GetTenant(),
		Secrets:   []store.Secret{{Value: secret, CreatedAt: now}},
		State:     store.SubscriptionEnabled,
		CreatedAt: now,
		UpdatedAt: now,
	}
	applySubscription(st, sub, nil)
	if err := a.s.deps.Store.CreateSubscription(ctx, st); err != nil {
		return nil, storeErr("subscription "+st.ID, err)
	}
	a.s.cachePut(st)
	a.s.logger.Info("subscription created", "subscription_id", st.ID, "tenant", st.Tenant, "url", st.URL)
	return subscriptionToProto(st, now), nil
}

// applySubscription copies the settable fields named in fields (nil: all)
// from p into s.
func applySubscription(s *store.Subscription, p *hooklinev1.Subscription, fields map[string]bool) {
	has := func(f string) bool { return fields == nil || fields[f] }
	if has("url") {
		s.URL = p.GetUrl()
	}
	if has("description") {
		s.Description = p.GetDescription()
	}
	if has("event_types") {
		s.EventTypes = append([]string(nil), p.GetEventTypes()...)
	}
	if has("headers") {
		s.Headers = nil
		if len(p.GetHeaders()) > 0 {
			s.Headers = make(map[string]string, len(p.GetHeaders()))
			for k, v := range p.GetHeaders() {
				s.Headers[k] = v
			}
		}
	}
	if has("timeout") {
		s.Timeout = 0
		if p.GetTimeout() != nil {
			s.Timeout = p.GetTimeout().AsDuration()
		}
	}
	if has("retry_schedule") {
		s.RetrySchedule = nil
		for _, d := range p.GetRetrySchedule() {
			s.RetrySchedule = append(s.RetrySchedule, d.AsDuration())
		}
	}
	if has("rate_limit") {
		s.RateLimit = int(p.GetRateLimit())
	}
}

var updatableFields = map[string]bool{
	"url": true, "description": true, "event_types": true, "headers": true,
	"timeout": true, "retry_schedule": true, "rate_limit": true,
}

func (a *adminServer) getSubscription(ctx context.Context, tenant, id string) (*store.Subscription, error) {
	var v violations
	validateID(&v, "id", id, ids.PrefixSubscription)
	if err := v.err(); err != nil {
		return nil, err
	}
	s, err := a.s.deps.Store.GetSubscription(ctx, tenant, id)
	if err != nil {
		return nil, storeErr("subscription "+id, err)
	}
	return s, nil
}

func (a *adminServer) GetSubscription(ctx context.Context, req *hooklinev1.GetSubscriptionRequest) (*hooklinev1.Subscription, error) {
	s, err := a.getSubscription(ctx, req.GetTenant(), req.GetId())
	if err != nil {
		return nil, err
	}
	return subscriptionToProto(s, a.s.now()), nil
}

func (a *adminServer) ListSubscriptions(ctx context.Context, req *hooklinev1.ListSubscriptionsRequest) (*hooklinev1.ListSubscriptionsResponse, error) {
	var v violations
	limit := pageSize(&v, req.GetPageSize())
	if err := v.err(); err != nil {
		return nil, err
	}
	subs, next, err := a.s.deps.Store.ListSubscriptions(ctx, store.SubscriptionFilter{
		Tenant: req.GetTenant(), State: stateFromProto(req.GetState()), Limit: limit, PageToken: req.GetPageToken(),
	})
	if err != nil {
		return nil, storeErr("subscriptions", err)
	}
	now := a.s.now()
	out := &hooklinev1.ListSubscriptionsResponse{NextPageToken: next}
	for i := range subs {
		out.Subscriptions = append(out.Subscriptions, subscriptionToProto(&subs[i], now))
	}
	return out, nil
}

func (a *adminServer) UpdateSubscription(ctx context.Context, req *hooklinev1.UpdateSubscriptionRequest) (*hooklinev1.Subscription, error) {
	p := req.GetSubscription()
	var v violations
	if p == nil {
		v.add("subscription", "must be set")
		return nil, v.err()
	}
	fields := map[string]bool{}
	for _, path := range req.GetUpdateMask().GetPaths() {
		if !updatableFields[path] {
			v.add("update_mask", "%q cannot be updated; updatable are url, description, event_types, headers, timeout, retry_schedule, rate_limit", path)
		}
		fields[path] = true
	}
	if len(fields) == 0 {
		fields = nil // no mask: replace every updatable field
	}
	a.s.validateSubscription(ctx, &v, p, fields)
	if err := v.err(); err != nil {
		return nil, err
	}
	s, err := a.getSubscription(ctx, p.GetTenant(), p.GetId())
	if err != nil {
		return nil, err
	}
	applySubscription(s, p, fields)
	s.UpdatedAt = a.s.now().UTC()
	if err := a.s.deps.Store.UpdateSubscription(ctx, s); err != nil {
		return nil, storeErr("subscription "+s.ID, err)
	}
	a.s.cachePut(s)
	return subscriptionToProto(s, a.s.now()), nil
}

func (a *adminServer) DeleteSubscription(ctx context.Context, req *hooklinev1.DeleteSubscriptionRequest) (*hooklinev1.DeleteSubscriptionResponse, error) {
	var v violations
	validateID(&v, "id", req.GetId(), ids.PrefixSubscription)
	if err := v.err(); err != nil {
		return nil, err
	}
	if err := a.s.deps.Store.DeleteSubscription(ctx, req.GetTenant(), req.GetId()); err != nil {
		return nil, storeErr("subscription "+req.GetId(), err)
	}
	a.s.cacheRemove(req.GetId())
	return &hooklinev1.DeleteSubscriptionResponse{}, nil
}

func (a *adminServer) RotateSubscriptionSecret(ctx context.Context, req *hooklinev1.RotateSubscriptionSecretRequest) (*hooklinev1.Subscription, error) {
	ttl := a.s.cfg.DefaultSecretTTL
	if d := req.GetPreviousSecretTtl(); d != nil {
		var v violations
		if err := d.CheckValid(); err != nil || d.AsDuration() < 0 || d.AsDuration() > 30*24*time.Hour {
			v.add("previous_secret_ttl", "must be between 0s and 720h")
			return nil, v.err()
		}
		ttl = d.AsDuration()
	}
	s, err := a.getSubscription(ctx, req.GetTenant(), req.GetId())
	if err != nil {
		return nil, err
	}
	now := a.s.now().UTC()
	secret, err := signature.NewSecret()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "generate secret: %v", err)
	}
	kept := []store.Secret{{Value: secret, CreatedAt: now}}
	// Earlier secrets keep signing for ttl at most; expired ones go.
	for _, old := range s.Secrets {
		if ttl == 0 || !old.ActiveAt(now) {
			continue
		}
		if exp := now.Add(ttl); old.ExpiresAt.IsZero() || exp.Before(old.ExpiresAt) {
			old.ExpiresAt = exp
		}
		kept = append(kept, old)
	}
	s.Secrets = kept
	s.UpdatedAt = now
	if err := a.s.deps.Store.UpdateSubscription(ctx, s); err != nil {
		return nil, storeErr("subscription "+s.ID, err)
	}
	a.s.cachePut(s)
	return subscriptionToProto(s, now), nil
}

func (a *adminServer) setState(ctx context.Context, tenant, id string, state store.SubscriptionState, reason string) (*hooklinev1.Subscription, error) {
	s, err := a.getSubscription(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	now := a.s.now().UTC()
	if err := a.s.deps.Store.SetSubscriptionState(ctx, id, state, reason, now); err != nil {
		return nil, storeErr("subscription "+id, err)
	}
	if s, err = a.s.deps.Store.GetSubscription(ctx, tenant, id); err != nil {
		return nil, storeErr("subscription "+id, err)
	}
	a.s.cachePut(s)
	a.s.logger.Info("subscription "+string(state), "subscription_id", id, "tenant", s.Tenant, "reason", reason)
	return subscriptionToProto(s, now), nil
}

func (a *adminServer) EnableSubscription(ctx context.Context, req *hooklinev1.EnableSubscriptionRequest) (*hooklinev1.Subscription, error) {
	return a.setState(ctx, req.GetTenant(), req.GetId(), store.SubscriptionEnabled, "")
}

func (a *adminServer) DisableSubscription(ctx context.Context, req *hooklinev1.DisableSubscriptionRequest) (*hooklinev1.Subscription, error) {
	reason := req.GetReason()
	if reason == "" {
		reason = "disabled by an operator"
	}
	return a.setState(ctx, req.GetTenant(), req.GetId(), store.SubscriptionDisabled, reason)
}

// SendTestEvent stores an event, a delivery of it to this subscription
// only, and its first attempt due now, in one transaction; the scheduler
// releases it (told at once by a due signal).
func (a *adminServer) SendTestEvent(ctx context.Context, req *hooklinev1.SendTestEventRequest) (*hooklinev1.SendTestEventResponse, error) {
	var v violations
	typ := req.GetEventType()
	if typ == "" {
		typ = "hookline.test"
	}
	if err := eventtype.Validate(typ); err != nil {
		v.add("event_type", "%v", err)
	}
	payload := req.GetPayload()
	if len(payload) == 0 {
		payload = []byte(`{"type":"hookline.test","message":"test event from Hookline"}`)
	} else if len(payload) > a.s.cfg.MaxPayloadBytes {
		v.add("payload", "%d bytes exceeds the limit of %d bytes", len(payload), a.s.cfg.MaxPayloadBytes)
	} else if !json.Valid(payload) {
		v.add("payload", "is not valid JSON")
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	s, err := a.getSubscription(ctx, req.GetTenant(), req.GetId())
	if err != nil {
		return nil, err
	}
	now := a.s.now().UTC()
	ev := store.Event{ID: ids.NewEvent(now), Tenant: s.Tenant, Type: typ, Payload: payload, OccurredAt: now, ReceivedAt: now}
	d := store.Delivery{
		ID: ids.Delivery(ev.ID, s.ID), EventID: ev.ID, SubscriptionID: s.ID, Tenant: s.Tenant, EventType: typ,
		Status: store.DeliveryPending, NextAttemptAt: now, CreatedAt: now, UpdatedAt: now,
	}
	if err := a.s.deps.Store.InsertFanout(ctx, []store.Event{ev}, []store.Delivery{d}); err != nil {
		return nil, storeErr("test event", err)
	}
	a.s.announceDue(ctx, now)
	return &hooklinev1.SendTestEventResponse{EventId: ev.ID, DeliveryId: d.ID}, nil
}

func (a *adminServer) ListDeliveries(ctx context.Context, req *hooklinev1.ListDeliveriesRequest) (*hooklinev1.ListDeliveriesResponse, error) {
	var v violations
	limit := pageSize(&v, req.GetPageSize())
	if err := v.err(); err != nil {
		return nil, err
	}
	ds, next, err := a.s.deps.Store.ListDeliveries(ctx, store.DeliveryFilter{
		Tenant: req.GetTenant(), SubscriptionID: req.GetSubscriptionId(), EventID: req.GetEventId(),
		Status: statusFromProto(req.GetStatus()), CreatedAfter: fromTS(req.GetCreatedAfter()), CreatedBefore: fromTS(req.GetCreatedBefore()),
		Limit: limit, PageToken: req.GetPageToken(),
	})
	if err != nil {
		return nil, storeErr("deliveries", err)
	}
	out := &hooklinev1.ListDeliveriesResponse{NextPageToken: next}
	for i := range ds {
		out.Deliveries = append(out.Deliveries, deliveryToProto(&ds[i]))
	}
	return out, nil
}

func (a *adminServer) GetDelivery(ctx context.Context, req *hooklinev1.GetDeliveryRequest) (*hooklinev1.Delivery, error) {
	var v violations
	validateID(&v, "id", req.GetId(), ids.PrefixDelivery)
	if err := v.err(); err != nil {
		return nil, err
	}
	d, err := a.s.deps.Store.GetDelivery(ctx, req.GetTenant(), req.GetId())
	if err != nil {
		return nil, storeErr("delivery "+req.GetId(), err)
	}
	return deliveryToProto(d), nil
}

func (a *adminServer) ListAttempts(ctx context.Context, req *hooklinev1.ListAttemptsRequest) (*hooklinev1.ListAttemptsResponse, error) {
	var v violations
	limit := pageSize(&v, req.GetPageSize())
	if err := v.err(); err != nil {
		return nil, err
	}
	as, next, err := a.s.deps.Store.ListAttempts(ctx, store.AttemptFilter{
		Tenant: req.GetTenant(), DeliveryID: req.GetDeliveryId(), SubscriptionID: req.GetSubscriptionId(), EventID: req.GetEventId(),
		Limit: limit, PageToken: req.GetPageToken(),
	})
	if err != nil {
		return nil, storeErr("attempts", err)
	}
	out := &hooklinev1.ListAttemptsResponse{NextPageToken: next}
	for i := range as {
		out.Attempts = append(out.Attempts, attemptToProto(&as[i]))
	}
	return out, nil
}

// Redeliver schedules the delivery's next attempt now; the scheduler
// releases it to the delivery service. The delivery keeps its id.
func (a *adminServer) Redeliver(ctx context.Context, req *hooklinev1.RedeliverRequest) (*hooklinev1.Delivery, error) {
	var v violations
	validateID(&v, "delivery_id", req.GetDeliveryId(), ids.PrefixDelivery)
	if err := v.err(); err != nil {
		return nil, err
	}
	d, err := a.s.deps.Store.GetDelivery(ctx, req.GetTenant(), req.GetDeliveryId())
	if err != nil {
		return nil, storeErr("delivery "+req.GetDeliveryId(), err)
	}
	now := a.s.now().UTC()
	if err := a.s.deps.Store.ScheduleRetries(ctx, []store.ScheduledRetry{{DeliveryID: d.ID, Attempt: d.Attempts + 1, DueAt: now}}); err != nil {
		return nil, storeErr("delivery "+d.ID, err)
	}
	a.s.announceDue(ctx, now)
	if d, err = a.s.deps.Store.GetDelivery(ctx, req.GetTenant(), req.GetDeliveryId()); err != nil {
		return nil, storeErr("delivery "+req.GetDeliveryId(), err)
	}
	return deliveryToProto(d), nil
}

func (a *adminServer) GetEvent(ctx context.Context, req *hooklinev1.GetEventRequest) (*hooklinev1.Event, error) {
	var v violations
	validateID(&v, "id", req.GetId(), ids.PrefixEvent)
	if err := v.err(); err != nil {
		return nil, err
	}
	e, err := a.s.deps.Store.GetEvent(ctx, req.GetTenant(), req.GetId())
	if err != nil {
		return nil, storeErr(fmt.Sprintf("event %s", req.GetId()), err)
	}
	return eventToProto(e), nil
}
