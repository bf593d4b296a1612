package subcache

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/services/internal/servicetest"
)

func newStore(t *testing.T) store.Store {
	t.Helper()
	return servicetest.Store(t)
}

func sub(id, tenant string, patterns ...string) *store.Subscription {
	now := time.Now().UTC().Truncate(time.Millisecond)
	return &store.Subscription{ID: id, Tenant: tenant, URL: "http://127.0.0.1/" + id, EventTypes: patterns,
		Secrets: []store.Secret{{Value: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", CreatedAt: now}},
		State:   store.SubscriptionEnabled, CreatedAt: now, UpdatedAt: now}
}

func TestMatchingAfterRefresh(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newStore(t)
	for _, s := range []*store.Subscription{
		sub("sub_a", "acme", "order.*"),
		sub("sub_b", "acme", "*"),
		sub("sub_c", "acme", "invoice.paid"),
		sub("sub_d", "other", "*"),
	} {
		if err := st.CreateSubscription(ctx, s, 0); err != nil {
			t.Fatal(err)
		}
	}
	c := New(st, time.Hour, nil)
	if c.Loaded() {
		t.Fatal("loaded before Refresh")
	}
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		tenant, typ string
		want        []string
	}{
		{"acme", "order.created", []string{"sub_a", "sub_b"}},
		{"acme", "invoice.paid", []string{"sub_b", "sub_c"}},
		{"acme", "customer.updated", []string{"sub_b"}},
		{"other", "order.created", []string{"sub_d"}},
		{"nobody", "order.created", nil},
	}
	for _, tt := range tests {
		got := map[string]bool{}
		for _, s := range c.Matching(tt.tenant, tt.typ) {
			got[s.ID] = true
		}
		if len(got) != len(tt.want) {
			t.Errorf("Matching(%s, %s) = %v, want %v", tt.tenant, tt.typ, got, tt.want)
		}
		for _, id := range tt.want {
			if !got[id] {
				t.Errorf("Matching(%s, %s) lacks %s", tt.tenant, tt.typ, id)
			}
		}
	}
}

func TestGetFallsBackToStoreAndPutRemove(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newStore(t)
	c := New(st, time.Hour, nil)
	if _, err := c.Get(ctx, "sub_x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get of a missing subscription = %v, want ErrNotFound", err)
	}
	s := sub("sub_x", "acme", "*")
	if err := st.CreateSubscription(ctx, s, 0); err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(ctx, "sub_x")
	if err != nil || got.URL != s.URL {
		t.Fatalf("Get = %v, %v", got, err)
	}
	if len(c.Matching("acme", "a.b")) != 1 {
		t.Fatal("a subscription fetched by Get is not matched")
	}
	s2 := *s
	s2.EventTypes = []string{"invoice.*"}
	c.Put(&s2)
	if len(c.Matching("acme", "a.b")) != 0 || len(c.Matching("acme", "invoice.x")) != 1 {
		t.Fatal("Put did not replace the old version")
	}
	c.Remove("sub_x")
	if len(c.Matching("acme", "invoice.x")) != 0 {
		t.Fatal("Remove left the subscription matched")
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	c := New(st, 5*time.Millisecond, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !c.Loaded() {
		select {
		case <-deadline:
			t.Fatal("never loaded")
		case <-tick.C:
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// pausingStore is the real store with ListSubscriptions held until the
// test lets it go, to interleave a local write with a reload.
type pausingStore struct {
	store.Store
	started chan struct{}
	release chan struct{}
}

func (p *pausingStore) ListSubscriptions(ctx context.Context, f store.SubscriptionFilter) ([]store.Subscription, string, error) {
	subs, next, err := p.Store.ListSubscriptions(ctx, f)
	close(p.started)
	<-p.release
	return subs, next, err
}

func TestRefreshDoesNotUndoConcurrentPut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newStore(t)
	old := sub("sub_p", "acme", "*")
	if err := st.CreateSubscription(ctx, old, 0); err != nil {
		t.Fatal(err)
	}
	ps := &pausingStore{Store: st, started: make(chan struct{}), release: make(chan struct{})}
	c := New(ps, time.Hour, nil)
	done := make(chan error)
	go func() { done <- c.Refresh(ctx) }()
	<-ps.started // the reload has read the old version
	disabled := *old
	disabled.State = store.SubscriptionDisabled
	c.Put(&disabled) // a local write lands while the reload is in flight
	close(ps.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(ctx, "sub_p")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != store.SubscriptionDisabled {
		t.Fatalf("state %q after the reload: the reload undid the local write", got.State)
	}
}
