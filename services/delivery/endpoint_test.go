package delivery

import (
	"testing"
	"time"
)

// TestQueueSpot: postponed deliveries are spread one service interval
// apart (average duration / in-flight cap, or the rate limit's spacing),
// counted ahead in order, never scheduled beyond maxWait, and the queue
// drains as time passes.
func TestQueueSpot(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	policy := queuePolicy{inFlight: 4, minWait: 10 * time.Millisecond, maxWait: time.Minute}
	tests := []struct {
		name     string
		avg      time.Duration
		policy   func(queuePolicy) queuePolicy
		n        int           // deliveries postponed at now
		interval time.Duration // expected spacing
		maxWait  bool          // the last is held at maxWait
	}{
		{name: "slow endpoint", avg: 2 * time.Second, n: 10, interval: 500 * time.Millisecond},
		{name: "fast endpoint waits at least minWait", avg: 4 * time.Millisecond, n: 10, interval: time.Millisecond},
		{name: "no attempt finished yet", avg: 0, n: 10, interval: 10 * time.Millisecond / 4},
		{name: "rate limit spaces further", avg: 4 * time.Millisecond, n: 10, interval: 100 * time.Millisecond,
			policy: func(p queuePolicy) queuePolicy { p.rateLimit = 10; return p }},
		{name: "capped at maxWait", avg: 40 * time.Second, n: 10, interval: 10 * time.Second, maxWait: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := policy
			if tt.policy != nil {
				p = tt.policy(p)
			}
			ep := &endpoint{avgDur: tt.avg}
			for i := range tt.n {
				wait, ahead := ep.queueSpot(now, p)
				want := max(time.Duration(i+1)*tt.interval, p.minWait)
				if want >= p.maxWait {
					if !tt.maxWait {
						t.Fatalf("test case reaches maxWait unexpectedly")
					}
					if wait != p.maxWait {
						t.Fatalf("delivery %d: wait %v; want maxWait %v", i, wait, p.maxWait)
					}
					continue
				}
				if wait < want || wait > want+tt.interval {
					t.Fatalf("delivery %d: wait %v; want %v plus at most one interval (%v) of jitter", i, wait, want, tt.interval)
				}
				if ahead != i {
					t.Fatalf("delivery %d: %d ahead; want %d", i, ahead, i)
				}
			}
			// Once the queue's time has passed, the next one is at the head.
			later := now.Add(p.maxWait + time.Second)
			if _, ahead := ep.queueSpot(later, p); ahead != 0 {
				t.Fatalf("after the queue drained: %d ahead; want 0", ahead)
			}
		})
	}
}

// TestObserveAverages: the moving average starts at the first duration and
// moves an eighth of the way toward each later one.
func TestObserveAverages(t *testing.T) {
	t.Parallel()
	ep := &endpoint{}
	ep.observe(800 * time.Millisecond)
	if ep.avgDur != 800*time.Millisecond {
		t.Fatalf("after one: %v", ep.avgDur)
	}
	ep.observe(0) // counted as 1µs
	if want := 800*time.Millisecond + (time.Microsecond-800*time.Millisecond)/8; ep.avgDur != want {
		t.Fatalf("after two: %v; want %v", ep.avgDur, want)
	}
}
