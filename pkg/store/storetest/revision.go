package storetest

import (
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/store"
)

// testSubscriptionRevision: every committed subscription write moves the
// revision forward; reads and failed writes leave it alone.
func testSubscriptionRevision(t *testing.T, s store.Store) {
	c := ctx(t)
	rev := func() int64 {
		t.Helper()
		r, err := s.SubscriptionsRevision(c)
		must(t, err, "SubscriptionsRevision")
		return r
	}
	sub := NewSubscription("acme")
	last := rev()
	writes := []struct {
		name  string
		write func() error
		moves bool
	}{
		{"create", func() error { return s.CreateSubscription(c, sub, 0) }, true},
		{"get", func() error { _, err := s.GetSubscription(c, store.AllTenants(), sub.ID); return err }, false},
		{"list", func() error {
			_, _, err := s.ListSubscriptions(c, store.SubscriptionFilter{Scope: store.AllTenants()})
			return err
		}, false},
		{"update", func() error { u := *sub; u.URL = "https://elsewhere.example.com/"; return s.UpdateSubscription(c, &u) }, true},
		{"disable", func() error {
			return s.SetSubscriptionState(c, store.AllTenants(), sub.ID, store.SubscriptionDisabled, "operator", Base.Add(time.Minute))
		}, true},
		{"enable", func() error {
			return s.SetSubscriptionState(c, store.AllTenants(), sub.ID, store.SubscriptionEnabled, "", Base.Add(2*time.Minute))
		}, true},
		{"failing", func() error { return s.SetSubscriptionFailing(c, sub.ID, Base.Add(3*time.Minute)) }, true},
		{"update of unknown", func() error {
			u := *NewSubscription("acme")
			if err := s.UpdateSubscription(c, &u); err == nil {
				t.Fatal("update of an unknown subscription succeeded")
			}
			return nil
		}, false},
		{"delete", func() error { return s.DeleteSubscription(c, store.AllTenants(), sub.ID) }, true},
	}
	for _, w := range writes {
		must(t, w.write(), w.name)
		now := rev()
		switch {
		case w.moves && now <= last:
			t.Fatalf("after %s: revision %d, was %d; want it to grow", w.name, now, last)
		case !w.moves && now != last:
			t.Fatalf("after %s: revision %d, was %d; want it unchanged", w.name, now, last)
		}
		last = now
	}
}
