package rowcodec

import (
	"fmt"
	"time"

	"github.com/hookline/hookline/pkg/store"
)

// SubscriptionColumns are the columns of the subscriptions table, in the
// order of Subscription.Dest and Subscription.Args.
const SubscriptionColumns = `id, tenant, url, description, event_types, secrets, headers, timeout_ms,
    retry_schedule, rate_limit, state, disabled_reason, failing_since, created_at, updated_at`

// secretJSON is the stored form of a store.Secret; times are unix ns.
type secretJSON struct {
	Value     string `json:"value"`
	CreatedAt int64  `json:"created_at"`
	ExpiresAt int64  `json:"expires_at,omitempty"`
}

// Subscription is a subscription in its column form, JSON columns as the
// text json.Marshal produces; nil optional fields are SQL NULL.
type Subscription struct {
	ID, Tenant, URL, Description string
	EventTypes, Secrets, Headers string
	TimeoutMS                    int64
	RetrySchedule                *string
	RateLimit                    int64
	State, DisabledReason        string
	FailingSince                 *int64
	CreatedAt, UpdatedAt         int64
}

// Dest are scan destinations for SubscriptionColumns.
func (r *Subscription) Dest() []any {
	return []any{&r.ID, &r.Tenant, &r.URL, &r.Description, &r.EventTypes, &r.Secrets, &r.Headers,
		&r.TimeoutMS, &r.RetrySchedule, &r.RateLimit, &r.State, &r.DisabledReason, &r.FailingSince,
		&r.CreatedAt, &r.UpdatedAt}
}

// Args are statement arguments for SubscriptionColumns.
func (r *Subscription) Args() []any {
	return []any{r.ID, r.Tenant, r.URL, r.Description, r.EventTypes, r.Secrets, r.Headers,
		r.TimeoutMS, r.RetrySchedule, r.RateLimit, r.State, r.DisabledReason, r.FailingSince,
		r.CreatedAt, r.UpdatedAt}
}

// Equal reports whether r and o hold the same content, comparing the
// optional values they point to.
func (r *Subscription) Equal(o *Subscription) bool {
	a, b := *r, *o
	if (a.RetrySchedule == nil) != (b.RetrySchedule == nil) || (a.FailingSince == nil) != (b.FailingSince == nil) {
		return false
	}
	if a.RetrySchedule != nil && *a.RetrySchedule != *b.RetrySchedule {
		return false
	}
	if a.FailingSince != nil && *a.FailingSince != *b.FailingSince {
		return false
	}
	a.RetrySchedule, b.RetrySchedule, a.FailingSince, b.FailingSince = nil, nil, nil, nil
	return a == b
}

// EncodeSubscription is s in column form. An empty State is stored as
// enabled; Timeout and RetrySchedule keep millisecond precision.
func EncodeSubscription(s *store.Subscription) (Subscription, error) {
	r := Subscription{
		ID: s.ID, Tenant: s.Tenant, URL: s.URL, Description: s.Description,
		TimeoutMS: s.Timeout.Milliseconds(), RateLimit: int64(s.RateLimit),
		State: string(s.State), DisabledReason: s.DisabledReason,
		FailingSince: NullNanos(s.FailingSince),
		CreatedAt:    Nanos(s.CreatedAt), UpdatedAt: Nanos(s.UpdatedAt),
	}
	if r.State == "" {
		r.State = string(store.SubscriptionEnabled)
	}
	var err error
	types := s.EventTypes
	if types == nil {
		types = []string{}
	}
	if r.EventTypes, err = MarshalJSON(types); err != nil {
		return r, fmt.Errorf("encode event types: %w", err)
	}
	secrets := make([]secretJSON, 0, len(s.Secrets))
	for _, sec := range s.Secrets {
		secrets = append(secrets, secretJSON{Value: sec.Value, CreatedAt: Nanos(sec.CreatedAt), ExpiresAt: Nanos(sec.ExpiresAt)})
	}
	if r.Secrets, err = MarshalJSON(secrets); err != nil {
		return r, fmt.Errorf("encode secrets: %w", err)
	}
	headers := s.Headers
	if headers == nil {
		headers = map[string]string{}
	}
	if r.Headers, err = MarshalJSON(headers); err != nil { // map keys are sorted: stable text
		return r, fmt.Errorf("encode headers: %w", err)
	}
	if s.RetrySchedule != nil {
		ms := make([]int64, len(s.RetrySchedule))
		for i, d := range s.RetrySchedule {
			ms[i] = d.Milliseconds()
		}
		js, err := MarshalJSON(ms)
		if err != nil {
			return r, fmt.Errorf("encode retry schedule: %w", err)
		}
		r.RetrySchedule = &js
	}
	return r, nil
}

// Decode is the subscription r holds.
func (r *Subscription) Decode() (store.Subscription, error) {
	s := store.Subscription{
		ID: r.ID, Tenant: r.Tenant, URL: r.URL, Description: r.Description,
		Timeout: time.Duration(r.TimeoutMS) * time.Millisecond, RateLimit: int(r.RateLimit),
		State: store.SubscriptionState(r.State), DisabledReason: r.DisabledReason,
		FailingSince: FromNullNanos(r.FailingSince),
		CreatedAt:    FromNanos(r.CreatedAt), UpdatedAt: FromNanos(r.UpdatedAt),
	}
	if err := UnmarshalJSON(r.EventTypes, &s.EventTypes); err != nil {
		return s, fmt.Errorf("decode event types of %s: %w", r.ID, err)
	}
	if len(s.EventTypes) == 0 {
		s.EventTypes = nil
	}
	var secrets []secretJSON
	if err := UnmarshalJSON(r.Secrets, &secrets); err != nil {
		return s, fmt.Errorf("decode secrets of %s: %w", r.ID, err)
	}
	for _, sec := range secrets {
		s.Secrets = append(s.Secrets, store.Secret{Value: sec.Value, CreatedAt: FromNanos(sec.CreatedAt), ExpiresAt: FromNanos(sec.ExpiresAt)})
	}
	if err := UnmarshalJSON(r.Headers, &s.Headers); err != nil {
		return s, fmt.Errorf("decode headers of %s: %w", r.ID, err)
	}
	if len(s.Headers) == 0 {
		s.Headers = nil
	}
	if r.RetrySchedule != nil {
		var ms []int64
		if err := UnmarshalJSON(*r.RetrySchedule, &ms); err != nil {
			return s, fmt.Errorf("decode retry schedule of %s: %w", r.ID, err)
		}
		s.RetrySchedule = make([]time.Duration, len(ms))
		for i, v := range ms {
			s.RetrySchedule[i] = time.Duration(v) * time.Millisecond
		}
	}
	return s, nil
}

// ValidState reports whether st is a state a subscription can be in.
func ValidState(st store.SubscriptionState) bool {
	return st == store.SubscriptionEnabled || st == store.SubscriptionDisabled
}
