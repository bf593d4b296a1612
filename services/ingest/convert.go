package ingest

import (
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hookline/hookline/pkg/store"
	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
)

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func fromTS(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime()
}

// secretValues says whether a subscription's secret values go into a
// response: only those of CreateSubscription, RotateSubscriptionSecret and
// GetSubscriptionSecret.
type secretValues bool

const (
	withoutSecretValues secretValues = false
	withSecretValues    secretValues = true
)

// subscriptionToProto converts s, with its active secrets' times and,
// when values says so, their values.
func subscriptionToProto(s *store.Subscription, now time.Time, values secretValues) *hooklinev1.Subscription {
	out := &hooklinev1.Subscription{
		Id:               s.ID,
		Tenant:           s.Tenant,
		Url:              s.URL,
		Description:      s.Description,
		EventTypes:       s.EventTypes,
		Headers:          s.Headers,
		RateLimit:        int32(s.RateLimit),
		State:            stateToProto(s.State),
		DisabledReason:   s.DisabledReason,
		FailingSince:     ts(s.FailingSince),
		CreateTime:       ts(s.CreatedAt),
		UpdateTime:       ts(s.UpdatedAt),
		SendTraceContext: s.SendTraceContext,
	}
	if s.Timeout > 0 {
		out.Timeout = durationpb.New(s.Timeout)
	}
	for _, d := range s.RetrySchedule {
		out.RetrySchedule = append(out.RetrySchedule, durationpb.New(d))
	}
	out.Secrets = secretsToProto(s.Secrets, now, values)
	return out
}

// secretsToProto converts the secrets active at now.
func secretsToProto(secrets []store.Secret, now time.Time, values secretValues) []*hooklinev1.Secret {
	var out []*hooklinev1.Secret
	for _, sec := range secrets {
		if !sec.ActiveAt(now) {
			continue
		}
		p := &hooklinev1.Secret{CreateTime: ts(sec.CreatedAt), ExpireTime: ts(sec.ExpiresAt)}
		if values {
			p.Value = sec.Value
		}
		out = append(out, p)
	}
	return out
}

// apiKeyToProto describes k; the key itself is never in it.
func apiKeyToProto(k *store.APIKey) *hooklinev1.APIKey {
	return &hooklinev1.APIKey{
		Id: k.ID, Tenant: k.Tenant, Name: k.Name, Scopes: k.Scopes,
		CreateTime: ts(k.CreatedAt), ExpireTime: ts(k.ExpiresAt), RevokeTime: ts(k.RevokedAt), LastUsedTime: ts(k.LastUsedAt),
	}
}

func stateToProto(s store.SubscriptionState) hooklinev1.SubscriptionState {
	switch s {
	case store.SubscriptionEnabled:
		return hooklinev1.SubscriptionState_SUBSCRIPTION_STATE_ENABLED
	case store.SubscriptionDisabled:
		return hooklinev1.SubscriptionState_SUBSCRIPTION_STATE_DISABLED
	}
	return hooklinev1.SubscriptionState_SUBSCRIPTION_STATE_UNSPECIFIED
}

func stateFromProto(s hooklinev1.SubscriptionState) store.SubscriptionState {
	switch s {
	case hooklinev1.SubscriptionState_SUBSCRIPTION_STATE_ENABLED:
		return store.SubscriptionEnabled
	case hooklinev1.SubscriptionState_SUBSCRIPTION_STATE_DISABLED:
		return store.SubscriptionDisabled
	}
	return ""
}

var deliveryStatuses = map[store.DeliveryStatus]hooklinev1.DeliveryStatus{
	store.DeliveryPending:   hooklinev1.DeliveryStatus_DELIVERY_STATUS_PENDING,
	store.DeliverySucceeded: hooklinev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED,
	store.DeliveryRetrying:  hooklinev1.DeliveryStatus_DELIVERY_STATUS_RETRYING,
	store.DeliveryParked:    hooklinev1.DeliveryStatus_DELIVERY_STATUS_PARKED,
	store.DeliveryDead:      hooklinev1.DeliveryStatus_DELIVERY_STATUS_DEAD,
}

func statusFromProto(s hooklinev1.DeliveryStatus) store.DeliveryStatus {
	for k, v := range deliveryStatuses {
		if v == s {
			return k
		}
	}
	return ""
}

func deliveryToProto(d *store.Delivery) *hooklinev1.Delivery {
	return &hooklinev1.Delivery{
		Id:              d.ID,
		EventId:         d.EventID,
		SubscriptionId:  d.SubscriptionID,
		Tenant:          d.Tenant,
		EventType:       d.EventType,
		Status:          deliveryStatuses[d.Status],
		Attempts:        int32(d.Attempts),
		NextAttemptTime: ts(d.NextAttemptAt),
		LastStatusCode:  int32(d.LastStatusCode),
		LastError:       d.LastError,
		CreateTime:      ts(d.CreatedAt),
		UpdateTime:      ts(d.UpdatedAt),
	}
}

func attemptToProto(a *store.Attempt) *hooklinev1.Attempt {
	return &hooklinev1.Attempt{
		DeliveryId:     a.DeliveryID,
		Number:         int32(a.Number),
		EventId:        a.EventID,
		SubscriptionId: a.SubscriptionID,
		Tenant:         a.Tenant,
		StartTime:      ts(a.StartedAt),
		Duration:       durationpb.New(a.Duration),
		StatusCode:     int32(a.StatusCode),
		ResponseBody:   string(a.ResponseBody),
		Error:          a.Error,
		TraceId:        traceIDOf(a.TraceParent),
	}
}

// traceIDOf is the trace id of a W3C traceparent
// ("00-<32 hex trace id>-<16 hex span id>-<2 hex flags>"): its 32 hex
// digits, or "" when tp is empty or not a valid traceparent (an invalid
// version, an all-zero id, a digit that is not lowercase hex). A version
// above 00 may carry more fields after the flags, as the specification
// allows.
func traceIDOf(tp string) string {
	const size = 55 // version 00: 2+1+32+1+16+1+2
	if len(tp) < size || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' {
		return ""
	}
	version, traceID, spanID, flags := tp[:2], tp[3:35], tp[36:52], tp[53:55]
	if !lowerHex(version) || version == "ff" || !lowerHex(flags) ||
		!lowerHex(traceID) || allZero(traceID) || !lowerHex(spanID) || allZero(spanID) {
		return ""
	}
	if len(tp) > size && (version == "00" || tp[size] != '-') {
		return ""
	}
	return traceID
}

func lowerHex(s string) bool {
	for i := range len(s) {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool { return strings.Trim(s, "0") == "" }

func eventToProto(e *store.Event) *hooklinev1.Event {
	return &hooklinev1.Event{
		Id:          e.ID,
		Tenant:      e.Tenant,
		EventType:   e.Type,
		Payload:     e.Payload,
		Labels:      e.Labels,
		OccurredAt:  ts(e.OccurredAt),
		ReceiveTime: ts(e.ReceivedAt),
	}
}
