package delivery

import (
	"context"
	"time"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/services/internal/subcache"
)

// Store is what the delivery service needs of the store: the subscriptions
// (through its cache), the delivery a redelivered message names, and the
// writes that settle a message. Every store.Store is one.
type Store interface {
	subcache.Source
	GetDelivery(ctx context.Context, scope store.Scope, id string) (*store.Delivery, error)
	RecordAttempts(ctx context.Context, results []store.AttemptResult) error
	ScheduleRetries(ctx context.Context, rs []store.ScheduledRetry) error
	MarkDead(ctx context.Context, deliveryIDs []string, reason string, now time.Time) error
	ParkDeliveries(ctx context.Context, deliveryIDs []string, now time.Time) error
	SetSubscriptionState(ctx context.Context, scope store.Scope, id string, state store.SubscriptionState, reason string, now time.Time) error
	SetSubscriptionFailing(ctx context.Context, id string, since time.Time) error
	Ready(ctx context.Context) error
}

var _ Store = store.Store(nil)
