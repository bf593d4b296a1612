package storetest

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/store"
)

func testSubscriptionCreateGet(t *testing.T, s store.Store) {
	sub := NewSubscription("acme")
	// Times given in another zone come back equal, in UTC.
	zone := time.FixedZone("UTC+5", 5*3600)
	sub.CreatedAt = Base.In(zone)
	sub.UpdatedAt = Base.Add(time.Second).In(zone)
	sub.FailingSince = Base.Add(-time.Hour)
	must(t, s.CreateSubscription(ctx(t), sub, 0), "CreateSubscription")

	for _, scope := range []store.Scope{store.TenantScope("acme"), store.AllTenants()} {
		got, err := s.GetSubscription(ctx(t), scope, sub.ID)
		must(t, err, "GetSubscription")
		wantEqual(t, sub, got, "subscription (scope "+scope.String()+")")
	}
	_, err := s.GetSubscription(ctx(t), store.AllTenants(), "sub_missing")
	wantErr(t, err, store.ErrNotFound, "GetSubscription(missing)")
}

func testSubscriptionCreateIdempotent(t *testing.T, s store.Store) {
	sub := NewSubscription("acme")
	must(t, s.CreateSubscription(ctx(t), sub, 0), "CreateSubscription")
	same := *sub
	must(t, s.CreateSubscription(ctx(t), &same, 0), "repeated identical CreateSubscription")

	changed := *sub
	changed.URL = "https://elsewhere.example.com/"
	wantErr(t, s.CreateSubscription(ctx(t), &changed, 0), store.ErrConflict, "CreateSubscription(same id, other URL)")
	changed = *sub
	changed.Secrets = []store.Secret{NewSecret()}
	wantErr(t, s.CreateSubscription(ctx(t), &changed, 0), store.ErrConflict, "CreateSubscription(same id, other secret)")

	wantEqual(t, sub, ptr(getSubscription(t, s, sub.ID)), "subscription after conflicting creates")
}

func testSubscriptionOptionalFields(t *testing.T, s store.Store) {
	// nil RetrySchedule means the service default; an empty one means no
	// retries at all. The store must keep them apart.
	def := NewSubscription("acme")
	def.RetrySchedule = nil
	def.Timeout = 0
	def.Headers = nil
	def.Description = ""
	def.RateLimit = 0
	none := NewSubscription("acme")
	none.RetrySchedule = []time.Duration{}
	for _, sub := range []*store.Subscription{def, none} {
		must(t, s.CreateSubscription(ctx(t), sub, 0), "CreateSubscription")
	}
	gotDef := getSubscription(t, s, def.ID)
	if gotDef.RetrySchedule != nil {
		t.Fatalf("nil RetrySchedule came back as %#v", gotDef.RetrySchedule)
	}
	wantEqual(t, def, &gotDef, "subscription with defaults")
	gotNone := getSubscription(t, s, none.ID)
	if gotNone.RetrySchedule == nil || len(gotNone.RetrySchedule) != 0 {
		t.Fatalf("empty RetrySchedule came back as %#v", gotNone.RetrySchedule)
	}
}

func testSubscriptionTenantScoping(t *testing.T, s store.Store) {
	sub := NewSubscription("acme")
	must(t, s.CreateSubscription(ctx(t), sub, 0), "CreateSubscription")
	_, err := s.GetSubscription(ctx(t), store.TenantScope("globex"), sub.ID)
	wantErr(t, err, store.ErrNotFound, "GetSubscription(other tenant)")
	wantErr(t, s.DeleteSubscription(ctx(t), store.TenantScope("globex"), sub.ID), store.ErrNotFound, "DeleteSubscription(other tenant)")
	other := *sub
	other.Tenant = "globex"
	other.URL = "https://globex.example.com/"
	wantErr(t, s.UpdateSubscription(ctx(t), &other), store.ErrNotFound, "UpdateSubscription(other tenant)")
	wantEqual(t, sub, ptr(getSubscription(t, s, sub.ID)), "subscription after foreign-tenant writes")
}

func testSubscriptionUpdate(t *testing.T, s store.Store) {
	sub := NewSubscription("acme")
	must(t, s.CreateSubscription(ctx(t), sub, 0), "CreateSubscription")

	upd := *sub
	upd.URL = "https://new.example.com/hook"
	upd.Description = "moved"
	upd.EventTypes = []string{"*"}
	upd.Secrets = []store.Secret{NewSecret()}
	upd.Headers = map[string]string{"Authorization": "Bearer x"}
	upd.Timeout = 3 * time.Second
	upd.RetrySchedule = []time.Duration{time.Minute}
	upd.RateLimit = 7
	upd.UpdatedAt = Base.Add(time.Hour)
	must(t, s.UpdateSubscription(ctx(t), &upd), "UpdateSubscription")
	wantEqual(t, &upd, ptr(getSubscription(t, s, sub.ID)), "updated subscription")

	// Without a caller-set UpdatedAt the store sets one.
	again := upd
	again.UpdatedAt = time.Time{}
	again.Description = "again"
	must(t, s.UpdateSubscription(ctx(t), &again), "UpdateSubscription (zero UpdatedAt)")
	got := getSubscription(t, s, sub.ID)
	if got.UpdatedAt.IsZero() || got.Description != "again" {
		t.Fatalf("after update with zero UpdatedAt: UpdatedAt %v, Description %q", got.UpdatedAt, got.Description)
	}
	if !got.CreatedAt.Equal(sub.CreatedAt) {
		t.Fatalf("CreatedAt changed: %v, want %v", got.CreatedAt, sub.CreatedAt)
	}

	missing := NewSubscription("acme")
	wantErr(t, s.UpdateSubscription(ctx(t), missing), store.ErrNotFound, "UpdateSubscription(missing)")
}

func testSubscriptionDelete(t *testing.T, s store.Store) {
	sub := NewSubscription("acme")
	keep := NewSubscription("acme")
	must(t, s.CreateSubscription(ctx(t), sub, 0), "CreateSubscription")
	must(t, s.CreateSubscription(ctx(t), keep, 0), "CreateSubscription")
	must(t, s.DeleteSubscription(ctx(t), store.TenantScope("acme"), sub.ID), "DeleteSubscription")
	_, err := s.GetSubscription(ctx(t), store.AllTenants(), sub.ID)
	wantErr(t, err, store.ErrNotFound, "GetSubscription(deleted)")
	wantErr(t, s.DeleteSubscription(ctx(t), store.AllTenants(), sub.ID), store.ErrNotFound, "DeleteSubscription(again)")
	getSubscription(t, s, keep.ID)
}

func testSubscriptionSetState(t *testing.T, s store.Store) {
	sub := NewSubscription("acme")
	must(t, s.CreateSubscription(ctx(t), sub, 0), "CreateSubscription")
	must(t, s.SetSubscriptionFailing(ctx(t), sub.ID, Base.Add(-time.Hour)), "SetSubscriptionFailing")

	t1 := Base.Add(time.Minute)
	must(t, s.SetSubscriptionState(ctx(t), store.AllTenants(), sub.ID, store.SubscriptionDisabled, "410 Gone", t1), "disable")
	got := getSubscription(t, s, sub.ID)
	if got.State != store.SubscriptionDisabled || got.DisabledReason != "410 Gone" || !got.UpdatedAt.Equal(t1) {
		t.Fatalf("after disable: state %q reason %q updated %v", got.State, got.DisabledReason, got.UpdatedAt)
	}
	if !got.FailingSince.Equal(Base.Add(-time.Hour)) {
		t.Fatalf("disabling changed FailingSince to %v", got.FailingSince)
	}

	t2 := Base.Add(2 * time.Minute)
	must(t, s.SetSubscriptionState(ctx(t), store.AllTenants(), sub.ID, store.SubscriptionEnabled, "operator", t2), "enable")
	got = getSubscription(t, s, sub.ID)
	if got.State != store.SubscriptionEnabled || !got.FailingSince.IsZero() || !got.UpdatedAt.Equal(t2) {
		t.Fatalf("after enable: state %q failing since %v updated %v", got.State, got.FailingSince, got.UpdatedAt)
	}
	if got.DisabledReason != "" {
		t.Fatalf("after enable: DisabledReason %q, want empty", got.DisabledReason)
	}
	wantErr(t, s.SetSubscriptionState(ctx(t), store.AllTenants(), "sub_missing", store.SubscriptionDisabled, "x", t2), store.ErrNotFound, "SetSubscriptionState(missing)")
}

func testSubscriptionSetFailing(t *testing.T, s store.Store) {
	sub := NewSubscription("acme")
	must(t, s.CreateSubscription(ctx(t), sub, 0), "CreateSubscription")
	since := Base.Add(3 * time.Minute)
	must(t, s.SetSubscriptionFailing(ctx(t), sub.ID, since), "SetSubscriptionFailing")
	if got := getSubscription(t, s, sub.ID); !got.FailingSince.Equal(since) {
		t.Fatalf("FailingSince %v, want %v", got.FailingSince, since)
	}
	must(t, s.SetSubscriptionFailing(ctx(t), sub.ID, time.Time{}), "SetSubscriptionFailing(zero)")
	if got := getSubscription(t, s, sub.ID); !got.FailingSince.IsZero() {
		t.Fatalf("FailingSince %v after clearing", got.FailingSince)
	}
	wantErr(t, s.SetSubscriptionFailing(ctx(t), "sub_missing", since), store.ErrNotFound, "SetSubscriptionFailing(missing)")
}

func testSubscriptionList(t *testing.T, s store.Store) {
	var all []*store.Subscription
	for i := range 10 {
		tenant := "acme"
		if i >= 7 {
			tenant = "globex"
		}
		sub := NewSubscription(tenant)
		if i%3 == 0 {
			sub.State = store.SubscriptionDisabled
			sub.DisabledReason = "operator"
		}
		must(t, s.CreateSubscription(ctx(t), sub, 0), "CreateSubscription")
		all = append(all, sub)
	}
	every, acme, globex := store.AllTenants(), store.TenantScope("acme"), store.TenantScope("globex")
	for _, f := range []store.SubscriptionFilter{
		{Scope: every},
		{Scope: acme},
		{Scope: globex},
		{Scope: every, State: store.SubscriptionDisabled},
		{Scope: acme, State: store.SubscriptionEnabled},
		{Scope: store.TenantScope("nobody")},
	} {
		var want []store.Subscription
		for _, sub := range all {
			if f.Scope.Includes(sub.Tenant) && (f.State == "" || sub.State == f.State) {
				want = append(want, *sub)
			}
		}
		slices.SortFunc(want, func(a, b store.Subscription) int { return cmpStr(a.ID, b.ID) })
		for _, limit := range []int{0, 1, 3, 100} {
			f.Limit = limit
			got := collectPages(t, func(tok string) ([]store.Subscription, string, error) {
				f.PageToken = tok
				return s.ListSubscriptions(ctx(t), f)
			}, limit)
			wantEqual(t, want, got, "ListSubscriptions")
		}
	}
	_, _, err := s.ListSubscriptions(ctx(t), store.SubscriptionFilter{Scope: store.AllTenants(), PageToken: "%%%not a token"})
	if !errors.Is(err, store.ErrInvalidPageToken) {
		t.Fatalf("ListSubscriptions with a garbage token: err = %v, want ErrInvalidPageToken", err)
	}
}

// collectPages follows page tokens to the end, checking that no page
// exceeds limit (or 100 when limit is 0) and that an empty page ends the
// listing.
func collectPages[T any](t *testing.T, page func(token string) ([]T, string, error), limit int) []T {
	t.Helper()
	if limit == 0 {
		limit = 100
	}
	var all []T
	tok := ""
	for i := 0; ; i++ {
		if i > 1000 {
			t.Fatal("pagination does not end")
		}
		items, next, err := page(tok)
		must(t, err, "list page")
		if len(items) > limit {
			t.Fatalf("page of %d items, limit %d", len(items), limit)
		}
		if next != "" && len(items) == 0 {
			t.Fatal("empty page with a next token")
		}
		all = append(all, items...)
		if next == "" {
			return all
		}
		if next == tok {
			t.Fatal("page token did not advance")
		}
		tok = next
	}
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func ptr[T any](v T) *T { return &v }

// testSubscriptionLimit: a create that would take its tenant past the
// limit writes nothing and fails with ErrLimitExceeded; an identical
// repeat of a create that succeeded still succeeds; other tenants and
// unlimited creates (0) are unaffected.
func testSubscriptionLimit(t *testing.T, s store.Store) {
	c := ctx(t)
	const limit = 3
	var subs []*store.Subscription
	for range limit {
		sub := NewSubscription("acme")
		must(t, s.CreateSubscription(c, sub, limit), "CreateSubscription under the limit")
		subs = append(subs, sub)
	}
	rev, err := s.SubscriptionsRevision(c)
	must(t, err, "SubscriptionsRevision")

	over := NewSubscription("acme")
	wantErr(t, s.CreateSubscription(c, over, limit), store.ErrLimitExceeded, "CreateSubscription at the limit")
	_, err = s.GetSubscription(c, store.AllTenants(), over.ID)
	wantErr(t, err, store.ErrNotFound, "GetSubscription(refused create)")
	wantErr(t, s.CreateSubscription(c, NewSubscription("acme"), 1), store.ErrLimitExceeded, "CreateSubscription above a lower limit")
	if now, err := s.SubscriptionsRevision(c); err != nil || now != rev {
		t.Fatalf("revision %d after refused creates (err %v), want %d unchanged", now, err, rev)
	}

	same := *subs[0]
	must(t, s.CreateSubscription(c, &same, limit), "identical repeat of a create at the limit")
	changed := *subs[0]
	changed.URL = "https://elsewhere.example.com/"
	wantErr(t, s.CreateSubscription(c, &changed, limit), store.ErrConflict, "CreateSubscription(same id, other URL) at the limit")

	must(t, s.CreateSubscription(c, NewSubscription("globex"), limit), "CreateSubscription of another tenant")
	unlimited := NewSubscription("acme")
	must(t, s.CreateSubscription(c, unlimited, 0), "CreateSubscription without a limit")

	got, _, err := s.ListSubscriptions(c, store.SubscriptionFilter{Scope: store.TenantScope("acme")})
	must(t, err, "ListSubscriptions")
	var ids []string
	for _, sub := range got {
		ids = append(ids, sub.ID)
	}
	want := []string{subs[0].ID, subs[1].ID, subs[2].ID, unlimited.ID}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("acme's subscriptions %v, want %v", ids, want)
	}
}

// testSubscriptionLimitConcurrent: creates racing for the last places
// under the limit never take the tenant past it.
func testSubscriptionLimitConcurrent(t *testing.T, s store.Store) {
	c := ctx(t)
	const limit, tries = 4, 12
	subs := make([]*store.Subscription, tries)
	for i := range subs {
		subs[i] = NewSubscription("acme")
	}
	must(t, s.CreateSubscription(c, NewSubscription("acme"), limit), "first CreateSubscription")
	errs := make([]error, tries)
	var wg sync.WaitGroup
	for i := range tries {
		wg.Go(func() { errs[i] = s.CreateSubscription(c, subs[i], limit) })
	}
	wg.Wait()
	created := 1
	for i, err := range errs {
		switch {
		case err == nil:
			created++
		case errors.Is(err, store.ErrLimitExceeded):
		default:
			t.Fatalf("concurrent CreateSubscription %d: %v", i, err)
		}
	}
	got, _, err := s.ListSubscriptions(c, store.SubscriptionFilter{Scope: store.TenantScope("acme")})
	must(t, err, "ListSubscriptions")
	if created != limit || len(got) != limit {
		t.Fatalf("%d creates succeeded and %d subscriptions are stored, want %d (the limit)", created, len(got), limit)
	}
}
