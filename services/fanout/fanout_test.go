package fanout

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/poll"
	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/storetest"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/services/internal/deps"
	"github.com/hookline/hookline/services/internal/servicetest"
	"github.com/hookline/hookline/services/internal/wire"
)

func TestConfigValidateNamesEveryFlag(t *testing.T) {
	t.Parallel()
	err := new(Config).Validate()
	if err == nil {
		t.Fatal("zero config validated")
	}
	for _, flag := range []string{"--fanout-concurrency", "--fanout-ack-wait", "--fanout-store-batch", "--fanout-subscription-refresh"} {
		if !strings.Contains(err.Error(), flag) {
			t.Errorf("error %q does not name %s", err, flag)
		}
	}
	if err := new(DefaultConfig()).Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
}

// failingListStore is the real store whose ListSubscriptions fails until
// healed, as when the database is unreachable while fanout starts.
type failingListStore struct {
	store.Store
	healed atomic.Bool
}

func (f *failingListStore) ListSubscriptions(ctx context.Context, fl store.SubscriptionFilter) ([]store.Subscription, string, error) {
	if !f.healed.Load() {
		return nil, "", errors.New("store unreachable")
	}
	return f.Store.ListSubscriptions(ctx, fl)
}

// TestEventWaitsForFirstSubscriptionLoad: an event consumed before the
// subscription cache ever loaded is not fanned out to nobody; it waits and
// reaches the subscription once the store answers.
func TestEventWaitsForFirstSubscriptionLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tr := servicetest.Transport(t)
	st := &failingListStore{Store: servicetest.Store(t)}
	sub := storetest.NewSubscription("acme")
	if err := st.CreateSubscription(ctx, sub, 0); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.SubscriptionRefresh, cfg.RetryDelay = 20*time.Millisecond, 20*time.Millisecond
	svc, err := New(cfg, deps.Deps[Store]{Store: st, Transport: tr, Logger: servicetest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- svc.Run(runCtx) }()
	defer func() { cancel(); <-done }()

	now := time.Now().UTC()
	msg := wire.EventMessage(&store.Event{ID: "evt_1", Tenant: "acme", Type: "order.created", Payload: []byte(`{}`), OccurredAt: now, ReceivedAt: now})
	if _, err := tr.Publish(ctx, transport.Events, msg); err != nil {
		t.Fatal(err)
	}
	// The event is redelivered while the cache cannot load; it must not be
	// acknowledged with no deliveries.
	got, _, err := st.ListDeliveries(ctx, store.DeliveryFilter{Scope: store.AllTenants(), EventID: "evt_1"})
	if err != nil || len(got) != 0 {
		t.Fatalf("deliveries before the first load: %v, %v", got, err)
	}
	st.healed.Store(true)
	poll.Until(t, "the event fanned out once the store came back", func() bool {
		got, _, err := st.ListDeliveries(ctx, store.DeliveryFilter{Scope: store.AllTenants(), EventID: "evt_1"})
		if err != nil {
			t.Fatal(err)
		}
		return len(got) == 1 && got[0].SubscriptionID == sub.ID
	})
}
