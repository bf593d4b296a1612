package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/store"
)

// tenantWorld is one tenant's rows: a subscription, an event, its
// delivery, an attempt of it and an API key.
type tenantWorld struct {
	Fixture
	attempt store.Attempt
	key     store.APIKey
}

func seedTenant(t *testing.T, s store.Store, tenant string) tenantWorld {
	t.Helper()
	w := tenantWorld{Fixture: Seed(t, s, tenant, Base)}
	w.attempt = NewAttempt(w.Delivery, 1, Base.Add(time.Second))
	must(t, s.RecordAttempts(ctx(t), []store.AttemptResult{result(w.attempt, store.DeliveryRetrying)}), "RecordAttempts")
	w.key = NewAPIKey(tenant, Base)
	must(t, s.CreateAPIKey(ctx(t), &w.key), "CreateAPIKey")
	return w
}

// testScopeZeroRefused: every tenant-facing method refuses the zero
// Scope with ErrNoScope, and writes nothing.
func testScopeZeroRefused(t *testing.T, s store.Store) {
	c := ctx(t)
	w := seedTenant(t, s, "acme")
	rev, err := s.SubscriptionsRevision(c)
	must(t, err, "SubscriptionsRevision")
	for _, zero := range []store.Scope{{}, store.TenantScope("")} {
		for _, tc := range []struct {
			name string
			call func() error
		}{
			{"GetSubscription", func() error { _, err := s.GetSubscription(c, zero, w.Sub.ID); return err }},
			{"ListSubscriptions", func() error {
				_, _, err := s.ListSubscriptions(c, store.SubscriptionFilter{Scope: zero})
				return err
			}},
			{"DeleteSubscription", func() error { return s.DeleteSubscription(c, zero, w.Sub.ID) }},
			{"SetSubscriptionState", func() error {
				return s.SetSubscriptionState(c, zero, w.Sub.ID, store.SubscriptionDisabled, "operator", Base.Add(time.Hour))
			}},
			{"GetEvent", func() error { _, err := s.GetEvent(c, zero, w.Event.ID); return err }},
			{"GetDelivery", func() error { _, err := s.GetDelivery(c, zero, w.Delivery.ID); return err }},
			{"ListDeliveries", func() error {
				_, _, err := s.ListDeliveries(c, store.DeliveryFilter{Scope: zero, SubscriptionID: w.Sub.ID})
				return err
			}},
			{"ListAttempts", func() error {
				_, _, err := s.ListAttempts(c, store.AttemptFilter{Scope: zero, DeliveryID: w.Delivery.ID})
				return err
			}},
			{"ListAPIKeys", func() error {
				_, _, err := s.ListAPIKeys(c, store.APIKeyFilter{Scope: zero, IncludeRevoked: true})
				return err
			}},
			{"RevokeAPIKey", func() error { return s.RevokeAPIKey(c, zero, w.key.ID, Base.Add(time.Hour)) }},
		} {
			wantErr(t, tc.call(), store.ErrNoScope, tc.name+" with the zero scope")
		}
	}
	wantEqual(t, w.Sub, ptr(getSubscription(t, s, w.Sub.ID)), "subscription after refused writes")
	if now, err := s.SubscriptionsRevision(c); err != nil || now != rev {
		t.Fatalf("revision %d after refused writes (err %v), want %d", now, err, rev)
	}
	k, err := s.GetAPIKey(c, w.key.ID)
	must(t, err, "GetAPIKey")
	if !k.RevokedAt.IsZero() {
		t.Fatalf("key revoked at %v by a refused revocation", k.RevokedAt)
	}
}

// testScopeTenantIsolation: a tenant's scope never sees another tenant's
// subscription, event, delivery, attempt or API key, by id or in a list
// (even one filtered by the other tenant's ids), and cannot change them;
// AllTenants sees both.
func testScopeTenantIsolation(t *testing.T, s store.Store) {
	c := ctx(t)
	a, b := seedTenant(t, s, "acme"), seedTenant(t, s, "globex")
	op := NewAPIKey("", Base)
	must(t, s.CreateAPIKey(c, &op), "CreateAPIKey(operator)")
	sa, sb, all := store.TenantScope("acme"), store.TenantScope("globex"), store.AllTenants()

	for _, tc := range []struct {
		scope   store.Scope
		w       tenantWorld
		visible bool
	}{
		{sa, a, true}, {sa, b, false}, {sb, b, true}, {sb, a, false}, {all, a, true}, {all, b, true},
	} {
		what := func(m string) string { return m + " of " + tc.w.Sub.Tenant + " in scope " + tc.scope.String() }
		check := func(err error, m string) {
			t.Helper()
			if tc.visible {
				must(t, err, what(m))
			} else {
				wantErr(t, err, store.ErrNotFound, what(m))
			}
		}
		sub, err := s.GetSubscription(c, tc.scope, tc.w.Sub.ID)
		check(err, "GetSubscription")
		if tc.visible {
			wantEqual(t, tc.w.Sub, sub, what("subscription"))
		}
		ev, err := s.GetEvent(c, tc.scope, tc.w.Event.ID)
		check(err, "GetEvent")
		if tc.visible {
			wantEqual(t, &tc.w.Event, ev, what("event"))
		}
		d, err := s.GetDelivery(c, tc.scope, tc.w.Delivery.ID)
		check(err, "GetDelivery")
		if tc.visible && d.ID != tc.w.Delivery.ID {
			t.Fatalf("%s: got delivery %s", what("GetDelivery"), d.ID)
		}

		var wantAttempts []store.Attempt
		var wantDeliveries []string
		if tc.visible {
			wantAttempts, wantDeliveries = []store.Attempt{tc.w.attempt}, []string{tc.w.Delivery.ID}
		}
		for _, f := range []store.AttemptFilter{
			{Scope: tc.scope, DeliveryID: tc.w.Delivery.ID},
			{Scope: tc.scope, SubscriptionID: tc.w.Sub.ID},
			{Scope: tc.scope, EventID: tc.w.Event.ID},
		} {
			wantEqual(t, wantAttempts, listAllAttempts(t, s, f), what("ListAttempts filtered by id"))
		}
		for _, f := range []store.DeliveryFilter{
			{Scope: tc.scope, SubscriptionID: tc.w.Sub.ID},
			{Scope: tc.scope, EventID: tc.w.Event.ID},
		} {
			if got := listDeliveryIDs(t, s, f); !slices.Equal(got, wantDeliveries) {
				t.Fatalf("%s: %v, want %v", what("ListDeliveries filtered by id"), got, wantDeliveries)
			}
		}
	}

	// Unfiltered lists.
	for _, tc := range []struct {
		scope store.Scope
		ws    []tenantWorld
		keys  []store.APIKey
	}{
		{sa, []tenantWorld{a}, []store.APIKey{a.key}},
		{sb, []tenantWorld{b}, []store.APIKey{b.key}},
		{store.TenantScope("nobody"), nil, nil},
		{all, []tenantWorld{a, b}, []store.APIKey{a.key, b.key, op}},
	} {
		var subs, deliveries []string
		var attempts []store.Attempt
		for _, w := range tc.ws {
			subs, deliveries = append(subs, w.Sub.ID), append(deliveries, w.Delivery.ID)
			attempts = append(attempts, w.attempt)
		}
		slices.Sort(subs)
		slices.Sort(deliveries)
		slices.SortFunc(attempts, newestAttemptFirst)
		keys := slices.Clone(tc.keys)
		slices.SortFunc(keys, func(x, y store.APIKey) int { return cmpStr(x.ID, y.ID) })

		gotSubs := collectPages(t, func(tok string) ([]store.Subscription, string, error) {
			return s.ListSubscriptions(c, store.SubscriptionFilter{Scope: tc.scope, PageToken: tok})
		}, 0)
		var subIDs []string
		for _, sub := range gotSubs {
			subIDs = append(subIDs, sub.ID)
		}
		if !slices.Equal(subIDs, subs) {
			t.Fatalf("ListSubscriptions(%s): %v, want %v", tc.scope, subIDs, subs)
		}
		gotDeliveries := listDeliveryIDs(t, s, store.DeliveryFilter{Scope: tc.scope})
		slices.Sort(gotDeliveries)
		if !slices.Equal(gotDeliveries, deliveries) {
			t.Fatalf("ListDeliveries(%s): %v, want %v", tc.scope, gotDeliveries, deliveries)
		}
		wantEqual(t, attempts, listAllAttempts(t, s, store.AttemptFilter{Scope: tc.scope}), "ListAttempts("+tc.scope.String()+")")
		for _, revoked := range []bool{false, true} {
			wantEqual(t, keys, listAllAPIKeys(t, s, store.APIKeyFilter{Scope: tc.scope, IncludeRevoked: revoked}, 0),
				"ListAPIKeys("+tc.scope.String()+")")
		}
	}

	// Writes outside the scope find nothing and change nothing.
	later := Base.Add(time.Hour)
	wantErr(t, s.DeleteSubscription(c, sa, b.Sub.ID), store.ErrNotFound, "DeleteSubscription(acme scope, globex's)")
	wantErr(t, s.SetSubscriptionState(c, sa, b.Sub.ID, store.SubscriptionDisabled, "x", later), store.ErrNotFound,
		"SetSubscriptionState(acme scope, globex's)")
	wantErr(t, s.RevokeAPIKey(c, sa, b.key.ID, later), store.ErrNotFound, "RevokeAPIKey(acme scope, globex's)")
	wantErr(t, s.RevokeAPIKey(c, sa, op.ID, later), store.ErrNotFound, "RevokeAPIKey(acme scope, operator's)")
	wantEqual(t, b.Sub, ptr(getSubscription(t, s, b.Sub.ID)), "globex's subscription after acme's writes")
	for _, k := range []store.APIKey{b.key, op} {
		got, err := s.GetAPIKey(c, k.ID)
		must(t, err, "GetAPIKey")
		wantEqual(t, &k, got, "key after another scope's revocation")
	}
	// Within it they do.
	must(t, s.SetSubscriptionState(c, sb, b.Sub.ID, store.SubscriptionDisabled, "operator", later), "SetSubscriptionState(own)")
	must(t, s.RevokeAPIKey(c, all, op.ID, later), "RevokeAPIKey(operator's, all tenants)")
	must(t, s.DeleteSubscription(c, sa, a.Sub.ID), "DeleteSubscription(own)")
	_, err := s.GetSubscription(c, all, a.Sub.ID)
	wantErr(t, err, store.ErrNotFound, "GetSubscription(deleted)")
}

// listDeliveryIDs lists the ids of every delivery f selects, newest first.
func listDeliveryIDs(t *testing.T, s store.Store, f store.DeliveryFilter) []string {
	t.Helper()
	ds := collectPages(t, func(tok string) ([]store.Delivery, string, error) {
		f.PageToken = tok
		return s.ListDeliveries(ctx(t), f)
	}, f.Limit)
	var ids []string
	for _, d := range ds {
		ids = append(ids, d.ID)
	}
	return ids
}
