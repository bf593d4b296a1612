package tenantlimit

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a test clock that moves only when told.
type clock struct{ ns atomic.Int64 }

var epoch = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func (c *clock) now() time.Time          { return epoch.Add(time.Duration(c.ns.Load())) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// writeFile writes a limits file into a test directory and returns its path.
func writeFile(t testing.TB, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "limits.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustNew(t testing.TB, cfg Config, c *clock, shards, maxBuckets int) *Limiter {
	t.Helper()
	l, err := newLimiter(cfg, c.now, shards, maxBuckets)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func cfgOf(rate float64, burst int) Config {
	c := DefaultConfig()
	c.PublishRate, c.PublishBurst = rate, burst
	return c
}

// outcome is AllowPublish's result in comparable form.
type outcome struct {
	ok         bool
	retryAfter time.Duration
	tooLarge   bool
}

func allow(l *Limiter, tenant string, n int) outcome {
	err := l.AllowPublish(tenant, n)
	var rl *RateLimitError
	var tl *BatchTooLargeError
	switch {
	case err == nil:
		return outcome{ok: true}
	case errors.As(err, &rl):
		return outcome{retryAfter: rl.RetryAfter}
	case errors.As(err, &tl):
		return outcome{tooLarge: true}
	}
	panic(fmt.Sprintf("unexpected error %T %v", err, err))
}

// step is one call in a scripted scenario: advance the clock, then publish.
type step struct {
	advance time.Duration
	tenant  string // "" means "acme"
	n       int
	want    outcome
}

func run(t *testing.T, l *Limiter, c *clock, steps []step) {
	t.Helper()
	for i, s := range steps {
		c.advance(s.advance)
		tenant := s.tenant
		if tenant == "" {
			tenant = "acme"
		}
		if got := allow(l, tenant, s.n); got != s.want {
			t.Fatalf("step %d (+%v, %s, n=%d): got %+v, want %+v", i, s.advance, tenant, s.n, got, s.want)
		}
	}
}

var ok = outcome{ok: true}

func wait(d time.Duration) outcome { return outcome{retryAfter: d} }

func TestBucket(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	for _, tc := range []struct {
		name  string
		rate  float64
		burst int
		steps []step
	}{
		{"burst then refusal", 10, 5, []step{
			{n: 1, want: ok}, {n: 1, want: ok}, {n: 1, want: ok}, {n: 1, want: ok}, {n: 1, want: ok},
			{n: 1, want: wait(100 * ms)},
			{n: 3, want: wait(300 * ms)},
			{advance: 99 * ms, n: 1, want: wait(1 * ms)},
			{advance: 1 * ms, n: 1, want: ok},
			{n: 1, want: wait(100 * ms)},
		}},
		{"batch takes n at once", 10, 5, []step{
			{n: 5, want: ok},
			{n: 1, want: wait(100 * ms)},
			{advance: 250 * ms, n: 3, want: wait(50 * ms)}, // 2.5 held
			{advance: 50 * ms, n: 3, want: ok},
		}},
		{"refill is capped at the burst", 2, 4, []step{
			{n: 4, want: ok},
			{advance: time.Second, n: 2, want: ok},
			{n: 1, want: wait(500 * ms)},
			{advance: time.Hour, n: 4, want: ok},
			{n: 1, want: wait(500 * ms)},
			{advance: time.Hour, n: 5, want: outcome{tooLarge: true}},
			{n: 4, want: ok},
		}},
		{"fractional rate", 0.5, 1, []step{
			{n: 1, want: ok},
			{n: 1, want: wait(2 * time.Second)},
			{advance: 1999 * ms, n: 1, want: wait(1 * ms)},
			{advance: 1 * ms, n: 1, want: ok},
		}},
		{"awkward rate: waiting retryAfter always suffices", 3, 1, []step{
			{n: 1, want: ok},
			{n: 1, want: wait(333333334)}, // 1/3 s rounded up to the nanosecond
			{advance: 333333334, n: 1, want: ok},
		}},
		{"batch larger than the burst never passes and takes nothing", 10, 5, []step{
			{n: 6, want: outcome{tooLarge: true}},
			{advance: time.Hour, n: 6, want: outcome{tooLarge: true}},
			{n: 5, want: ok},
		}},
		{"n of 0 or less is allowed and takes nothing", 1, 1, []step{
			{n: 1, want: ok},
			{n: 0, want: ok},
			{n: -3, want: ok},
			{n: 1, want: wait(time.Second)},
		}},
		{"tenants have separate buckets", 1, 2, []step{
			{tenant: "a", n: 2, want: ok},
			{tenant: "a", n: 1, want: wait(time.Second)},
			{tenant: "b", n: 2, want: ok},
			{tenant: "b", n: 1, want: wait(time.Second)},
		}},
		{"unlimited", 0, 0, []step{
			{n: 1, want: ok},
			{n: 1 << 30, want: ok},
			{n: 1 << 30, want: ok},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := &clock{}
			l := mustNew(t, cfgOf(tc.rate, tc.burst), c, defaultShards, defaultMaxBuckets)
			run(t, l, c, tc.steps)
		})
	}
}

// TestRetryAfterSuffices checks, for many rates, that a refused request
// retried exactly RetryAfter later passes, and three nanoseconds earlier
// does not: RetryAfter is the shortest wait, give or take the bucket's
// rounding.
func TestRetryAfterSuffices(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		r := []float64{rng.Float64() * 10, rng.Float64() * 1e6, 1 / (1 + rng.Float64()*1e4)}[i%3]
		if r == 0 {
			continue
		}
		burst := 1 + rng.IntN(1000)
		c := &clock{}
		l := mustNew(t, cfgOf(r, burst), c, 1, defaultMaxBuckets)
		if err := l.AllowPublish("acme", burst); err != nil {
			t.Fatal(err)
		}
		c.advance(time.Duration(rng.Int64N(int64(time.Second))))
		n := 1 + rng.IntN(burst)
		var rl *RateLimitError
		if err := l.AllowPublish("acme", n); !errors.As(err, &rl) {
			continue // refilled enough already
		}
		if rl.RetryAfter <= 0 {
			t.Fatalf("rate %v burst %d n %d: RetryAfter %v", r, burst, n, rl.RetryAfter)
		}
		// The bucket lets pass a shortfall worth under 1ns of refill, in
		// float arithmetic, so 1 or 2ns early may pass; 3ns may not.
		c.advance(rl.RetryAfter - 3)
		if err := l.AllowPublish("acme", n); err == nil {
			t.Fatalf("rate %v burst %d n %d: allowed 3ns before RetryAfter %v", r, burst, n, rl.RetryAfter)
		}
		c.advance(3)
		if err := l.AllowPublish("acme", n); err != nil {
			t.Fatalf("rate %v burst %d n %d: refused after RetryAfter %v: %v", r, burst, n, rl.RetryAfter, err)
		}
	}
}

func TestOverrides(t *testing.T) {
	t.Parallel()
	cfg := cfgOf(100, 100)
	cfg.MaxSubscriptions = 1000
	cfg.LimitsFile = writeFile(t, `
tenants:
  acme:  {publish_rate: 1, publish_burst: 2, max_subscriptions: 50}
  bigco: {publish_rate: 0, max_subscriptions: 0}  # unlimited
  burst-only: {publish_burst: 10}
  subs_only:
    max_subscriptions: 7
  empty:
`)
	c := &clock{}
	l := mustNew(t, cfg, c, defaultShards, defaultMaxBuckets)
	for _, tc := range []struct {
		tenant  string
		rate    float64
		burst   int
		maxSubs int
	}{
		{"acme", 1, 2, 50},
		{"bigco", 0, 100, 0},
		{"burst-only", 100, 10, 1000},
		{"subs_only", 100, 100, 7},
		{"empty", 100, 100, 1000},
		{"other", 100, 100, 1000},
		{"ACME", 100, 100, 1000}, // names are case-sensitive, as in the API
	} {
		r, b := l.PublishLimit(tc.tenant)
		if r != tc.rate || b != tc.burst {
			t.Errorf("PublishLimit(%q) = %v, %d; want %v, %d", tc.tenant, r, b, tc.rate, tc.burst)
		}
		if got := l.MaxSubscriptions(tc.tenant); got != tc.maxSubs {
			t.Errorf("MaxSubscriptions(%q) = %d; want %d", tc.tenant, got, tc.maxSubs)
		}
	}
	run(t, l, c, []step{
		{tenant: "acme", n: 2, want: ok},
		{tenant: "acme", n: 1, want: wait(time.Second)},
		{tenant: "acme", n: 3, want: outcome{tooLarge: true}},
		{tenant: "bigco", n: 1 << 20, want: ok},
		{tenant: "bigco", n: 1 << 20, want: ok},
		{tenant: "burst-only", n: 10, want: ok},
		{tenant: "burst-only", n: 1, want: wait(10 * time.Millisecond)},
		{tenant: "burst-only", n: 11, want: outcome{tooLarge: true}},
		{tenant: "other", n: 100, want: ok},
		{tenant: "other", n: 1, want: wait(10 * time.Millisecond)},
		{tenant: "other", n: 101, want: outcome{tooLarge: true}},
	})
}

func TestErrorMessages(t *testing.T) {
	t.Parallel()
	c := &clock{}
	l := mustNew(t, cfgOf(2.5, 5), c, defaultShards, defaultMaxBuckets)
	err := l.AllowPublish("acme", 6)
	if want := `batch of 6 events exceeds the publish burst of 5 events of tenant "acme"; split it into batches of at most 5 events`; err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	if err := l.AllowPublish("acme", 5); err != nil {
		t.Fatal(err)
	}
	c.advance(time.Millisecond / 2)
	err = l.AllowPublish("acme", 3)
	// 3 events at 2.5/s lack 3-0.00125 events: 1.1995 s, shown rounded up.
	if want := `tenant "acme" is over its publish rate limit of 2.5 events per second (burst 5); retry the 3 event(s) after 1.2s`; err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

// TestUnlimitedKeepsNoState checks that tenants without a publish limit
// never get a bucket.
func TestUnlimitedKeepsNoState(t *testing.T) {
	t.Parallel()
	cfg := cfgOf(0, 1000)
	cfg.LimitsFile = writeFile(t, "tenants: {acme: {publish_rate: 5}}\n")
	l := mustNew(t, cfg, &clock{}, 1, defaultMaxBuckets)
	for i := range 1000 {
		if err := l.AllowPublish(fmt.Sprintf("t%d", i), 1000); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(l.shards[0].buckets); got != 0 {
		t.Fatalf("%d buckets for unlimited tenants", got)
	}
	if err := l.AllowPublish("acme", 5); err != nil {
		t.Fatal(err)
	}
	if got := len(l.shards[0].buckets); got != 1 {
		t.Fatalf("%d buckets, want the one of acme", got)
	}
}

// TestDroppingIdleBucketsChangesNothing runs the same workload through a
// limiter that keeps every bucket and one bounded to 8, in which tenants
// come and go: the bounded one drops the buckets of tenants gone idle, and
// every decision, RetryAfter included, is the same.
func TestDroppingIdleBucketsChangesNothing(t *testing.T) {
	t.Parallel()
	const rate, burst = 10, 20
	c := &clock{}
	ref := mustNew(t, cfgOf(rate, burst), c, 1, 1<<20)
	bounded := mustNew(t, cfgOf(rate, burst), c, 1, 8)
	rng := rand.New(rand.NewPCG(3, 4))
	calls := 0
	for round := range 50 {
		// Six tenants are active this round, chosen from 30.
		active := make([]string, 6)
		for i := range active {
			active[i] = fmt.Sprintf("tenant-%d", (round*5+i*7)%30)
		}
		for range 100 {
			tenant := active[rng.IntN(len(active))]
			n := 1 + rng.IntN(burst+2) // sometimes more than the burst
			c.advance(time.Duration(rng.Int64N(int64(50 * time.Millisecond))))
			want, got := allow(ref, tenant, n), allow(bounded, tenant, n)
			if got != want {
				t.Fatalf("round %d, %s n=%d: bounded %+v, reference %+v", round, tenant, n, got, want)
			}
			calls++
			if b := len(bounded.shards[0].buckets); b > 8 {
				t.Fatalf("round %d: %d buckets, bound 8", round, b)
			}
		}
		// Everyone idles long enough to refill.
		c.advance(burst * time.Second / rate)
	}
	s := &bounded.shards[0]
	if s.dropped == 0 || s.evicted != 0 {
		t.Fatalf("dropped %d full buckets and evicted %d others; want some dropped, none evicted", s.dropped, s.evicted)
	}
	t.Logf("%d calls, %d idle buckets dropped", calls, s.dropped)
}

// TestActiveBucketsSurviveSweeps checks that the buckets of tenants
// publishing below their rate, full at every sweep, are kept while they
// publish, and dropped once they stop.
func TestActiveBucketsSurviveSweeps(t *testing.T) {
	t.Parallel()
	c := &clock{}
	l := mustNew(t, cfgOf(1000, 10), c, 1, 1<<20)
	s := &l.shards[0]
	steady := make(map[string]*bucket)
	for i := range 20 {
		tenant := fmt.Sprintf("steady-%d", i)
		if err := l.AllowPublish(tenant, 1); err != nil {
			t.Fatal(err)
		}
		steady[tenant] = s.buckets[tenant]
	}
	for round := range 20 {
		c.advance(time.Second) // every bucket refills
		for tenant := range steady {
			if err := l.AllowPublish(tenant, 1); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 50 { // one-off tenants, making the shard sweep
			if err := l.AllowPublish(fmt.Sprintf("once-%d-%d", round, i), 1); err != nil {
				t.Fatal(err)
			}
		}
		for tenant, b := range steady {
			if s.buckets[tenant] != b {
				t.Fatalf("round %d: the bucket of %s, publishing every round, was dropped", round, tenant)
			}
		}
		// 20 steady tenants and the one-off tenants of the last two
		// rounds or so, not all 20 + 50×round seen.
		if len(s.buckets) > 200 {
			t.Fatalf("round %d: %d buckets: idle ones are not dropped", round, len(s.buckets))
		}
	}
	if s.dropped == 0 || s.evicted != 0 {
		t.Fatalf("dropped %d, evicted %d; want one-off tenants dropped, nothing evicted", s.dropped, s.evicted)
	}
	// The steady tenants stop; after the next sweeps they are gone.
	for round := range 3 {
		c.advance(time.Second)
		for i := range 200 {
			_ = l.AllowPublish(fmt.Sprintf("later-%d-%d", round, i), 1)
		}
	}
	for tenant := range steady {
		if s.buckets[tenant] != nil {
			t.Fatalf("idle %s still has a bucket", tenant)
		}
	}
}

// TestBucketBound checks that more tenants publishing at once than the
// bound keep the bucket count within it, evicting the fullest buckets.
func TestBucketBound(t *testing.T) {
	t.Parallel()
	c := &clock{}
	l := mustNew(t, cfgOf(1, 100), c, 1, 64)
	s := &l.shards[0]
	// "heavy" drains its bucket; the rest take 1 event each, leaving
	// their buckets nearly full, so they go first.
	if err := l.AllowPublish("heavy", 100); err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		if err := l.AllowPublish(fmt.Sprintf("light-%d", i), 1); err != nil {
			t.Fatal(err)
		}
		if len(s.buckets) > 64 {
			t.Fatalf("after %d tenants: %d buckets, bound 64", i+1, len(s.buckets))
		}
	}
	if s.evicted == 0 {
		t.Fatal("nothing evicted")
	}
	if err := l.AllowPublish("heavy", 1); err == nil {
		t.Fatal("the drained bucket was evicted before the nearly full ones")
	}
}

// TestConcurrent hammers shared and separate tenants from many goroutines
// with the clock stopped: each tenant gets exactly its burst, however the
// calls interleave.
func TestConcurrent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name               string
		shards, maxBuckets int
	}{
		{"default", defaultShards, defaultMaxBuckets},
		{"one shard", 1, defaultMaxBuckets},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const tenants, burst, workers, calls = 20, 100, 16, 500
			c := &clock{}
			l := mustNew(t, cfgOf(1, burst), c, tc.shards, tc.maxBuckets)
			var allowed [tenants]atomic.Int64
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for i := range calls {
						k := (w + i) % tenants
						n := 1 + i%3
						if l.AllowPublish(fmt.Sprintf("t%d", k), n) == nil {
							allowed[k].Add(int64(n))
						}
						_, _ = l.PublishLimit("t0")
						_ = l.MaxSubscriptions("t1")
					}
				})
			}
			wg.Wait()
			for k := range allowed {
				// Batches of 1-3 against a burst of 100: at least 98 fit.
				if got := allowed[k].Load(); got > burst || got < burst-2 {
					t.Errorf("tenant t%d: %d events allowed, burst %d", k, got, burst)
				}
			}
		})
	}
}

// TestConcurrentSweeps exercises sweeping and eviction under the race
// detector, with the clock moving and more tenants than the bound.
func TestConcurrentSweeps(t *testing.T) {
	t.Parallel()
	c := &clock{}
	l := mustNew(t, cfgOf(50, 10), c, 4, 32)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for range 2000 {
				if rng.IntN(10) == 0 {
					c.advance(time.Duration(rng.Int64N(int64(100 * time.Millisecond))))
				}
				_ = l.AllowPublish(fmt.Sprintf("t%d", rng.IntN(300)), 1+rng.IntN(12))
			}
		})
	}
	wg.Wait()
	for i := range l.shards {
		if n := len(l.shards[i].buckets); n > l.shardCap {
			t.Errorf("shard %d: %d buckets, bound %d", i, n, l.shardCap)
		}
	}
}

func TestNewNilClock(t *testing.T) {
	t.Parallel()
	l, err := New(cfgOf(1, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.AllowPublish("acme", 1); err != nil {
		t.Fatal(err)
	}
	if err := l.AllowPublish("acme", 1); err == nil || !strings.Contains(err.Error(), "over its publish rate limit") {
		t.Fatalf("second publish: %v", err)
	}
}

func TestNewRefusesInvalidConfig(t *testing.T) {
	t.Parallel()
	if _, err := New(cfgOf(-1, 1), nil); err == nil || !strings.Contains(err.Error(), flagRate) {
		t.Fatalf("got %v", err)
	}
}

// BenchmarkAllowPublish measures the hot path: an allowed publish of a
// known tenant (its bucket exists), serial and parallel, with the real
// clock.
func BenchmarkAllowPublish(b *testing.B) {
	cfg := cfgOf(1e12, 1<<30) // never refuses: measures the allowed path
	cfg.LimitsFile = writeFile(b, "tenants: {free: {publish_rate: 0}}\n")
	l, err := New(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	tenants := make([]string, 1000)
	for i := range tenants {
		tenants[i] = fmt.Sprintf("tenant-%d", i)
		_ = l.AllowPublish(tenants[i], 1)
	}
	b.Run("known", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if l.AllowPublish("tenant-7", 1) != nil {
				b.Fatal("refused")
			}
		}
	})
	b.Run("unlimited", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if l.AllowPublish("free", 1) != nil {
				b.Fatal("refused")
			}
		}
	})
	b.Run("parallel-one-tenant", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if l.AllowPublish("tenant-7", 1) != nil {
					b.Fatal("refused")
				}
			}
		})
	})
	b.Run("parallel-1000-tenants", func(b *testing.B) {
		b.ReportAllocs()
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			i := int(next.Add(97))
			for pb.Next() {
				i++
				if l.AllowPublish(tenants[i%len(tenants)], 1) != nil {
					b.Fatal("refused")
				}
			}
		})
	})
	b.Run("refused", func(b *testing.B) {
		l, err := New(cfgOf(1e-3, 1), nil)
		if err != nil {
			b.Fatal(err)
		}
		_ = l.AllowPublish("acme", 1)
		b.ReportAllocs()
		for b.Loop() {
			if l.AllowPublish("acme", 1) == nil {
				b.Fatal("allowed")
			}
		}
	})
}
