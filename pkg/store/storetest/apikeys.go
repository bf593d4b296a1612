package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/store"
)

func listAllAPIKeys(t *testing.T, s store.Store, f store.APIKeyFilter, limit int) []store.APIKey {
	t.Helper()
	f.Limit = limit
	return collectPages(t, func(tok string) ([]store.APIKey, string, error) {
		f.PageToken = tok
		return s.ListAPIKeys(ctx(t), f)
	}, limit)
}

func testAPIKeyCreateGet(t *testing.T, s store.Store) {
	c := ctx(t)
	zone := time.FixedZone("UTC-3", -3*3600)
	k := NewAPIKey("acme", Base.In(zone))
	k.ExpiresAt = Base.Add(90 * 24 * time.Hour)
	must(t, s.CreateAPIKey(c, &k), "CreateAPIKey")
	got, err := s.GetAPIKey(c, k.ID)
	must(t, err, "GetAPIKey")
	wantEqual(t, &k, got, "api key")

	same := k
	must(t, s.CreateAPIKey(c, &same), "repeated identical CreateAPIKey")
	for name, change := range map[string]func(*store.APIKey){
		"hash":    func(k *store.APIKey) { k.Hash = []byte("other") },
		"tenant":  func(k *store.APIKey) { k.Tenant = "globex" },
		"scopes":  func(k *store.APIKey) { k.Scopes = []string{"operator"} },
		"expires": func(k *store.APIKey) { k.ExpiresAt = time.Time{} },
	} {
		changed := k
		change(&changed)
		wantErr(t, s.CreateAPIKey(c, &changed), store.ErrConflict, "CreateAPIKey(same id, other "+name+")")
	}
	got, err = s.GetAPIKey(c, k.ID)
	must(t, err, "GetAPIKey")
	wantEqual(t, &k, got, "api key after conflicting creates")

	// An operator key, and a key with nothing optional.
	op := NewAPIKey("", Base)
	bare := store.APIKey{ID: NewAPIKey("acme", Base).ID, Tenant: "acme", Hash: []byte{1, 2, 3}, CreatedAt: Base}
	for _, k := range []store.APIKey{op, bare} {
		must(t, s.CreateAPIKey(c, &k), "CreateAPIKey")
		got, err := s.GetAPIKey(c, k.ID)
		must(t, err, "GetAPIKey")
		wantEqual(t, &k, got, "api key "+k.ID)
	}

	_, err = s.GetAPIKey(c, "hk_missing")
	wantErr(t, err, store.ErrNotFound, "GetAPIKey(missing)")
	if err := s.CreateAPIKey(c, &store.APIKey{Tenant: "acme", CreatedAt: Base}); err == nil {
		t.Fatal("CreateAPIKey without an id succeeded")
	}
}

func testAPIKeyList(t *testing.T, s store.Store) {
	c := ctx(t)
	var keys []store.APIKey
	for i := range 12 {
		tenant := []string{"acme", "acme", "globex", ""}[i%4]
		k := NewAPIKey(tenant, Base.Add(time.Duration(i)*time.Second))
		must(t, s.CreateAPIKey(c, &k), "CreateAPIKey")
		if i%3 == 0 {
			k.RevokedAt = Base.Add(time.Hour)
			must(t, s.RevokeAPIKey(c, store.AllTenants(), k.ID, k.RevokedAt), "RevokeAPIKey")
		}
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b store.APIKey) int { return cmpStr(a.ID, b.ID) })
	for _, scope := range []store.Scope{store.TenantScope("acme"), store.TenantScope("globex"), store.TenantScope("nobody"), store.AllTenants()} {
		for _, revoked := range []bool{false, true} {
			var want []store.APIKey
			for _, k := range keys {
				if scope.Includes(k.Tenant) && (revoked || k.RevokedAt.IsZero()) {
					want = append(want, k)
				}
			}
			for _, limit := range []int{0, 1, 2, 5} {
				got := listAllAPIKeys(t, s, store.APIKeyFilter{Scope: scope, IncludeRevoked: revoked}, limit)
				wantEqual(t, want, got, fmt.Sprintf("ListAPIKeys(%s, revoked %v, limit %d)", scope, revoked, limit))
			}
		}
	}
	_, _, err := s.ListAPIKeys(c, store.APIKeyFilter{Scope: store.AllTenants(), PageToken: "%%%not a token"})
	if !errors.Is(err, store.ErrInvalidPageToken) {
		t.Fatalf("ListAPIKeys with a garbage token: err = %v, want ErrInvalidPageToken", err)
	}
}

func testAPIKeyRevoke(t *testing.T, s store.Store) {
	c := ctx(t)
	k := NewAPIKey("acme", Base)
	other := NewAPIKey("acme", Base)
	for _, key := range []*store.APIKey{&k, &other} {
		must(t, s.CreateAPIKey(c, key), "CreateAPIKey")
	}
	first, second := Base.Add(time.Hour), Base.Add(2*time.Hour)
	must(t, s.RevokeAPIKey(c, store.TenantScope("acme"), k.ID, first), "RevokeAPIKey")
	must(t, s.RevokeAPIKey(c, store.AllTenants(), k.ID, second), "RevokeAPIKey again")
	got, err := s.GetAPIKey(c, k.ID)
	must(t, err, "GetAPIKey(revoked)")
	k.RevokedAt = first
	wantEqual(t, &k, got, "key revoked twice")
	got, err = s.GetAPIKey(c, other.ID)
	must(t, err, "GetAPIKey(other)")
	wantEqual(t, &other, got, "key not revoked")
	wantErr(t, s.RevokeAPIKey(c, store.AllTenants(), "hk_missing", first), store.ErrNotFound, "RevokeAPIKey(missing)")

	// A revoked key can still be created again identically (a repeated
	// create), and is listed only with IncludeRevoked.
	again := k
	again.RevokedAt = time.Time{}
	must(t, s.CreateAPIKey(c, &again), "repeated CreateAPIKey of a revoked key")
	wantEqual(t, []store.APIKey{other}, listAllAPIKeys(t, s, store.APIKeyFilter{Scope: store.TenantScope("acme")}, 0), "active keys")
}

func testAPIKeyTouch(t *testing.T, s store.Store) {
	c := ctx(t)
	a, b, never := NewAPIKey("acme", Base), NewAPIKey("globex", Base), NewAPIKey("", Base)
	for _, k := range []*store.APIKey{&a, &b, &never} {
		must(t, s.CreateAPIKey(c, k), "CreateAPIKey")
	}
	check := func(k store.APIKey, want time.Time, what string) {
		t.Helper()
		got, err := s.GetAPIKey(c, k.ID)
		must(t, err, "GetAPIKey")
		k.LastUsedAt = want
		wantEqual(t, &k, got, what)
	}
	t1, t2, t3 := Base.Add(time.Minute), Base.Add(2*time.Minute), Base.Add(3*time.Minute)
	must(t, s.TouchAPIKeys(c, map[string]time.Time{a.ID: t2, b.ID: t1, "hk_unknown": t3}), "TouchAPIKeys")
	check(a, t2, "a after the first touch")
	check(b, t1, "b after the first touch")
	check(never, time.Time{}, "untouched key")

	// Never backwards; a zero time is ignored; forwards moves.
	must(t, s.TouchAPIKeys(c, map[string]time.Time{a.ID: t1, b.ID: t3, never.ID: {}}), "TouchAPIKeys (mixed)")
	check(a, t2, "a touched with an earlier time")
	check(b, t3, "b touched later")
	check(never, time.Time{}, "key touched with the zero time")
	must(t, s.TouchAPIKeys(c, map[string]time.Time{a.ID: t2}), "TouchAPIKeys (same time)")
	check(a, t2, "a touched with the same time")
	must(t, s.TouchAPIKeys(c, nil), "TouchAPIKeys(nil)")

	// A batch of many keys is one call.
	batch := map[string]time.Time{}
	var many []store.APIKey
	for i := range 50 {
		k := NewAPIKey("acme", Base)
		must(t, s.CreateAPIKey(c, &k), "CreateAPIKey")
		batch[k.ID] = t1.Add(time.Duration(i) * time.Nanosecond)
		many = append(many, k)
	}
	must(t, s.TouchAPIKeys(c, batch), "TouchAPIKeys (batch)")
	for _, k := range many {
		check(k, batch[k.ID], "key of the batch")
	}
}
