package subcache

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/store"
)

// listCounting is the real store, counting full listings.
type listCounting struct {
	store.Store
	lists atomic.Int64
}

func (l *listCounting) ListSubscriptions(ctx context.Context, f store.SubscriptionFilter) ([]store.Subscription, string, error) {
	l.lists.Add(1)
	return l.Store.ListSubscriptions(ctx, f)
}

// TestSyncSeesWritesOfOtherReplicas: a subscription written straight to
// the store (as another replica would) is in the cache once Sync returns,
// with no refresh interval passing; and Sync does not reload when nothing
// changed.
func TestSyncSeesWritesOfOtherReplicas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := &listCounting{Store: newStore(t)}
	c := New(st, time.Hour, nil)
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if n := st.lists.Load(); n != 1 {
		t.Fatalf("Sync with nothing changed listed again: %d listings; want 1", n)
	}

	tests := []struct {
		name  string
		write func(t *testing.T)
		want  []string // acme subscriptions matching order.created afterwards
	}{
		{"create", func(t *testing.T) { create(t, st, sub("sub_a", "acme", "order.*")) }, []string{"sub_a"}},
		{"update", func(t *testing.T) {
			s := sub("sub_a", "acme", "invoice.*")
			if err := st.UpdateSubscription(ctx, s); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"create another", func(t *testing.T) { create(t, st, sub("sub_b", "acme", "*")) }, []string{"sub_b"}},
		{"delete", func(t *testing.T) {
			if err := st.DeleteSubscription(ctx, store.AllTenants(), "sub_b"); err != nil {
				t.Fatal(err)
			}
		}, nil},
	}
	for _, tt := range tests {
		tt.write(t)
		if err := c.Sync(ctx); err != nil {
			t.Fatalf("%s: Sync: %v", tt.name, err)
		}
		var got []string
		for _, s := range c.Matching("acme", "order.created") {
			got = append(got, s.ID)
		}
		if len(got) != len(tt.want) || (len(got) == 1 && got[0] != tt.want[0]) {
			t.Fatalf("after %s: matching %v; want %v", tt.name, got, tt.want)
		}
	}
}

// TestConcurrentSyncsShareChecks: many concurrent Sync calls all return
// and are served by far fewer reloads than calls.
func TestConcurrentSyncsShareChecks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := &listCounting{Store: newStore(t)}
	c := New(st, time.Hour, nil)
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	create(t, st, sub("sub_a", "acme", "*"))
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			if err := c.Sync(ctx); err != nil {
				t.Error(err)
			}
			if len(c.Matching("acme", "x.y")) != 1 {
				t.Error("Sync returned before the new subscription was loaded")
			}
		})
	}
	wg.Wait()
	if n := st.lists.Load(); n > 3 {
		t.Fatalf("%d listings for one change; want at most 3", n)
	}
}

func create(t *testing.T, st store.Store, s *store.Subscription) {
	t.Helper()
	if err := st.CreateSubscription(context.Background(), s, 0); err != nil {
		t.Fatal(err)
	}
}
