package store

import (
	"testing"
	"time"
)

func TestSecretActiveAt(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		expires time.Time
		want    bool
	}{
		{"no expiry", time.Time{}, true},
		{"expires later", now.Add(time.Nanosecond), true},
		{"expires now", now, false},
		{"expired", now.Add(-time.Hour), false},
	}
	for _, tt := range tests {
		if got := (Secret{Value: "whsec_x", ExpiresAt: tt.expires}).ActiveAt(now); got != tt.want {
			t.Errorf("%s: ActiveAt = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestScope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		scope    Scope
		zero     bool
		all      bool
		tenant   string
		includes map[string]bool
		str      string
	}{
		{"zero", Scope{}, true, false, "", map[string]bool{"": false, "acme": false}, "(none)"},
		{"empty tenant", TenantScope(""), true, false, "", map[string]bool{"": false, "acme": false}, "(none)"},
		{"tenant", TenantScope("acme"), false, false, "acme", map[string]bool{"": false, "acme": true, "globex": false}, "acme"},
		{"all", AllTenants(), false, true, "", map[string]bool{"": true, "acme": true, "globex": true}, "*"},
	}
	for _, tt := range tests {
		s := tt.scope
		if s.IsZero() != tt.zero || s.All() != tt.all || s.Tenant() != tt.tenant || s.String() != tt.str {
			t.Errorf("%s: IsZero %v All %v Tenant %q String %q", tt.name, s.IsZero(), s.All(), s.Tenant(), s.String())
		}
		for tenant, want := range tt.includes {
			if got := s.Includes(tenant); got != want {
				t.Errorf("%s: Includes(%q) = %v, want %v", tt.name, tenant, got, want)
			}
		}
	}
}

func TestRetryDueBucketOf(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		after time.Duration // due - now
		want  RetryDueBucket
	}{
		{-48 * time.Hour, DueOverdue},
		{-time.Nanosecond, DueOverdue},
		{0, DueOverdue},
		{time.Nanosecond, DueIn1m},
		{time.Minute, DueIn1m},
		{time.Minute + time.Nanosecond, DueIn10m},
		{10 * time.Minute, DueIn10m},
		{10*time.Minute + time.Nanosecond, DueIn1h},
		{time.Hour, DueIn1h},
		{time.Hour + time.Nanosecond, DueIn1d},
		{24 * time.Hour, DueIn1d},
		{24*time.Hour + time.Nanosecond, DueLater},
		{365 * 24 * time.Hour, DueLater},
	}
	for _, tt := range tests {
		if got := RetryDueBucketOf(now.Add(tt.after), now); got != tt.want {
			t.Errorf("due %v after now: bucket %q, want %q", tt.after, got, tt.want)
		}
	}
}

func TestRetryDueBucketUpTo(t *testing.T) {
	t.Parallel()
	// The buckets' ends rise strictly, and only the last has none.
	prev := time.Duration(-1)
	for i, b := range RetryDueBuckets {
		upTo, ok := b.UpTo()
		if last := i == len(RetryDueBuckets)-1; ok == last {
			t.Errorf("bucket %q: UpTo ok = %v, want %v", b, ok, !last)
		}
		if ok && upTo <= prev {
			t.Errorf("bucket %q ends at %v, not after the previous end %v", b, upTo, prev)
		}
		prev = upTo
	}
	if _, ok := RetryDueBucket("soon").UpTo(); ok {
		t.Error("an unknown bucket has an end")
	}
}

func TestNewStatsHasEveryKey(t *testing.T) {
	t.Parallel()
	st := NewStats()
	tests := []struct {
		name string
		got  int
		want int
	}{
		{"deliveries", len(st.Deliveries), len(StatsDeliveryStatuses)},
		{"subscriptions", len(st.Subscriptions), len(SubscriptionHealths)},
		{"scheduled retries", len(st.ScheduledRetries), len(RetryDueBuckets)},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: %d keys, want %d", tt.name, tt.got, tt.want)
		}
	}
	for _, s := range StatsDeliveryStatuses {
		if n, ok := st.Deliveries[s]; !ok || n != 0 {
			t.Errorf("Deliveries[%q] = %d, %v; want 0, true", s, n, ok)
		}
	}
	if _, ok := st.Deliveries[DeliverySucceeded]; ok {
		t.Error("Deliveries counts succeeded")
	}
}
