package storetest

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/store"
)

// testSecretsRoundTrip: signing secrets (none, one, several, with and
// without expiry) come back as written, by id, in lists and after
// updates.
func testSecretsRoundTrip(t *testing.T, s store.Store) {
	c := ctx(t)
	none := NewSubscription("acme")
	none.Secrets = nil
	one := NewSubscription("acme")
	one.Secrets = one.Secrets[1:]
	many := NewSubscription("acme")
	for i := range 5 {
		sec := NewSecret()
		sec.CreatedAt = Base.Add(time.Duration(i) * time.Hour)
		if i%2 == 0 {
			sec.ExpiresAt = sec.CreatedAt.Add(24 * time.Hour)
		}
		many.Secrets = append(many.Secrets, sec)
	}
	subs := []*store.Subscription{none, one, many}
	for _, sub := range subs {
		must(t, s.CreateSubscription(c, sub, 0), "CreateSubscription")
		wantEqual(t, sub, ptr(getSubscription(t, s, sub.ID)), "subscription with secrets")
	}
	got, _, err := s.ListSubscriptions(c, store.SubscriptionFilter{Scope: store.TenantScope("acme")})
	must(t, err, "ListSubscriptions")
	want := []store.Subscription{*none, *one, *many}
	slices.SortFunc(want, func(a, b store.Subscription) int { return cmpStr(a.ID, b.ID) })
	wantEqual(t, want, got, "listed subscriptions with secrets")

	upd := *many
	upd.Secrets = []store.Secret{NewSecret()}
	upd.UpdatedAt = Base.Add(time.Hour)
	must(t, s.UpdateSubscription(c, &upd), "UpdateSubscription")
	wantEqual(t, &upd, ptr(getSubscription(t, s, many.ID)), "subscription with rotated secrets")
	upd.Secrets = nil
	must(t, s.UpdateSubscription(c, &upd), "UpdateSubscription (no secrets)")
	wantEqual(t, &upd, ptr(getSubscription(t, s, many.ID)), "subscription without secrets")

	// Every row is sealed with the current key already.
	n, err := s.ReencryptSecrets(c, 100)
	if err != nil || n != 0 {
		t.Fatalf("ReencryptSecrets with one key: moved %d, err %v; want 0", n, err)
	}
}

// testSecretsKeyRotation: a store reopened with a new current key (the old
// one kept) reads what the old key sealed and seals new writes with the
// new key; ReencryptSecrets moves the old rows, limit by limit, to 0; the
// old key can then be dropped. A keyring lacking a key some row is sealed
// with is refused at open, with ErrMissingSecretKey.
func testSecretsKeyRotation(t *testing.T, open Opener) {
	s1 := mustOpen(t, open, Keyring("k1"))
	c := ctx(t)
	a, b, d := NewSubscription("acme"), NewSubscription("acme"), NewSubscription("globex")
	for _, sub := range []*store.Subscription{a, b, d} {
		must(t, s1.CreateSubscription(c, sub, 0), "CreateSubscription")
	}
	must(t, s1.Close(), "Close")

	refused := func(ids ...string) {
		t.Helper()
		s, err := reopen(t, open, Keyring(ids...))
		if err == nil {
			s.Close()
			t.Fatalf("opening with keyring %v succeeded", ids)
		}
		wantErr(t, err, store.ErrMissingSecretKey, "opening with keyring "+strings.Join(ids, ","))
		if !strings.Contains(err.Error(), "k1") {
			t.Fatalf("opening with keyring %v: %q does not name the missing key k1", ids, err)
		}
	}
	refused("k3")
	refused("k2")

	s2, err := reopen(t, open, Keyring("k2", "k1"))
	must(t, err, "reopen with keyring k2,k1")
	for _, sub := range []*store.Subscription{a, b, d} {
		wantEqual(t, sub, ptr(getSubscription(t, s2, sub.ID)), "subscription sealed with the old key")
	}
	// New writes are sealed with k2: a create, and an update.
	fresh := NewSubscription("acme")
	must(t, s2.CreateSubscription(c, fresh, 0), "CreateSubscription")
	upd := *a
	upd.Secrets = []store.Secret{NewSecret()}
	upd.UpdatedAt = Base.Add(time.Minute)
	must(t, s2.UpdateSubscription(c, &upd), "UpdateSubscription")
	rev, err := s2.SubscriptionsRevision(c)
	must(t, err, "SubscriptionsRevision")

	if _, err := s2.ReencryptSecrets(c, 0); err == nil {
		t.Fatal("ReencryptSecrets with limit 0 succeeded")
	}
	// Only b and d are left under k1: the create and the update used k2.
	total := 0
	for i, want := range []int{1, 1, 0, 0} {
		n, err := s2.ReencryptSecrets(c, 1+9*min(i, 1))
		must(t, err, "ReencryptSecrets")
		if n != want {
			t.Fatalf("ReencryptSecrets call %d moved %d, want %d", i+1, n, want)
		}
		total += n
	}
	if total != 2 {
		t.Fatalf("ReencryptSecrets moved %d in all, want 2", total)
	}
	if now, err := s2.SubscriptionsRevision(c); err != nil || now != rev {
		t.Fatalf("revision %d after ReencryptSecrets (err %v), want %d: nothing changed", now, err, rev)
	}
	want := []*store.Subscription{&upd, b, d, fresh}
	for _, sub := range want {
		wantEqual(t, sub, ptr(getSubscription(t, s2, sub.ID)), "subscription after ReencryptSecrets")
	}
	must(t, s2.Close(), "Close")

	// k1 can go now; without k2 nothing opens.
	s3, err := reopen(t, open, Keyring("k2"))
	must(t, err, "reopen with keyring k2 after ReencryptSecrets")
	for _, sub := range want {
		wantEqual(t, sub, ptr(getSubscription(t, s3, sub.ID)), "subscription read with the new key alone")
	}
	got, _, err := s3.ListSubscriptions(c, store.SubscriptionFilter{Scope: store.AllTenants()})
	must(t, err, "ListSubscriptions")
	if len(got) != len(want) {
		t.Fatalf("listed %d subscriptions, want %d", len(got), len(want))
	}
	must(t, s3.Close(), "Close")
	s, err := reopen(t, open, Keyring("k1"))
	if err == nil {
		s.Close()
		t.Fatal("opening with the dropped key alone succeeded")
	}
	wantErr(t, err, store.ErrMissingSecretKey, "opening with the dropped key alone")
}

// testSecretsReopen: sealed secrets survive a reopen with the same
// keyring; a store cannot be opened without a keyring.
func testSecretsReopen(t *testing.T, open Opener) {
	s1 := mustOpen(t, open, Keyring("k1"))
	sub := NewSubscription("acme")
	must(t, s1.CreateSubscription(ctx(t), sub, 0), "CreateSubscription")
	must(t, s1.Close(), "Close")
	s2, err := reopen(t, open, Keyring("k1"))
	must(t, err, "reopen")
	wantEqual(t, sub, ptr(getSubscription(t, s2, sub.ID)), "subscription after reopening")
	if s, err := open(t, nil); err == nil {
		s.Close()
		t.Fatal("opening without a keyring succeeded")
	}
}

// testSecretsReencryptConcurrent: ReencryptSecrets running beside updates
// of the same subscriptions loses none of the updates, and leaves every
// row sealed with the current key.
func testSecretsReencryptConcurrent(t *testing.T, open Opener) {
	s1 := mustOpen(t, open, Keyring("k1"))
	c := ctx(t)
	subs := make([]*store.Subscription, 24)
	for i := range subs {
		subs[i] = NewSubscription("acme")
		must(t, s1.CreateSubscription(c, subs[i], 0), "CreateSubscription")
	}
	must(t, s1.Close(), "Close")
	s2, err := reopen(t, open, Keyring("k2", "k1"))
	must(t, err, "reopen with keyring k2,k1")

	updated := make([]store.Subscription, len(subs))
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			n, err := s2.ReencryptSecrets(c, 3)
			if err != nil || n == 0 {
				errs <- err
				return
			}
		}
	})
	wg.Go(func() {
		// Every other subscription, from both ends, so that some are
		// updated before ReencryptSecrets reaches them and some after.
		for i := range subs {
			j := i / 2
			if i%2 == 1 {
				j = len(subs) - 1 - i/2
			}
			if j%2 == 1 {
				continue
			}
			u := *subs[j]
			u.Secrets = []store.Secret{NewSecret()}
			u.UpdatedAt = Base.Add(time.Duration(i+1) * time.Second)
			if err := s2.UpdateSubscription(c, &u); err != nil {
				errs <- err
				return
			}
			updated[j] = u
		}
		errs <- nil
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err, "concurrent ReencryptSecrets and UpdateSubscription")
	}
	n, err := s2.ReencryptSecrets(c, 100)
	if err != nil || n != 0 {
		t.Fatalf("ReencryptSecrets after the run: moved %d, err %v; want 0", n, err)
	}
	must(t, s2.Close(), "Close")
	s3, err := reopen(t, open, Keyring("k2"))
	must(t, err, "reopen with keyring k2")
	for j, sub := range subs {
		want := sub
		if j%2 == 0 {
			want = &updated[j]
		}
		wantEqual(t, want, ptr(getSubscription(t, s3, sub.ID)), "subscription after concurrent re-encryption")
	}
}
